/* Task state: a task's namespace membership and identity (TTD, PTTD) in
 * task storage, inherited at fork through the pending table, and the
 * task's copy of its namespace's configuration. */
#ifndef VIGIL_TASK_H
#define VIGIL_TASK_H

#include "common.h"
#include "loss.h"
#include "namespace.h"
#include "ignore.h"

enum vg_task_flags {
	VG_T_ENROLLED = 1 << 0,
	VG_T_UNTRUSTED = 1 << 1,
	VG_T_DORMANT = 1 << 2, /* no records until the task execs (dormant.h) */
};

/* Per-task state, in task storage; Enroll writes it from userspace through
 * a pidfd. */
struct vg_task {
	__u64 ns;
	__u64 ttd;
	__u64 p_ttd;
	__u32 flags;
	/* The task's copy of its namespace's configuration (ns_cfg), valid
	 * while cfg_epoch equals cfg_epoch_now[0] (0: no copy). */
	__u32 cfg_epoch;
	struct vg_ns_cfg cfg;
	__u32 cfg_present;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_task);
} task_state SEC(".maps");

/* Fork inheritance: the parent's state for a child, keyed by the child's
 * pid, taken over by the child at its first event. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct vg_task);
} pending SEC(".maps");

/* [0]: the last TTD handed out. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ttd_counter SEC(".maps");

/* current_state returns the state of the current task when it is in a
 * modeling namespace (or the host is modeled), else NULL. A task forked by
 * a member takes over its parent's state here, at its first event. */
static __always_inline struct vg_task *current_state(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task *st, *pend;
	__u32 pid;

	st = bpf_task_storage_get(&task_state, task, 0, 0);
	if (st) {
		/* Host tasks picked up while the host was modeled stop being
		 * recorded when it no longer is (enrolled tasks never stop),
		 * and when their process is left out of the host. Tasks of
		 * other namespaces pay for neither check. */
		if (st->ns == 0 && ((!(st->flags & VG_T_ENROLLED) && !host_modeled()) || ignored()))
			return NULL;
	} else {
		pid = (__u32)bpf_get_current_pid_tgid();
		pend = bpf_map_lookup_elem(&pending, &pid);
		if (pend) {
			if (pend->ns == 0 && ignored()) {
				bpf_map_delete_elem(&pending, &pid);
				return NULL;
			}
			st = bpf_task_storage_get(&task_state, task, pend, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!st)
				count_loss(pend->ns, VG_LOSS_TASK_STATE);
			bpf_map_delete_elem(&pending, &pid);
		} else {
			struct vg_task init = {};

			if (!host_modeled() || ignored())
				return NULL;
			st = bpf_task_storage_get(&task_state, task, &init, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!st)
				count_loss(0, VG_LOSS_TASK_STATE);
		}
		if (!st)
			return NULL;
	}
	if (st->flags & VG_T_DORMANT)
		return NULL; /* a container runtime's task before its exec */
	if (st->ttd == 0)
		st->ttd = next_id(&ttd_counter);
	return st;
}

/* ns_cfg returns the configuration of the task's namespace (NULL when it
 * has none) from the task's copy, refreshed from ns_config when userspace
 * changed any namespace since: an array read instead of a hash lookup on
 * every event. */
static __always_inline struct vg_ns_cfg *ns_cfg(struct vg_task *st)
{
	__u32 zero = 0, *now = bpf_map_lookup_elem(&cfg_epoch_now, &zero);
	struct vg_ns_cfg *cfg;
	__u64 ns = st->ns;
	__u32 epoch;

	if (!now)
		return bpf_map_lookup_elem(&ns_config, &ns);
	epoch = *now;
	if (epoch && st->cfg_epoch == epoch)
		return st->cfg_present ? &st->cfg : NULL;
	cfg = bpf_map_lookup_elem(&ns_config, &ns);
	st->cfg_present = 0;
	if (cfg) {
		st->cfg = *cfg;
		st->cfg_present = 1;
	}
	st->cfg_epoch = epoch;
	return cfg;
}

#endif
