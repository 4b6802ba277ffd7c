package namespace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/events"
)

// ContainerFS is a container's file system held open from the host: its
// root file system and the sources of its bind mounts, opened when the
// container is found (before any of its tasks runs the workload) and kept
// until Close. Files stay readable through it after the container's tasks
// have ended and its runtime has unmounted and removed the container: a
// held mount is a private clone of the runtime's (open_tree), so holding it
// never makes the runtime's unmount fail, and the file system stays alive
// as long as the clone. Where the kernel does not allow cloning a mount, a
// plain descriptor of the directory is held instead (the runtimes this
// project tests with unmount lazily, so that does not stop them either).
//
// OpenFile resolves a pathname as the container's tasks see it: in the
// bind mount whose destination is its longest prefix, else in the root
// file system, with openat2(RESOLVE_IN_ROOT) so that neither ".." nor a
// symbolic link leads out of the container's view. A pathname on a mount
// the host cannot reach (proc, tmpfs, devpts: they exist only in the
// container's mount namespace) is not opened. What OpenFile opens is only
// a candidate: the digest code uses it only if it is the version of the
// file the event recorded (events.DigestCache).
//
// A ContainerFS is safe for concurrent use; Close waits for OpenFile calls
// under way.
type ContainerFS struct {
	procRoot string

	mu     sync.RWMutex
	root   int // -1 once closed
	mounts []heldMount
	unheld []string
}

var _ events.FileSystem = (*ContainerFS)(nil)

// heldMount is a mount of the container: its destination and the held
// source (-1: not reachable from the host).
type heldMount struct {
	dest string
	fd   int
	dir  bool
}

// OpenContainerFS holds spec's root file system and bind mount sources.
// procRoot is where proc is mounted ("" means /proc): a file bind mount
// is reopened through procRoot/self/fd. It fails when the root cannot be
// held; a bind source that cannot be held (gone already) only leaves its
// files unreachable (Unheld lists them).
func OpenContainerFS(spec FileSystemSpec, procRoot string) (*ContainerFS, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	root, dir, err := holdMount(spec.Root, false)
	if err != nil {
		return nil, fmt.Errorf("hold root file system %s: %w", spec.Root, err)
	}
	if !dir {
		unix.Close(root)
		return nil, fmt.Errorf("hold root file system %s: %w", spec.Root, unix.ENOTDIR)
	}
	c := &ContainerFS{procRoot: procRoot, root: root}
	for _, m := range spec.Mounts {
		if m.Destination == "/" {
			continue // the root is spec.Root
		}
		h := heldMount{dest: m.Destination, fd: -1}
		if m.Source != "" {
			if fd, dir, err := holdMount(m.Source, m.Recursive); err == nil {
				h.fd, h.dir = fd, dir
			} else {
				c.unheld = append(c.unheld, m.Destination)
			}
		}
		// A later mount hides the earlier ones at or below its
		// destination.
		c.mounts = dropMounts(c.mounts, h.dest)
		c.mounts = append(c.mounts, h)
	}
	// Longest destination first: the innermost mount of a pathname wins.
	sort.SliceStable(c.mounts, func(i, j int) bool { return len(c.mounts[i].dest) > len(c.mounts[j].dest) })
	return c, nil
}

// dropMounts removes the mounts at or below dest, closing their
// descriptors.
func dropMounts(ms []heldMount, dest string) []heldMount {
	out := ms[:0]
	for _, m := range ms {
		if under(m.dest, dest) {
			if m.fd >= 0 {
				unix.Close(m.fd)
			}
			continue
		}
		out = append(out, m)
	}
	return out
}

// holdMount holds the file or directory at path: a detached private clone
// of its mount (with its submounts when recursive), else a plain O_PATH
// descriptor. It reports whether it is a directory.
func holdMount(path string, recursive bool) (fd int, dir bool, err error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err = unix.OpenTree(unix.AT_FDCWD, path, flags)
	if err == nil {
		// Not a peer of the runtime's mount: nothing mounted or
		// unmounted there propagates to the clone, or back.
		unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Propagation: unix.MS_PRIVATE})
	} else if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return -1, false, err
	} else if fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
		return -1, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, err
	}
	return fd, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// OpenFile opens name, an absolute pathname as the container's tasks see
// it, read-only without blocking; see ContainerFS.
func (c *ContainerFS) OpenFile(name string) (*os.File, error) {
	if c == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if len(name) == 0 || name[0] != '/' {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.root < 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrClosed}
	}
	at, rest := c.root, name
	if m, ok := c.mountOf(name); ok {
		switch {
		case m.fd < 0:
			// proc, tmpfs, ...: only in the container's mount namespace.
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		case !m.dir:
			if name != m.dest {
				return nil, &fs.PathError{Op: "open", Path: name, Err: unix.ENOTDIR}
			}
			// A file bind mount: reopen the held file itself.
			p := c.procRoot + "/self/fd/" + strconv.Itoa(m.fd)
			return os.OpenFile(p, os.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		}
		at, rest = m.fd, name[len(m.dest):]
		if rest == "" {
			rest = "/"
		}
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOCTTY | unix.O_NONBLOCK | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	var err error
	for range 8 {
		var fd int
		fd, err = unix.Openat2(at, rest, &how)
		if err == nil {
			return os.NewFile(uintptr(fd), name), nil
		}
		// EAGAIN: a rename or mount raced the lookup under
		// RESOLVE_IN_ROOT, which then refuses to guess.
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: err}
}

// Unheld lists the destinations of the bind mounts whose source could
// not be held: their files are not reachable through c.
func (c *ContainerFS) Unheld() []string { return c.unheld }

// mountOf returns the innermost mount name is on (mounts are sorted
// longest destination first).
func (c *ContainerFS) mountOf(name string) (heldMount, bool) {
	for _, m := range c.mounts {
		if under(name, m.dest) {
			return m, true
		}
	}
	return heldMount{}, false
}

// under reports whether pathname name is dir or below it.
func under(name, dir string) bool {
	return strings.HasPrefix(name, dir) && (len(name) == len(dir) || name[len(dir)] == '/')
}

// Close releases the held mounts; the file systems go with the last
// reference to them. Later OpenFile calls fail.
func (c *ContainerFS) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.root < 0 {
		return nil
	}
	unix.Close(c.root)
	c.root = -1
	for _, m := range c.mounts {
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
	}
	c.mounts = nil
	return nil
}
