/* Paths: the name of a dentry, walked up to the task's root (across
 * mounts, as d_path) or to its filesystem's root, one bpf_loop step per
 * component. */
#ifndef VIGIL_PATH_H
#define VIGIL_PATH_H

#include "common.h"
#include "records.h"
#include "scratch.h"

#define VG_DEPTH 48 /* path components walked */

static __always_inline struct vfsmount *mount_vfs(struct mount *m)
{
	return (void *)m + bpf_core_field_offset(struct mount, mnt);
}

/* walk_step prepends one component of w->dentry to the scratch buffer, or
 * crosses one mount, or stops (returns 1) at a root. */
static long walk_step(__u32 i, void *unused)
{
	__u32 zero = 0, len, off;
	struct vg_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct dentry *dentry, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	const unsigned char *name;
	struct walk_ctx *w;

	if (!s)
		return 1;
	w = &s->w;
	dentry = (void *)w->dentry;
	vfsmnt = (void *)w->vfsmnt;
	mnt = (void *)w->mnt;
	off = w->off;
	if (vfsmnt && dentry == (void *)w->root_dentry && vfsmnt == (void *)w->root_mnt) {
		w->reached = 1;
		return 1;
	}
	if (vfsmnt && dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (!up || up == mnt) {
			w->reached = 1;
			return 1;
		}
		w->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = (__u64)up;
		w->vfsmnt = (__u64)mount_vfs(up);
		return 0;
	}
	/* d_parent is followed by d_name (hash, len, name) in struct dentry:
	 * one read for the three when the kernel agrees. */
	if (bpf_core_field_offset(struct dentry, d_name) - bpf_core_field_offset(struct dentry, d_parent) == 8) {
		struct {
			struct dentry *parent;
			__u32 hash;
			__u32 len;
			const unsigned char *name;
		} pn;

		bpf_core_read(&pn, sizeof(pn), &dentry->d_parent);
		parent = pn.parent;
		name = pn.name;
		len = pn.len & 0xff;
	} else {
		parent = BPF_CORE_READ(dentry, d_parent);
		name = BPF_CORE_READ(dentry, d_name.name);
		len = BPF_CORE_READ(dentry, d_name.len) & 0xff;
	}
	if (!parent || parent == dentry) {
		/* A filesystem root: the end without a mount, else a root
		 * that is not ours (detached). */
		w->reached = !vfsmnt;
		return 1;
	}
	if (len + 1 > off || off >= VG_PATH_MAX) {
		w->flags |= VG_P_TRUNCATED;
		w->reached = 1;
		return 1;
	}
	off -= len;
	bpf_probe_read_kernel(&s->tmp[off & (VG_PATH_MAX - 1)], len, name);
	off -= 1;
	s->tmp[off & (VG_PATH_MAX - 1)] = '/';
	w->off = off;
	w->dentry = (__u64)parent;
	return 0;
}

/* walk_path writes the path of dentry into out. With a vfsmount it crosses
 * mounts up to the task's root (as d_path does); without one it stops at
 * the root of the dentry's filesystem. The name is built backwards in the
 * per-CPU scratch buffer, one bpf_loop step per component, and copied
 * once. */
static __always_inline void walk_path(struct vg_path *out, struct dentry *dentry, struct vfsmount *vfsmnt)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 zero = 0, len, off;
	struct vg_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	long steps;

	out->len = 0;
	out->flags = vfsmnt ? 0 : VG_P_NOMOUNT;
	out->name[0] = 0;
	if (!s || !dentry) {
		out->flags |= VG_P_DETACHED;
		return;
	}
	s->w.dentry = (__u64)dentry;
	s->w.vfsmnt = (__u64)vfsmnt;
	s->w.mnt = vfsmnt ? (__u64)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt)) : 0;
	s->w.root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	s->w.root_mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt);
	s->w.off = VG_PATH_MAX - 1;
	s->w.flags = 0;
	s->w.reached = 0;
	steps = bpf_loop(VG_DEPTH, walk_step, NULL, 0);
	if (steps >= VG_DEPTH && !s->w.reached)
		s->w.flags |= VG_P_TRUNCATED;
	else if (!s->w.reached)
		s->w.flags |= VG_P_DETACHED;
	off = s->w.off & (VG_PATH_MAX - 1);
	if (off == VG_PATH_MAX - 1) {
		off -= 1;
		s->tmp[off] = '/';
	}
	len = (VG_PATH_MAX - 1 - off) & (VG_PATH_MAX - 1);
	bpf_probe_read_kernel(out->name, len, &s->tmp[off]);
	out->name[len & (VG_PATH_MAX - 1)] = 0;
	out->len = len;
	out->flags |= s->w.flags;
}

#endif
