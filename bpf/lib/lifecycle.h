/* Task lifecycle programs shared by both backends: fork passes namespace
 * membership and identity to the child (through the pending table, taken
 * over at the child's first event), exit reports the end of a task; fork,
 * exit and free keep the ignore table, and exit ends the task's repeat
 * memo. */
#ifndef VIGIL_LIFECYCLE_H
#define VIGIL_LIFECYCLE_H

#include "common.h"
#include "records.h"
#include "loss.h"
#include "ignore.h"
#include "task.h"
#include "fill.h"
#include "memo.h"
#include "dormant.h"

/* vg_free drops a dead process's entry when its group leader is freed:
 * the leader is released only after every other thread of the group, so
 * no thread of the process can act any more. */
SEC("tracepoint/sched/sched_process_free")
int vg_free(struct trace_event_raw_sched_process_template *ctx)
{
	__u32 pid = ctx->pid;
	__u8 *v = bpf_map_lookup_elem(&ignore_tgid, &pid);

	if (v && *v == VG_IGN_DEAD)
		bpf_map_delete_elem(&ignore_tgid, &pid);
	return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int vg_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	struct vg_task *st = current_state();
	struct vg_task child = {};
	struct rec_fork *r;
	__u32 pid;

	if (!st) {
		if (!dormant_fork(ctx->child_pid) && !cgroup_fork(ctx->child_pid))
			ignore_fork(ctx->child_pid);
		return 0;
	}
	/* A host task forking in a container's cgroup: the child is the
	 * container's. */
	if (st->ns == 0 && cgroup_fork(ctx->child_pid))
		return 0;
	pid = ctx->child_pid;
	child.ns = st->ns;
	child.ttd = st->ttd;
	child.p_ttd = st->ttd;
	child.flags = st->flags;
	if (bpf_map_update_elem(&pending, &pid, &child, BPF_ANY))
		count_loss(st->ns, VG_LOSS_PENDING);
	r = new_record(VG_TASK_FORK, sizeof(*r), st);
	if (!r)
		return 0;
	r->child_pid = pid;
	r->child_tgid = 0;
	r->child_ttd = st->ttd;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int vg_exit(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task *st = current_state();
	__u32 pid = (__u32)bpf_get_current_pid_tgid();
	struct rec_exit *r;

	ignore_exit(task);
	memo_exit(task);
	/* current_state took the task's pending entry if it had no state;
	 * one it never takes (it had state already: see vg_cgroup_attach)
	 * must not outlive it, since its pid will be reused. */
	bpf_map_delete_elem(&pending, &pid);
	if (!st)
		return 0;
	r = new_record(VG_TASK_EXIT, sizeof(*r), st);
	if (!r)
		return 0;
	r->code = BPF_CORE_READ(task, exit_code);
	r->pad = 0;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

#endif
