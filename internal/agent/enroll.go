package agent

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enroller keeps the processes of each container cgroup enrolled in the
// container's namespace: it reads cgroup.procs of the cgroup and of every
// cgroup below it when asked (a container appeared), when the cgroup's
// cgroup.events changes (the kernel notifies a modification when the cgroup
// becomes populated), and every resync period.
type enroller struct {
	kern   kernel
	log    *slog.Logger
	resync time.Duration
	// beforeExec tells a container runtime's process that has not executed
	// the workload yet, to be enrolled dormant (dormant.go).
	beforeExec func(pid int) bool
	// parent returns a process's parent pid (/proc/PID/stat).
	parent func(pid int) (int, error)

	mu      sync.Mutex
	watched map[uint64]*nsState // by namespace id
	wds     map[int32]uint64    // inotify watch -> namespace id
	byNS    map[uint64]int32    // namespace id -> inotify watch
	in      *os.File            // inotify; nil when unavailable
	infd    int
}

func newEnroller(kern kernel, log *slog.Logger, resync time.Duration) *enroller {
	e := &enroller{
		kern: kern, log: log, resync: resync, beforeExec: setupProbe{proc: "/proc"}.beforeExec,
		parent: func(pid int) (int, error) {
			ppid, _, err := procStat(pid)
			return ppid, err
		},
		watched: make(map[uint64]*nsState), wds: make(map[int32]uint64), byNS: make(map[uint64]int32),
	}
	if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
		e.infd, e.in = fd, os.NewFile(uintptr(fd), "inotify")
	} else {
		log.Warn("no inotify for cgroup.events; new container processes are enrolled at the resync only", "err", err)
	}
	return e
}

// add starts keeping st's cgroup enrolled and enrols what is there now.
func (e *enroller) add(st *nsState) {
	id := st.ns.ID()
	e.mu.Lock()
	e.watched[id] = st
	if e.in != nil {
		wd, err := unix.InotifyAddWatch(e.infd, filepath.Join(st.cgroupDir, "cgroup.events"), unix.IN_MODIFY)
		if err == nil {
			e.wds[int32(wd)] = id
			e.byNS[id] = int32(wd)
		}
	}
	e.mu.Unlock()
	e.enrol(st)
}

// remove stops watching st's cgroup.
func (e *enroller) remove(st *nsState) {
	id := st.ns.ID()
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.watched, id)
	if wd, ok := e.byNS[id]; ok {
		delete(e.byNS, id)
		delete(e.wds, wd)
		if e.in != nil {
			unix.InotifyRmWatch(e.infd, uint32(wd))
		}
	}
}

// enrol enrols every process of st's cgroup tree that is in no namespace
// yet. A process already in a namespace stays where it is: membership is
// sticky, and enrolling again would give the task a new identity.
func (e *enroller) enrol(st *nsState) {
	id := st.ns.ID()
	var members int64
	for _, pid := range cgroupProcs(st.cgroupDir) {
		ns, _, _, _, ok, err := e.kern.TaskState(pid)
		if err != nil {
			continue // exited
		}
		// A task the host namespace (0) picked up at its first event is
		// in no namespace of its own yet: its container's claims it.
		if ok && ns != 0 {
			if ns == id {
				members++
			}
			continue
		}
		if pns, ok := e.forkedInNamespace(pid); ok {
			// A member's child between its fork and its first event:
			// a member already, with its parent's identity.
			if pns == id {
				members++
			}
			continue
		}
		enrol, dormant := e.kern.Enroll, e.beforeExec(pid)
		if dormant {
			enrol = e.kern.EnrollDormant
		}
		if err := enrol(pid, id); err != nil {
			if !errors.Is(err, unix.ESRCH) {
				e.log.Debug("enrol process", "namespace", st.ns.Name(), "pid", pid, "err", err)
			}
			continue
		}
		members++
		e.log.Debug("enrolled process", "namespace", st.ns.Name(), "pid", pid, "dormant until exec", dormant)
	}
	st.tasks.Store(members)
}

// forkedInNamespace reports the namespace (not the host's) of pid's
// parent. A process a member forks is a member from its fork: the kernel
// hands the parent's state over at the child's first event, and until
// then TaskState may not know the child (the moment between the child's
// joining its parent's cgroup and the fork's record). Enrolling it then
// would make it a namespace root, a new identity in that instance only.
func (e *enroller) forkedInNamespace(pid int) (uint64, bool) {
	ppid, err := e.parent(pid)
	if err != nil || ppid <= 0 {
		return 0, false
	}
	ns, _, _, _, ok, err := e.kern.TaskState(ppid)
	if err != nil || !ok || ns == 0 {
		return 0, false
	}
	return ns, true
}

// enrolAll runs an enrolment pass over every watched cgroup.
func (e *enroller) enrolAll() {
	e.mu.Lock()
	sts := make([]*nsState, 0, len(e.watched))
	for _, st := range e.watched {
		sts = append(sts, st)
	}
	e.mu.Unlock()
	for _, st := range sts {
		e.enrol(st)
	}
}

// run enrols on cgroup.events changes and every resync until ctx ends.
func (e *enroller) run(ctx context.Context) {
	changed := make(chan uint64, 64)
	if e.in != nil {
		go e.readInotify(ctx, changed)
	}
	t := time.NewTicker(e.resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.enrolAll()
		case id := <-changed:
			e.mu.Lock()
			st, ok := e.watched[id]
			e.mu.Unlock()
			if ok {
				e.enrol(st)
			}
		}
	}
}

// readInotify turns cgroup.events modifications into namespace ids.
func (e *enroller) readInotify(ctx context.Context, out chan<- uint64) {
	stop := context.AfterFunc(ctx, func() { e.in.Close() })
	defer stop()
	buf := make([]byte, 16<<10)
	for {
		n, err := e.in.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			e.mu.Lock()
			id, ok := e.wds[ev.Wd]
			e.mu.Unlock()
			if !ok {
				continue
			}
			select {
			case out <- id:
			case <-ctx.Done():
				return
			}
		}
	}
}

// cgroupProcs lists the processes of the cgroup at dir and of the cgroups
// below it.
func cgroupProcs(dir string) []int {
	var pids []int
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed while walking
		}
		if !d.IsDir() {
			return nil
		}
		f, err := os.Open(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if pid, err := strconv.Atoi(sc.Text()); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
