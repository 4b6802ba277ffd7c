/* The repeat cache as an event uses it: the key of a file event, the
 * lookup that suppresses a repeat (through the task's memo, else the
 * table), and the entry's state once its record is reserved and decided.
 * The tables are rcache.h's, the memos memo.h's. */
#ifndef VIGIL_REPEAT_H
#define VIGIL_REPEAT_H

#include "common.h"
#include "records.h"
#include "namespace.h"
#include "task.h"
#include "scratch.h"
#include "created.h"
#include "fill.h"
#include "rcache.h"
#include "memo.h"

/* The repeat cache. The first event of a key (struct vg_rkey) in the
 * current table makes a record with the entry's id (hdr.rid); repeats of
 * it only count in the entry. Userspace replaces the table every window
 * and hands the counts of the old one on, as repeats of the records with
 * their ids: so a key makes at least one record per window and every
 * suppressed event is counted once. */
struct vg_rstate {
	struct vg_rval *e;
	__u64 rid;
	__u32 gen;
	__u32 rgen; /* the repeat window (rep_gen) the table belongs to */
	__u32 memo; /* the task may memo the key (not enforcing) */
	__u32 pad;
};

static __always_inline int repeat_on(const struct vg_ns_cfg *cfg)
{
	return !cfg || !(cfg->flags & VG_NS_NO_REPEAT);
}

/* rkey_file fills the key of a file event. file must be a BTF pointer
 * (an LSM argument, or bpf_rdonly_cast): its fields are plain loads. k
 * must be map memory (vg_scratch.rk). */
static __always_inline void rkey_file(struct vg_rkey *k, const struct vg_task *st, __u16 type, struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	struct inode *ino = file->f_inode;

	/* No memset first: every field is written below and the struct has
	 * no padding, so every byte is. */
	k->ns = st->ns;
	k->ttd = st->ttd;
	k->p_ttd = st->p_ttd;
	k->type = type;
	k->tflags = st->flags & VG_T_UNTRUSTED;
	/* The addresses as numbers: k is map memory (the per-CPU scratch),
	 * where a stored pointer reads back as a number that can be hashed
	 * (arithmetic on a BTF pointer is refused). */
	k->inode = (__u64)file->f_inode;
	k->mnt = (__u64)file->f_path.mnt;
	k->dentry = (__u64)file->f_path.dentry;
	/* ...and so must be read back from memory, not reused from the
	 * registers that held the pointers. */
	asm volatile("" ::: "memory");
	k->f_flags = file->f_flags;
	k->ino = ino->i_ino;
	k->size = ino->i_size;
	k->mode = ino->i_mode;
	k->uid = ino->i_uid.val;
	k->gid = ino->i_gid.val;
	k->dev = ino->i_sb->s_dev;
	inode_times_btf(ino, &k->ctime_sec, &k->ctime_nsec, &k->mtime_sec, &k->mtime_nsec);
	/* The created tag: rkey_tag, when the key goes to the table. */
	k->c_owner = 0;
	k->c_instance = 0;
	fill_coe_btf(&k->coe, cred);
}

/* rkey_tag completes a key with the created tag of its file (ino, a BTF
 * pointer): a file created in the namespace is named by its tag (a
 * coefficient of its own), one created elsewhere by its path. */
static __always_inline void rkey_tag(struct vg_rkey *k, struct inode *ino)
{
	struct vg_ctag t;

	ctag_read_btf(&t, ino);
	if (t.instance && t.ns == k->ns) {
		k->c_owner = t.owner_ttd;
		k->c_instance = t.instance;
	}
}

/* repeat_begin returns 1 when the event with key k is a repeat to
 * suppress (counted), else 0 with rs set for the record to make. In an
 * enforcing namespace only an entry whose last full check allowed the
 * event, under the namespace's current generation, suppresses: a denial
 * is never cached. ino (a BTF pointer) is the key's file, whose created
 * tag rkey_tag adds to k when the memo does not decide. */
static __always_inline int repeat_begin(struct vg_rkey *k, const struct vg_ns_cfg *cfg, struct vg_rstate *rs,
					struct inode *ino)
{
	struct vg_rhkey hk;
	struct vg_rval *init, *e;
	struct vg_memo *mo;
	__u32 zero = 0, slot, *g;
	void *m;

	rs->e = NULL;
	rs->rid = 0;
	rs->gen = cfg ? cfg->gen : 0;
	rs->memo = 0;
	g = bpf_map_lookup_elem(&rep_gen, &zero);
	if (!g || !*g)
		return 0;
	rs->rgen = *g;
	/* Memos only outside enforcing namespaces: an enforced repeat must
	 * pass the entry's allowed check under the current configuration. */
	if (!enforcing(cfg)) {
		rs->memo = 1;
		mo = bpf_task_storage_get(&task_memo, bpf_get_current_task_btf(), 0, 0);
		if (mo && mo->gen == rs->rgen && !mo->dead && rkey_same_untagged(&mo->k, k)) {
			/* Only this task writes a memo of the current window:
			 * a plain add. */
			mo->word += 1;
			return 1;
		}
	}
	rkey_tag(k, ino);
	slot = rs->rgen & 1;
	m = bpf_map_lookup_elem(&repeats, &slot);
	if (!m)
		return 0;
	hk.ns = k->ns;
	hk.hash = rkey_hash(k);
	e = bpf_map_lookup_elem(m, &hk);
	if (e) {
		if (!rkey_same(&e->k, k))
			return 0; /* another key with the same hash: uncached */
		if (e->valid && (!enforcing(cfg) || (e->allowed && e->gen == rs->gen))) {
			__sync_fetch_and_add(&e->count, 1);
			if (rs->memo)
				memo_set(k, e->id, rs->rgen);
			return 1;
		}
		rs->e = e;
		rs->rid = e->id;
		return 0;
	}
	init = bpf_map_lookup_elem(&rval_scratch, &zero);
	if (!init)
		return 0;
	init->id = next_id(&rid_counter);
	init->count = 0;
	init->gen = 0;
	init->allowed = 0;
	init->valid = 0;
	init->k = *k;
	if (!init->id || bpf_map_update_elem(m, &hk, init, BPF_NOEXIST))
		return 0; /* full, or another CPU made it: an uncached record */
	e = bpf_map_lookup_elem(m, &hk);
	if (!e)
		return 0;
	rs->e = e;
	rs->rid = e->id;
	return 0;
}

/* repeat_reserved: the record of rs is reserved (it will reach
 * userspace), so repeats of its key may be suppressed from now on. */
static __always_inline void repeat_reserved(struct vg_hdr *h, const struct vg_rstate *rs, const struct vg_rkey *k)
{
	h->rid = rs->rid;
	if (rs->e) {
		rs->e->valid = 1;
		if (rs->memo)
			memo_set(k, rs->rid, rs->rgen);
	}
}

/* repeat_decide_later and repeat_decided_later record the enforcement
 * decision of a full check under the generation read before the check, in
 * two steps for programs whose check is costly to verify: the key and
 * generation wait in the per-CPU scratch (whose contents the verifier does
 * not track), and the entry is looked up again after the check, so every
 * path reaches the check in one verifier state. */
static __always_inline void repeat_decide_later(struct vg_scratch *s, const struct vg_rstate *rs)
{
	s->rk_cached = rs->e != NULL;
	s->rk_gen = rs->gen;
	s->rk_slot = rs->rgen & 1;
}

static __always_inline void repeat_decided_later(int rc)
{
	struct vg_rhkey hk;
	struct vg_rval *e;
	struct vg_scratch *s;
	__u32 zero = 0;
	void *m;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s || !s->rk_cached)
		return;
	s->rk_cached = 0;
	zero = s->rk_slot & 1;
	m = bpf_map_lookup_elem(&repeats, &zero);
	if (!m)
		return;
	hk.ns = s->rk.ns;
	hk.hash = rkey_hash(&s->rk);
	e = bpf_map_lookup_elem(m, &hk);
	if (!e || !rkey_same(&e->k, &s->rk))
		return;
	e->gen = s->rk_gen;
	e->allowed = rc == 0;
}

#endif
