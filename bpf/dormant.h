/* Dormant tasks: a container runtime prepares a container with its own
 * program (runc init) inside the container's cgroup, then execs the
 * workload. What the runtime does before that exec (mounts below its
 * per-container state directory, the exec fifo named after the container
 * id, ...) differs in every instance of the same image, so the agent
 * enrols such tasks dormant (VG_T_DORMANT): they make no record and are
 * never denied, and their children and threads inherit the flag at fork.
 * Their first exec outside the host's mount namespace (host_mnt_inum)
 * clears it: the runtime's own re-exec in the host's (runc's copy of itself)
 * does not, the exec of the workload inside the container does. The task
 * then has TTD 0 and PTTD 0 as an enrolled task has, so its exec gives it
 * a namespace root's identity (task_id derived from the zero parent id). */
#ifndef VIGIL_DORMANT_H
#define VIGIL_DORMANT_H

#include "vigil.h"

/* dormant_state returns the current task's state when it is dormant.
 * Call it after current_state, which takes a forked task's inherited
 * state over from the pending table. */
static __always_inline struct vg_task *dormant_state(void)
{
	struct vg_task *st = bpf_task_storage_get(&task_state, bpf_get_current_task_btf(), 0, 0);

	if (st && (st->flags & VG_T_DORMANT))
		return st;
	return NULL;
}

/* dormant_fork passes a dormant task's membership to its child (a process
 * or a thread), dormant too and without a fork record. It returns 1 when
 * the current task is dormant. */
static __always_inline int dormant_fork(__u32 child_pid)
{
	struct vg_task *st = dormant_state();
	struct vg_task child = {};

	if (!st)
		return 0;
	child.ns = st->ns;
	child.flags = st->flags;
	if (bpf_map_update_elem(&pending, &child_pid, &child, BPF_ANY))
		count_loss(st->ns, VG_LOSS_PENDING);
	return 1;
}

/* The inode number of the host's mount namespace (set by the loader). */
const volatile __u32 host_mnt_inum = 0;

/* dormant_wake clears the flag of the current task when it execs outside
 * the host's mount namespace, in its task state or, before its first
 * event, in the state it inherited. */
static __always_inline void dormant_wake(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task *st = bpf_task_storage_get(&task_state, task, 0, 0);
	__u32 pid;

	if (!st) {
		pid = (__u32)bpf_get_current_pid_tgid();
		st = bpf_map_lookup_elem(&pending, &pid);
	}
	if (!st || !(st->flags & VG_T_DORMANT))
		return;
	if (BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum) == host_mnt_inum)
		return;
	st->flags &= ~VG_T_DORMANT;
}

#endif
