/* The repeat memo: a task's last cached key, whose repeats in the same
 * window count in the task's own storage without a table lookup; the
 * collector (vg_collect) and the task's exit hand the counts on (doc.go,
 * "Repeat cache", has the whole argument). */
#ifndef VIGIL_MEMO_H
#define VIGIL_MEMO_H

#include "common.h"
#include "rcache.h"

/* A task's memo of its last cached key: repeats of it count here, without
 * a table lookup. word is gen << VG_MEMO_SHIFT | count: count events of
 * key k (entry rid of the table of window gen) not yet in the table. Only
 * the task itself adds to count, and only while gen is the current
 * window; the collector (another CPU, after the window ended) and the
 * task's exit take the count with a compare-and-swap. A separate map from
 * task_state so that userspace (Enroll) and fork never copy a count. */
#define VG_MEMO_SHIFT 40
#define VG_MEMO_COUNT ((1ULL << VG_MEMO_SHIFT) - 1)
#define VG_MEMO_GEN(g) ((__u64)((g) & ((1U << (64 - VG_MEMO_SHIFT)) - 1)))

struct vg_memo {
	struct vg_rkey k;
	__u64 rid;
	__u64 word; /* low 24 bits of gen << VG_MEMO_SHIFT | count */
	__u32 gen;  /* the whole window number, which only the task writes */
	__u32 dead; /* the task has passed its exit: no memo any more */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_memo);
} task_memo SEC(".maps");

/* What the collector writes per memo it took a count from. */
struct vg_memo_out {
	__u64 ns;
	__u64 rid;
	__u64 count;
};

struct vg_memo_out *unused_vg_memo_out __attribute__((unused));

/* memo_flush adds a count taken from a memo to its entry in the table of
 * window gen; the entry exists (a memo is set only from an entry, and
 * entries stay until the table is dropped). */
static __always_inline void memo_flush(const struct vg_memo *mo, __u32 gen, __u64 n)
{
	struct vg_rhkey hk = {.ns = mo->k.ns, .hash = rkey_hash(&mo->k)};
	__u32 slot = gen & 1;
	struct vg_rval *e;
	void *m;

	m = bpf_map_lookup_elem(&repeats, &slot);
	if (!m)
		return;
	e = bpf_map_lookup_elem(m, &hk);
	if (e && rkey_same(&e->k, &mo->k))
		__sync_fetch_and_add(&e->count, n);
}

/* memo_set makes k (entry rid of the table of window gen, whose record is
 * reserved) the task's memo. A count the memo holds for the current
 * window goes to its entry first; one of an ended window belongs to the
 * collector, and the memo stays until it is taken. */
static __always_inline void memo_set(const struct vg_rkey *k, __u64 rid, __u32 gen)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_memo *mo;
	__u64 w, n;

	mo = bpf_task_storage_get(&task_memo, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mo || mo->dead)
		return;
	w = mo->word;
	n = w & VG_MEMO_COUNT;
	if (n) {
		if (mo->gen != gen)
			return;
		memo_flush(mo, gen, n);
	}
	mo->k = *k;
	mo->rid = rid;
	mo->gen = gen;
	mo->word = VG_MEMO_GEN(gen) << VG_MEMO_SHIFT;
}

/* memo_take takes the count of a memo of window gen (any window when gen
 * is 0) with a compare-and-swap; 0 when there is none. out gets the
 * memo's namespace and id, read before the swap: while a memo holds a
 * count of an ended window its task does not change it, so a swap that
 * succeeds took the count of that key. */
static __always_inline __u64 memo_take(struct vg_memo *mo, __u32 gen, __u32 *from, struct vg_memo_out *out)
{
	__u64 w = mo->word, n, was;
	int i;

	for (i = 0; i < 4; i++) {
		n = w & VG_MEMO_COUNT;
		if (!n || (gen && (w >> VG_MEMO_SHIFT) != VG_MEMO_GEN(gen)))
			return 0;
		out->ns = mo->k.ns;
		out->rid = mo->rid;
		out->count = n;
		was = __sync_val_compare_and_swap(&mo->word, w, w & ~VG_MEMO_COUNT);
		if (was == w) {
			*from = w >> VG_MEMO_SHIFT;
			return n;
		}
		w = was;
	}
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

#endif
