/* The allow key: a hash of what decides an event's TSEM coefficient that
 * the kernel can see (the record type, the COE, the event's fields, a
 * file's name as bpf.CanonicalPath gives it). bpf.Key in key.go is its Go
 * twin, and says how values and strings are mixed. */
#ifndef VIGIL_KEY_H
#define VIGIL_KEY_H

#include "common.h"
#include "records.h"

/* mix folds one value into the key h. */
static __always_inline __u64 mix(__u64 h, __u64 v)
{
	return (h ^ v) * VG_FNV_PRIME;
}

/* mix_str mixes the bytes of s up to len (and at most max), then their
 * count. */
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

/* cstrlen is the length of the NUL-terminated string s, at most max (up
 * to VG_DEV_NAME_MAX, the longest string field of a record). */
static __always_inline __u32 cstrlen(const char *s, __u32 max)
{
	__u32 i;

	for (i = 0; i < VG_DEV_NAME_MAX; i++) {
		if (i >= max || !s[i])
			break;
	}
	return i;
}

/* key_start starts the key of a record: its type and the COE. */
static __always_inline __u64 key_start(const struct vg_hdr *h)
{
	__u64 k = mix(VG_FNV_OFFSET, h->type);

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

/* key_pseudo_fs: the pseudo filesystems whose files have generated names
 * ("pipe:[1234]"); bpf.PseudoFS lists the same. */
static __always_inline int key_pseudo_fs(__u32 magic)
{
	switch (magic) {
	case VG_PROC_SUPER_MAGIC:
	case VG_DEVPTS_SUPER_MAGIC:
	case VG_PIPEFS_MAGIC:
	case VG_SOCKFS_MAGIC:
	case VG_ANON_INODE_FS_MAGIC:
	case VG_SECURITYFS_MAGIC:
	case VG_DEBUGFS_MAGIC:
	case VG_TRACEFS_MAGIC:
	case VG_NSFS_MAGIC:
	case VG_BINFMTFS_MAGIC:
	case VG_MQUEUE_MAGIC:
	case VG_CONFIGFS_MAGIC:
	case VG_PSTOREFS_MAGIC:
	case VG_EFIVARFS_MAGIC:
	case VG_SELINUX_MAGIC:
	case VG_SMACK_MAGIC:
	case VG_BDEVFS_MAGIC:
	case VG_DMA_BUF_MAGIC:
	case VG_SECRETMEM_MAGIC:
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

/* KEY_LIT_STR mixes a string literal as a whole name: its bytes, then its
 * length. */
#define KEY_LIT_STR(h, lit) mix(key_lit(h, lit, sizeof(lit) - 1), sizeof(lit) - 1)

/* "/proc/<tgid>": the directory's prefix, the most digits read after it
 * (as bpf.CanonicalPath), and the name the acting process's becomes. */
#define VG_PROC_DIR_LEN 6 /* "/proc/" */
#define VG_PID_DIGITS 10
#define VG_PROC_SELF "/proc/self"

/* key_scan is the state of the name scans of key_path, each a bpf_loop
 * step per byte so that the verifier sees one state after a scan instead
 * of one per place the scan can stop. */
struct key_scan {
	const char *s;
	__u64 n; /* key_digit: the value of the digits */
	__u32 len;
	__u32 end;   /* key_digit: the index after the last digit */
	__u32 colon; /* key_colon: the first ':' before any '/', or 0 */
	__u32 pad;
};

/* key_digit reads the digits after "/proc/", at most VG_PID_DIGITS. */
static long key_digit(__u32 k, void *data)
{
	struct key_scan *c = data;
	__u32 j = VG_PROC_DIR_LEN + k;
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
	if (f->inode.s_magic == VG_PROC_SUPER_MAGIC && tgid && len > VG_PROC_DIR_LEN && s[0] == '/' && s[1] == 'p' &&
	    s[2] == 'r' && s[3] == 'o' && s[4] == 'c' && s[5] == '/') {
		c.end = VG_PROC_DIR_LEN;
		c.n = 0;
		bpf_loop(VG_PID_DIGITS, key_digit, &c, 0);
		end = c.end;
		if (end > VG_PROC_DIR_LEN && end <= len && c.n == tgid &&
		    (end == len || s[end & (VG_PATH_MAX - 1)] == '/')) {
			h = key_lit(h, VG_PROC_SELF, sizeof(VG_PROC_SELF) - 1);
			h = key_bytes(h, s, end, len);
			return mix(h, (__u32)(sizeof(VG_PROC_SELF) - 1) + len - end);
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
			case VG_PIPEFS_MAGIC:
				return KEY_LIT_STR(h, "pipe:/");
			case VG_SOCKFS_MAGIC:
				return KEY_LIT_STR(h, "socket:/");
			case VG_ANON_INODE_FS_MAGIC:
				return KEY_LIT_STR(h, "anon_inode:/");
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

#endif
