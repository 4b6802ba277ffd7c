/* Loss counting: a record the kernel could not deliver, or state it
 * could not keep, is counted per namespace and reason (Capture.Lost). */
#ifndef VIGIL_LOSS_H
#define VIGIL_LOSS_H

#include "common.h"

enum vg_loss_reason {
	VG_LOSS_RINGBUF = 1,    /* ring buffer full */
	VG_LOSS_TASK_STATE = 2, /* task storage could not be created */
	VG_LOSS_PENDING = 3,    /* fork inheritance table full */
	VG_LOSS_CREATED = 4,    /* a created file could not be tagged (created.h) */
};

struct vg_loss_key {
	__u64 ns;
	__u32 reason;
	__u32 pad;
};

/* Counters by namespace and reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_loss_key);
	__type(value, __u64);
} loss SEC(".maps");

/* [0]: losses that could not be counted in loss (table full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} loss_overflow SEC(".maps");

static __always_inline void count_loss(__u64 ns, __u32 reason)
{
	struct vg_loss_key k = {.ns = ns, .reason = reason};
	__u64 one = 1, *v;
	__u32 zero = 0;

	v = bpf_map_lookup_elem(&loss, &k);
	if (v) {
		*v += 1;
		return;
	}
	if (bpf_map_update_elem(&loss, &k, &one, BPF_NOEXIST) == 0)
		return;
	v = bpf_map_lookup_elem(&loss, &k);
	if (v) {
		*v += 1;
		return;
	}
	v = bpf_map_lookup_elem(&loss_overflow, &zero);
	if (v)
		*v += 1;
}

#endif
