/* What every header builds on: the kernel's types (vmlinux.h) and libbpf's
 * helpers, the kernel constants BTF does not carry (they are macros), and
 * next_id, the counter both task identities and repeat cache entries take
 * their numbers from. */
#ifndef VIGIL_COMMON_H
#define VIGIL_COMMON_H

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_tracing.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"

#define EPERM 1

/* Address families (include/linux/socket.h). */
#define VG_AF_UNIX 1
#define VG_AF_INET 2
#define VG_AF_INET6 10
/* sizeof(sockaddr_un.sun_path) */
#define VG_UNIX_PATH_MAX 108

/* mmap(2) protection and flags (include/uapi/asm-generic/mman*.h). */
#define VG_PROT_EXEC 0x4
#define VG_PROT_MASK 0x7     /* PROT_READ | PROT_WRITE | PROT_EXEC */
#define VG_MAP_TYPE_MASK 0xf /* MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE */
#define VG_MAP_ANONYMOUS 0x20

/* File types of i_mode (include/uapi/linux/stat.h). */
#define VG_S_IFMT 00170000
#define VG_S_IFSOCK 0140000

/* f_flags bits. */
#define VG_O_PATH 010000000 /* O_PATH: no security_file_open, so no event */
#define VG_FMODE_EXEC 0x20  /* __FMODE_EXEC: an exec's open */
/* f_mode: the open made the file (O_CREAT; include/linux/fs.h, 4.19+). */
#define VG_FMODE_CREATED 0x100000

/* A dev_t's minor number bits (include/linux/kdev_t.h). */
#define VG_MINORBITS 20
#define VG_MINORMASK ((1U << VG_MINORBITS) - 1)

/* Filesystem magics (statfs f_type; include/uapi/linux/magic.h, and
 * mqueue's and configfs's own). */
#define VG_PROC_SUPER_MAGIC 0x9fa0
#define VG_DEVPTS_SUPER_MAGIC 0x1cd1
#define VG_PIPEFS_MAGIC 0x50495045
#define VG_SOCKFS_MAGIC 0x534f434b
#define VG_ANON_INODE_FS_MAGIC 0x09041934
#define VG_SECURITYFS_MAGIC 0x73636673
#define VG_DEBUGFS_MAGIC 0x64626720
#define VG_TRACEFS_MAGIC 0x74726163
#define VG_NSFS_MAGIC 0x6e736673
#define VG_BINFMTFS_MAGIC 0x42494e4d
#define VG_MQUEUE_MAGIC 0x19800202
#define VG_CONFIGFS_MAGIC 0x62656570
#define VG_PSTOREFS_MAGIC 0x6165676c
#define VG_EFIVARFS_MAGIC 0xde5e81e4
#define VG_SELINUX_MAGIC 0xf97cff8c
#define VG_SMACK_MAGIC 0x43415d53
#define VG_BDEVFS_MAGIC 0x62646576
#define VG_DMA_BUF_MAGIC 0x444d4142
#define VG_SECRETMEM_MAGIC 0x5345434d

/* FNV-1a's 64-bit offset basis and prime: the allow key (key.h) and the
 * repeat cache's hash (rcache.h) are built on them. */
#define VG_FNV_OFFSET 0xcbf29ce484222325ULL
#define VG_FNV_PRIME 0x100000001b3ULL

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

#endif
