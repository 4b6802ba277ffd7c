package namespace

import (
	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// Relatives knows, per task id, the p_task_id of the task that exec'd into
// it: the events of that task carry it, while its threads and forked
// children carry the task id itself as their p_task_id (as in TSEM). Which
// of them makes an event is up to a runtime's scheduler (a Go program's
// second read may run on another thread than its first), so an event the
// model holds as made by the other kind of task of the same executable
// identity is forensics but does not make the task untrusted.
//
// A Relatives is used by one goroutine (the reader's); the zero value is
// ready to use.
type Relatives struct {
	parent map[events.Digest]events.Digest
}

// See notes the task identity of e.
func (r *Relatives) See(e *events.Event) {
	if e.Header.PTaskID == e.Header.TaskID {
		return
	}
	if r.parent == nil {
		r.parent = make(map[events.Digest]events.Digest)
	}
	r.parent[e.Header.TaskID] = e.Header.PTaskID
}

// InModel reports whether m holds e as made by the exec'd task (when a
// thread or forked child made it) or by a thread or child (when the exec'd
// task made it).
func (r *Relatives) InModel(m *model.Model, e *events.Event) bool {
	alt := *e
	if e.Header.PTaskID != e.Header.TaskID {
		alt.Header.PTaskID = e.Header.TaskID
	} else if p, ok := r.parent[e.Header.TaskID]; ok {
		alt.Header.PTaskID = p
	} else {
		return false
	}
	c, err := m.Coefficient(&alt)
	return err == nil && m.Contains(c)
}

// Untrust reports whether the task that made e (decoded from rec) must
// be marked untrusted in an enforcing namespace n: the kernel passed the
// event on its exact allow key (bpf.Decides is DecideKey, the record is
// not FlagDenied) but the event is out of the model by what the key
// cannot see (a file's digest, a task id). Events the kernel passes by
// policy or keys coarsely on purpose stay forensics only, and so does an
// event the model holds as made by another task of the same process (r).
// Call it after See(e).
func (r *Relatives) Untrust(n *Namespace, rec bpf.Record, e *events.Event, res Result) bool {
	return res.Forensic && rec != nil && n.Mode() == Enforcing &&
		rec.Head().Flags&bpf.FlagDenied == 0 &&
		bpf.Decides(rec) == bpf.DecideKey &&
		!r.InModel(n.Model(), e)
}
