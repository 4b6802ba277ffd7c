package namespace

import (
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
)

// Dispatcher routes decoded records to their namespaces: lifecycle and
// exec records update the task table, security event records become TSEM
// descriptions in their namespace's model. Records of a namespace the
// registry does not hold (another capture's, the host's when not modeled)
// are counted and dropped. Dispatch may be called from one goroutine at a
// time per capture (records of one task must stay in order).
type Dispatcher struct {
	reg  *Registry
	conv *events.Converter
	// OnEvent, if set, is called after each event is added. With the
	// kernel's repeat cache on (bpf.NamespaceConfig.NoRepeatCache unset),
	// an event repeated within a repeat window is seen here once; its
	// repeats arrive later through OnRepeats.
	OnEvent func(n *Namespace, e *events.Event, res Result)
	// OnRepeats, if set, is called when more occurrences of an event
	// already added are counted in n: the repeats the kernel counted
	// instead of reporting (bpf.RepeatCount).
	OnRepeats func(n *Namespace, r Repeats)
	// RootProcess names an enrolled task before its first exec when no
	// event of it was seen (the tracepoint backend sees no open before an
	// exec): `vigil run` names its stub so, and the BPF LSM reports the
	// stub's open under the same name.
	RootProcess string

	foreign atomic.Uint64
	repeats repeatTable
}

// NewDispatcher returns a dispatcher into reg whose file digests come from
// digests (nil: every file gets events.EmptyDigest).
func NewDispatcher(reg *Registry, digests *events.DigestCache) *Dispatcher {
	return &Dispatcher{reg: reg, conv: &events.Converter{Digests: digests, Tasks: reg.Tasks(), HashOf: reg.hashOf, IsPseudonym: reg.isPseudonym}}
}

// Converter returns the record converter the dispatcher uses.
func (d *Dispatcher) Converter() *events.Converter { return d.conv }

// Tasks returns the task table of the dispatcher's registry.
func (d *Dispatcher) Tasks() *Tasks { return d.reg.tasks }

// Foreign counts records dropped because their namespace is not in the
// registry.
func (d *Dispatcher) Foreign() uint64 { return d.foreign.Load() }

// Dispatch handles one record. The error comes from a namespace's model
// observer (the measurement); the event is recorded anyway.
func (d *Dispatcher) Dispatch(r bpf.Record) error {
	h := r.Head()
	if rc, ok := r.(*bpf.RepeatCount); ok {
		d.dispatchRepeats(rc)
		return nil
	}
	n, ok := d.reg.Get(h.NS)
	if !ok {
		d.foreign.Add(1)
		return nil
	}
	tasks := d.reg.tasks
	switch r := r.(type) {
	case *bpf.TaskFork:
		tasks.Fork(r)
		return nil
	case *bpf.TaskExit:
		tasks.Exit(r)
		return nil
	case *bpf.Exec:
		file := d.conv.ExecFile(r)
		// The name before the exec, for the open the exec made.
		process := d.processBefore(r.PrevTTD, r.PTTD, r.Process())
		tasks.Exec(r, &file, n.Model().Mapping())
		if h.Flags&bpf.FlagObserved == 0 {
			// The LSM backend reports the exec's open itself.
			return nil
		}
		_, err := d.add(n, d.conv.ExecOpen(r, file, process))
		return err
	case *bpf.ExecScript:
		// The script's open, made by the task before the exec (r.TTD)
		// under its name then; not a record of the exec'd program, so
		// the task table does not see it.
		_, err := d.add(n, d.conv.ExecScriptOpen(r, d.processBefore(r.TTD, r.PTTD, r.Process())))
		return err
	}
	tasks.Seen(h)
	e, err := d.conv.Convert(r)
	if err != nil {
		return nil // not a security event: nothing for the model
	}
	res, err := d.add(n, e)
	if h.RepeatID != 0 {
		d.repeats.record(h.RepeatID, repeatTarget{ns: n.ID(), point: res.Ref, rt: h.Type, unmodeled: res.Unmodeled, unlearned: res.Unlearned})
	}
	return err
}

// processBefore is the name a task of TTD ttd had (for the opens an exec
// makes before the task takes the new program's name): the name the task
// table knows, else RootProcess for an enrolled root (pttd 0), else
// fallback.
func (d *Dispatcher) processBefore(ttd, pttd uint64, fallback string) string {
	if process, ok := d.reg.tasks.Process(ttd); ok {
		return process
	}
	if pttd == 0 && d.RootProcess != "" {
		return d.RootProcess
	}
	return fallback
}

func (d *Dispatcher) add(n *Namespace, e *events.Event) (Result, error) {
	res, err := n.Add(e)
	if d.OnEvent != nil {
		d.OnEvent(n, e, res)
	}
	return res, err
}
