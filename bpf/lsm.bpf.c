//go:build ignore

/* The BPF LSM backend: one program per LSM hook, each emitting its record
 * for tasks in a modeling namespace and, in an enforcing namespace,
 * returning -EPERM for events outside the namespace's allow set and for
 * every event of an untrusted task. */
#define VG_BACKEND_LSM 1 /* created.h: tags in inode storage */

/* The headers in the order they build on each other (bpf/doc.go). */
#include "lib/common.h"
#include "lib/records.h"
#include "lib/loss.h"
#include "lib/namespace.h"
#include "lib/ignore.h"
#include "lib/task.h"
#include "lib/rcache.h"
#include "lib/scratch.h"
#include "lib/path.h"
#include "lib/created.h"
#include "lib/fill.h"
#include "lib/key.h"
#include "lib/enforce.h"
#include "lib/memo.h"
#include "lib/repeat.h"
#include "lib/dormant.h"
#include "lib/lifecycle.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* RESERVE_OR_RETURN declares st (the current task's state), cfg (its
 * namespace's configuration) and var, a record of type T it reserves for
 * the task; it returns from the hook when the task makes no record (0) or
 * the ring buffer is full (the loss counted, and decided by lost). Not
 * formatted: clang-format misreads a body that ends in an if statement
 * without its semicolon. */
/* clang-format off */
#define RESERVE_OR_RETURN(T, var, rectype)        \
	struct vg_task *st = current_state();     \
	struct vg_ns_cfg *cfg;                    \
	T *var;                                   \
	if (!st)                                  \
		return 0;                         \
	cfg = ns_cfg(st);                         \
	var = new_record(rectype, sizeof(T), st); \
	if (!var)                                 \
		return lost(st, cfg)
/* clang-format on */

/* DECIDE_AND_SUBMIT decides the event of record var in an enforcing
 * namespace (keyexpr, its allow key, is computed only there), submits the
 * record and returns the decision from the hook. */
#define DECIDE_AND_SUBMIT(var, keyexpr)                \
	do {                                           \
		int rc_ = 0;                           \
		if (enforcing(cfg)) {                  \
			var->hdr.key = (keyexpr);      \
			rc_ = check(st, &var->hdr);    \
		}                                      \
		bpf_ringbuf_submit(var, wake_flags()); \
		return rc_;                            \
	} while (0)

/* file_open goes through the repeat cache (lib/repeat.h): a repeat of an open
 * recorded in this window, and allowed if the namespace enforces, only
 * counts. Untrusted tasks always take the full path (every event is
 * denied and recorded). */
SEC("lsm/file_open")
int BPF_PROG(vg_file_open, struct file *file, int ret)
{
	struct vg_rstate rs = {};
	struct vg_scratch *s;
	struct vg_ns_cfg *cfg;
	struct rec_file *r;
	struct vg_task *st;
	__u32 zero = 0;
	int rc = 0;

	if (ret)
		return ret;
	st = current_state();
	if (!st)
		return 0;
	cfg = ns_cfg(st);
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	s->rk_cached = 0;
	if (repeat_on(cfg) && !(st->flags & VG_T_UNTRUSTED)) {
		rkey_file(&s->rk, st, VG_FILE_OPEN, file);
		if (repeat_begin(&s->rk, cfg, &rs, file->f_inode))
			return 0;
	}
	r = new_record(VG_FILE_OPEN, sizeof(*r), st);
	if (!r)
		return lost(st, cfg);
	repeat_reserved(&r->hdr, &rs, &s->rk);
	repeat_decide_later(s, &rs);
	fill_file_btf(&r->file, file);
	if (enforcing(cfg)) {
		r->hdr.key = key_file(key_start(&r->hdr), &r->file, st->ns);
		rc = check(st, &r->hdr);
		repeat_decided_later(rc);
	}
	bpf_ringbuf_submit(r, wake_flags());
	return rc;
}

/* Per-CPU room for judging an exec before it happens. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rec_exec);
} exec_scratch SEC(".maps");

/* bprm_check_security judges an exec in an enforcing namespace with the
 * key its bprm_committed_creds record will have (the new credentials, the
 * executed file). A denied exec is reported as an Exec record flagged
 * denied, with the task's TTD unchanged. */
SEC("lsm/bprm_check_security")
int BPF_PROG(vg_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	struct vg_task *st;
	struct vg_ns_cfg *cfg;
	struct rec_exec *r;
	__u32 zero = 0;
	int rc;

	if (ret)
		return ret;
	st = current_state();
	if (!st)
		return 0;
	cfg = ns_cfg(st);
	if (!enforcing(cfg))
		return 0;
	r = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!r)
		return -EPERM;
	fill_hdr(&r->hdr, VG_EXEC, sizeof(*r), st);
	fill_coe(&r->hdr.coe, BPF_CORE_READ(bprm, cred));
	r->prev_ttd = st->ttd;
	fill_file_btf(&r->file, bprm->file);
	r->hdr.key = key_file(key_start(&r->hdr), &r->file, st->ns);
	rc = check(st, &r->hdr);
	if (rc && bpf_ringbuf_output(&events, r, sizeof(*r), wake_flags()))
		count_loss(st->ns, VG_LOSS_RINGBUF);
	return rc;
}

SEC("lsm/bprm_committed_creds")
int BPF_PROG(vg_bprm_committed_creds, struct linux_binprm *bprm)
{
	struct vg_task *st;
	struct rec_exec *r;

	dormant_wake();
	st = current_state();
	if (!st)
		return 0;
	r = exec_record(st, bprm->file, 1);
	if (r)
		bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(vg_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_mmap, r, VG_MMAP_FILE);
	r->prot = prot;
	r->flags = flags;
	fill_file_btf(&r->file, file);
	/* Anonymous mappings are keyed by protection and mapping type only;
	 * without PROT_EXEC they pass unchecked (key_passes). */
	DECIDE_AND_SUBMIT(
		r, r->file.present ? key_file(mix(mix(key_start(&r->hdr), r->prot), r->flags), &r->file, st->ns)
				   : mix(mix(key_start(&r->hdr), r->prot & VG_PROT_MASK), r->flags & VG_MAP_TYPE_MASK));
}

SEC("lsm/file_ioctl")
int BPF_PROG(vg_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_ioctl, r, VG_FILE_IOCTL);
	r->cmd = cmd;
	r->pad = 0;
	r->arg = arg;
	fill_file_btf(&r->file, file);
	DECIDE_AND_SUBMIT(r, key_file(mix(key_start(&r->hdr), r->cmd), &r->file, st->ns));
}

SEC("lsm/socket_create")
int BPF_PROG(vg_socket_create, int family, int type, int protocol, int kern, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_sock_create, r, VG_SOCKET_CREATE);
	r->family = family;
	r->type = type;
	r->protocol = protocol;
	r->kern = kern;
	DECIDE_AND_SUBMIT(r, mix(mix(mix(mix(key_start(&r->hdr), r->family), r->type), r->protocol), r->kern));
}

static __always_inline __u64 key_sock_addr(const struct rec_sock_addr *r)
{
	__u64 k = key_start(&r->hdr);

	k = mix(k, r->sock.family);
	k = mix(k, r->sock.type);
	k = mix(k, r->sock.protocol);
	k = mix(k, r->addr.family);
	if (r->addr.family == VG_AF_INET) {
		k = mix(k, r->addr.port);
		k = mix(k, r->addr.addr4);
	} else if (r->addr.family == VG_AF_INET6) {
		k = mix(k, r->addr.port);
		for (int i = 0; i < (int)sizeof(r->addr.addr6); i++)
			k = mix(k, r->addr.addr6[i]);
	} else if (r->addr.family == VG_AF_UNIX) {
		k = mix_str(k, (const char *)r->addr.raw, cstrlen((const char *)r->addr.raw, VG_UNIX_PATH_MAX),
			    VG_UNIX_PATH_MAX);
	}
	return k;
}

static __always_inline int sock_addr_event(__u16 type, struct socket *sock, struct sockaddr *address, int addrlen)
{
	RESERVE_OR_RETURN(struct rec_sock_addr, r, type);
	fill_sock(r, sock, st);
	fill_addr(&r->addr, address, addrlen, 0);
	DECIDE_AND_SUBMIT(r, key_sock_addr(r));
}

SEC("lsm/socket_connect")
int BPF_PROG(vg_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return sock_addr_event(VG_SOCKET_CONNECT, sock, address, addrlen);
}

SEC("lsm/socket_bind")
int BPF_PROG(vg_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return sock_addr_event(VG_SOCKET_BIND, sock, address, addrlen);
}

SEC("lsm/socket_accept")
int BPF_PROG(vg_socket_accept, struct socket *sock, struct socket *newsock, int ret)
{
	struct sock *sk;

	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_sock_addr, r, VG_SOCKET_ACCEPT);
	fill_sock(r, sock, st);
	sk = BPF_CORE_READ(sock, sk);
	r->addr.family = r->sock.family;
	r->addr.port = bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
	if (r->addr.family == VG_AF_INET) {
		r->addr.addr4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	} else if (r->addr.family == VG_AF_INET6) {
		bpf_core_read(r->addr.addr6, sizeof(r->addr.addr6), &sk->__sk_common.skc_v6_rcv_saddr);
	}
	DECIDE_AND_SUBMIT(r, key_sock_addr(r));
}

/* fill_target describes the task p an event acts on. A thread or process
 * that has not had an event yet has no task storage: its pending entry
 * (fork inheritance) is the state it will take over, so a signal to a
 * new thread is described as it would be once the thread ran. */
static __always_inline void fill_target(struct vg_target *t, struct task_struct *p)
{
	struct vg_task *ts = bpf_task_storage_get(&task_state, p, 0, 0);
	__u32 pid = BPF_CORE_READ(p, pid);

	if (!ts)
		ts = bpf_map_lookup_elem(&pending, &pid);
	t->pid = pid;
	t->tgid = BPF_CORE_READ(p, tgid);
	t->ns = ts ? ts->ns : 0;
	t->ttd = ts ? ts->ttd : 0;
}

SEC("lsm/task_kill")
int BPF_PROG(vg_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred,
	     int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_task_kill, r, VG_TASK_KILL);
	fill_target(&r->target, p);
	r->sig = sig;
	r->cross_ns = r->target.ns != st->ns;
	DECIDE_AND_SUBMIT(r, mix(mix(key_start(&r->hdr), r->sig), r->cross_ns));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(vg_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_ptrace, r, VG_PTRACE_ACCESS_CHECK);
	fill_target(&r->target, child);
	r->mode = mode;
	r->pad = 0;
	DECIDE_AND_SUBMIT(r, mix(key_start(&r->hdr), r->mode));
}

/* inode_create and inode_mkdir give the new file its created tag
 * (created.h) whether or not the record can be made, so that the
 * instance numbers do not depend on the ring buffer. */
static __always_inline int inode_create_event(__u16 type, struct inode *dir, struct dentry *dentry, umode_t mode)
{
	struct vg_task *st = current_state();
	struct rec_inode_create *r;
	struct vg_ns_cfg *cfg;
	struct vg_ctag tag;

	if (!st)
		return 0;
	cfg = ns_cfg(st);
	created_begin(st, dir, dentry, &tag);
	r = new_record(type, sizeof(*r), st);
	if (!r)
		return lost(st, cfg);
	__builtin_memset(&r->dir, 0, sizeof(r->dir));
	fill_inode(&r->dir, dir);
	r->mode = mode;
	r->pad = 0;
	r->created = tag;
	walk_path(&r->path, dentry, NULL);
	DECIDE_AND_SUBMIT(r, key_name(mix(key_start(&r->hdr), r->mode), &r->path, &r->created, st->ns));
}

SEC("lsm/inode_create")
int BPF_PROG(vg_inode_create, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return inode_create_event(VG_INODE_CREATE, dir, dentry, mode);
}

SEC("lsm/inode_mkdir")
int BPF_PROG(vg_inode_mkdir, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return inode_create_event(VG_INODE_MKDIR, dir, dentry, mode);
}

SEC("lsm/inode_unlink")
int BPF_PROG(vg_inode_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_inode_unlink, r, VG_INODE_UNLINK);
	__builtin_memset(&r->dir, 0, 2 * sizeof(r->dir));
	fill_inode(&r->dir, dir);
	fill_inode_btf(&r->inode, dentry->d_inode);
	walk_path(&r->path, dentry, NULL);
	DECIDE_AND_SUBMIT(r, key_name(key_start(&r->hdr), &r->path, &r->inode.created, st->ns));
}

SEC("lsm/inode_rename")
int BPF_PROG(vg_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry, int ret)
{
	if (ret)
		return ret;
	struct inode *old_inode = old_dentry->d_inode, *new_inode = new_dentry->d_inode;

	RESERVE_OR_RETURN(struct rec_inode_rename, r, VG_INODE_RENAME);
	__builtin_memset(&r->old_dir, 0, 4 * sizeof(r->old_dir));
	fill_inode(&r->old_dir, old_dir);
	fill_inode(&r->new_dir, new_dir);
	fill_inode_btf(&r->old_inode, old_inode);
	fill_inode_btf(&r->new_inode, new_inode);
	r->flags = 0;
	r->present = (old_inode ? VG_REN_OLD : 0) | (new_inode ? VG_REN_NEW : 0);
	walk_path(&r->old_path, old_dentry, NULL);
	walk_path(&r->new_path, new_dentry, NULL);
	DECIDE_AND_SUBMIT(r, key_name(key_name(key_start(&r->hdr), &r->old_path, &r->old_inode.created, st->ns),
				      &r->new_path, &r->new_inode.created, st->ns));
}

/* inode_setattr gained a leading mnt_idmap argument in 6.3; the dentry
 * and the iattr are the last two arguments on every kernel. The dentry is
 * read from the context at its constant place (struct mnt_idmap exists
 * from 6.3 on), which gives a BTF pointer: its inode's created tag needs
 * one. */
SEC("lsm/inode_setattr")
int vg_inode_setattr(unsigned long long *ctx)
{
	__u64 n = bpf_get_func_arg_cnt(ctx), b = 0;
	struct dentry *dentry;
	struct iattr *attr;

	if (n < 2 || bpf_get_func_arg(ctx, n - 1, &b))
		return 0;
	if (bpf_core_type_exists(struct mnt_idmap))
		dentry = (void *)ctx[1];
	else
		dentry = (void *)ctx[0];
	attr = (void *)b;
	RESERVE_OR_RETURN(struct rec_inode_setattr, r, VG_INODE_SETATTR);
	__builtin_memset(&r->inode, 0, sizeof(r->inode));
	fill_inode_btf(&r->inode, dentry->d_inode);
	r->valid = BPF_CORE_READ(attr, ia_valid);
	r->mode = BPF_CORE_READ(attr, ia_mode);
	r->uid = BPF_CORE_READ(attr, ia_uid.val);
	r->gid = BPF_CORE_READ(attr, ia_gid.val);
	r->size = BPF_CORE_READ(attr, ia_size);
	walk_path(&r->path, dentry, NULL);
	DECIDE_AND_SUBMIT(r, key_name(mix(key_start(&r->hdr), r->valid), &r->path, &r->inode.created, st->ns));
}

SEC("lsm/sb_mount")
int BPF_PROG(vg_sb_mount, const char *dev_name, const struct path *path, const char *type, unsigned long flags,
	     void *data, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_sb_mount, r, VG_SB_MOUNT);
	r->flags = flags;
	walk_path(&r->path, BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt));
	r->dev_name[0] = 0;
	r->type[0] = 0;
	if (dev_name)
		bpf_probe_read_kernel_str(r->dev_name, sizeof(r->dev_name), dev_name);
	if (type)
		bpf_probe_read_kernel_str(r->type, sizeof(r->type), type);
	DECIDE_AND_SUBMIT(
		r, mix_str(mix_str(mix(key_start(&r->hdr), r->flags), r->path.name, r->path.len, VG_PATH_MAX - 1),
			   r->type, cstrlen(r->type, sizeof(r->type)), sizeof(r->type)));
}

SEC("lsm/kernel_module_request")
int BPF_PROG(vg_kernel_module_request, char *kmod_name, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_kmod, r, VG_KERNEL_MODULE_REQUEST);
	r->name[0] = 0;
	bpf_probe_read_kernel_str(r->name, sizeof(r->name), kmod_name);
	DECIDE_AND_SUBMIT(r, mix_str(key_start(&r->hdr), r->name, cstrlen(r->name, sizeof(r->name)), sizeof(r->name)));
}

SEC("lsm/kernel_read_file")
int BPF_PROG(vg_kernel_read_file, struct file *file, enum kernel_read_file_id id, bool contents, int ret)
{
	if (ret)
		return ret;
	RESERVE_OR_RETURN(struct rec_kread, r, VG_KERNEL_READ_FILE);
	r->id = id;
	r->contents = contents;
	fill_file_btf(&r->file, file);
	DECIDE_AND_SUBMIT(r, r->file.present ? key_file(mix(key_start(&r->hdr), r->id), &r->file, st->ns)
					     : mix(key_start(&r->hdr), r->id));
}

/* bpf gained a trailing argument in 6.16; cmd and size keep their place. */
SEC("lsm/bpf")
int vg_bpf(unsigned long long *ctx)
{
	RESERVE_OR_RETURN(struct rec_bpf, r, VG_BPF);
	r->cmd = (__u32)ctx[0];
	r->size = (__u32)ctx[2];
	DECIDE_AND_SUBMIT(r, mix(key_start(&r->hdr), r->cmd));
}

SEC("lsm/capable")
int BPF_PROG(vg_capable, const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts, int ret)
{
	struct vg_task *st;
	struct vg_ns_cfg *cfg;
	struct rec_capable *r;

	if (ret)
		return ret;
	st = current_state();
	if (!st)
		return 0;
	cfg = ns_cfg(st);
	if (cfg && (cfg->flags & VG_NS_NO_CAPABLE))
		return 0;
	r = new_record(VG_CAPABLE, sizeof(*r), st);
	if (!r)
		return lost(st, cfg);
	r->cap = cap;
	r->opts = opts;
	DECIDE_AND_SUBMIT(r, mix(mix(key_start(&r->hdr), r->cap), r->opts));
}
