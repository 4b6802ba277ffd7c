/* Namespaces: their modes and flags (ns_config, written by
 * Capture.SetNamespace) and the epoch that tells tasks to refresh their
 * copies (task.h's ns_cfg). */
#ifndef VIGIL_NAMESPACE_H
#define VIGIL_NAMESPACE_H

#include "common.h"

enum vg_mode {
	VG_LEARN = 0,
	VG_SEAL = 1,
	VG_ENFORCE = 2,
};

enum vg_ns_flags {
	VG_NS_MODEL = 1 << 0,       /* for ns 0: model the host */
	VG_NS_NO_CAPABLE = 1 << 1,  /* skip capable events */
	VG_NS_FAIL_CLOSED = 1 << 2, /* enforce: deny when the record is lost */
	VG_NS_NO_REPEAT = 1 << 3,   /* no repeat cache: a record for every event */
};

struct vg_ns_cfg {
	__u32 mode;
	__u32 flags;
	__u32 gen; /* bumped by userspace when the allow set may shrink */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct vg_ns_cfg);
} ns_config SEC(".maps");

/* [0]: bumped by userspace after every change of ns_config, so that tasks
 * refresh their copies (vg_task.cfg). Never 0 once loaded. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cfg_epoch_now SEC(".maps");

/* host_modeled: namespace 0, the host, is modeled (VG_NS_MODEL). */
static __always_inline int host_modeled(void)
{
	__u64 host = 0;
	struct vg_ns_cfg *cfg = bpf_map_lookup_elem(&ns_config, &host);

	return cfg && (cfg->flags & VG_NS_MODEL);
}

static __always_inline int enforcing(const struct vg_ns_cfg *cfg)
{
	return cfg && cfg->mode == VG_ENFORCE;
}

#endif
