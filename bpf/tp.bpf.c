//go:build ignore

/* The tracepoint backend, for kernels where BPF LSM programs cannot be
 * loaded: it observes the same events after the fact from syscall and
 * scheduler tracepoints and emits the same records (flagged observed). It
 * never denies anything. */
#include "vigil.h"
#include "created.h"
#include "lifecycle.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The syscalls:sys_{enter,exit}_* formats: 8 bytes of common fields, the
 * syscall number, then 8-byte arguments or the return value. */
struct sys_enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct sys_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20
#define S_IFMT 00170000
#define S_IFSOCK 0140000

static __always_inline struct file *fd_file(long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *f = NULL;
	unsigned int max;

	if (!fdt || fd < 0)
		return NULL;
	max = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

#define BEGIN(T, var, rectype)                                      \
	struct vg_task *st = current_state();                       \
	T *var;                                                     \
	if (!st)                                                    \
		return 0;                                           \
	var = new_record(rectype, sizeof(T), st);                   \
	if (!var)                                                   \
		return 0;                                           \
	var->hdr.flags |= VG_F_OBSERVED

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* A weak kernel symbol the kernel lacks resolves to 0. */
#define vg_ksym_exists(sym) (!!&(sym))

/* fd_file_btf is fd_file as a BTF pointer (kernels with bpf_rdonly_cast,
 * 6.2+): its fields are then plain loads instead of probe reads. */
static __always_inline struct file *fd_file_btf(long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file *f = NULL;
	struct kiocb *slot;
	__u64 fds, at;

	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	/* The array's address as a number: index arithmetic on a BTF
	 * pointer is refused. */
	fds = (__u64)fdt->fd;
	barrier_var(fds);
	at = fds + fd * sizeof(f);
	/* The slot read as a struct kiocb, whose first field is a struct
	 * file pointer: a plain (fault-safe) load that yields a BTF pointer,
	 * instead of a probe read and a cast. */
	if (bpf_core_field_offset(struct kiocb, ki_filp) == 0) {
		slot = bpf_rdonly_cast((void *)at, bpf_core_type_id_kernel(struct kiocb));
		return slot->ki_filp;
	}
	bpf_probe_read_kernel(&f, sizeof(f), (void *)at);
	if (!f)
		return NULL;
	return bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
}

/* open_exit_old is open_exit for kernels without bpf_rdonly_cast: no
 * repeat cache. */
static __always_inline int open_exit_old(struct sys_exit_ctx *ctx, struct vg_task *st)
{
	struct file *file = fd_file(ctx->ret);
	struct rec_file *r;

	if (!file)
		return 0;
	if (BPF_CORE_READ(file, f_mode) & VG_FMODE_CREATED)
		created_open(st, file);
	r = new_record(VG_FILE_OPEN, sizeof(*r), st);
	if (!r)
		return 0;
	fill_file(&r->file, file);
	r->hdr.flags |= VG_F_OBSERVED;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

static __always_inline int open_exit(struct sys_exit_ctx *ctx)
{
	struct vg_rstate rs = {};
	struct vg_scratch *s = NULL;
	struct vg_ns_cfg *cfg;
	struct vg_task *st;
	struct file *file;
	struct rec_file *r;
	__u32 zero = 0;

	if (ctx->ret < 0)
		return 0;
	st = current_state();
	if (!st)
		return 0;
	if (!vg_ksym_exists(bpf_rdonly_cast))
		return open_exit_old(ctx, st);
	cfg = ns_cfg(st);
	file = fd_file_btf(ctx->ret);
	if (!file)
		return 0;
	/* The open made the file: tag it before anything reads its tag. */
	if (file->f_mode & VG_FMODE_CREATED)
		created_open(st, file);
	if (repeat_on(cfg)) {
		s = bpf_map_lookup_elem(&scratch, &zero);
		if (!s)
			return 0;
		rkey_file(&s->rk, st, VG_FILE_OPEN, file);
		if (repeat_begin(&s->rk, cfg, &rs, file->f_inode))
			return 0;
	}
	r = new_record(VG_FILE_OPEN, sizeof(*r), st);
	if (!r)
		return 0;
	fill_file_btf(&r->file, file);
	r->hdr.flags |= VG_F_OBSERVED;
	repeat_reserved(&r->hdr, &rs, &s->rk);
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int vg_exit_open(struct sys_exit_ctx *ctx)
{
	return open_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int vg_exit_openat(struct sys_exit_ctx *ctx)
{
	return open_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int vg_exit_openat2(struct sys_exit_ctx *ctx)
{
	return open_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int vg_exit_creat(struct sys_exit_ctx *ctx)
{
	return open_exit(ctx);
}

SEC("tracepoint/sched/sched_process_exec")
int vg_exec(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task *st = current_state();
	struct rec_exec *r;

	if (!st)
		return 0;
	r = exec_record(st, BPF_CORE_READ(task, mm, exe_file), 0);
	if (!r)
		return 0;
	r->hdr.flags |= VG_F_OBSERVED;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int vg_enter_mmap(struct sys_enter_ctx *ctx)
{
	__u64 prot = ctx->args[2], flags = ctx->args[3];

	if (!(prot & PROT_EXEC))
		return 0;
	BEGIN(struct rec_mmap, r, VG_MMAP_FILE);
	r->prot = prot;
	r->flags = flags;
	if (flags & MAP_ANONYMOUS) {
		r->file.present = 0;
		r->file.flags = 0;
	} else {
		fill_file(&r->file, fd_file((long)ctx->args[4]));
	}
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

static __always_inline int sock_addr_enter(struct sys_enter_ctx *ctx, __u16 type)
{
	struct file *file = fd_file((long)ctx->args[0]);
	struct socket *sock;
	__u32 mode;

	if (!file)
		return 0;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	BEGIN(struct rec_sock_addr, r, type);
	fill_sock(r, sock, st);
	fill_addr(&r->addr, (const void *)ctx->args[1], (int)ctx->args[2], 1);
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int vg_enter_connect(struct sys_enter_ctx *ctx)
{
	return sock_addr_enter(ctx, VG_SOCKET_CONNECT);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int vg_enter_bind(struct sys_enter_ctx *ctx)
{
	return sock_addr_enter(ctx, VG_SOCKET_BIND);
}

static __always_inline int kill_enter(__u32 pid, __u32 tgid, __u32 sig)
{
	BEGIN(struct rec_task_kill, r, VG_TASK_KILL);
	r->target.pid = pid;
	r->target.tgid = tgid;
	r->target.ns = 0;
	r->target.ttd = 0;
	r->sig = sig;
	r->cross_ns = 0;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int vg_enter_kill(struct sys_enter_ctx *ctx)
{
	return kill_enter(ctx->args[0], ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_tgkill")
int vg_enter_tgkill(struct sys_enter_ctx *ctx)
{
	return kill_enter(ctx->args[1], ctx->args[0], ctx->args[2]);
}
