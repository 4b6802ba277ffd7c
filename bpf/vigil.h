/* Shared by lsm.bpf.c and tp.bpf.c: the record layout (mirrored by
 * record.go, checked by the spec tests), the maps and the helpers that
 * fill records. Everything here is static: each object gets its own copy. */
#ifndef VIGIL_H
#define VIGIL_H

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_tracing.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"

#define EPERM 1
#define VG_PATH_MAX 512 /* record path buffer, NUL included; power of two */
#define VG_DEPTH 48     /* path components walked */
#define VG_COMM 16
/* Nanoseconds fit in 30 bits; 6.13+ keeps a flag (I_CTIME_QUERIED) in bit
 * 31 of i_ctime_nsec that changes when someone stats the file. */
#define VG_NSEC_MASK 0x3fffffff

enum vg_type {
	VG_FILE_OPEN = 1,
	VG_EXEC = 2,
	VG_MMAP_FILE = 3,
	VG_FILE_IOCTL = 4,
	VG_SOCKET_CREATE = 5,
	VG_SOCKET_CONNECT = 6,
	VG_SOCKET_BIND = 7,
	VG_SOCKET_ACCEPT = 8,
	VG_TASK_KILL = 9,
	VG_INODE_CREATE = 10,
	VG_INODE_UNLINK = 11,
	VG_INODE_MKDIR = 12,
	VG_INODE_RENAME = 13,
	VG_INODE_SETATTR = 14,
	VG_SB_MOUNT = 15,
	VG_PTRACE_ACCESS_CHECK = 16,
	VG_KERNEL_MODULE_REQUEST = 17,
	VG_KERNEL_READ_FILE = 18,
	VG_BPF = 19,
	VG_CAPABLE = 20,
	VG_TASK_FORK = 21,
	VG_TASK_EXIT = 22,
	/* The script of an interpreter exec, by the task before the exec
	 * (tracepoint backend; a struct rec_file). */
	VG_EXEC_SCRIPT = 23,
};

enum vg_hdr_flags {
	VG_F_UNTRUSTED = 1 << 0,
	VG_F_DENIED = 1 << 1,
	VG_F_OBSERVED = 1 << 2,
	VG_F_KEY = 1 << 3,
};

enum vg_path_flags {
	VG_P_TRUNCATED = 1 << 0,
	VG_P_NOMOUNT = 1 << 1,
	VG_P_DETACHED = 1 << 2,
};

enum vg_task_flags {
	VG_T_ENROLLED = 1 << 0,
	VG_T_UNTRUSTED = 1 << 1,
	VG_T_DORMANT = 1 << 2, /* no records until the task execs (dormant.h) */
};

enum vg_mode {
	VG_LEARN = 0,
	VG_SEAL = 1,
	VG_ENFORCE = 2,
};

enum vg_ns_flags {
	VG_NS_MODEL = 1 << 0,     /* for ns 0: model the host */
	VG_NS_NO_CAPABLE = 1 << 1, /* skip capable events */
	VG_NS_FAIL_CLOSED = 1 << 2, /* enforce: deny when the record is lost */
	VG_NS_NO_REPEAT = 1 << 3, /* no repeat cache: a record for every event */
};

enum vg_loss_reason {
	VG_LOSS_RINGBUF = 1,   /* ring buffer full */
	VG_LOSS_TASK_STATE = 2, /* task storage could not be created */
	VG_LOSS_PENDING = 3,   /* fork inheritance table full */
	VG_LOSS_CREATED = 4,   /* a created file could not be tagged (created.h) */
};

struct vg_coe {
	__u32 uid, euid, suid, gid, egid, sgid, fsuid, fsgid;
	__u64 capeff;
};

struct vg_hdr {
	__u16 size;
	__u16 type;
	__u32 flags;
	__u64 ns;
	__u64 ktime;
	__u32 pid;
	__u32 tgid;
	char comm[VG_COMM];
	struct vg_coe coe;
	__u64 ttd;
	__u64 p_ttd;
	__u64 key;
	__u64 rid; /* repeat cache entry of the event (0: not cached) */
};

/* The tag of a file created by a task of a modeling namespace (created.h):
 * the namespace, the creating task's TTD and the file's instance number.
 * instance 0: the file was not created in a namespace (or its tag is
 * unknown). */
struct vg_ctag {
	__u64 ns;
	__u64 owner_ttd;
	__u64 instance;
};

struct vg_inode {
	__u64 ino;
	__u64 size;
	__s64 ctime_sec;
	__s64 mtime_sec;
	__u32 ctime_nsec;
	__u32 mtime_nsec;
	__u32 uid;
	__u32 gid;
	__u32 mode;
	__u32 s_magic;
	__u32 dev_major;
	__u32 dev_minor;
	__u8 s_id[32];
	__u8 s_uuid[16];
	struct vg_ctag created;
};

struct vg_path {
	__u32 len;
	__u32 flags;
	char name[VG_PATH_MAX];
};

struct vg_file {
	__u32 flags;
	__u32 present;
	struct vg_inode inode;
	struct vg_path path;
};

struct vg_sock {
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 pad;
	__u64 owner_ttd;
};

struct vg_addr {
	__u16 family;
	__u16 port;
	__u32 addr4;
	__u32 flow;
	__u32 scope;
	__u8 addr6[16];
	__u32 len;
	__u32 pad;
	__u8 raw[128]; /* after the family: 126 bytes of a sockaddr_storage, 2 zero */
};

struct vg_target {
	__u32 pid;
	__u32 tgid;
	__u64 ns;
	__u64 ttd;
};

struct rec_file { struct vg_hdr hdr; struct vg_file file; };
struct rec_exec { struct vg_hdr hdr; __u64 prev_ttd; struct vg_file file; };
struct rec_mmap { struct vg_hdr hdr; __u32 prot; __u32 flags; struct vg_file file; };
struct rec_ioctl { struct vg_hdr hdr; __u32 cmd; __u32 pad; __u64 arg; struct vg_file file; };
struct rec_sock_create { struct vg_hdr hdr; __u32 family, type, protocol, kern; };
struct rec_sock_addr { struct vg_hdr hdr; struct vg_sock sock; struct vg_addr addr; };
struct rec_task_kill { struct vg_hdr hdr; struct vg_target target; __u32 sig; __u32 cross_ns; };
struct rec_ptrace { struct vg_hdr hdr; struct vg_target target; __u32 mode; __u32 pad; };
/* created: the tag the new file gets (instance 0 when none could be
 * given). */
struct rec_inode_create {
	struct vg_hdr hdr;
	struct vg_inode dir;
	__u32 mode;
	__u32 pad;
	struct vg_ctag created;
	struct vg_path path;
};
struct rec_inode_unlink { struct vg_hdr hdr; struct vg_inode dir; struct vg_inode inode; struct vg_path path; };
/* old_inode is the inode renamed, new_inode the one it replaces;
 * present says which there are (VG_REN_OLD, VG_REN_NEW). */
struct rec_inode_rename {
	struct vg_hdr hdr;
	struct vg_inode old_dir;
	struct vg_inode new_dir;
	struct vg_inode old_inode;
	struct vg_inode new_inode;
	__u32 flags;
	__u32 present;
	struct vg_path old_path;
	struct vg_path new_path;
};

enum vg_rename_present {
	VG_REN_OLD = 1 << 0,
	VG_REN_NEW = 1 << 1,
};
struct rec_inode_setattr {
	struct vg_hdr hdr;
	struct vg_inode inode;
	__u32 valid, mode, uid, gid;
	__u64 size;
	struct vg_path path;
};
struct rec_sb_mount { struct vg_hdr hdr; __u64 flags; struct vg_path path; char dev_name[256]; char type[64]; };
struct rec_kmod { struct vg_hdr hdr; char name[64]; };
struct rec_kread { struct vg_hdr hdr; __u32 id; __u32 contents; struct vg_file file; };
struct rec_bpf { struct vg_hdr hdr; __u32 cmd; __u32 size; };
struct rec_capable { struct vg_hdr hdr; __u32 cap; __u32 opts; };
struct rec_fork { struct vg_hdr hdr; __u32 child_pid; __u32 child_tgid; __u64 child_ttd; };
struct rec_exit { struct vg_hdr hdr; __u32 code; __u32 pad; };

/* Per-task state, in task storage; Enroll writes it from userspace through
 * a pidfd. */
struct vg_ns_cfg {
	__u32 mode;
	__u32 flags;
	__u32 gen; /* bumped by userspace when the allow set may shrink */
	__u32 pad;
};

struct vg_task {
	__u64 ns;
	__u64 ttd;
	__u64 p_ttd;
	__u32 flags;
	/* The task's copy of its namespace's configuration (ns_cfg), valid
	 * while cfg_epoch equals cfg_epoch_now[0] (0: no copy). */
	__u32 cfg_epoch;
	struct vg_ns_cfg cfg;
	__u32 cfg_present;
	__u32 pad;
};

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

struct vg_allow_key {
	__u64 ns;
	__u64 key;
};

struct vg_loss_key {
	__u64 ns;
	__u32 reason;
	__u32 pad;
};

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

/* Record types referenced so bpf2go emits them and the spec tests can
 * compare their sizes with record.go. */
struct rec_file *unused_rec_file __attribute__((unused));
struct rec_exec *unused_rec_exec __attribute__((unused));
struct rec_mmap *unused_rec_mmap __attribute__((unused));
struct rec_ioctl *unused_rec_ioctl __attribute__((unused));
struct rec_sock_create *unused_rec_sock_create __attribute__((unused));
struct rec_sock_addr *unused_rec_sock_addr __attribute__((unused));
struct rec_task_kill *unused_rec_task_kill __attribute__((unused));
struct rec_ptrace *unused_rec_ptrace __attribute__((unused));
struct rec_inode_create *unused_rec_inode_create __attribute__((unused));
struct rec_inode_unlink *unused_rec_inode_unlink __attribute__((unused));
struct rec_inode_rename *unused_rec_inode_rename __attribute__((unused));
struct rec_inode_setattr *unused_rec_inode_setattr __attribute__((unused));
struct rec_sb_mount *unused_rec_sb_mount __attribute__((unused));
struct rec_kmod *unused_rec_kmod __attribute__((unused));
struct rec_kread *unused_rec_kread __attribute__((unused));
struct rec_bpf *unused_rec_bpf __attribute__((unused));
struct rec_capable *unused_rec_capable __attribute__((unused));
struct rec_fork *unused_rec_fork __attribute__((unused));
struct rec_exit *unused_rec_exit __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_task);
} task_state SEC(".maps");

/* Fork inheritance: the parent's state for a child, keyed by the child's
 * pid, taken over by the child at its first event. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct vg_task);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct vg_ns_cfg);
} ns_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_allow_key);
	__type(value, __u8);
} allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct vg_loss_key);
	__type(value, __u64);
} loss SEC(".maps");

/* Processes left out of the host (namespace 0), by tgid: their tasks in
 * namespace 0 make no records and are never denied. Capture.Ignore adds
 * one (VG_IGN_LIVE); a process forked by an ignored one is added at the
 * fork. When the last thread of the process has begun to exit the entry
 * becomes VG_IGN_DEAD (threads that exit concurrently may still be on
 * their way to the exit tracepoint, and stay ignored); it goes when the
 * group leader's task is freed, after every thread is gone. */
enum vg_ignore {
	VG_IGN_LIVE = 1,
	VG_IGN_DEAD = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ignore_tgid SEC(".maps");

/* [0]: losses that could not be counted in loss (table full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} loss_overflow SEC(".maps");

/* [0]: bumped by userspace after every change of ns_config, so that tasks
 * refresh their copies (vg_task.cfg). Never 0 once loaded. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cfg_epoch_now SEC(".maps");

/* [0]: the last TTD handed out. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ttd_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vg_scratch);
} scratch SEC(".maps");

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

/* A task's memo of its last cached key: repeats of it count here, without
 * a table lookup. word is gen << VG_MEMO_SHIFT | count: count events of
 * key k (entry rid of the table of window gen) not yet in the table. Only
 * the task itself adds to count, and only while gen is the current
 * window; the collector (another CPU, after the window ended) and the
 * task's exit take the count with a compare-and-swap. A separate map from
 * task_state so that userspace (Enroll) and fork never copy a count. */
#define VG_MEMO_SHIFT 40
#define VG_MEMO_COUNT ((1ULL << VG_MEMO_SHIFT) - 1)
#define VG_MEMO_GEN(g) ((__u64)((g) & 0xffffff))

struct vg_memo {
	struct vg_rkey k;
	__u64 rid;
	__u64 word; /* low 24 bits of gen << VG_MEMO_SHIFT | count */
	__u32 gen;  /* the whole window number, which only the task writes */
	__u32 dead; /* the task has passed its exit: no memo any more */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_memo);
} task_memo SEC(".maps");

/* What the collector writes per memo it took a count from. */
struct vg_memo_out {
	__u64 ns;
	__u64 rid;
	__u64 count;
};

struct vg_memo_out *unused_vg_memo_out __attribute__((unused));

struct vg_rhkey *unused_vg_rhkey __attribute__((unused));
struct vg_rkey *unused_vg_rkey __attribute__((unused));

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

/* Records wake the reader only once this many bytes wait in the ring (the
 * loader sets it; 0 wakes on every record). Waking per record costs the
 * producing task microseconds; the reader also polls on a short timer. */
const volatile __u64 wakeup_bytes = 0;

static __always_inline __u64 wake_flags(void)
{
	if (!wakeup_bytes || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

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

/* next_id hands out the next number of a counter map (ttd_counter,
 * rid_counter: slot 0 holds the last one handed out); 0 when the map
 * cannot be read. */
static __always_inline __u64 next_id(void *counter)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(counter, &zero);

	if (!c)
		return 0;
	return __sync_fetch_and_add(c, 1) + 1;
}

/* current_state returns the state of the current task when it is in a
 * modeling namespace (or the host is modeled), else NULL. A task forked by
 * a member takes over its parent's state here, at its first event. */
static __always_inline int host_modeled(void)
{
	__u64 host = 0;
	struct vg_ns_cfg *cfg = bpf_map_lookup_elem(&ns_config, &host);

	return cfg && (cfg->flags & VG_NS_MODEL);
}

/* ignored: the current process is left out of the host (ignore_tgid).
 * A VG_IGN_DEAD entry covers only the exiting threads of the process it
 * was made for: a process with live threads under that tgid is a new one
 * (the tgid recycled before the old leader was freed). */
static __always_inline int ignored(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u8 *v = bpf_map_lookup_elem(&ignore_tgid, &tgid);

	if (!v)
		return 0;
	if (*v != VG_IGN_DEAD)
		return 1;
	return BPF_CORE_READ(bpf_get_current_task_btf(), signal, live.counter) == 0;
}

static __always_inline struct vg_task *current_state(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_task *st, *pend;
	__u32 pid;

	st = bpf_task_storage_get(&task_state, task, 0, 0);
	if (st) {
		/* Host tasks picked up while the host was modeled stop being
		 * recorded when it no longer is (enrolled tasks never stop),
		 * and when their process is left out of the host. Tasks of
		 * other namespaces pay for neither check. */
		if (st->ns == 0 && ((!(st->flags & VG_T_ENROLLED) && !host_modeled()) || ignored()))
			return NULL;
	} else {
		pid = (__u32)bpf_get_current_pid_tgid();
		pend = bpf_map_lookup_elem(&pending, &pid);
		if (pend) {
			if (pend->ns == 0 && ignored()) {
				bpf_map_delete_elem(&pending, &pid);
				return NULL;
			}
			st = bpf_task_storage_get(&task_state, task, pend, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!st)
				count_loss(pend->ns, VG_LOSS_TASK_STATE);
			bpf_map_delete_elem(&pending, &pid);
		} else {
			struct vg_task init = {};

			if (!host_modeled() || ignored())
				return NULL;
			st = bpf_task_storage_get(&task_state, task, &init, BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!st)
				count_loss(0, VG_LOSS_TASK_STATE);
		}
		if (!st)
			return NULL;
	}
	if (st->flags & VG_T_DORMANT)
		return NULL; /* a container runtime's task before its exec */
	if (st->ttd == 0)
		st->ttd = next_id(&ttd_counter);
	return st;
}

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
/* kernel_cap_t before 6.3: two 32-bit words. */
struct kernel_cap_struct___cap32 {
	__u32 cap[2];
} __attribute__((preserve_access_index));

struct cred___cap32 {
	struct kernel_cap_struct___cap32 cap_effective;
} __attribute__((preserve_access_index));

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

/* The created-file tag of an inode (created.h, one definition per
 * backend): ctag_read takes any inode pointer, ctag_read_btf a BTF pointer
 * (a hook argument or a field read from one). Both write zeros for an
 * inode without a tag. */
static __always_inline void ctag_read(struct vg_ctag *t, struct inode *ino);
static __always_inline void ctag_read_btf(struct vg_ctag *t, struct inode *ino);

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
	o->dev_major = dev >> 20;
	o->dev_minor = dev & 0xfffff;
	bpf_core_read(o->s_id, sizeof(o->s_id), &sb->s_id);
	bpf_core_read(o->s_uuid, sizeof(o->s_uuid), &sb->s_uuid);
}

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

/* exec_record: the task has executed file, its new credentials in place.
 * It gets a new TTD, and the Exec record names the one it replaces; NULL
 * (the loss counted) when the ring is full. btf (a constant) says file is
 * a BTF pointer. */
static __always_inline void fill_file_btf(struct vg_file *f, struct file *file);

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

/* The same for BTF pointers (hook arguments, bpf_get_current_task_btf,
 * bpf_rdonly_cast): fields are plain loads, no probe read each. */

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
	o->dev_major = dev >> 20;
	o->dev_minor = dev & 0xfffff;
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

/* fill_addr copies a socket address (kernel or user memory). */
static __always_inline void fill_addr(struct vg_addr *a, const void *addr, int addrlen, int user)
{
	__u32 n;

	a->len = addrlen;
	if (!addr || addrlen < 2)
		return;
	if (user)
		bpf_probe_read_user(&a->family, 2, addr);
	else
		bpf_probe_read_kernel(&a->family, 2, addr);
	n = addrlen - 2;
	if (n > 126)
		n = 126;
	barrier_var(n);
	n &= 0x7f;
	if (user)
		bpf_probe_read_user(a->raw, n & 0x7f, addr + 2);
	else
		bpf_probe_read_kernel(a->raw, n & 0x7f, addr + 2);
	if (a->family == 2 || a->family == 10) {
		a->port = a->raw[0] | (__u16)a->raw[1] << 8;
	}
	if (a->family == 2) {
		__builtin_memcpy(&a->addr4, &a->raw[2], 4);
	} else if (a->family == 10) {
		__builtin_memcpy(&a->flow, &a->raw[2], 4);
		__builtin_memcpy(a->addr6, &a->raw[6], 16);
		__builtin_memcpy(&a->scope, &a->raw[22], 4);
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

/* The allow key (see key.go for the definition and the Go twin). */
#define KEY_OFFSET 0xcbf29ce484222325ULL
#define KEY_PRIME 0x100000001b3ULL

static __always_inline __u64 mix(__u64 h, __u64 v)
{
	return (h ^ v) * KEY_PRIME;
}

static __noinline __attribute__((unused)) __u64 mix_str(__u64 h, const char *s, __u32 len, __u32 max)
{
	__u32 i;

	if (!s)
		return h;
	for (i = 0; i < VG_PATH_MAX; i++) {
		if (i >= len || i >= max)
			break;
		h = mix(h, (__u8)s[i]);
	}
	return mix(h, i);
}

static __always_inline __u32 cstrlen(const char *s, __u32 max)
{
	__u32 i;

	for (i = 0; i < 256; i++) {
		if (i >= max || !s[i])
			break;
	}
	return i;
}

static __always_inline __u64 key_start(const struct vg_hdr *h)
{
	__u64 k = mix(KEY_OFFSET, h->type);

	k = mix(k, h->coe.uid);
	k = mix(k, h->coe.euid);
	k = mix(k, h->coe.suid);
	k = mix(k, h->coe.gid);
	k = mix(k, h->coe.egid);
	k = mix(k, h->coe.sgid);
	k = mix(k, h->coe.fsuid);
	k = mix(k, h->coe.fsgid);
	return mix(k, h->coe.capeff);
}

#define VG_PROC_SUPER_MAGIC 0x9fa0
#define VG_PROT_EXEC 0x4
#define VG_PROT_MASK 0x7     /* PROT_READ | PROT_WRITE | PROT_EXEC */
#define VG_MAP_TYPE_MASK 0xf /* MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE */

/* key_pseudo_fs: the pseudo filesystems whose files have generated names
 * ("pipe:[1234]"); bpf.PseudoFS lists the same. */
static __always_inline int key_pseudo_fs(__u32 magic)
{
	switch (magic) {
	case 0x9fa0: case 0x1cd1: case 0x50495045: case 0x534f434b:
	case 0x09041934: case 0x73636673: case 0x64626720: case 0x74726163:
	case 0x6e736673: case 0x42494e4d: case 0x19800202: case 0x62656570:
	case 0x6165676c: case 0xde5e81e4: case 0xf97cff8c: case 0x43415d53:
	case 0x62646576: case 0x444d4142: case 0x5345434d:
		return 1;
	}
	return 0;
}

/* key_bytes mixes s[from..to) (to < VG_PATH_MAX) byte by byte, one
 * bpf_loop step per byte: the verifier checks the step once instead of
 * every iteration after every place a name scan can stop. */
struct key_bytes_ctx {
	const char *s;
	__u64 h;
	__u32 from;
	__u32 to;
};

static long key_byte(__u32 i, void *data)
{
	struct key_bytes_ctx *c = data;
	__u32 j = c->from + i;

	if (j >= c->to)
		return 1;
	c->h = mix(c->h, (__u8)c->s[j & (VG_PATH_MAX - 1)]);
	return 0;
}

static __always_inline __u64 key_bytes(__u64 h, const char *s, __u32 from, __u32 to)
{
	struct key_bytes_ctx c = {.s = s, .h = h, .from = from, .to = to};

	if (from >= to)
		return h;
	bpf_loop(VG_PATH_MAX - 1, key_byte, &c, 0);
	return c.h;
}

/* key_lit mixes the n bytes of a string constant (unrolled). */
static __always_inline __u64 key_lit(__u64 h, const char *lit, __u32 n)
{
#pragma unroll
	for (__u32 i = 0; i < n; i++)
		h = mix(h, (__u8)lit[i]);
	return h;
}

/* key_scan is the state of the name scans of key_path, each a bpf_loop
 * step per byte so that the verifier sees one state after a scan instead
 * of one per place the scan can stop. */
struct key_scan {
	const char *s;
	__u64 n;     /* key_digit: the value of the digits */
	__u32 len;
	__u32 end;   /* key_digit: the index after the last digit */
	__u32 colon; /* key_colon: the first ':' before any '/', or 0 */
	__u32 pad;
};

/* key_digit reads the digits after "/proc/", at most ten. */
static long key_digit(__u32 k, void *data)
{
	struct key_scan *c = data;
	__u32 j = 6 + k;
	char ch;

	if (j >= c->len)
		return 1;
	ch = c->s[j & (VG_PATH_MAX - 1)];
	if (ch < '0' || ch > '9')
		return 1;
	c->n = c->n * 10 + (ch - '0');
	c->end = j + 1;
	return 0;
}

/* key_colon finds a generated name's ':' (before any '/'). */
static long key_colon(__u32 k, void *data)
{
	struct key_scan *c = data;
	char ch;

	if (k >= c->len)
		return 1;
	ch = c->s[k & (VG_PATH_MAX - 1)];
	if (ch == '/')
		return 1;
	if (ch == ':') {
		c->colon = k;
		return 1;
	}
	return 0;
}

/* key_path mixes a file's pathname as bpf.CanonicalPath gives it, then its
 * length: "/proc/<tgid>" of the acting process (procfs) as "/proc/self",
 * a generated name "pipe:[1234]" (pseudo filesystem, device major 0) as
 * "pipe:/", and a pipe, socket or anonymous inode walked to "/" as
 * "pipe:/", "socket:/", "anon_inode:/". */
static __noinline __u64 key_path(__u64 h, const struct vg_file *f, __u32 tgid)
{
	const char *s = f->path.name;
	__u32 len = f->path.len, end;
	struct key_scan c = {.s = s};

	if (len > VG_PATH_MAX - 1)
		len = VG_PATH_MAX - 1;
	c.len = len;
	if (f->inode.s_magic == VG_PROC_SUPER_MAGIC && tgid && len > 6 && s[0] == '/' && s[1] == 'p' &&
	    s[2] == 'r' && s[3] == 'o' && s[4] == 'c' && s[5] == '/') {
		c.end = 6;
		c.n = 0;
		bpf_loop(10, key_digit, &c, 0);
		end = c.end;
		if (end > 6 && end <= len && c.n == tgid && (end == len || s[end & (VG_PATH_MAX - 1)] == '/')) {
			h = key_lit(h, "/proc/self", 10);
			h = key_bytes(h, s, end, len);
			return mix(h, 10 + len - end);
		}
	}
	if (f->inode.dev_major == 0 && key_pseudo_fs(f->inode.s_magic)) {
		c.colon = 0;
		bpf_loop(VG_PATH_MAX - 1, key_colon, &c, 0);
		end = c.colon;
		if (end > 0 && end < len) {
			h = key_bytes(h, s, 0, end);
			h = mix(h, ':');
			h = mix(h, '/');
			return mix(h, end + 2);
		}
		/* A file in no directory: named by its filesystem. */
		if (len == 1 && s[0] == '/') {
			switch (f->inode.s_magic) {
			case 0x50495045:
				return mix(key_lit(h, "pipe:/", 6), 6);
			case 0x534f434b:
				return mix(key_lit(h, "socket:/", 8), 8);
			case 0x09041934:
				return mix(key_lit(h, "anon_inode:/", 12), 12);
			}
		}
	}
	h = key_bytes(h, s, 0, len);
	return mix(h, len);
}

/* key_slash finds the end of a name's directory part (after its last
 * '/'). */
static long key_slash(__u32 k, void *data)
{
	struct key_scan *c = data;

	if (k >= c->len)
		return 1;
	if (c->s[k & (VG_PATH_MAX - 1)] == '/')
		c->end = k + 1;
	return 0;
}

/* key_created mixes the name of a file created in the namespace as TSEM
 * hashes it (bpf.Key: the directory part of the name, its length, then
 * the instance; the owner is a task id the kernel cannot know). */
static __noinline __u64 key_created(__u64 h, const char *s, __u32 len, __u64 instance)
{
	struct key_scan c = {.s = s};

	if (len > VG_PATH_MAX - 1)
		len = VG_PATH_MAX - 1;
	c.len = len;
	c.end = 0;
	bpf_loop(VG_PATH_MAX - 1, key_slash, &c, 0);
	h = key_bytes(h, s, 0, c.end);
	h = mix(h, c.end);
	return mix(h, instance);
}

/* key_name mixes a directory entry's name: the created name when t tags a
 * file of namespace ns, else the path as it is. */
static __always_inline __u64 key_name(__u64 h, const struct vg_path *p, const struct vg_ctag *t, __u64 ns)
{
	if (t->instance && t->ns == ns)
		return key_created(h, p->name, p->len, t->instance);
	return mix_str(h, p->name, p->len, VG_PATH_MAX - 1);
}

/* key_file mixes a file's cell. The acting process is current: its tgid
 * is the record's hdr.tgid, which bpf.Key uses; ns is the record's
 * namespace. */
static __always_inline __u64 key_file(__u64 k, const struct vg_file *f, __u64 ns)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	k = mix(k, f->flags);
	k = mix(k, f->inode.uid);
	k = mix(k, f->inode.gid);
	k = mix(k, f->inode.mode);
	k = mix(k, f->inode.s_magic);
	if (f->inode.created.instance && f->inode.created.ns == ns)
		return key_created(k, f->path.name, f->path.len, f->inode.created.instance);
	return key_path(k, f, tgid);
}

/* ns_cfg returns the configuration of the task's namespace (NULL when it
 * has none) from the task's copy, refreshed from ns_config when userspace
 * changed any namespace since: an array read instead of a hash lookup on
 * every event. */
static __always_inline struct vg_ns_cfg *ns_cfg(struct vg_task *st)
{
	__u32 zero = 0, *now = bpf_map_lookup_elem(&cfg_epoch_now, &zero);
	struct vg_ns_cfg *cfg;
	__u64 ns = st->ns;
	__u32 epoch;

	if (!now)
		return bpf_map_lookup_elem(&ns_config, &ns);
	epoch = *now;
	if (epoch && st->cfg_epoch == epoch)
		return st->cfg_present ? &st->cfg : NULL;
	cfg = bpf_map_lookup_elem(&ns_config, &ns);
	st->cfg_present = 0;
	if (cfg) {
		st->cfg = *cfg;
		st->cfg_present = 1;
	}
	st->cfg_epoch = epoch;
	return cfg;
}

static __always_inline int enforcing(const struct vg_ns_cfg *cfg)
{
	return cfg && cfg->mode == VG_ENFORCE;
}

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

/* The repeat cache. The first event of a key (struct vg_rkey) in the
 * current table makes a record with the entry's id (hdr.rid); repeats of
 * it only count in the entry. Userspace replaces the table every window
 * and hands the counts of the old one on, as repeats of the records with
 * their ids: so a key makes at least one record per window and every
 * suppressed event is counted once. */
struct vg_rstate {
	struct vg_rval *e;
	__u64 rid;
	__u32 gen;
	__u32 rgen; /* the repeat window (rep_gen) the table belongs to */
	__u32 memo; /* the task may memo the key (not enforcing) */
	__u32 pad;
};

static __always_inline int repeat_on(const struct vg_ns_cfg *cfg)
{
	return !cfg || !(cfg->flags & VG_NS_NO_REPEAT);
}

/* rkey_file fills the key of a file event. file must be a BTF pointer
 * (an LSM argument, or bpf_rdonly_cast): its fields are plain loads. k
 * must be map memory (vg_scratch.rk). */
static __always_inline void rkey_file(struct vg_rkey *k, const struct vg_task *st, __u16 type, struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *cred = task->cred;
	struct inode *ino = file->f_inode;

	/* No memset first: every field is written below and the struct has
	 * no padding, so every byte is. */
	k->ns = st->ns;
	k->ttd = st->ttd;
	k->p_ttd = st->p_ttd;
	k->type = type;
	k->tflags = st->flags & VG_T_UNTRUSTED;
	/* The addresses as numbers: k is map memory (the per-CPU scratch),
	 * where a stored pointer reads back as a number that can be hashed
	 * (arithmetic on a BTF pointer is refused). */
	k->inode = (__u64)file->f_inode;
	k->mnt = (__u64)file->f_path.mnt;
	k->dentry = (__u64)file->f_path.dentry;
	/* ...and so must be read back from memory, not reused from the
	 * registers that held the pointers. */
	asm volatile("" ::: "memory");
	k->f_flags = file->f_flags;
	k->ino = ino->i_ino;
	k->size = ino->i_size;
	k->mode = ino->i_mode;
	k->uid = ino->i_uid.val;
	k->gid = ino->i_gid.val;
	k->dev = ino->i_sb->s_dev;
	inode_times_btf(ino, &k->ctime_sec, &k->ctime_nsec, &k->mtime_sec, &k->mtime_nsec);
	/* The created tag: rkey_tag, when the key goes to the table. */
	k->c_owner = 0;
	k->c_instance = 0;
	fill_coe_btf(&k->coe, cred);
}

/* rkey_tag completes a key with the created tag of its file (ino, a BTF
 * pointer): a file created in the namespace is named by its tag (a
 * coefficient of its own), one created elsewhere by its path. */
static __always_inline void rkey_tag(struct vg_rkey *k, struct inode *ino)
{
	struct vg_ctag t;

	ctag_read_btf(&t, ino);
	if (t.instance && t.ns == k->ns) {
		k->c_owner = t.owner_ttd;
		k->c_instance = t.instance;
	}
}

/* repeat_begin returns 1 when the event with key k is a repeat to
 * suppress (counted), else 0 with rs set for the record to make. In an
 * enforcing namespace only an entry whose last full check allowed the
 * event, under the namespace's current generation, suppresses: a denial
 * is never cached. */
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
	__u64 h[4] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL, 0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL};
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*k) / 8); i++)
		h[i & 3] = (h[i & 3] ^ x[i]) * 0x100000001b3ULL;
	h[0] = (h[0] ^ h[1]) * 0x100000001b3ULL;
	h[0] = (h[0] ^ h[2]) * 0x100000001b3ULL;
	h[0] = (h[0] ^ h[3]) * 0x100000001b3ULL;
	return h[0] ^ (h[0] >> 29);
}

/* memo_flush adds a count taken from a memo to its entry in the table of
 * window gen; the entry exists (a memo is set only from an entry, and
 * entries stay until the table is dropped). */
static __always_inline void memo_flush(const struct vg_memo *mo, __u32 gen, __u64 n)
{
	struct vg_rhkey hk = {.ns = mo->k.ns, .hash = rkey_hash(&mo->k)};
	__u32 slot = gen & 1;
	struct vg_rval *e;
	void *m;

	m = bpf_map_lookup_elem(&repeats, &slot);
	if (!m)
		return;
	e = bpf_map_lookup_elem(m, &hk);
	if (e && rkey_same(&e->k, &mo->k))
		__sync_fetch_and_add(&e->count, n);
}

/* memo_set makes k (entry rid of the table of window gen, whose record is
 * reserved) the task's memo. A count the memo holds for the current
 * window goes to its entry first; one of an ended window belongs to the
 * collector, and the memo stays until it is taken. */
static __always_inline void memo_set(const struct vg_rkey *k, __u64 rid, __u32 gen)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct vg_memo *mo;
	__u64 w, n;

	mo = bpf_task_storage_get(&task_memo, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mo || mo->dead)
		return;
	w = mo->word;
	n = w & VG_MEMO_COUNT;
	if (n) {
		if (mo->gen != gen)
			return;
		memo_flush(mo, gen, n);
	}
	mo->k = *k;
	mo->rid = rid;
	mo->gen = gen;
	mo->word = VG_MEMO_GEN(gen) << VG_MEMO_SHIFT;
}

/* memo_take takes the count of a memo of window gen (any window when gen
 * is 0) with a compare-and-swap; 0 when there is none. out gets the
 * memo's namespace and id, read before the swap: while a memo holds a
 * count of an ended window its task does not change it, so a swap that
 * succeeds took the count of that key. */
static __always_inline __u64 memo_take(struct vg_memo *mo, __u32 gen, __u32 *from, struct vg_memo_out *out)
{
	__u64 w = mo->word, n, was;
	int i;

	for (i = 0; i < 4; i++) {
		n = w & VG_MEMO_COUNT;
		if (!n || (gen && (w >> VG_MEMO_SHIFT) != VG_MEMO_GEN(gen)))
			return 0;
		out->ns = mo->k.ns;
		out->rid = mo->rid;
		out->count = n;
		was = __sync_val_compare_and_swap(&mo->word, w, w & ~VG_MEMO_COUNT);
		if (was == w) {
			*from = w >> VG_MEMO_SHIFT;
			return n;
		}
		w = was;
	}
	return 0;
}

/* repeat_begin: ino (a BTF pointer) is the key's file, whose created tag
 * rkey_tag adds to k when the memo does not decide. */
static __always_inline int repeat_begin(struct vg_rkey *k, const struct vg_ns_cfg *cfg, struct vg_rstate *rs,
					struct inode *ino)
{
	struct vg_rhkey hk;
	struct vg_rval *init, *e;
	struct vg_memo *mo;
	__u32 zero = 0, slot, *g;
	void *m;

	rs->e = NULL;
	rs->rid = 0;
	rs->gen = cfg ? cfg->gen : 0;
	rs->memo = 0;
	g = bpf_map_lookup_elem(&rep_gen, &zero);
	if (!g || !*g)
		return 0;
	rs->rgen = *g;
	/* Memos only outside enforcing namespaces: an enforced repeat must
	 * pass the entry's allowed check under the current configuration. */
	if (!enforcing(cfg)) {
		rs->memo = 1;
		mo = bpf_task_storage_get(&task_memo, bpf_get_current_task_btf(), 0, 0);
		if (mo && mo->gen == rs->rgen && !mo->dead && rkey_same_untagged(&mo->k, k)) {
			/* Only this task writes a memo of the current window:
			 * a plain add. */
			mo->word += 1;
			return 1;
		}
	}
	rkey_tag(k, ino);
	slot = rs->rgen & 1;
	m = bpf_map_lookup_elem(&repeats, &slot);
	if (!m)
		return 0;
	hk.ns = k->ns;
	hk.hash = rkey_hash(k);
	e = bpf_map_lookup_elem(m, &hk);
	if (e) {
		if (!rkey_same(&e->k, k))
			return 0; /* another key with the same hash: uncached */
		if (e->valid && (!enforcing(cfg) || (e->allowed && e->gen == rs->gen))) {
			__sync_fetch_and_add(&e->count, 1);
			if (rs->memo)
				memo_set(k, e->id, rs->rgen);
			return 1;
		}
		rs->e = e;
		rs->rid = e->id;
		return 0;
	}
	init = bpf_map_lookup_elem(&rval_scratch, &zero);
	if (!init)
		return 0;
	init->id = next_id(&rid_counter);
	init->count = 0;
	init->gen = 0;
	init->allowed = 0;
	init->valid = 0;
	init->k = *k;
	if (!init->id || bpf_map_update_elem(m, &hk, init, BPF_NOEXIST))
		return 0; /* full, or another CPU made it: an uncached record */
	e = bpf_map_lookup_elem(m, &hk);
	if (!e)
		return 0;
	rs->e = e;
	rs->rid = e->id;
	return 0;
}

/* repeat_reserved: the record of rs is reserved (it will reach
 * userspace), so repeats of its key may be suppressed from now on. */
static __always_inline void repeat_reserved(struct vg_hdr *h, const struct vg_rstate *rs, const struct vg_rkey *k)
{
	h->rid = rs->rid;
	if (rs->e) {
		rs->e->valid = 1;
		if (rs->memo)
			memo_set(k, rs->rid, rs->rgen);
	}
}

/* repeat_decided records the enforcement decision of a full check, under
 * the generation read before the check. */
static __always_inline void repeat_decided(const struct vg_rstate *rs, int rc)
{
	if (!rs->e)
		return;
	rs->e->gen = rs->gen;
	rs->e->allowed = rc == 0;
}

/* The same in two steps for programs whose check is costly to verify: the
 * key and generation wait in the per-CPU scratch (whose contents the
 * verifier does not track), and the entry is looked up again after the
 * check, so every path reaches the check in one verifier state. */
static __always_inline void repeat_decide_later(struct vg_scratch *s, const struct vg_rstate *rs)
{
	s->rk_cached = rs->e != NULL;
	s->rk_gen = rs->gen;
	s->rk_slot = rs->rgen & 1;
}

static __always_inline void repeat_decided_later(int rc)
{
	struct vg_rhkey hk;
	struct vg_rval *e;
	struct vg_scratch *s;
	__u32 zero = 0;
	void *m;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s || !s->rk_cached)
		return;
	s->rk_cached = 0;
	zero = s->rk_slot & 1;
	m = bpf_map_lookup_elem(&repeats, &zero);
	if (!m)
		return;
	hk.ns = s->rk.ns;
	hk.hash = rkey_hash(&s->rk);
	e = bpf_map_lookup_elem(m, &hk);
	if (!e || !rkey_same(&e->k, &s->rk))
		return;
	e->gen = s->rk_gen;
	e->allowed = rc == 0;
}

#endif
