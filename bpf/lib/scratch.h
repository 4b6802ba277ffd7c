/* Per-CPU scratch space for what does not fit on the BPF stack: the path
 * walk's buffer and state (path.h) and the repeat cache key of the event
 * being handled (repeat.h). */
#ifndef VIGIL_SCRATCH_H
#define VIGIL_SCRATCH_H

#include "common.h"
#include "records.h"
#include "rcache.h"

/* The state of a path walk (walk_step): where it is, the root it stops
 * at, and the path built so far (off, flags). */
struct walk_ctx {
	__u64 dentry;
	__u64 vfsmnt;
	__u64 mnt;
	__u64 root_dentry;
	__u64 root_mnt;
	__u32 off;
	__u32 flags;
	__u32 reached;
	__u32 pad;
};

/* Scratch space for building paths backwards (twice the path size so the
 * verifier can bound every write) and the state of the walk, kept here
 * rather than on the stack so that the verifier sees each bpf_loop step
 * with unknown values and checks the step once. */
struct vg_scratch {
	char tmp[2 * VG_PATH_MAX];
	struct walk_ctx w;
	/* The repeat cache key of the event being handled, and whether it
	 * has an entry whose enforcement decision is to be recorded; kept
	 * here, not on the stack, so that the verifier sees the same state
	 * whatever the cache did (see repeat_decide_later). */
	struct vg_rkey rk;
	__u32 rk_cached;
	__u32 rk_gen;
	__u32 rk_slot; /* the repeats slot repeat_begin used */
	__u32 rk_pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vg_scratch);
} scratch SEC(".maps");

#endif
