/* Task lifecycle programs shared by both backends: fork passes namespace
 * membership and identity to the child (through the pending table, taken
 * over at the child's first event), exit reports the end of a task; fork,
 * exit and free keep the table of ignored processes (ignore_tgid). */
#ifndef VIGIL_LIFECYCLE_H
#define VIGIL_LIFECYCLE_H

#include "vigil.h"
#include "dormant.h"

/* ignore_fork: a process forked by an ignored one is ignored too (a new
 * thread shares its tgid already). The tracepoint names the child by pid
 * only; copy_process has put a new thread last in its group's list by
 * now, so a child that is not that last thread is a new process. A thread
 * taken for a process (another thread of the group cloned meanwhile)
 * only adds an entry that ignore_exit removes when the thread exits. */
static __always_inline void ignore_fork(__u32 child)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *last;
	__u8 live = VG_IGN_LIVE;

	if (!bpf_map_lookup_elem(&ignore_tgid, &tgid))
		return;
	last = (void *)BPF_CORE_READ(task, signal, thread_head.prev) -
	       bpf_core_field_offset(struct task_struct, thread_node);
	if ((__u32)BPF_CORE_READ(last, pid) == child)
		return;
	bpf_map_update_elem(&ignore_tgid, &child, &live, BPF_ANY);
}

/* ignore_exit marks the entry of an ignored process dead once every
 * thread has begun to exit (signal->live reaches 0 before the tracepoint),
 * and drops the entry a thread may have got at its creation (see
 * ignore_fork). */
static __always_inline void ignore_exit(struct task_struct *task)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tgid = pt >> 32, pid = (__u32)pt;
	__u8 *v = bpf_map_lookup_elem(&ignore_tgid, &tgid);

	if (!v)
		return;
	if (pid != tgid)
		bpf_map_delete_elem(&ignore_tgid, &pid);
	if (BPF_CORE_READ(task, signal, live.counter) == 0)
		*v = VG_IGN_DEAD;
}

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

/* memo_exit hands the count of the exiting task's memo to its entry
 * (the task storage goes with the task) and ends the memo: an event the
 * task makes after this takes the table. A count of an ended window goes
 * to the previous table, which userspace keeps in its slot until the
 * collector has run and a grace period has passed (see doc.go). */
static __always_inline void memo_exit(struct task_struct *task)
{
	struct vg_memo *mo = bpf_task_storage_get(&task_memo, task, 0, 0);
	struct vg_memo_out out;
	__u32 from = 0;
	__u64 n;

	if (!mo)
		return;
	mo->dead = 1;
	n = memo_take(mo, 0, &from, &out);
	if (n)
		memo_flush(mo, from, n);
}

/* vg_collect (an iterator run by userspace after the window rep_gen[1]
 * ended) takes the counts of the memos of that window and writes them
 * out (struct vg_memo_out) for userspace to add to the old table's. */
SEC("iter/task")
int vg_collect(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct vg_memo_out out;
	struct vg_memo *mo;
	__u32 one = 1, from = 0, *g;
	__u64 n;

	if (!task)
		return 0;
	g = bpf_map_lookup_elem(&rep_gen, &one);
	if (!g || !*g)
		return 0;
	mo = bpf_task_storage_get(&task_memo, task, 0, 0);
	if (!mo)
		return 0;
	n = memo_take(mo, *g, &from, &out);
	if (!n)
		return 0;
	bpf_seq_write(ctx->meta->seq, &out, sizeof(out));
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
