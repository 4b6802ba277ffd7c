package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// Namespaces for `vigil run`.
//
// When an agent runs, `vigil run` loads no capture programs of its own (two
// captures would record every event twice and fight over the kernel's
// configuration); it asks the agent, through the control API, for a
// namespace of origin run in the same registry as the containers'. The
// table creates it (Create), enrols the stub process `vigil run` started
// and holds before its exec (AddTask: a child of the caller, in no
// namespace yet), reports when the reader has processed that process's
// exit (Sync: every record it made, and those of the children it waited
// for, are then in the model, because the ring buffer delivers records in
// the order they were reserved; then Sync has the reader replace the
// kernel's repeat cache at once (bpf.Capture.FlushRepeats), so the counts
// of repeated events it still held are in the model too), and ends the
// namespace (End): it is kept for the stop grace like
// a stopped container's, then removed. Its points
// stay in the measured log. A namespace whose creator exits without ending
// it is ended by the agent.
//
// The reader calls beforeDispatch and afterDispatch around every record.
// beforeDispatch gives an enrolled root the name it had when it was
// enrolled (the stub's) for the open its first exec makes, when the
// backend reported no event of it before the exec (the tracepoint backend
// sees none). A standalone `vigil run` (Standalone) creates its namespace
// with createRun and enrols its stub with AddTask too, so the same command
// has the same trajectory whether or not an agent ran it. afterDispatch
// wakes the Sync waiting for a root's exit.

// DefaultOwnerPoll is how often the creator of a run namespace is checked.
const DefaultOwnerPoll = time.Second

// runs is the table's state for run namespaces. The zero value is ready;
// it is safe for concurrent use.
type runs struct {
	// grace overrides DefaultStopGrace; ownerPoll DefaultOwnerPoll;
	// countWait, when not 0, is how long Sync waits for repeat counts
	// after an exit when the kernel cannot flush them (see
	// table.countWait).
	grace, ownerPoll, countWait time.Duration

	// waiting counts roots whose exit has not been seen: the hooks do
	// nothing while it is zero.
	waiting atomic.Int64

	mu    sync.Mutex
	byNS  map[uint64]*runNS
	roots map[int]*runRoot // by pid
}

// runNS is one run namespace.
type runNS struct {
	st      *nsState
	owner   int32 // the creator's pid, 0 when unknown
	ended   bool
	stop    chan struct{} // closed when ended: ends the owner watch
	removal *time.Timer
}

// runRoot is a process enrolled through AddTask.
type runRoot struct {
	ns     uint64
	comm   [bpf.CommLen]byte // its name when enrolled
	named  bool              // its first exec was seen
	seen   bool              // its exit was seen
	exitAt time.Time         // when
	exited chan struct{}     // closed then
}

var _ control.RunBackend = (*table)(nil)

// isEnded reports whether namespace id is a run namespace that ended.
func (r *runs) isEnded(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rn, ok := r.byNS[id]
	return ok && rn.ended
}

// Agent implements control.RunBackend.
func (t *table) Agent() control.AgentInfo {
	info := control.AgentInfo{PID: os.Getpid(), CanEnforce: t.kern.CanEnforce(), Defaults: t.defaults, Register: t.regName}
	if b, ok := t.kern.(interface{ Backend() bpf.Backend }); ok {
		info.Backend = string(b.Backend())
	}
	return info
}

// Create implements control.RunBackend.
func (t *table) Create(req control.CreateRequest) (control.NamespaceInfo, error) {
	if req.Origin != "" && req.Origin != control.OriginRun {
		return control.NamespaceInfo{}, fmt.Errorf("create namespace: origin %q: only %q: %w", req.Origin, control.OriginRun, control.ErrInvalid)
	}
	if req.Name != "" {
		if err := control.CheckName(req.Name); err != nil {
			return control.NamespaceInfo{}, fmt.Errorf("create namespace: %w", err)
		}
	}
	s := req.Settings
	if s.HashAlgorithm == "" {
		s.HashAlgorithm = t.defaults.HashAlgorithm
	}
	if _, err := model.ParseHash(s.HashAlgorithm); err != nil {
		return control.NamespaceInfo{}, fmt.Errorf("create namespace: settings.hash_algorithm: %w: %w", err, control.ErrInvalid)
	}
	if s.Dialect == "" {
		s.Dialect = t.defaults.Dialect
	}
	if s.Dialect != "" {
		if _, err := model.ParseDialect(s.Dialect); err != nil {
			return control.NamespaceInfo{}, fmt.Errorf("create namespace: settings.dialect: %w: %w", err, control.ErrInvalid)
		}
	}
	if err := control.CheckPseudonyms(s.Pseudonyms); err != nil {
		return control.NamespaceInfo{}, fmt.Errorf("create namespace: settings.pseudonyms: %w", err)
	}
	if s.Enforce && !t.kern.CanEnforce() {
		return control.NamespaceInfo{}, fmt.Errorf("create namespace: settings.enforce: %w: %w", bpf.ErrObserveOnly, control.ErrConflict)
	}
	if req.Name != "" {
		// The name of an ended run is free at once: a command run again
		// under the same name does not wait for the grace period.
		if n, ok := t.reg.Lookup(req.Name); ok {
			t.runs.mu.Lock()
			old, isRun := t.runs.byNS[n.ID()]
			t.runs.mu.Unlock()
			if !isRun || !old.ended {
				return control.NamespaceInfo{}, fmt.Errorf("create namespace %q: the name is in use: %w", req.Name, control.ErrConflict)
			}
			t.removeRun(old)
		}
	}
	st, err := t.createRun(req.Name, req.Owner.PID, nil, s)
	if err != nil {
		if errors.Is(err, namespace.ErrExists) {
			err = fmt.Errorf("%w: %w", err, control.ErrConflict)
		}
		if st == nil {
			return control.NamespaceInfo{}, err
		}
	}
	t.log.Info("run namespace", "namespace", st.ns.Name(), "context", st.ns.ID(), "owner", req.Owner.PID)
	return t.info(st), err
}

// createRun creates a run namespace named name (run-<id> when empty) with
// settings s, learning, or sealed to m when m is a loaded model (a
// standalone `vigil run --model`), and ends it when process owner (0:
// none) exits first. As create, it returns the namespace with an error
// when only enforcing it failed.
func (t *table) createRun(name string, owner int32, m *model.Model, s control.Settings) (*nsState, error) {
	st, err := t.create(namespace.Options{Name: name, Origin: namespace.OriginRun, Model: m, KTime: t.ktime()}, nil, "", nil, s)
	if st == nil {
		return nil, err
	}
	rn := &runNS{st: st, owner: owner, stop: make(chan struct{})}
	t.runs.mu.Lock()
	if t.runs.byNS == nil {
		t.runs.byNS = make(map[uint64]*runNS)
		t.runs.roots = make(map[int]*runRoot)
	}
	t.runs.byNS[st.ns.ID()] = rn
	t.runs.mu.Unlock()
	if rn.owner > 0 {
		go t.watchOwner(rn)
	}
	return st, err
}

// lookupRun returns a run namespace by name.
func (t *table) lookupRun(name string) (*runNS, error) {
	st, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	t.runs.mu.Lock()
	rn, ok := t.runs.byNS[st.ns.ID()]
	t.runs.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("namespace %q is of origin %s, not run: its tasks are enrolled by the agent: %w", name, st.ns.Origin(), control.ErrConflict)
	}
	return rn, nil
}

// AddTask implements control.RunBackend: req.PID, a child of the caller in
// no namespace yet, joins the namespace.
func (t *table) AddTask(name string, req control.TaskRequest) error {
	rn, err := t.lookupRun(name)
	if err != nil {
		return err
	}
	pid := req.PID
	fail := func(format string, args ...any) error {
		return fmt.Errorf("enrol pid %d into namespace %s: "+format, append([]any{pid, name}, args...)...)
	}
	if pid <= 0 || pid == os.Getpid() {
		return fail("not a process the agent enrols: %w", control.ErrInvalid)
	}
	ppid, comm, err := procStat(pid)
	if err != nil {
		return fail("%v: %w", err, control.ErrInvalid)
	}
	if req.Caller.PID > 0 && ppid != int(req.Caller.PID) {
		return fail("its parent is pid %d, not the caller (pid %d); the caller and the agent must share a pid namespace: %w", ppid, req.Caller.PID, control.ErrInvalid)
	}
	if ns, _, _, _, ok, err := t.kern.TaskState(pid); err != nil {
		return fail("%v: %w", err, control.ErrInvalid)
	} else if ok {
		return fail("it is in namespace %d already (membership is sticky): %w", ns, control.ErrConflict)
	}
	id := rn.st.ns.ID()
	root := &runRoot{ns: id, exited: make(chan struct{})}
	copy(root.comm[:], comm)
	t.runs.mu.Lock()
	if rn.ended {
		t.runs.mu.Unlock()
		return fail("the namespace has ended: %w", control.ErrConflict)
	}
	if old, ok := t.runs.roots[pid]; ok && !old.seen {
		// A recycled pid whose earlier exit record never came.
		t.runs.waiting.Add(-1)
	}
	t.runs.roots[pid] = root
	t.runs.waiting.Add(1)
	t.runs.mu.Unlock()
	if err := t.kern.Enroll(pid, id); err != nil {
		t.runs.mu.Lock()
		if t.runs.roots[pid] == root {
			delete(t.runs.roots, pid)
			t.runs.waiting.Add(-1)
		}
		t.runs.mu.Unlock()
		if errors.Is(err, unix.ESRCH) {
			return fail("%v: %w", err, control.ErrInvalid)
		}
		return fail("%w", err)
	}
	rn.st.tasks.Add(1)
	t.log.Debug("enrolled run process", "namespace", name, "pid", pid, "process", comm)
	return nil
}

// Sync implements control.RunBackend.
func (t *table) Sync(ctx context.Context, name string, pid int) (bool, error) {
	rn, err := t.lookupRun(name)
	if err != nil {
		return false, err
	}
	t.runs.mu.Lock()
	root, ok := t.runs.roots[pid]
	t.runs.mu.Unlock()
	if !ok || root.ns != rn.st.ns.ID() {
		return false, fmt.Errorf("sync namespace %s: pid %d was not enrolled into it (or it has ended): %w", name, pid, control.ErrInvalid)
	}
	select {
	case <-root.exited:
	case <-rn.stop: // ended meanwhile
		return false, nil
	case <-ctx.Done():
		return false, nil
	}
	// Repeats of cached events are counted by the kernel and delivered
	// when the reader replaces the repeat cache: have it do so now, so
	// the counts are complete too (the points are already). The events
	// all happened before the exit the reader has processed.
	if f, ok := t.kern.(repeatFlusher); ok {
		err := f.FlushRepeats(ctx)
		if err == nil || ctx.Err() != nil {
			return true, nil
		}
		t.log.Warn("flush repeat counts; waiting a repeat window for them", "namespace", name, "err", err)
	}
	// Else they come at the reader's next sweep of the repeat cache, at
	// most a repeat window after the exit was processed: wait for it.
	t.runs.mu.Lock()
	at := root.exitAt
	t.runs.mu.Unlock()
	wait := time.Until(at.Add(t.countWait()))
	if wait <= 0 {
		return true, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return true, nil
}

// repeatFlusher delivers the repeat counts the kernel holds now.
type repeatFlusher interface {
	FlushRepeats(ctx context.Context) error
}

var _ repeatFlusher = (*bpf.Capture)(nil)

// countWait is how long after a root's exit was processed its repeat
// counts are surely delivered: the capture's repeat window and a margin
// for the sweep itself.
func (t *table) countWait() time.Duration {
	if t.runs.countWait != 0 {
		return t.runs.countWait
	}
	window := time.Second // bpf.Options.RepeatWindow's default
	if c, ok := t.kern.(interface{ RepeatWindow() time.Duration }); ok {
		window = c.RepeatWindow()
	}
	return window + 250*time.Millisecond
}

// End implements control.RunBackend. Ending twice is not an error.
func (t *table) End(name string) (control.NamespaceInfo, error) {
	rn, err := t.lookupRun(name)
	if err != nil {
		return control.NamespaceInfo{}, err
	}
	t.endRun(rn, "ended by its creator")
	return t.info(rn.st), nil
}

// endRun ends rn: no more enrolments or syncs, removal after the grace.
func (t *table) endRun(rn *runNS, why string) {
	id := rn.st.ns.ID()
	grace := t.runs.grace
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	t.runs.mu.Lock()
	if rn.ended || t.runs.byNS[id] != rn {
		t.runs.mu.Unlock()
		return
	}
	rn.ended = true
	close(rn.stop)
	t.forgetRootsLocked(id)
	rn.removal = time.AfterFunc(grace, func() { t.removeRun(rn) })
	t.runs.mu.Unlock()
	rn.st.tasks.Store(0)
	t.log.Info("run namespace ended", "namespace", rn.st.ns.Name(), "why", why, "keep", grace)
}

// forgetRootsLocked drops the roots enrolled into namespace id; t.runs.mu
// must be held.
func (t *table) forgetRootsLocked(id uint64) {
	for pid, root := range t.runs.roots {
		if root.ns == id {
			if !root.seen {
				t.runs.waiting.Add(-1)
			}
			delete(t.runs.roots, pid)
		}
	}
}

// removeRun forgets rn: registry, kernel, metrics.
func (t *table) removeRun(rn *runNS) {
	id := rn.st.ns.ID()
	t.runs.mu.Lock()
	if t.runs.byNS[id] != rn {
		t.runs.mu.Unlock()
		return
	}
	delete(t.runs.byNS, id)
	if !rn.ended {
		rn.ended = true
		close(rn.stop)
		t.forgetRootsLocked(id)
	}
	if rn.removal != nil {
		rn.removal.Stop()
	}
	t.runs.mu.Unlock()
	t.remove(rn.st)
	t.log.Info("run namespace removed", "namespace", rn.st.ns.Name())
}

// watchOwner ends rn when the process that created it exits first.
func (t *table) watchOwner(rn *runNS) {
	fd, err := unix.PidfdOpen(int(rn.owner), 0)
	if err != nil {
		t.log.Warn("cannot watch the creator of a run namespace; it ends only when asked", "namespace", rn.st.ns.Name(), "pid", rn.owner, "err", err)
		return
	}
	defer unix.Close(fd)
	poll := t.runs.ownerPoll
	if poll <= 0 {
		poll = DefaultOwnerPoll
	}
	for {
		select {
		case <-rn.stop:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(poll.Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.log.Warn("watch the creator of a run namespace", "namespace", rn.st.ns.Name(), "err", err)
			return
		}
		if n > 0 {
			t.endRun(rn, "its creator (pid "+strconv.Itoa(int(rn.owner))+") exited without ending it")
			return
		}
	}
}

// beforeDispatch runs on the reader goroutine before a record is
// dispatched; see the comment at the top of this file.
func (t *table) beforeDispatch(r bpf.Record) {
	if t.runs.waiting.Load() == 0 {
		return
	}
	x, ok := r.(*bpf.Exec)
	if !ok || x.PTTD != 0 || x.PrevTTD == 0 {
		return
	}
	t.runs.mu.Lock()
	root, ok := t.runs.roots[int(x.PID)]
	if !ok || root.ns != x.NS || root.named {
		t.runs.mu.Unlock()
		return
	}
	root.named = true
	comm := root.comm
	t.runs.mu.Unlock()
	tasks := t.reg.Tasks()
	if _, known := tasks.Process(x.PrevTTD); known {
		return
	}
	// As if the root's open before its exec had been seen, under the
	// name it had when enrolled.
	h := x.Header
	h.Type, h.TTD, h.PTTD, h.Comm = bpf.RecFileOpen, x.PrevTTD, 0, comm
	tasks.Seen(&h)
}

// afterDispatch runs on the reader goroutine after a record was
// dispatched: the exit of an enrolled root wakes its Sync.
func (t *table) afterDispatch(r bpf.Record) {
	if t.runs.waiting.Load() == 0 {
		return
	}
	x, ok := r.(*bpf.TaskExit)
	if !ok {
		return
	}
	t.runs.mu.Lock()
	root, ok := t.runs.roots[int(x.PID)]
	if !ok || root.ns != x.NS || root.seen {
		t.runs.mu.Unlock()
		return
	}
	root.seen = true
	root.exitAt = time.Now()
	t.runs.waiting.Add(-1)
	close(root.exited)
	rn := t.runs.byNS[x.NS]
	t.runs.mu.Unlock()
	if rn != nil {
		rn.st.tasks.Add(-1)
	}
}

// procStat returns the parent pid and the name of process pid.
func procStat(pid int) (ppid int, comm string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, "", errors.New("no such process")
		}
		return 0, "", err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("/proc/%d/stat: no (comm)", pid)
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 2 {
		return 0, "", fmt.Errorf("/proc/%d/stat: no parent pid", pid)
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, "", fmt.Errorf("/proc/%d/stat: parent pid: %w", pid, err)
	}
	return ppid, string(b[open+1 : end]), nil
}
