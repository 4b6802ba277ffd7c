package events

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vigil-tsem/vigil/bpf"
)

// EmptyDigest is SHA-256(""), the digest TSEM gives a file whose content it
// does not hash in a SHA-256 namespace: an empty file, anything that is not
// a regular file, a file on a pseudo filesystem, a pseudonym. Hash.Empty
// gives it for any namespace hash.
var EmptyDigest = SHA256.Empty()

// Conclusive reasons a file's digest is not known. The event still gets a
// description; its digest is the namespace hash's unhashable digest
// (Hash.Unhashable), which stands for no content: such an event is never
// learned and is always forensics once the model is sealed (see the
// package documentation, "Unhashable files").
var (
	// ErrFileChanged: the file was modified or replaced between the event
	// and the moment userspace read it, so its content at the event is
	// lost.
	ErrFileChanged = errors.New("file changed since the event")
	// ErrFileUnreachable: no path userspace can open leads to the file the
	// kernel reported (deleted and closed, detached, another mount
	// namespace whose tasks are gone).
	ErrFileUnreachable = errors.New("file not reachable from userspace")
)

// FileKey identifies one version of a file: the same key means the same
// content, so the content is hashed once per key.
type FileKey struct {
	DevMajor, DevMinor   uint32
	Ino                  uint64
	CTimeSec, MTimeSec   int64
	CTimeNsec, MTimeNsec uint32
	Size                 uint64
}

// KeyOf returns the cache key of an inode as the kernel reported it.
func KeyOf(in *bpf.Inode) FileKey {
	return FileKey{
		DevMajor: in.DevMajor, DevMinor: in.DevMinor, Ino: in.Ino,
		CTimeSec: in.CTimeSec, MTimeSec: in.MTimeSec,
		// Kernels with multigrain timestamps keep a flag in the top bits of
		// the ctime nanoseconds; a nanosecond count needs only 30 bits.
		CTimeNsec: in.CTimeNsec & nsecMask, MTimeNsec: in.MTimeNsec & nsecMask,
		Size: in.Size,
	}
}

const nsecMask = 1<<30 - 1

func keyOfStat(st *syscall.Stat_t) FileKey {
	dev := uint64(st.Dev)
	return FileKey{
		DevMajor:  uint32((dev>>8)&0xfff | (dev>>32)&^0xfff),
		DevMinor:  uint32(dev&0xff | (dev>>12)&^0xff),
		Ino:       st.Ino,
		CTimeSec:  st.Ctim.Sec,
		MTimeSec:  st.Mtim.Sec,
		CTimeNsec: uint32(st.Ctim.Nsec),
		MTimeNsec: uint32(st.Mtim.Nsec),
		Size:      uint64(st.Size),
	}
}

// Filesystem magic numbers (statfs f_type) of the pseudo filesystems whose
// files get EmptyDigest: their content is generated on read, so a digest
// would describe the moment of reading, not the file.
var pseudoFS = map[uint32]string{
	0x9fa0:     "proc",
	0x62656572: "sysfs",
	0x1cd1:     "devpts",
	0x50495045: "pipefs",
	0x534f434b: "sockfs",
	0x09041934: "anon_inodefs",
	0x73636673: "securityfs",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x6e736673: "nsfs",
	0x42494e4d: "binfmt_misc",
	0x27e0eb:   "cgroup",
	0x63677270: "cgroup2",
	0xcafe4a11: "bpf",
	0x19800202: "mqueue",
	0x62656570: "configfs",
	0x6165676c: "pstore",
	0xde5e81e4: "efivarfs",
	0xf97cff8c: "selinuxfs",
	0x43415d53: "smackfs",
	0x62646576: "bdev",
	0x444d4142: "dmabuf",
	0x5345434d: "secretmem",
}

// IsPseudoFS reports whether s_magic names a pseudo filesystem (proc,
// sysfs, devpts, pipes, sockets, ...), whose files get EmptyDigest.
// tmpfs is not one: its files hold data, and TSEM hashes them.
func IsPseudoFS(magic uint32) bool {
	_, ok := pseudoFS[magic]
	return ok
}

const sIFMT, sIFREG = 0o170000, 0o100000

// DigestOptions configures a DigestCache.
type DigestOptions struct {
	// ProcRoot is where proc is mounted, default "/proc". A file that is
	// not reachable by its path (another mount namespace) is opened
	// through ProcRoot/TGID/root.
	ProcRoot string
	// MaxEntries bounds the cache, default 65536; when it is full an
	// eighth of the entries are dropped.
	MaxEntries int
}

// DigestStats counts what a DigestCache did.
type DigestStats struct {
	// Hits and Misses count lookups of regular files with content;
	// Hashed counts the bytes read for misses.
	Hits, Misses, Hashed uint64
	// Empty counts files that got EmptyDigest without being read.
	Empty uint64
	// Failed counts files whose digest could not be known (they got
	// the unhashable digest).
	Failed uint64
	// FromOpenFile counts misses hashed through a task's open file
	// descriptor (/proc/PID/fd) because no path led to the file any more.
	FromOpenFile uint64
	// FromFileSystem counts misses hashed through the namespace's held
	// file system (Reach.FS).
	FromFileSystem uint64
}

// FileSystem opens the files of a namespace by the pathnames its tasks
// see them under, from outside their mount namespace and independently of
// their lives: a container's root file system and bind mounts, held open
// by the agent from the container's start (namespace.ContainerFS).
type FileSystem interface {
	// OpenFile opens name, an absolute pathname as the namespace's tasks
	// see it, for reading without blocking (O_NONBLOCK, O_NOCTTY). It may
	// open another file than the event's (the digest code checks the
	// stamps); it fails when it cannot reach the name.
	OpenFile(name string) (*os.File, error)
}

// Reach says where DigestIn looks for a file besides its pathname as the
// host sees it.
type Reach struct {
	// FS is the namespace's held file system, tried first; nil when
	// the namespace has none.
	FS FileSystem
	// Tasks are the task that opened the file and other live tasks of its
	// namespace, whose roots (/proc/PID/root) and open files
	// (/proc/PID/fd) may reach the file.
	Tasks []uint32
}

// DigestCache computes the content digests of file cells: the namespace
// hash of the content, once per file version (FileKey) and algorithm, as
// TSEM keeps one digest per inode and hash name. SHA-256 digests, the
// common case, live in a map of 32-byte values; the others in a map keyed
// by version and algorithm. It is safe for concurrent use.
type DigestCache struct {
	procRoot string
	max      int

	mu   sync.Mutex
	m    map[FileKey][32]byte
	wide map[wideKey]Digest // SHA-384 and SHA-512

	hits, misses, hashed, empty, failed, fromFd, fromFS atomic.Uint64
}

// NewDigestCache returns an empty cache.
func NewDigestCache(opts DigestOptions) *DigestCache {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 65536
	}
	return &DigestCache{procRoot: opts.ProcRoot, max: opts.MaxEntries, m: make(map[FileKey][32]byte), wide: make(map[wideKey]Digest)}
}

// wideKey is a file version hashed with an algorithm other than SHA-256.
type wideKey struct {
	FileKey
	alg Hash
}

// Stats returns the counters.
func (c *DigestCache) Stats() DigestStats {
	return DigestStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Hashed: c.hashed.Load(),
		Empty: c.empty.Load(), Failed: c.failed.Load(), FromOpenFile: c.fromFd.Load(),
		FromFileSystem: c.fromFS.Load(),
	}
}

// Len returns the number of cached digests.
func (c *DigestCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m) + len(c.wide)
}

// Digest returns the SHA-256 digest of the file f that task tgid opened;
// see DigestHash.
func (c *DigestCache) Digest(f *bpf.File, tgid uint32) (Digest, error) {
	return c.DigestHash(f, tgid, SHA256)
}

// DigestHash returns the digest of the file f that task tgid opened, as
// TSEM puts it in a file cell of a namespace whose hash is alg: alg.Empty()
// for a file that is not regular, is empty or lives on a pseudo
// filesystem, else alg's digest of its content. On error the digest is
// alg.Unhashable() and the error wraps ErrFileChanged or
// ErrFileUnreachable.
func (c *DigestCache) DigestHash(f *bpf.File, tgid uint32, alg Hash) (Digest, error) {
	return c.DigestFrom(f, []uint32{tgid}, alg)
}

// DigestFrom is DigestHash for a file that tasks[0] opened, where tasks[1:]
// are other live tasks of its namespace whose view of the filesystem (root
// directory, open files) may still reach the file once tasks[0] has exited;
// see DigestIn.
func (c *DigestCache) DigestFrom(f *bpf.File, tasks []uint32, alg Hash) (Digest, error) {
	return c.DigestIn(f, Reach{Tasks: tasks}, alg)
}

// DigestIn is DigestHash for a file of a namespace that r says how to
// reach. The content is read through the namespace's held file system
// (r.FS), else by path (as the host sees it, then through each task's
// root), else through an open file descriptor of one of the tasks that
// still refers to the file (a file deleted while open), and is used only
// when the file read is the version the kernel reported: the same device,
// inode, size, ctime and mtime (nanoseconds) before and after the read.
func (c *DigestCache) DigestIn(f *bpf.File, r Reach, alg Hash) (Digest, error) {
	in := &f.Inode
	if in.Mode&sIFMT != sIFREG || in.Size == 0 || IsPseudoFS(in.SMagic) {
		c.empty.Add(1)
		return alg.Empty(), nil
	}
	key := KeyOf(in)
	d, ok := c.lookup(key, alg)
	if ok {
		c.hits.Add(1)
		return d, nil
	}
	c.misses.Add(1)
	d, err := c.hash(f, key, r, alg)
	if err != nil {
		c.failed.Add(1)
		return alg.Unhashable(), err
	}
	return d, nil
}

func (c *DigestCache) lookup(key FileKey, alg Hash) (Digest, bool) {
	if alg == SHA256 {
		c.mu.Lock()
		d, ok := c.m[key]
		c.mu.Unlock()
		return Digest32(d), ok
	}
	c.mu.Lock()
	d, ok := c.wide[wideKey{key, alg}]
	c.mu.Unlock()
	return d, ok
}

// hash finds the file through the namespace's file system, by its path
// (directly, then through each task's root), else among the tasks' open
// files, and hashes it if it is still the version the kernel reported.
func (c *DigestCache) hash(f *bpf.File, key FileKey, r Reach, alg Hash) (Digest, error) {
	name := f.Path.Name
	changed := false
	note := func(err error) {
		if errors.Is(err, ErrFileChanged) {
			changed = true
		}
	}
	try := func(p string) (Digest, bool) {
		d, err := c.hashPath(p, key, alg)
		note(err)
		return d, err == nil
	}
	if len(name) > 0 && name[0] == '/' && f.Path.Flags&(bpf.PathTruncated|bpf.PathDetached|bpf.PathNoMount) == 0 {
		if r.FS != nil {
			if fd, err := r.FS.OpenFile(name); err == nil {
				d, err := c.hashFile(fd, key, alg)
				note(err)
				if err == nil {
					c.fromFS.Add(1)
					return d, nil
				}
			}
		}
		if d, ok := try(name); ok {
			return d, nil
		}
		for _, t := range r.Tasks {
			if d, ok := try(c.procRoot + "/" + strconv.FormatUint(uint64(t), 10) + "/root" + name); ok {
				return d, nil
			}
		}
	}
	for _, t := range r.Tasks {
		if p, ok := c.openFile(t, key); ok {
			if d, ok := try(p); ok {
				c.fromFd.Add(1)
				return d, nil
			}
		}
	}
	if changed {
		return Digest{}, fmt.Errorf("digest %q: %w", name, ErrFileChanged)
	}
	return Digest{}, fmt.Errorf("digest %q: %w", name, ErrFileUnreachable)
}

// maxOpenFiles bounds how many of a task's descriptors openFile looks at.
const maxOpenFiles = 4096

// openFile returns a /proc/PID/fd/N link of task tgid that refers to the
// file of key (its device and inode), if the task holds it open. Opening
// the link opens that file even when no path leads to it any more.
func (c *DigestCache) openFile(tgid uint32, key FileKey) (string, bool) {
	dir := c.procRoot + "/" + strconv.FormatUint(uint64(tgid), 10) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return "", false
	}
	defer d.Close()
	names, _ := d.Readdirnames(maxOpenFiles)
	for _, n := range names {
		p := dir + "/" + n
		var st syscall.Stat_t
		if syscall.Stat(p, &st) != nil {
			continue
		}
		got := keyOfStat(&st)
		if got.DevMajor == key.DevMajor && got.DevMinor == key.DevMinor && got.Ino == key.Ino {
			return p, true
		}
	}
	return "", false
}

func (c *DigestCache) hashPath(path string, want FileKey, alg Hash) (Digest, error) {
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Digest{}, err
	}
	return c.hashFile(fd, want, alg)
}

// hashFile hashes the open file fd, and closes it, if it is the version
// of want.
func (c *DigestCache) hashFile(fd *os.File, want FileKey, alg Hash) (Digest, error) {
	defer fd.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd.Fd()), &st); err != nil {
		return Digest{}, err
	}
	got := keyOfStat(&st)
	if got.DevMajor != want.DevMajor || got.DevMinor != want.DevMinor || got.Ino != want.Ino {
		return Digest{}, ErrFileUnreachable // another file by that name
	}
	if st.Mode&sIFMT != sIFREG {
		return Digest{}, ErrFileChanged
	}
	h := alg.New()
	n, err := io.Copy(h, fd)
	if err != nil {
		return Digest{}, err
	}
	c.hashed.Add(uint64(n))
	var d Digest
	d.n = uint8(len(h.Sum(d.b[:0])))
	// The content read belongs to the version fstat saw, if nothing
	// changed while reading; cache it under that key.
	var after syscall.Stat_t
	if syscall.Fstat(int(fd.Fd()), &after) == nil && keyOfStat(&after) == got && uint64(n) == got.Size {
		c.store(got, alg, d)
	}
	if got != want {
		return Digest{}, ErrFileChanged
	}
	return d, nil
}

func (c *DigestCache) store(k FileKey, alg Hash, d Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(c.wide) >= c.max {
		drop := c.max / 8
		if drop < 1 {
			drop = 1
		}
		for k := range c.m { // map order is random: a random eighth goes
			if drop == 0 {
				break
			}
			delete(c.m, k)
			drop--
		}
		for k := range c.wide {
			if drop == 0 {
				break
			}
			delete(c.wide, k)
			drop--
		}
	}
	if alg == SHA256 {
		c.m[k] = [32]byte(d.b[:32])
		return
	}
	c.wide[wideKey{k, alg}] = d
}
