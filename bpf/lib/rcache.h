/* The repeat cache's tables: the key of an event (struct vg_rkey), the
 * entries (mirrored by repeatKey and repeatValue in repeats.go), the two
 * table slots and the window and id counters userspace rotates them by,
 * and the key's comparison and hash. What an event does with them is
 * repeat.h's; the tasks' memos of their last key are memo.h's. */
#ifndef VIGIL_RCACHE_H
#define VIGIL_RCACHE_H

#include "common.h"
#include "records.h"

/* The repeat cache key: everything in the kernel that decides an event's
 * TSEM coefficient (namespace, task identity, COE, the event's own fields)
 * plus what makes userspace's description differ (the file's identity,
 * path objects and content change stamps). */
struct vg_rkey {
	__u64 ns;
	__u64 ttd;
	__u64 p_ttd;
	__u64 inode; /* struct inode, vfsmount and dentry addresses */
	__u64 mnt;
	__u64 dentry;
	__u64 ino;
	__u64 size;
	__s64 ctime_sec;
	__s64 mtime_sec;
	/* The file's created tag when it is of this namespace (else 0). */
	__u64 c_owner;
	__u64 c_instance;
	__u32 ctime_nsec;
	__u32 mtime_nsec;
	__u32 dev;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 f_flags;
	__u16 type;
	__u16 tflags;
	struct vg_coe coe;
};

/* The table is indexed by the namespace and a 64-bit hash of the key
 * (hashing 16 bytes instead of the whole key makes a lookup several times
 * cheaper); the entry holds the whole key, and a hash collision only makes
 * an uncached record. */
struct vg_rhkey {
	__u64 ns;
	__u64 hash;
};

struct vg_rval {
	__u64 id;      /* carried by the records of this entry (hdr.rid) */
	__u64 count;   /* events suppressed */
	__u32 gen;     /* ns generation the allowed bit was decided in */
	__u16 allowed; /* enforce: the last full check allowed the event */
	__u16 valid;   /* a record of the entry was reserved */
	struct vg_rkey k;
};

struct vg_rhkey *unused_vg_rhkey __attribute__((unused));
struct vg_rkey *unused_vg_rkey __attribute__((unused));

/* The repeat cache of all namespaces: one hash table in slot 0, replaced
 * by userspace every repeat window (the update waits for running programs,
 * so the old table is then userspace's alone to take the counts from). A
 * full table only stops caching: every event then makes its own record. */
struct vg_rcache {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__uint(key_size, sizeof(struct vg_rhkey));
	__uint(value_size, sizeof(struct vg_rval));
};

/* Slot gen & 1 holds the table of window gen (rep_gen); the other slot
 * keeps the previous window's table until userspace has read it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct vg_rcache);
} repeats SEC(".maps");

/* [0]: the current repeat window's generation, never 0 once loaded
 * (bumped by userspace at every rotation, before the grace period that
 * ends the window); [1]: the generation the collector (vg_collect) takes
 * the counts of. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} rep_gen SEC(".maps");

/* Room for building a new repeat cache entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vg_rval);
} rval_scratch SEC(".maps");

/* [0]: the last repeat cache entry id handed out. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rid_counter SEC(".maps");

/* rkey_same compares two keys word by word. */
static __always_inline int rkey_same(const struct vg_rkey *a, const struct vg_rkey *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;
	__u64 d = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*a) / 8); i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* rkey_same_untagged compares two keys but their created tags: for a
 * task's memo, whose key is the same inode (address, number, device and
 * change stamps) when the rest is. A tag never changes once another task
 * can reach the inode (the LSM backend sets it before the inode is in
 * the dentry cache; the tracepoint backend at the exit of the creating
 * open, so only an open by another task in that instant is keyed without
 * it), so the memo skips reading it on every repeat. */
static __always_inline int rkey_same_untagged(const struct vg_rkey *a, const struct vg_rkey *b)
{
	const __u64 *x = (const void *)a, *y = (const void *)b;
	__u64 d = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*a) / 8); i++) {
		if (i == __builtin_offsetof(struct vg_rkey, c_owner) / 8 ||
		    i == __builtin_offsetof(struct vg_rkey, c_instance) / 8)
			continue;
		d |= x[i] ^ y[i];
	}
	return d == 0;
}

/* rkey_hash runs four FNV-style lanes over the key's words and folds
 * them, so that the multiplications overlap instead of each waiting for
 * the last. Every step is a bijection of its lane, so keys that differ
 * in one word never collide; a collision only costs a record anyway (the
 * entry holds the whole key). */
static __always_inline __u64 rkey_hash(const struct vg_rkey *k)
{
	const __u64 *x = (const void *)k;
	__u64 h[4] = {VG_FNV_OFFSET, 0x84222325cbf29ce4ULL, 0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL};
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*k) / 8); i++)
		h[i & 3] = (h[i & 3] ^ x[i]) * VG_FNV_PRIME;
	h[0] = (h[0] ^ h[1]) * VG_FNV_PRIME;
	h[0] = (h[0] ^ h[2]) * VG_FNV_PRIME;
	h[0] = (h[0] ^ h[3]) * VG_FNV_PRIME;
	return h[0] ^ (h[0] >> 29);
}

#endif
