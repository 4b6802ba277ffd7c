package namespace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ContainerEventKind says whether a container cgroup appeared or went away.
type ContainerEventKind int

// The kinds of ContainerEvent.
const (
	ContainerStarted ContainerEventKind = iota + 1
	ContainerStopped
)

func (k ContainerEventKind) String() string {
	switch k {
	case ContainerStarted:
		return "started"
	case ContainerStopped:
		return "stopped"
	}
	return fmt.Sprintf("ContainerEventKind(%d)", int(k))
}

// ContainerEvent reports a container cgroup that appeared or was removed.
type ContainerEvent struct {
	Kind      ContainerEventKind
	Container Container
}

// DefaultContainerResync is how often a ContainerWatcher rescans the whole
// cgroup tree even when inotify is working: a safety net for events inotify
// can drop (queue overflow) and the only mechanism when inotify is not
// available. A full scan of a node's cgroup tree costs a few milliseconds.
const DefaultContainerResync = 10 * time.Second

// ErrNoCgroup2Mount means no cgroup v2 hierarchy is mounted where expected.
var ErrNoCgroup2Mount = errors.New("no cgroup v2 mount")

// FindCgroup2Root returns the cgroup v2 mount under a sysfs cgroup directory
// (normally /sys/fs/cgroup): the directory itself on a unified host, or its
// "unified" subdirectory on a hybrid (v1 + v2) host.
func FindCgroup2Root(dir string) (string, error) {
	for _, p := range []string{dir, filepath.Join(dir, "unified")} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("find cgroup v2 under %s: %w", dir, ErrNoCgroup2Mount)
}

// ContainerWatcher reports container cgroups appearing and disappearing
// under a cgroup v2 root. It watches every directory of the tree with
// inotify (mkdir and rmdir in cgroupfs raise IN_CREATE and IN_DELETE), scans
// each new directory when it appears (a runtime may create nested
// directories faster than the watch is added), and rescans the whole tree
// every Resync as a safety net. With inotify unavailable it falls back to
// the periodic scan alone.
//
// Run emits a ContainerStarted for every container present at start. Events
// are delivered from Run's goroutine, one at a time, in the order the
// watcher saw them; a container is started at most once before it stops.
type ContainerWatcher struct {
	// Root is the cgroup v2 mount, e.g. /sys/fs/cgroup (see FindCgroup2Root).
	Root string
	// Resync is the full-rescan period; DefaultContainerResync if zero.
	Resync time.Duration
	// NoInotify forces the periodic scan alone (for tests and odd mounts).
	NoInotify bool

	mu    sync.Mutex
	known map[string]Container // by container cgroup path (relative to Root)
}

// Containers returns the containers the watcher currently knows, sorted by
// cgroup path. It is safe to call while Run runs.
func (w *ContainerWatcher) Containers() []Container {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Container, 0, len(w.known))
	for _, c := range w.known {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cgroup < out[j].Cgroup })
	return out
}

// Run watches until ctx is done and returns nil then, or an error if the
// root cannot be read.
func (w *ContainerWatcher) Run(ctx context.Context, emit func(ContainerEvent)) error {
	resync := w.Resync
	if resync <= 0 {
		resync = DefaultContainerResync
	}
	w.mu.Lock()
	w.known = make(map[string]Container)
	w.mu.Unlock()

	var in *inotify
	if !w.NoInotify {
		var err error
		if in, err = newInotify(); err != nil {
			in = nil // fall back to scanning
		} else {
			defer in.close()
		}
	}
	// The first scan also installs the watches, so nothing created after it
	// can be missed: a directory made between a watch and the scan is seen
	// twice and reported once.
	if err := w.scan(in, "", emit); err != nil {
		return err
	}

	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	var changes <-chan []string
	if in != nil {
		changes = in.run(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := w.scan(in, "", emit); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		case dirs, ok := <-changes:
			if !ok {
				changes = nil // inotify failed; the ticker carries on
				continue
			}
			for _, d := range dirs {
				if err := w.scan(in, d, emit); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
	}
}

// scan walks the subtree at rel (relative to Root, "" for all of it),
// watches its directories and reports the difference between the
// containers found and those known in that subtree.
func (w *ContainerWatcher) scan(in *inotify, rel string, emit func(ContainerEvent)) error {
	base := filepath.Join(w.Root, rel)
	found := make(map[string]Container)
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != base && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		cg := "/" + strings.TrimPrefix(strings.TrimPrefix(p, w.Root), "/")
		if in != nil {
			in.watch(p, cg)
		}
		if c, ok := ParseCgroupPath(cg); ok && c.Cgroup == strings.TrimRight(cg, "/") {
			found[c.Cgroup] = c
		}
		return nil
	})
	if err != nil && !(rel != "" && errors.Is(err, fs.ErrNotExist)) {
		return fmt.Errorf("scan cgroups %s: %w", base, err)
	}
	prefix := "/" + strings.Trim(rel, "/")
	var events []ContainerEvent
	w.mu.Lock()
	for cg, c := range w.known {
		if inSubtree(cg, prefix) {
			if _, still := found[cg]; !still {
				delete(w.known, cg)
				events = append(events, ContainerEvent{ContainerStopped, c})
			}
		}
	}
	for cg, c := range found {
		if _, had := w.known[cg]; !had {
			w.known[cg] = c
			events = append(events, ContainerEvent{ContainerStarted, c})
		}
	}
	w.mu.Unlock()
	sort.Slice(events, func(i, j int) bool {
		if events[i].Kind != events[j].Kind {
			return events[i].Kind > events[j].Kind // stops first
		}
		return events[i].Container.Cgroup < events[j].Container.Cgroup
	})
	for _, e := range events {
		emit(e)
	}
	return nil
}

func inSubtree(p, prefix string) bool {
	return prefix == "/" || p == prefix || strings.HasPrefix(p, prefix+"/")
}

// inotify watches cgroup directories and reports which subtrees changed.
type inotify struct {
	fd   int
	file *os.File

	mu    sync.Mutex
	paths map[int32]string // watch descriptor -> cgroup path relative to the root
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	return &inotify{fd: fd, file: os.NewFile(uintptr(fd), "inotify"), paths: make(map[int32]string)}, nil
}

func (in *inotify) watch(dir, cg string) {
	wd, err := unix.InotifyAddWatch(in.fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		return // gone already, or out of watches: the resync scan covers it
	}
	in.mu.Lock()
	in.paths[int32(wd)] = cg
	in.mu.Unlock()
}

func (in *inotify) close() { in.file.Close() }

// run reads events until ctx is done and sends, per read, the cgroup
// subtrees to rescan: each directory created or removed.
// It closes the channel when reading fails.
func (in *inotify) run(ctx context.Context) <-chan []string {
	out := make(chan []string)
	go func() {
		<-ctx.Done()
		in.file.Close() // unblocks Read
	}()
	go func() {
		defer close(out)
		buf := make([]byte, 64<<10)
		for {
			n, err := in.file.Read(buf)
			if err != nil {
				return
			}
			var dirs []string
			seen := make(map[string]bool)
			add := func(d string) {
				if !seen[d] {
					seen[d] = true
					dirs = append(dirs, d)
				}
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				off += unix.SizeofInotifyEvent + int(ev.Len)
				name := strings.TrimRight(string(nameBytes), "\x00")
				switch {
				case ev.Mask&unix.IN_Q_OVERFLOW != 0:
					add("/")
					continue
				case ev.Mask&unix.IN_IGNORED != 0:
					in.mu.Lock()
					delete(in.paths, ev.Wd)
					in.mu.Unlock()
					continue
				case ev.Mask&unix.IN_ISDIR == 0:
					continue
				}
				in.mu.Lock()
				parent, ok := in.paths[ev.Wd]
				in.mu.Unlock()
				if !ok {
					continue
				}
				// Created: scan the new subtree. Removed: scanning the
				// missing path finds nothing, which stops what was under it.
				add(joinCgroup(parent, name))
			}
			select {
			case out <- dirs:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func joinCgroup(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}
