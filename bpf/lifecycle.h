/* Task lifecycle programs shared by both backends: fork passes namespace
 * membership and identity to the child (through the pending table, taken
 * over at the child's first event), exit reports the end of a task. */
#ifndef VIGIL_LIFECYCLE_H
#define VIGIL_LIFECYCLE_H

#include "vigil.h"

SEC("tracepoint/sched/sched_process_fork")
int vg_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	struct vg_task *st = current_state();
	struct vg_task child = {};
	struct rec_fork *r;
	__u32 pid;

	if (!st)
		return 0;
	pid = ctx->child_pid;
	child.ns = st->ns;
	child.ttd = st->ttd;
	child.p_ttd = st->ttd;
	child.flags = st->flags;
	if (bpf_map_update_elem(&pending, &pid, &child, BPF_ANY))
		count_loss(st->ns, VG_LOSS_PENDING);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(st->ns, VG_LOSS_RINGBUF);
		return 0;
	}
	fill_hdr(&r->hdr, VG_TASK_FORK, sizeof(*r), st);
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
	struct rec_exit *r;

	if (!st)
		return 0;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(st->ns, VG_LOSS_RINGBUF);
		return 0;
	}
	fill_hdr(&r->hdr, VG_TASK_EXIT, sizeof(*r), st);
	r->code = BPF_CORE_READ(task, exit_code);
	r->pad = 0;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

#endif
