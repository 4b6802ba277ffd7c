/* Enforcement: the allow sets (allow, filled by Capture.Allow) and the
 * decision of an event of an enforcing namespace (check), or of one whose
 * record was lost (lost). */
#ifndef VIGIL_ENFORCE_H
#define VIGIL_ENFORCE_H

#include "common.h"
#include "records.h"
#include "namespace.h"
#include "task.h"

struct vg_allow_key {
	__u64 ns;
	__u64 key;
};

/* The allow sets of all namespaces. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_allow_key);
	__type(value, __u8);
} allow SEC(".maps");

/* key_passes: the events an enforcing namespace lets pass without a key,
 * even for an untrusted task (bpf.Decides, DecidePass): anonymous mappings
 * without PROT_EXEC, whose sizes and flags follow allocation timing, and
 * signals to the sender's own thread group (a runtime's preemption
 * signals); neither reaches outside the process. h starts a record of its
 * type; the payload is read with probe reads because every program inlines
 * this for records of one type only, and the verifier checks all types. */
static __always_inline int key_passes(const struct vg_hdr *h)
{
	if (h->type == VG_MMAP_FILE) {
		__u32 prot = 0, present = 1;

		bpf_probe_read_kernel(&prot, sizeof(prot), (const void *)h + __builtin_offsetof(struct rec_mmap, prot));
		bpf_probe_read_kernel(&present, sizeof(present),
				      (const void *)h + __builtin_offsetof(struct rec_mmap, file.present));
		return !present && !(prot & VG_PROT_EXEC);
	}
	if (h->type == VG_TASK_KILL) {
		__u32 tgid = 0;

		bpf_probe_read_kernel(&tgid, sizeof(tgid),
				      (const void *)h + __builtin_offsetof(struct rec_task_kill, target.tgid));
		return tgid && tgid == h->tgid;
	}
	return 0;
}

/* check decides an event of an enforcing namespace whose key is in h. An
 * event out of the allow set is denied and makes the task untrusted; every
 * event of an untrusted task is denied. Events key_passes names pass. */
static __always_inline int check(struct vg_task *st, struct vg_hdr *h)
{
	struct vg_allow_key k = {.ns = st->ns, .key = h->key};

	if (key_passes(h))
		return 0;
	h->flags |= VG_F_KEY;
	if (st->flags & VG_T_UNTRUSTED) {
		h->flags |= VG_F_DENIED;
		return -EPERM;
	}
	if (bpf_map_lookup_elem(&allow, &k))
		return 0;
	st->flags |= VG_T_UNTRUSTED;
	h->flags |= VG_F_DENIED | VG_F_UNTRUSTED;
	return -EPERM;
}

/* lost decides an event whose record could not be reserved (new_record
 * counted the loss). */
static __always_inline int lost(struct vg_task *st, const struct vg_ns_cfg *cfg)
{
	if (!enforcing(cfg))
		return 0;
	if ((st->flags & VG_T_UNTRUSTED) || (cfg->flags & VG_NS_FAIL_CLOSED))
		return -EPERM;
	return 0;
}

#endif
