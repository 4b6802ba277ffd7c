//go:build ignore

/* The tracepoint backend, for kernels where BPF LSM programs cannot be
 * loaded: it observes the same events after the fact from the raw syscall
 * tracepoints and the scheduler's, and emits the same records (flagged
 * observed). It never denies anything. */

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

/* observed_record reserves a record of type and size for the current
 * task, flagged observed, and gives the task's state in *stp; NULL when
 * the task makes no record or the ring buffer is full (the loss counted). */
static __always_inline void *observed_record(__u16 type, __u16 size, struct vg_task **stp)
{
	struct vg_task *st = current_state();
	struct vg_hdr *h;

	if (!st)
		return NULL;
	h = new_record(type, size, st);
	if (!h)
		return NULL;
	h->flags |= VG_F_OBSERVED;
	*stp = st;
	return h;
}

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
static __always_inline int open_exit_old(long ret, struct vg_task *st)
{
	struct file *file = fd_file(ret);
	struct rec_file *r;

	if (!file || (BPF_CORE_READ(file, f_flags) & VG_O_PATH))
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

/* open_exit describes the file a successful open-like syscall returned as
 * fd ret. An O_PATH open is skipped: the kernel opens no file for it
 * (do_dentry_open returns before security_file_open), so TSEM's file_open
 * and the LSM backend never see it. */
static __always_inline int open_exit(long ret)
{
	struct vg_rstate rs = {};
	struct vg_scratch *s = NULL;
	struct vg_ns_cfg *cfg;
	struct vg_task *st;
	struct file *file;
	struct rec_file *r;
	__u32 zero = 0;

	if (ret < 0)
		return 0;
	st = current_state();
	if (!st)
		return 0;
	if (!vg_ksym_exists(bpf_rdonly_cast))
		return open_exit_old(ret, st);
	cfg = ns_cfg(st);
	file = fd_file_btf(ret);
	if (!file || (file->f_flags & VG_O_PATH))
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

/* The script an exec ran. For a "#!" script (binfmt_script, or an
 * interpreter binfmt_misc names) the kernel opens the script, then the
 * interpreter, and the exec completes with the interpreter: mm->exe_file
 * and bprm->file name the interpreter, bprm->filename the script as the
 * caller named it, and bprm->interp differs from bprm->filename. The
 * script's struct file is released with fput() before the interpreter is
 * loaded; a task's last fput is deferred to a task work (____fput, run on
 * the way back to user space), so at sched_process_exec the script is
 * still on current->task_works, the earliest one queued (the list is
 * last in, first out) whose f_flags carry __FMODE_EXEC (files the exec
 * released later, such as the old program's mappings, come after it).
 * fput_work_fn is ____fput's address (vg_find_fput, run by the loader);
 * without it, or when no such file is found, the record names the script
 * by bprm->filename only (file.present 0). */
#define VG_EXEC_WORKS 64 /* task works walked */

__u64 fput_work_fn = 0;

SEC("syscall")
int vg_find_fput(void *ctx)
{
	static const char name[] = "____fput";
	__u64 addr = 0;

	if (bpf_kallsyms_lookup_name(name, sizeof(name), 0, &addr) == 0)
		fput_work_fn = addr;
	return 0;
}

/* Where struct file keeps the callback_head of its deferred release. */
struct file___task_work {
	struct callback_head f_task_work;
} __attribute__((preserve_access_index));

struct file___rcuhead {
	struct callback_head f_rcuhead;
} __attribute__((preserve_access_index));

struct file___fu {
	union {
		struct callback_head fu_rcuhead;
	} f_u;
} __attribute__((preserve_access_index));

static __always_inline __u64 file_work_offset(void)
{
	if (bpf_core_field_exists(((struct file___task_work *)0)->f_task_work))
		return bpf_core_field_offset(struct file___task_work, f_task_work);
	if (bpf_core_field_exists(((struct file___rcuhead *)0)->f_rcuhead))
		return bpf_core_field_offset(struct file___rcuhead, f_rcuhead);
	return bpf_core_field_offset(struct file___fu, f_u.fu_rcuhead);
}

struct exec_works {
	__u64 work; /* the next callback_head */
	__u64 fn;   /* ____fput */
	__u64 off;  /* of the callback_head in struct file */
	__u64 file; /* the earliest-queued exec file so far */
};

static long exec_work_step(__u32 i, void *data)
{
	struct exec_works *c = data;
	struct callback_head cb = {};
	struct file *f;

	if (!c->work || bpf_probe_read_kernel(&cb, sizeof(cb), (void *)c->work))
		return 1;
	if ((__u64)cb.func == c->fn) {
		f = (void *)(c->work - c->off);
		if (BPF_CORE_READ(f, f_flags) & VG_FMODE_EXEC)
			c->file = (__u64)f;
	}
	c->work = (__u64)cb.next;
	return 0;
}

/* exec_script_file returns the script file an interpreter exec released,
 * or NULL. */
static __always_inline struct file *exec_script_file(struct linux_binprm *bprm)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct exec_works c = {};
	struct file *f;

	/* binfmt_misc's "open binary" flag hands the file on instead. */
	f = BPF_CORE_READ(bprm, executable);
	if (f)
		return f;
	if (!fput_work_fn)
		return NULL;
	c.fn = fput_work_fn;
	c.off = file_work_offset();
	c.work = (__u64)BPF_CORE_READ(task, task_works);
	bpf_loop(VG_EXEC_WORKS, exec_work_step, &c, 0);
	return (struct file *)c.file;
}

/* exec_script records the script of an interpreter exec (VG_EXEC_SCRIPT,
 * a file record) for the task as it was before the exec: call it before
 * exec_record gives the task its new TTD. */
static __always_inline void exec_script(struct vg_task *st, struct linux_binprm *bprm)
{
	const char *filename = BPF_CORE_READ(bprm, filename);
	struct file *script;
	struct rec_file *r;
	long n;

	if (!filename || filename == BPF_CORE_READ(bprm, interp))
		return;
	script = exec_script_file(bprm);
	r = new_record(VG_EXEC_SCRIPT, sizeof(*r), st);
	if (!r)
		return;
	r->hdr.flags |= VG_F_OBSERVED;
	if (script) {
		fill_file(&r->file, script);
	} else {
		__builtin_memset(&r->file.inode, 0, sizeof(r->file.inode));
		r->file.present = 0;
		r->file.flags = 0;
		n = bpf_probe_read_kernel_str(r->file.path.name, sizeof(r->file.path.name), filename);
		r->file.path.len = n > 0 ? n - 1 : 0;
		r->file.path.flags = VG_P_DETACHED;
	}
	bpf_ringbuf_submit(r, wake_flags());
}

/* A raw tracepoint: its arguments are (task, old pid, bprm). */
SEC("raw_tracepoint/sched_process_exec")
int vg_exec(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct linux_binprm *bprm = (void *)ctx->args[2];
	struct vg_task *st;
	struct rec_exec *r;

	dormant_wake();
	st = current_state();
	if (!st)
		return 0;
	exec_script(st, bprm);
	r = exec_record(st, BPF_CORE_READ(task, mm, exe_file), 0);
	if (!r)
		return 0;
	r->hdr.flags |= VG_F_OBSERVED;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

static __always_inline int mmap_enter(__u64 prot, __u64 flags, long fd)
{
	struct rec_mmap *r;
	struct vg_task *st;

	if (!(prot & VG_PROT_EXEC))
		return 0;
	r = observed_record(VG_MMAP_FILE, sizeof(*r), &st);
	if (!r)
		return 0;
	r->prot = prot;
	r->flags = flags;
	if (flags & VG_MAP_ANONYMOUS) {
		r->file.present = 0;
		r->file.flags = 0;
	} else {
		fill_file(&r->file, fd_file(fd));
	}
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

static __always_inline int sock_addr_enter(long fd, const void *addr, int addrlen, __u16 type)
{
	struct file *file = fd_file(fd);
	struct rec_sock_addr *r;
	struct socket *sock;
	struct vg_task *st;
	__u32 mode;

	if (!file)
		return 0;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & VG_S_IFMT) != VG_S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	r = observed_record(type, sizeof(*r), &st);
	if (!r)
		return 0;
	fill_sock(r, sock, st);
	fill_addr(&r->addr, addr, addrlen, 1);
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

static __always_inline int kill_enter(__u32 pid, __u32 tgid, __u32 sig)
{
	struct rec_task_kill *r;
	struct vg_task *st;

	r = observed_record(VG_TASK_KILL, sizeof(*r), &st);
	if (!r)
		return 0;
	r->target.pid = pid;
	r->target.tgid = tgid;
	r->target.ns = 0;
	r->target.ttd = 0;
	r->sig = sig;
	r->cross_ns = 0;
	bpf_ringbuf_submit(r, wake_flags());
	return 0;
}

/* Syscalls. One raw sys_enter and one raw sys_exit program see every
 * syscall of every task and hand the ones that make an event to the
 * handlers above: the syscalls that open a file and return it (at exit:
 * open, openat, openat2, creat, open_by_handle_at, mq_open), connect,
 * bind, mmap, and the ones that send a signal (kill, tkill, tgkill,
 * rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal; tkill names a
 * thread only, pidfd_send_signal a pidfd, whose pid this backend leaves 0:
 * it never resolves a signal target's identity anyway). exec needs none
 * (sched_process_exec sees every exec).
 *
 * Raw tracepoints rather than the syscalls:* ones, for three reasons. On
 * x86-64 the syscalls:* tracepoints skip the syscalls a task makes
 * through the 32-bit entry (int $0x80, sysenter, syscall from 32-bit
 * code: TS_COMPAT set) and x32 ones (the number has __X32_SYSCALL_BIT),
 * so a 64-bit program could open, connect or signal through int $0x80
 * unseen; the raw ones see them with their own numbers. One program per
 * direction is verified once instead of once per syscall, which is most
 * of the time a capture takes to load. And a raw tracepoint costs a
 * traced syscall less than a perf event does. The price: both programs
 * run for every syscall of the machine; one that no table names returns
 * after a switch on its number (docs/performance.md says what it costs). */
#define VG_X32_BIT 0x40000000 /* __X32_SYSCALL_BIT */
#define VG_TS_COMPAT 0x0002   /* thread_info.status: a 32-bit syscall */
/* socketcall(2)'s calls (include/uapi/linux/net.h) */
#define VG_SYS_BIND 2
#define VG_SYS_CONNECT 3

enum vg_syscall {
	VG_SC_NONE = 0,
	VG_SC_OPEN, /* returns a file descriptor: open_exit */
	VG_SC_CONNECT,
	VG_SC_BIND,
	VG_SC_SOCKETCALL, /* ia32: call, then a pointer to its arguments */
	VG_SC_KILL,
	VG_SC_TKILL,
	VG_SC_TGKILL,
	VG_SC_SIGQUEUE,
	VG_SC_TGSIGQUEUE,
	VG_SC_PIDFD_SIGNAL,
	VG_SC_MMAP,
	VG_SC_OLD_MMAP, /* ia32: a pointer to the six arguments */
};

/* arch/x86/entry/syscalls/syscall_64.tbl; x32 shares the numbers but for
 * the rt_sig*queueinfo pair. */
static __always_inline int native_syscall(long nr, int x32)
{
	switch (nr) {
	case 2:   /* open */
	case 85:  /* creat */
	case 240: /* mq_open */
	case 257: /* openat */
	case 304: /* open_by_handle_at */
	case 437: /* openat2 */
		return VG_SC_OPEN;
	case 42:
		return VG_SC_CONNECT;
	case 49:
		return VG_SC_BIND;
	case 62:
		return VG_SC_KILL;
	case 200:
		return VG_SC_TKILL;
	case 234:
		return VG_SC_TGKILL;
	case 129:
		return x32 ? VG_SC_NONE : VG_SC_SIGQUEUE;
	case 297:
		return x32 ? VG_SC_NONE : VG_SC_TGSIGQUEUE;
	case 524: /* x32 rt_sigqueueinfo */
		return x32 ? VG_SC_SIGQUEUE : VG_SC_NONE;
	case 536: /* x32 rt_tgsigqueueinfo */
		return x32 ? VG_SC_TGSIGQUEUE : VG_SC_NONE;
	case 424:
		return VG_SC_PIDFD_SIGNAL;
	case 9:
		return VG_SC_MMAP;
	}
	return VG_SC_NONE;
}

/* arch/x86/entry/syscalls/syscall_32.tbl */
static __always_inline int ia32_syscall(long nr)
{
	switch (nr) {
	case 5:   /* open */
	case 8:   /* creat */
	case 277: /* mq_open */
	case 295: /* openat */
	case 342: /* open_by_handle_at */
	case 437: /* openat2 */
		return VG_SC_OPEN;
	case 362:
		return VG_SC_CONNECT;
	case 361:
		return VG_SC_BIND;
	case 102:
		return VG_SC_SOCKETCALL;
	case 37:
		return VG_SC_KILL;
	case 238:
		return VG_SC_TKILL;
	case 270:
		return VG_SC_TGKILL;
	case 178:
		return VG_SC_SIGQUEUE;
	case 335:
		return VG_SC_TGSIGQUEUE;
	case 424:
		return VG_SC_PIDFD_SIGNAL;
	case 192: /* mmap2 */
		return VG_SC_MMAP;
	case 90:
		return VG_SC_OLD_MMAP;
	}
	return VG_SC_NONE;
}

/* in_ia32: the current syscall came through the 32-bit entry. */
static __always_inline int in_ia32(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!bpf_core_field_exists(task->thread_info.status))
		return 0;
	return task->thread_info.status & VG_TS_COMPAT;
}

/* syscall_kind classifies syscall id of the current task. A number no
 * table names (nearly every syscall) is decided without reading the task
 * (whether the syscall is a 32-bit one). */
static __always_inline int syscall_kind(long id)
{
	int native;

	if (id & VG_X32_BIT)
		return native_syscall(id & ~VG_X32_BIT, 1);
	native = native_syscall(id, 0);
	if (native == VG_SC_NONE && ia32_syscall(id) == VG_SC_NONE)
		return VG_SC_NONE;
	return in_ia32() ? ia32_syscall(id) : native;
}

SEC("raw_tracepoint/sys_enter")
int vg_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (void *)ctx->args[0];
	__u32 u[6] = {};
	__u64 a[6];
	int ia32, sc;

	sc = syscall_kind(ctx->args[1]);
	if (sc == VG_SC_NONE || sc == VG_SC_OPEN)
		return 0;
	ia32 = in_ia32();
	if (ia32) {
		/* ebx, ecx, edx, esi, edi, ebp: 32-bit values */
		a[0] = (__u32)BPF_CORE_READ(regs, bx);
		a[1] = (__u32)BPF_CORE_READ(regs, cx);
		a[2] = (__u32)BPF_CORE_READ(regs, dx);
		a[3] = (__u32)BPF_CORE_READ(regs, si);
		a[4] = (__u32)BPF_CORE_READ(regs, di);
		a[5] = (__u32)BPF_CORE_READ(regs, bp);
	} else {
		a[0] = BPF_CORE_READ(regs, di);
		a[1] = BPF_CORE_READ(regs, si);
		a[2] = BPF_CORE_READ(regs, dx);
		a[3] = BPF_CORE_READ(regs, r10);
		a[4] = BPF_CORE_READ(regs, r8);
		a[5] = BPF_CORE_READ(regs, r9);
	}
	switch (sc) {
	case VG_SC_SOCKETCALL:
		/* bind and connect: fd, address, length */
		if (a[0] != VG_SYS_BIND && a[0] != VG_SYS_CONNECT)
			return 0;
		if (bpf_probe_read_user(u, 3 * sizeof(u[0]), (const void *)a[1]))
			return 0;
		return sock_addr_enter((__s32)u[0], (const void *)(__u64)u[1], (int)u[2],
				       a[0] == VG_SYS_CONNECT ? VG_SOCKET_CONNECT : VG_SOCKET_BIND);
	case VG_SC_CONNECT:
	case VG_SC_BIND:
		return sock_addr_enter((__s32)a[0], (const void *)a[1], (int)a[2],
				       sc == VG_SC_CONNECT ? VG_SOCKET_CONNECT : VG_SOCKET_BIND);
	case VG_SC_KILL:
	case VG_SC_SIGQUEUE:
		return kill_enter(a[0], a[0], a[1]);
	case VG_SC_TKILL:
		return kill_enter(a[0], 0, a[1]);
	case VG_SC_TGKILL:
	case VG_SC_TGSIGQUEUE:
		return kill_enter(a[1], a[0], a[2]);
	case VG_SC_PIDFD_SIGNAL:
		return kill_enter(0, 0, a[1]);
	case VG_SC_OLD_MMAP:
		/* struct mmap_arg_struct32: addr, len, prot, flags, fd, offset */
		if (bpf_probe_read_user(u, sizeof(u), (const void *)a[0]))
			return 0;
		return mmap_enter(u[2], u[3], (__s32)u[4]);
	case VG_SC_MMAP:
		return mmap_enter(a[2], a[3], ia32 ? (long)(__s32)a[4] : (long)a[4]);
	}
	return 0;
}

/* pt_regs->orig_ax, the syscall number, of the raw sys_exit arguments. */
static __always_inline long regs_syscall(struct pt_regs *regs)
{
	if (vg_ksym_exists(bpf_rdonly_cast)) {
		struct pt_regs *r = bpf_rdonly_cast(regs, bpf_core_type_id_kernel(struct pt_regs));

		return r->orig_ax;
	}
	return BPF_CORE_READ(regs, orig_ax);
}

SEC("raw_tracepoint/sys_exit")
int vg_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (syscall_kind(regs_syscall((void *)ctx->args[0])) != VG_SC_OPEN)
		return 0;
	return open_exit((long)ctx->args[1]);
}
