/* Files created inside a modeling namespace, as TSEM models them: the
 * file is tagged with its creator (the creating task's TTD, which
 * userspace turns into its task id) and an instance number, and events
 * of the namespace that name it hash "directory part ‖ instance ‖ owner"
 * instead of its name, which is often random (mkstemp). So a model
 * learned in one run holds in the next.
 *
 * Instances count the creations of one process in one directory since
 * its exec (TSEM counts per task id and directory): a process numbers its
 * own files whatever other processes of the same program do at the same
 * time. The counters live in the task storage of the process's group
 * leader, VG_CSLOTS directories each (the least recently used makes room),
 * and go with the process.
 *
 * The tag itself: in inode storage on the LSM backend (it goes with the
 * inode), in a bounded hash table keyed by device, inode number and
 * generation on the tracepoint backend (entries go when userspace drops
 * the namespace; a full table counts VG_LOSS_CREATED). Each object
 * defines VG_BACKEND_LSM or not before it includes this. */
#ifndef VIGIL_CREATED_H
#define VIGIL_CREATED_H

#include "common.h"
#include "records.h"
#include "loss.h"
#include "task.h"

#define VG_CSLOTS 8

struct vg_cslot {
	__u64 dir;   /* the directory (ckey_mix of device, inode, generation) */
	__u64 ttd;   /* the TTD the count belongs to (a new exec starts over) */
	__u64 count; /* files created there so far */
	__u64 used;  /* vg_cctr.tick at the last creation */
};

struct vg_cctr {
	struct vg_cslot s[VG_CSLOTS];
	__u64 tick;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_cctr);
} created_ctr SEC(".maps");

/* ckey_mix folds an inode's identity (device, number, generation: a
 * number reused by a new inode comes with a new generation on the usual
 * filesystems) into one word. */
static __always_inline __u64 ckey_mix(__u32 dev, __u64 ino, __u32 gen)
{
	__u64 h = ino * 0x9e3779b97f4a7c15ULL;

	h ^= ((__u64)dev << 32 | gen) * 0xc2b2ae3d27d4eb4fULL;
	return h ^ (h >> 31);
}

/* ckey_dir is ckey_mix of a directory, any inode pointer. */
static __always_inline __u64 ckey_dir(struct inode *dir)
{
	return ckey_mix(BPF_CORE_READ(dir, i_sb, s_dev), BPF_CORE_READ(dir, i_ino), BPF_CORE_READ(dir, i_generation));
}

/* created_next returns the next instance number of the current process in
 * the directory dir (a ckey_mix), 1 for its first file there; 0 (loss
 * counted) when the process has no counters. Threads of one process share
 * them: the count is atomic, the choice of a slot is not (two threads
 * starting on two new directories at the same moment may share one). */
static __always_inline __u64 created_next(const struct vg_task *st, __u64 dir)
{
	struct task_struct *leader = bpf_get_current_task_btf()->group_leader;
	struct vg_cctr *c;
	__u64 oldest = ~0ULL, tick;
	__u32 victim = 0;
	int i;

	c = bpf_task_storage_get(&created_ctr, leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c) {
		count_loss(st->ns, VG_LOSS_CREATED);
		return 0;
	}
	tick = ++c->tick;
#pragma unroll
	for (i = 0; i < VG_CSLOTS; i++) {
		if (c->s[i].dir == dir && c->s[i].ttd == st->ttd && c->s[i].count) {
			c->s[i].used = tick;
			return __sync_fetch_and_add(&c->s[i].count, 1) + 1;
		}
		if (c->s[i].used < oldest) {
			oldest = c->s[i].used;
			victim = i;
		}
	}
	victim &= VG_CSLOTS - 1;
	c->s[victim].dir = dir;
	c->s[victim].ttd = st->ttd;
	c->s[victim].count = 1;
	c->s[victim].used = tick;
	return 1;
}

static __always_inline void ctag_zero(struct vg_ctag *t)
{
	t->ns = 0;
	t->owner_ttd = 0;
	t->instance = 0;
}

#ifdef VG_BACKEND_LSM

/* The tag of each created file, with the inode. */
struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_ctag);
} created_tag SEC(".maps");

/* A thread's creations under way: inode_create and inode_mkdir give the
 * tag before the inode exists, d_instantiate puts it on the inode. Two, as
 * a stacked filesystem (overlayfs) creates its upper file inside the
 * creation of its own. A creation that failed leaves its entry until the
 * thread's next but one: d_instantiate matches the dentry, its parent and
 * its name's hash, so that a dentry freed and reused since is not taken
 * for it. */
struct vg_cpend {
	__u64 dentry[2];
	__u64 parent[2];
	__u64 name[2]; /* dentry_name */
	struct vg_ctag tag[2];
	__u32 next;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_cpend);
} created_pend SEC(".maps");

/* dentry_name is a dentry's name hash and length in one word (read as two:
 * BTF knows d_name's hash_len as the first member of a union, 4 bytes). */
static __always_inline __u64 dentry_name(struct dentry *d)
{
	return (__u64)d->d_name.len << 32 | d->d_name.hash;
}

static __always_inline void ctag_read(struct vg_ctag *t, struct inode *ino)
{
	/* Inode storage needs a BTF pointer: LSM programs read tags
	 * through ctag_read_btf only. */
	ctag_zero(t);
}

static __always_inline void ctag_read_btf(struct vg_ctag *t, struct inode *ino)
{
	struct vg_ctag *v = bpf_inode_storage_get(&created_tag, ino, 0, 0);

	if (v) {
		*t = *v;
		return;
	}
	ctag_zero(t);
}

/* created_begin: the current task (state st) creates dentry in dir. It
 * takes the instance number and gives the tag (t) for the record; the
 * inode gets it at d_instantiate. */
static __always_inline void created_begin(const struct vg_task *st, struct inode *dir, struct dentry *dentry,
					  struct vg_ctag *t)
{
	struct vg_cpend *p;
	__u32 slot;

	ctag_zero(t);
	t->instance = created_next(st, ckey_mix(dir->i_sb->s_dev, dir->i_ino, dir->i_generation));
	if (!t->instance)
		return;
	t->ns = st->ns;
	t->owner_ttd = st->ttd;
	p = bpf_task_storage_get(&created_pend, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p) {
		count_loss(st->ns, VG_LOSS_CREATED);
		return;
	}
	slot = p->next & 1;
	p->next++;
	p->dentry[slot] = (__u64)dentry;
	p->parent[slot] = (__u64)dentry->d_parent;
	p->name[slot] = dentry_name(dentry);
	p->tag[slot] = *t;
}

/* d_instantiate attaches an inode to a dentry: for a creation under way
 * of the current thread, the new inode gets its tag. Every other
 * instantiation (lookups) costs one task storage lookup. */
SEC("lsm/d_instantiate")
int BPF_PROG(vg_d_instantiate, struct dentry *dentry, struct inode *inode)
{
	struct vg_cpend *p;
	struct vg_ctag *v;
	int i;

	if (!inode)
		return 0;
	p = bpf_task_storage_get(&created_pend, bpf_get_current_task_btf(), 0, 0);
	if (!p)
		return 0;
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (p->dentry[i] != (__u64)dentry || p->parent[i] != (__u64)dentry->d_parent ||
		    p->name[i] != dentry_name(dentry))
			continue;
		p->dentry[i] = 0;
		v = bpf_inode_storage_get(&created_tag, inode, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!v) {
			count_loss(p->tag[i].ns, VG_LOSS_CREATED);
			return 0;
		}
		*v = p->tag[i];
		return 0;
	}
	return 0;
}

#else /* the tracepoint backend */

struct vg_ckey {
	__u64 ino;
	__u32 dev;
	__u32 gen;
};

/* The tags, by inode identity. Userspace deletes a namespace's entries
 * when it drops the namespace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct vg_ckey);
	__type(value, struct vg_ctag);
} created_ino SEC(".maps");

/* A bit per ckey_mix & mask, set for every key ever put in created_ino
 * (never cleared): most files were not created in a namespace, and a
 * clear bit saves their hash table lookup on every open. */
#define VG_CHINT_WORDS 16384
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VG_CHINT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} created_hint SEC(".maps");

struct vg_ckey *unused_vg_ckey __attribute__((unused));

static __always_inline const struct vg_ctag *ctag_find(__u32 dev, __u64 ino, __u32 gen)
{
	__u64 h = ckey_mix(dev, ino, gen), *w;
	__u32 word = (h >> 6) & (VG_CHINT_WORDS - 1);
	struct vg_ckey k = {.ino = ino, .dev = dev, .gen = gen};

	w = bpf_map_lookup_elem(&created_hint, &word);
	if (!w || !(*w & (1ULL << (h & 63))))
		return NULL;
	return bpf_map_lookup_elem(&created_ino, &k);
}

static __always_inline void ctag_read(struct vg_ctag *t, struct inode *ino)
{
	const struct vg_ctag *v = NULL;

	if (ino)
		v = ctag_find(BPF_CORE_READ(ino, i_sb, s_dev), BPF_CORE_READ(ino, i_ino),
			      BPF_CORE_READ(ino, i_generation));
	if (v) {
		*t = *v;
		return;
	}
	ctag_zero(t);
}

static __always_inline void ctag_read_btf(struct vg_ctag *t, struct inode *ino)
{
	const struct vg_ctag *v = ctag_find(ino->i_sb->s_dev, ino->i_ino, ino->i_generation);

	if (v) {
		*t = *v;
		return;
	}
	ctag_zero(t);
}

/* created_open tags the file an open by the current task (state st) has
 * just created (FMODE_CREATED; any file pointer). */
static __always_inline void created_open(const struct vg_task *st, struct file *file)
{
	struct inode *ino = BPF_CORE_READ(file, f_inode);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct vg_ctag t = {.ns = st->ns, .owner_ttd = st->ttd};
	struct vg_ckey k = {};
	__u64 h, *w;
	__u32 word;

	if (!ino || !d)
		return;
	t.instance = created_next(st, ckey_dir(BPF_CORE_READ(d, d_parent, d_inode)));
	if (!t.instance)
		return;
	k.ino = BPF_CORE_READ(ino, i_ino);
	k.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	k.gen = BPF_CORE_READ(ino, i_generation);
	if (bpf_map_update_elem(&created_ino, &k, &t, BPF_ANY)) {
		count_loss(st->ns, VG_LOSS_CREATED);
		return;
	}
	h = ckey_mix(k.dev, k.ino, k.gen);
	word = (h >> 6) & (VG_CHINT_WORDS - 1);
	w = bpf_map_lookup_elem(&created_hint, &word);
	if (w)
		__sync_fetch_and_or(w, 1ULL << (h & 63));
}

#endif

#endif
