package namespace

import (
	"sync"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// Tasks maps the kernel's task trust domains (TTDs) to TSEM task ids.
//
// The kernel gives a task a new TTD at every exec (and at its first event
// after it is enrolled), never reusing one while the capture is open; a
// forked task keeps its parent's TTD, and its PTTD is that TTD. So a TTD
// names one exec, and the TSEM identity follows from the exec alone:
//
//	task_id(TTD)   = model.TaskID(task_id(PTTD), file cell of the exec)
//	p_task_id      = task_id(PTTD)
//
// which is TSEM's rule (a fork copies task_id and makes it the child's
// p_task_id; an exec derives task_id from p_task_id and the executed file,
// never from the credentials). A TTD with PTTD 0 is
// the root of a namespace (the task `vigil run` enrolled): its task id is
// zero bytes of the namespace's hash length, so a namespace's identities do
// not depend on whatever ran it. Task ids are computed with the hash and
// dialect of the namespace the exec happened in (a TTD never changes
// namespace).
// Nothing is keyed by PID, which the kernel recycles.
//
// Entries are reference counted by the tasks that carry a TTD as their TTD
// or PTTD (fork, exec and exit records); an entry no task uses is kept a
// while longer (sockets and kill targets name TTDs of tasks that may be
// gone) and then dropped. Tasks is safe for concurrent use.
type Tasks struct {
	mu      sync.RWMutex
	domains map[uint64]*domain
	retired []uint64
	maxIdle int

	unknown atomic.Uint64
	live    atomic.Int64
}

type domain struct {
	id      events.Digest
	process string // the name of the domain's last task seen
	refs    int
	idle    bool // queued in retired
}

// NewTasks returns an empty table that keeps up to maxIdle unused domains
// (default 4096 when maxIdle <= 0).
func NewTasks(maxIdle int) *Tasks {
	if maxIdle <= 0 {
		maxIdle = 4096
	}
	return &Tasks{domains: make(map[uint64]*domain), maxIdle: maxIdle}
}

var _ events.TaskIDs = (*Tasks)(nil)

// TaskID returns the task id of ttd: the one its exec gave it, the zero
// Digest (zero bytes of the namespace's hash length) for a namespace root
// or 0. An unknown TTD (its exec record was lost) also gives zeros and is
// counted in Unknown.
func (t *Tasks) TaskID(ttd uint64) events.Digest {
	if ttd == 0 {
		return events.Digest{}
	}
	t.mu.RLock()
	d, ok := t.domains[ttd]
	t.mu.RUnlock()
	if !ok {
		t.unknown.Add(1)
		return events.Digest{}
	}
	return d.id
}

// Unknown counts lookups of TTDs the table had never heard of.
func (t *Tasks) Unknown() uint64 { return t.unknown.Load() }

// Live returns the number of tasks seen to start (enrolled roots and forks)
// and not yet seen to exit.
func (t *Tasks) Live() int64 { return t.live.Load() }

// Len returns the number of domains held.
func (t *Tasks) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.domains)
}

// Process returns the task name last seen in ttd.
func (t *Tasks) Process(ttd uint64) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if d, ok := t.domains[ttd]; ok && d.process != "" {
		return d.process, true
	}
	return "", false
}

// Seen notes a record's task: a TTD first met with PTTD 0 is a namespace
// root and gets the zero task id; the task name is remembered for the
// domain (an exec's file_open is reported under the name before the exec).
func (t *Tasks) Seen(h *bpf.Header) {
	if h.TTD == 0 || h.Type == bpf.RecExec || h.Type == bpf.RecTaskExit {
		return
	}
	name := h.Process()
	t.mu.RLock()
	d, ok := t.domains[h.TTD]
	same := ok && d.process == name
	t.mu.RUnlock()
	if same {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok = t.domains[h.TTD]
	if !ok {
		if h.PTTD != 0 {
			// A domain that should have come from an exec record:
			// it was lost. Its id stays unknown (zeros).
			t.unknown.Add(1)
		}
		d = &domain{refs: 1}
		t.domains[h.TTD] = d
		if h.PTTD == 0 {
			t.live.Add(1) // an enrolled root
		}
	}
	d.process = name
}

// Exec records that the task of r executed file (the exec's file cell, see
// events.Converter.ExecFile) and so got the TTD r.TTD, and returns its task
// id, computed with mp, the mapping (hash and dialect) of the task's
// namespace.
func (t *Tasks) Exec(r *bpf.Exec, file *events.File, mp model.Mapping) model.Coefficient {
	id := mp.TaskID(t.TaskID(r.PTTD), file)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.domains[r.PrevTTD]; !ok && r.PTTD == 0 {
		// An enrolled root whose first event is its exec: its domain
		// before the exec has the zero id.
		t.live.Add(1)
		if r.PrevTTD != 0 {
			t.domains[r.PrevTTD] = &domain{refs: 1}
		}
	}
	d, ok := t.domains[r.TTD]
	if !ok {
		d = &domain{}
		t.domains[r.TTD] = d
	}
	d.id = id
	d.refs++
	d.process = r.Process()
	if r.PrevTTD != r.TTD {
		t.release(r.PrevTTD)
	}
	return id
}

// Fork records that a task of TTD r.TTD forked: the child carries that TTD
// twice (as TTD and PTTD).
func (t *Tasks) Fork(r *bpf.TaskFork) {
	t.live.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.domains[r.ChildTTD]; ok {
		d.refs += 2
		d.idle = false
	}
}

// Exit records that the task of r exited.
func (t *Tasks) Exit(r *bpf.TaskExit) {
	t.live.Add(-1)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.release(r.TTD)
	t.release(r.PTTD)
}

// release drops one reference; t.mu must be held.
func (t *Tasks) release(ttd uint64) {
	d, ok := t.domains[ttd]
	if !ok || ttd == 0 {
		return
	}
	if d.refs > 0 {
		d.refs--
	}
	if d.refs > 0 || d.idle {
		return
	}
	d.idle = true
	t.retired = append(t.retired, ttd)
	for len(t.retired) > t.maxIdle {
		old := t.retired[0]
		t.retired = t.retired[1:]
		if o, ok := t.domains[old]; ok && o.idle && o.refs == 0 {
			delete(t.domains, old)
		}
	}
}
