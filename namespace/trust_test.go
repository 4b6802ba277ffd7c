package namespace

import (
	"github.com/vigil-tsem/vigil/bpf"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// TestRelativesInModel: an event the model holds as made by the exec'd
// task is in the model for its threads and forked children (p_task_id =
// the task id), and the reverse; another task id, or a child whose exec
// parent was never seen, is not.
func TestRelativesInModel(t *testing.T) {
	id := func(b byte) events.Digest { var a [32]byte; a[0] = b; return events.Digest32(a) }
	const (
		exe    = 1 // the exec'd task's id
		parent = 2 // the task that exec'd it
		other  = 3
	)
	event := func(task, ptask events.Digest) *events.Event {
		return &events.Event{
			Header:  events.Header{Type: "file_open", Process: "cat", TaskID: task, PTaskID: ptask},
			Payload: &events.FileEvent{File: events.File{Flags: 0x8000, Path: events.Path{Type: "root", Pathname: "/tmp/a"}, Digest: events.EmptyDigest}},
		}
	}
	learn := func(e *events.Event) *model.Model {
		m := model.New(model.Options{})
		c, err := model.EventCoefficient(e, m.IsPseudonym)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Add(c, e.AppendTSEM(nil)); err != nil {
			t.Fatal(err)
		}
		m.Seal()
		return m
	}
	byMain := learn(event(id(exe), id(parent)))
	byThread := learn(event(id(exe), id(exe)))
	tests := []struct {
		name string
		m    *model.Model
		seen []*events.Event // events seen before, for the exec parents
		e    *events.Event
		want bool
	}{
		{"thread does what the main thread learned", byMain, []*events.Event{event(id(exe), id(parent))}, event(id(exe), id(exe)), true},
		{"main thread does what a thread learned", byThread, nil, event(id(exe), id(parent)), true},
		{"thread, exec parent never seen", byMain, nil, event(id(exe), id(exe)), false},
		{"another task's thread", byMain, []*events.Event{event(id(other), id(parent))}, event(id(other), id(other)), false},
		{"another exec'd task", byThread, nil, event(id(other), id(parent)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Relatives
			for _, e := range tc.seen {
				r.See(e)
			}
			r.See(tc.e)
			if got := r.InModel(tc.m, tc.e); got != tc.want {
				t.Errorf("inModel = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestUntrust: only an event the kernel passed on its exact key, out of
// the model, in an enforcing namespace, makes the task untrusted.
func TestUntrust(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	n, err := reg.Create(Options{Origin: OriginRun})
	if err != nil {
		t.Fatal(err)
	}
	e := &events.Event{
		Header:  events.Header{Type: "file_open", Process: "cat"},
		Payload: &events.FileEvent{File: events.File{Flags: 0x8000, Path: events.Path{Type: "root", Pathname: "/tmp/b"}, Digest: events.EmptyDigest}},
	}
	open := &bpf.FileOpen{Header: bpf.Header{Type: bpf.RecFileOpen}}
	denied := &bpf.FileOpen{Header: bpf.Header{Type: bpf.RecFileOpen, Flags: bpf.FlagDenied}}
	anon := &bpf.MmapFile{Header: bpf.Header{Type: bpf.RecMmapFile}, Prot: 0x3, MmapFlags: 0x22}
	forensic := Result{AddResult: model.AddResult{Forensic: true}}

	var r Relatives
	if r.Untrust(n, open, e, forensic) {
		t.Fatal("untrusted while the namespace learns")
	}
	if err := n.Enforce(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  bpf.Record
		res  Result
		want bool
	}{
		{"passed on its key, out of the model", open, forensic, true},
		{"in the model", open, Result{}, false},
		{"denied by the kernel already", denied, forensic, false},
		{"anonymous mapping passed by policy", anon, forensic, false},
		{"no record", nil, forensic, false},
	}
	for _, tc := range tests {
		if got := r.Untrust(n, tc.rec, e, tc.res); got != tc.want {
			t.Errorf("%s: Untrust = %v; want %v", tc.name, got, tc.want)
		}
	}
}
