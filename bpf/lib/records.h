/* The records: their layout (mirrored by record.go, checked against this
 * object's BTF by the spec tests), and the ring buffer that carries them
 * to userspace. Filling them is fill.h's. */
#ifndef VIGIL_RECORDS_H
#define VIGIL_RECORDS_H

#include "common.h"

#define VG_PATH_MAX 512 /* record path buffer, NUL included; power of two */
#define VG_COMM 16      /* TASK_COMM_LEN */
/* String fields of records, NUL included. */
#define VG_DEV_NAME_MAX 256
#define VG_FS_TYPE_MAX 64
#define VG_KMOD_NAME_MAX 64

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

struct rec_file {
	struct vg_hdr hdr;
	struct vg_file file;
};

struct rec_exec {
	struct vg_hdr hdr;
	__u64 prev_ttd;
	struct vg_file file;
};

struct rec_mmap {
	struct vg_hdr hdr;
	__u32 prot;
	__u32 flags;
	struct vg_file file;
};

struct rec_ioctl {
	struct vg_hdr hdr;
	__u32 cmd;
	__u32 pad;
	__u64 arg;
	struct vg_file file;
};

struct rec_sock_create {
	struct vg_hdr hdr;
	__u32 family, type, protocol, kern;
};

struct rec_sock_addr {
	struct vg_hdr hdr;
	struct vg_sock sock;
	struct vg_addr addr;
};

struct rec_task_kill {
	struct vg_hdr hdr;
	struct vg_target target;
	__u32 sig;
	__u32 cross_ns;
};

struct rec_ptrace {
	struct vg_hdr hdr;
	struct vg_target target;
	__u32 mode;
	__u32 pad;
};

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

struct rec_inode_unlink {
	struct vg_hdr hdr;
	struct vg_inode dir;
	struct vg_inode inode;
	struct vg_path path;
};

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

struct rec_sb_mount {
	struct vg_hdr hdr;
	__u64 flags;
	struct vg_path path;
	char dev_name[VG_DEV_NAME_MAX];
	char type[VG_FS_TYPE_MAX];
};

struct rec_kmod {
	struct vg_hdr hdr;
	char name[VG_KMOD_NAME_MAX];
};

struct rec_kread {
	struct vg_hdr hdr;
	__u32 id;
	__u32 contents;
	struct vg_file file;
};

struct rec_bpf {
	struct vg_hdr hdr;
	__u32 cmd;
	__u32 size;
};

struct rec_capable {
	struct vg_hdr hdr;
	__u32 cap;
	__u32 opts;
};

struct rec_fork {
	struct vg_hdr hdr;
	__u32 child_pid;
	__u32 child_tgid;
	__u64 child_ttd;
};

struct rec_exit {
	struct vg_hdr hdr;
	__u32 code;
	__u32 pad;
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

/* The ring buffer every record goes through (16 MiB unless
 * Options.RingBufferBytes says otherwise). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Records wake the reader only once this many bytes wait in the ring (the
 * loader sets it; 0 wakes on every record). Waking per record costs the
 * producing task microseconds; the reader also polls on a short timer. */
const volatile __u64 wakeup_bytes = 0;

/* wake_flags are the flags of a record's submission: wake the reader once
 * wakeup_bytes wait. */
static __always_inline __u64 wake_flags(void)
{
	if (!wakeup_bytes || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

#endif
