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

#include "common.h"
#include "loss.h"
#include "task.h"

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

/* Container cgroups (cgroup v2 ids, the directories' inode numbers) and
 * their namespaces: a task outside every namespace that forks inside one
 * gives the namespace its child at once, so a container's processes are
 * members even when userspace finds its cgroup's processes late. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} ctr_cgroup SEC(".maps");

/* setup_task: task has not executed its container's workload: it is in
 * the host's mount namespace, or runs a program from outside its root
 * (the rule of the agent's enrolment, internal/agent/dormant.go). */
static __always_inline int setup_task(struct task_struct *task)
{
	struct file *exe;

	if (BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum) == host_mnt_inum)
		return 1;
	exe = BPF_CORE_READ(task, mm, exe_file);
	return exe && BPF_CORE_READ(exe, f_path.mnt) != BPF_CORE_READ(task, fs, root.mnt);
}

/* cgroup_ns returns the namespace of the container cgroup task is in (or
 * below, up to VG_CGROUP_LEVELS levels: runc's leaf cgroups), 0 when
 * none. */
#define VG_CGROUP_LEVELS 4
static __always_inline __u64 cgroup_ns(struct task_struct *task)
{
	struct cgroup *cg = BPF_CORE_READ(task, cgroups, dfl_cgrp);

	for (int i = 0; i <= VG_CGROUP_LEVELS && cg; i++) {
		__u64 id = BPF_CORE_READ(cg, kn, id);
		__u64 *ns = bpf_map_lookup_elem(&ctr_cgroup, &id);

		if (ns)
			return *ns;
		cg = BPF_CORE_READ(cg, self.parent, cgroup);
	}
	return 0;
}

/* cgroup_fork enrols the child of a task outside every namespace that
 * forks in a container cgroup: dormant when the parent is a runtime's
 * task (setup_task), else awake as a namespace root. It returns 1 when
 * it did. */
static __always_inline int cgroup_fork(__u32 child_pid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task child = {};
	__u64 ns = cgroup_ns(task);

	if (!ns)
		return 0;
	child.ns = ns;
	child.flags = VG_T_ENROLLED;
	if (setup_task(task))
		child.flags |= VG_T_DORMANT;
	if (bpf_map_update_elem(&pending, &child_pid, &child, BPF_ANY))
		count_loss(ns, VG_LOSS_PENDING);
	return 1;
}

/* vg_cgroup_attach: a task moved into a watched container cgroup (its
 * cgroup.procs written, on the cgroup v2 hierarchy: root 0) from outside
 * is the runtime's (runc exec moves its process in after it joined the
 * container's namespaces, just before the exec): it becomes a dormant
 * member at its next event, through the pending table as a forked child
 * does. A task that has state already (a member, or a host task) never
 * takes the entry; vg_exit drops it. */
SEC("tracepoint/cgroup/cgroup_attach_task")
int vg_cgroup_attach(struct trace_event_raw_cgroup_migrate *ctx)
{
	struct vg_task t = {};
	__u64 id = ctx->dst_id, *ns;
	__u32 pid = ctx->pid;

	if (ctx->dst_root != 0)
		return 0;
	ns = bpf_map_lookup_elem(&ctr_cgroup, &id);
	if (!ns)
		return 0;
	t.ns = *ns;
	t.flags = VG_T_ENROLLED | VG_T_DORMANT;
	if (bpf_map_update_elem(&pending, &pid, &t, BPF_ANY))
		count_loss(t.ns, VG_LOSS_PENDING);
	return 0;
}

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
