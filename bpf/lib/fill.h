/* Filling records: the header of the acting task (fill_hdr, new_record
 * reserves and fills it), its credentials (COE), inodes, files with their
 * paths, socket addresses. The *_btf variants take BTF pointers (hook
 * arguments, bpf_get_current_task_btf, bpf_rdonly_cast), whose fields are
 * plain loads; the others read any pointer with probe reads. */
#ifndef VIGIL_FILL_H
#define VIGIL_FILL_H

#include "common.h"
#include "records.h"
#include "loss.h"
#include "task.h"
#include "path.h"
#include "created.h"

/* Nanoseconds fit in 30 bits; 6.13+ keeps a flag (I_CTIME_QUERIED) in bit
 * 31 of i_ctime_nsec that changes when someone stats the file. */
#define VG_NSEC_MASK 0x3fffffff

/* Kernel-version dependent inode time fields, resolved by CO-RE. */
struct inode___v611 {
	time64_t i_ctime_sec;
	time64_t i_mtime_sec;
	u32 i_ctime_nsec;
	u32 i_mtime_nsec;
} __attribute__((preserve_access_index));

struct inode___v66 {
	struct timespec64 __i_ctime;
	struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

struct inode___old {
	struct timespec64 i_ctime;
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

/* kernel_cap_t before 6.3: two 32-bit words. */
struct kernel_cap_struct___cap32 {
	__u32 cap[2];
} __attribute__((preserve_access_index));

struct cred___cap32 {
	struct kernel_cap_struct___cap32 cap_effective;
} __attribute__((preserve_access_index));

/* fill_coe fills c, the COE, from cred (any pointer). */
static __always_inline void fill_coe(struct vg_coe *c, const struct cred *cred)
{
	/* The eight ids are consecutive in struct cred (uid gid suid sgid
	 * euid egid fsuid fsgid) on every kernel we know; one read then, and
	 * field by field should a kernel ever differ. */
	if (bpf_core_field_offset(struct cred, fsgid) - bpf_core_field_offset(struct cred, uid) == 28) {
		__u32 ids[8];

		bpf_core_read(ids, sizeof(ids), &cred->uid);
		c->uid = ids[0];
		c->gid = ids[1];
		c->suid = ids[2];
		c->sgid = ids[3];
		c->euid = ids[4];
		c->egid = ids[5];
		c->fsuid = ids[6];
		c->fsgid = ids[7];
	} else {
		c->uid = BPF_CORE_READ(cred, uid.val);
		c->euid = BPF_CORE_READ(cred, euid.val);
		c->suid = BPF_CORE_READ(cred, suid.val);
		c->gid = BPF_CORE_READ(cred, gid.val);
		c->egid = BPF_CORE_READ(cred, egid.val);
		c->sgid = BPF_CORE_READ(cred, sgid.val);
		c->fsuid = BPF_CORE_READ(cred, fsuid.val);
		c->fsgid = BPF_CORE_READ(cred, fsgid.val);
	}
	/* kernel_cap_t is two u32 before 6.3 and one u64 after: the same 8
	 * little-endian bytes. */
	bpf_core_read(&c->capeff, sizeof(c->capeff), &cred->cap_effective);
}

/* fill_coe_btf is fill_coe for a BTF pointer: plain loads. */
static __always_inline void fill_coe_btf(struct vg_coe *c, const struct cred *cred)
{
	c->uid = cred->uid.val;
	c->gid = cred->gid.val;
	c->suid = cred->suid.val;
	c->sgid = cred->sgid.val;
	c->euid = cred->euid.val;
	c->egid = cred->egid.val;
	c->fsuid = cred->fsuid.val;
	c->fsgid = cred->fsgid.val;
	if (bpf_core_field_exists(cred->cap_effective.val)) {
		c->capeff = cred->cap_effective.val;
	} else {
		struct cred___cap32 *o = (void *)cred;

		c->capeff = o->cap_effective.cap[0] | (__u64)o->cap_effective.cap[1] << 32;
	}
}

static __always_inline void fill_hdr(struct vg_hdr *h, __u16 type, __u16 size, const struct vg_task *st)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pt = bpf_get_current_pid_tgid();

	h->size = size;
	h->type = type;
	h->flags = (st->flags & VG_T_UNTRUSTED) ? VG_F_UNTRUSTED : 0;
	h->ns = st->ns;
	h->ktime = bpf_ktime_get_ns();
	h->pid = (__u32)pt;
	h->tgid = pt >> 32;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	fill_coe_btf(&h->coe, task->cred);
	h->ttd = st->ttd;
	h->p_ttd = st->p_ttd;
	h->key = 0;
	h->rid = 0;
}

/* new_record reserves a record of type and size in the ring buffer and
 * fills its header for the task; when the ring is full it counts the loss
 * in the task's namespace and returns NULL. */
static __always_inline void *new_record(__u16 type, __u16 size, const struct vg_task *st)
{
	struct vg_hdr *h = bpf_ringbuf_reserve(&events, size, 0);

	if (!h) {
		count_loss(st->ns, VG_LOSS_RINGBUF);
		return NULL;
	}
	fill_hdr(h, type, size, st);
	return h;
}

static __always_inline void fill_inode(struct vg_inode *o, struct inode *ino)
{
	struct super_block *sb;
	__u32 dev;

	if (!ino)
		return;
	sb = BPF_CORE_READ(ino, i_sb);
	o->ino = BPF_CORE_READ(ino, i_ino);
	o->size = BPF_CORE_READ(ino, i_size);
	if (bpf_core_field_offset(struct inode, i_uid) - bpf_core_field_offset(struct inode, i_mode) == 4 &&
	    bpf_core_field_offset(struct inode, i_gid) - bpf_core_field_offset(struct inode, i_mode) == 8) {
		__u32 mug[3];

		bpf_core_read(mug, sizeof(mug), &ino->i_mode);
		o->mode = mug[0] & 0xffff;
		o->uid = mug[1];
		o->gid = mug[2];
	} else {
		o->uid = BPF_CORE_READ(ino, i_uid.val);
		o->gid = BPF_CORE_READ(ino, i_gid.val);
		o->mode = BPF_CORE_READ(ino, i_mode);
	}
	if (bpf_core_field_exists(((struct inode___v611 *)0)->i_ctime_sec)) {
		struct inode___v611 *n = (void *)ino;
		o->ctime_sec = BPF_CORE_READ(n, i_ctime_sec);
		o->ctime_nsec = BPF_CORE_READ(n, i_ctime_nsec) & VG_NSEC_MASK;
	} else if (bpf_core_field_exists(((struct inode___v66 *)0)->__i_ctime)) {
		struct inode___v66 *m = (void *)ino;
		o->ctime_sec = BPF_CORE_READ(m, __i_ctime.tv_sec);
		o->ctime_nsec = BPF_CORE_READ(m, __i_ctime.tv_nsec);
	} else {
		struct inode___old *d = (void *)ino;
		o->ctime_sec = BPF_CORE_READ(d, i_ctime.tv_sec);
		o->ctime_nsec = BPF_CORE_READ(d, i_ctime.tv_nsec);
	}
	if (bpf_core_field_exists(((struct inode___v611 *)0)->i_mtime_sec)) {
		struct inode___v611 *n = (void *)ino;
		o->mtime_sec = BPF_CORE_READ(n, i_mtime_sec);
		o->mtime_nsec = BPF_CORE_READ(n, i_mtime_nsec);
	} else if (bpf_core_field_exists(((struct inode___v66 *)0)->__i_mtime)) {
		struct inode___v66 *m = (void *)ino;
		o->mtime_sec = BPF_CORE_READ(m, __i_mtime.tv_sec);
		o->mtime_nsec = BPF_CORE_READ(m, __i_mtime.tv_nsec);
	} else {
		struct inode___old *d = (void *)ino;
		o->mtime_sec = BPF_CORE_READ(d, i_mtime.tv_sec);
		o->mtime_nsec = BPF_CORE_READ(d, i_mtime.tv_nsec);
	}
	ctag_read(&o->created, ino);
	if (!sb)
		return;
	o->s_magic = BPF_CORE_READ(sb, s_magic);
	dev = BPF_CORE_READ(sb, s_dev);
	o->dev_major = dev >> VG_MINORBITS;
	o->dev_minor = dev & VG_MINORMASK;
	bpf_core_read(o->s_id, sizeof(o->s_id), &sb->s_id);
	bpf_core_read(o->s_uuid, sizeof(o->s_uuid), &sb->s_uuid);
}

static __always_inline void fill_file(struct vg_file *f, struct file *file)
{
	if (!file) {
		f->present = 0;
		return;
	}
	f->present = 1;
	f->flags = BPF_CORE_READ(file, f_flags);
	fill_inode(&f->inode, BPF_CORE_READ(file, f_inode));
	walk_path(&f->path, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt));
}

/* inode_times_btf reads ctime and mtime (ctime's nanoseconds without the
 * multigrain flag). */
static __always_inline void inode_times_btf(struct inode *ino, __s64 *csec, __u32 *cnsec, __s64 *msec, __u32 *mnsec)
{
	if (bpf_core_field_exists(((struct inode___v611 *)0)->i_ctime_sec)) {
		struct inode___v611 *n = (void *)ino;
		*csec = n->i_ctime_sec;
		*cnsec = n->i_ctime_nsec & VG_NSEC_MASK;
		*msec = n->i_mtime_sec;
		*mnsec = n->i_mtime_nsec;
	} else if (bpf_core_field_exists(((struct inode___v66 *)0)->__i_ctime)) {
		struct inode___v66 *m = (void *)ino;
		*csec = m->__i_ctime.tv_sec;
		*cnsec = m->__i_ctime.tv_nsec & VG_NSEC_MASK;
		*msec = m->__i_mtime.tv_sec;
		*mnsec = m->__i_mtime.tv_nsec;
	} else {
		struct inode___old *d = (void *)ino;
		*csec = d->i_ctime.tv_sec;
		*cnsec = d->i_ctime.tv_nsec & VG_NSEC_MASK;
		*msec = d->i_mtime.tv_sec;
		*mnsec = d->i_mtime.tv_nsec;
	}
}

static __always_inline void fill_inode_btf(struct vg_inode *o, struct inode *ino)
{
	struct super_block *sb;
	__u32 dev;

	if (!ino)
		return;
	o->ino = ino->i_ino;
	o->size = ino->i_size;
	o->mode = ino->i_mode;
	o->uid = ino->i_uid.val;
	o->gid = ino->i_gid.val;
	inode_times_btf(ino, &o->ctime_sec, &o->ctime_nsec, &o->mtime_sec, &o->mtime_nsec);
	ctag_read_btf(&o->created, ino);
	sb = ino->i_sb;
	if (!sb)
		return;
	o->s_magic = sb->s_magic;
	dev = sb->s_dev;
	o->dev_major = dev >> VG_MINORBITS;
	o->dev_minor = dev & VG_MINORMASK;
	bpf_probe_read_kernel(o->s_id, sizeof(o->s_id), sb->s_id);
	bpf_probe_read_kernel(o->s_uuid, sizeof(o->s_uuid), &sb->s_uuid);
}

static __always_inline void fill_file_btf(struct vg_file *f, struct file *file)
{
	struct {
		struct vfsmount *mnt;
		struct dentry *dentry;
	} p = {};

	if (!file) {
		f->present = 0;
		return;
	}
	f->present = 1;
	f->flags = file->f_flags;
	fill_inode_btf(&f->inode, file->f_inode);
	/* walk_path keeps the pointers as numbers: read them as such. */
	bpf_core_read(&p, sizeof(p), &file->f_path);
	walk_path(&f->path, p.dentry, p.mnt);
}

/* exec_record: the task has executed file, its new credentials in place.
 * It gets a new TTD, and the Exec record names the one it replaces; NULL
 * (the loss counted) when the ring is full. btf (a constant) says file is
 * a BTF pointer. */
static __always_inline struct rec_exec *exec_record(struct vg_task *st, struct file *file, int btf)
{
	__u64 prev = st->ttd;
	struct rec_exec *r;

	st->ttd = next_id(&ttd_counter);
	r = new_record(VG_EXEC, sizeof(*r), st);
	if (!r)
		return NULL;
	r->prev_ttd = prev;
	if (btf)
		fill_file_btf(&r->file, file);
	else
		fill_file(&r->file, file);
	return r;
}

/* A socket address after its family (struct vg_addr.raw): at most the
 * rest of a struct sockaddr_storage, with the fields of sockaddr_in and
 * sockaddr_in6 at these offsets (the port, of both, at 0). */
#define VG_SA_FAMILY 2      /* sizeof(sa_family_t) */
#define VG_SA_RAW_MAX 126   /* sizeof(struct sockaddr_storage) - VG_SA_FAMILY */
#define VG_SA_RAW_MASK 0x7f /* bounds the length below sizeof(vg_addr.raw) */
#define VG_SIN_ADDR 2
#define VG_SIN6_FLOWINFO 2
#define VG_SIN6_ADDR 6
#define VG_SIN6_SCOPE_ID 22

/* fill_addr copies a socket address (kernel or user memory). */
static __always_inline void fill_addr(struct vg_addr *a, const void *addr, int addrlen, int user)
{
	__u32 n;

	a->len = addrlen;
	if (!addr || addrlen < VG_SA_FAMILY)
		return;
	if (user)
		bpf_probe_read_user(&a->family, VG_SA_FAMILY, addr);
	else
		bpf_probe_read_kernel(&a->family, VG_SA_FAMILY, addr);
	n = addrlen - VG_SA_FAMILY;
	if (n > VG_SA_RAW_MAX)
		n = VG_SA_RAW_MAX;
	barrier_var(n);
	n &= VG_SA_RAW_MASK;
	if (user)
		bpf_probe_read_user(a->raw, n & VG_SA_RAW_MASK, addr + VG_SA_FAMILY);
	else
		bpf_probe_read_kernel(a->raw, n & VG_SA_RAW_MASK, addr + VG_SA_FAMILY);
	if (a->family == VG_AF_INET || a->family == VG_AF_INET6) {
		a->port = a->raw[0] | (__u16)a->raw[1] << 8;
	}
	if (a->family == VG_AF_INET) {
		__builtin_memcpy(&a->addr4, &a->raw[VG_SIN_ADDR], sizeof(a->addr4));
	} else if (a->family == VG_AF_INET6) {
		__builtin_memcpy(&a->flow, &a->raw[VG_SIN6_FLOWINFO], sizeof(a->flow));
		__builtin_memcpy(a->addr6, &a->raw[VG_SIN6_ADDR], sizeof(a->addr6));
		__builtin_memcpy(&a->scope, &a->raw[VG_SIN6_SCOPE_ID], sizeof(a->scope));
	}
}

/* fill_sock clears a socket address record's payload and describes the
 * socket in it (the address is the caller's). */
static __always_inline void fill_sock(struct rec_sock_addr *r, struct socket *sock, const struct vg_task *st)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	struct vg_sock *o = &r->sock;

	__builtin_memset(&r->sock, 0, sizeof(r->sock) + sizeof(r->addr));
	o->type = BPF_CORE_READ(sock, type);
	o->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	o->protocol = BPF_CORE_READ(sk, sk_protocol);
	o->owner_ttd = st->ttd;
}

#endif
