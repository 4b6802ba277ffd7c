/* The ignore table: processes left out of the host (Capture.Ignore), and
 * how forks and exits keep it. */
#ifndef VIGIL_IGNORE_H
#define VIGIL_IGNORE_H

#include "common.h"

/* Processes left out of the host (namespace 0), by tgid: their tasks in
 * namespace 0 make no records and are never denied. Capture.Ignore adds
 * one (VG_IGN_LIVE); a process forked by an ignored one is added at the
 * fork. When the last thread of the process has begun to exit the entry
 * becomes VG_IGN_DEAD (threads that exit concurrently may still be on
 * their way to the exit tracepoint, and stay ignored); it goes when the
 * group leader's task is freed, after every thread is gone. */
enum vg_ignore {
	VG_IGN_LIVE = 1,
	VG_IGN_DEAD = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ignore_tgid SEC(".maps");

/* ignored: the current process is left out of the host (ignore_tgid).
 * A VG_IGN_DEAD entry covers only the exiting threads of the process it
 * was made for: a process with live threads under that tgid is a new one
 * (the tgid recycled before the old leader was freed). */
static __always_inline int ignored(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u8 *v = bpf_map_lookup_elem(&ignore_tgid, &tgid);

	if (!v)
		return 0;
	if (*v != VG_IGN_DEAD)
		return 1;
	return BPF_CORE_READ(bpf_get_current_task_btf(), signal, live.counter) == 0;
}

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

#endif
