package namespace

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

var testCOE = bpf.COE{UID: 1000, EUID: 1000, SUID: 1000, GID: 100, EGID: 100, SGID: 100, FSUID: 1000, FSGID: 100}

func hdr(typ bpf.RecordType, ns, ttd, pttd uint64, comm string) bpf.Header {
	h := bpf.Header{Type: typ, NS: ns, TTD: ttd, PTTD: pttd, COE: testCOE, PID: uint32(100 + ttd), TGID: uint32(100 + ttd)}
	copy(h.Comm[:], comm)
	return h
}

// binary is a file on a block device with content-free digest handling
// (the dispatcher in these tests has no digest cache).
func binary(name string) bpf.File {
	return bpf.File{Present: true, Flags: 0x8020, Inode: bpf.Inode{Mode: 0o100755, SMagic: 0xef53, DevMajor: 8, DevMinor: 3}, Path: bpf.Path{Name: name}}
}

// setuid gives h the credentials of a set-uid root exec.
func setuid(h bpf.Header) bpf.Header {
	h.COE.EUID, h.COE.SUID, h.COE.FSUID = 0, 0, 0
	return h
}

// cellFile is the file cell of an executed file as the dispatcher hashes it.
func cellFile(f bpf.File) events.File {
	return events.File{
		Flags: events.ExecFlags,
		Inode: events.Inode{Mode: f.Inode.Mode, SMagic: f.Inode.SMagic},
		Path:  events.Path{HasDev: true, Dev: events.Dev{Major: f.Inode.DevMajor, Minor: f.Inode.DevMinor}, Type: "root", Pathname: f.Path.Name},
		// The dispatcher under test has no digest cache.
		Digest: events.EmptyDigest,
	}
}

func TestTaskIdentityChain(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	ns, err := reg.Create(Options{Origin: OriginRun})
	if err != nil {
		t.Fatal(err)
	}
	var got []*events.Event
	d := NewDispatcher(reg, nil)
	d.OnEvent = func(n *Namespace, e *events.Event, res Result) { got = append(got, e) }
	id := ns.ID()
	sh, cat := binary("/usr/bin/sh"), binary("/usr/bin/cat")
	catRec := cat
	catRec.Flags = 0x8000
	records := []bpf.Record{
		// The enrolled stub (TTD 1, PTTD 0) execs sh: TTD 2.
		&bpf.Exec{Header: hdr(bpf.RecExec, id, 2, 0, "sh"), PrevTTD: 1, File: sh},
		&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 2, 0, "sh"), File: binary("/etc/profile")},
		// sh forks; the child execs cat: TTD 3, PTTD 2.
		&bpf.TaskFork{Header: hdr(bpf.RecTaskFork, id, 2, 0, "sh"), ChildPID: 200, ChildTGID: 200, ChildTTD: 2},
		// A set-uid exec with flags the struct file need not show: the
		// task id depends on neither.
		&bpf.Exec{Header: setuid(hdr(bpf.RecExec, id, 3, 2, "cat")), PrevTTD: 2, File: catRec},
		&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 3, 2, "cat"), File: binary("/etc/hostname")},
		// A record of another namespace never reaches this one.
		&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id+1, 9, 0, "other"), File: binary("/etc/shadow")},
		&bpf.TaskExit{Header: hdr(bpf.RecTaskExit, id, 3, 2, "cat")},
	}
	for _, r := range records {
		if err := d.Dispatch(r); err != nil {
			t.Fatal(err)
		}
	}
	shFile, catFile := cellFile(sh), cellFile(cat)
	shID := model.TaskID(model.Coefficient{}, &shFile)
	catID := model.TaskID(shID, &catFile)
	if len(got) != 2 {
		t.Fatalf("got %d events; want the 2 file opens of the namespace", len(got))
	}
	if e := got[0]; e.Header.TaskID != shID || e.Header.PTaskID != model.SHA256.Zero() {
		t.Errorf("sh: task_id %x p_task_id %x; want %x and zeros", e.Header.TaskID, e.Header.PTaskID, shID)
	}
	if e := got[1]; e.Header.TaskID != catID || e.Header.PTaskID != shID {
		t.Errorf("cat: task_id %x p_task_id %x; want %x and %x", e.Header.TaskID, e.Header.PTaskID, catID, shID)
	}
	if e := got[1]; e.Header.Context != id || e.Header.Number != 2 || e.Header.TTD != 3 || e.Header.PTTD != 2 {
		t.Errorf("cat header = %+v", e.Header)
	}
	if d.Foreign() != 1 {
		t.Errorf("Foreign = %d; want 1", d.Foreign())
	}
	if n := reg.Tasks().Unknown(); n != 0 {
		t.Errorf("Unknown = %d; want 0", n)
	}
	if n := reg.Tasks().Live(); n != 1 {
		t.Errorf("Live = %d; want 1 (sh runs, cat exited)", n)
	}
}

func TestObservedExecReportsItsOpen(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	ns, _ := reg.Create(Options{Origin: OriginRun})
	var got []*events.Event
	d := NewDispatcher(reg, nil)
	d.OnEvent = func(n *Namespace, e *events.Event, res Result) { got = append(got, e) }
	id := ns.ID()
	for _, r := range []bpf.Record{
		&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 2, 0, "sh"), File: binary("/etc/profile")},
		&bpf.TaskFork{Header: hdr(bpf.RecTaskFork, id, 2, 0, "sh"), ChildTTD: 2},
		func() bpf.Record {
			r := &bpf.Exec{Header: hdr(bpf.RecExec, id, 3, 2, "cat"), PrevTTD: 2, File: binary("/usr/bin/cat")}
			r.Flags |= bpf.FlagObserved
			return r
		}(),
	} {
		if err := d.Dispatch(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %d events; want the open and the exec's open", len(got))
	}
	e := got[1]
	if e.Header.Type != "file_open" || e.Header.Process != "sh" || e.Header.TTD != 2 {
		t.Errorf("exec open header = %+v; want file_open by sh in TTD 2", e.Header)
	}
	if p := e.Payload.(*events.FileEvent); p.File.Path.Pathname != "/usr/bin/cat" {
		t.Errorf("exec open of %q; want /usr/bin/cat", p.File.Path.Pathname)
	}
}

func TestTasksForget(t *testing.T) {
	tasks := NewTasks(2)
	for ttd := uint64(1); ttd <= 10; ttd++ {
		h := hdr(bpf.RecExec, 1, ttd, 0, "x")
		f := events.File{}
		tasks.Exec(&bpf.Exec{Header: h, PrevTTD: 0}, &f, model.Mapping{})
		tasks.Exit(&bpf.TaskExit{Header: hdr(bpf.RecTaskExit, 1, ttd, 0, "x")})
	}
	if n := tasks.Len(); n > 3 {
		t.Errorf("Len = %d after 10 exec+exit with 2 idle kept; want at most 3", n)
	}
	// A live domain is never forgotten.
	live := NewTasks(1)
	f := events.File{}
	id := live.Exec(&bpf.Exec{Header: hdr(bpf.RecExec, 1, 100, 0, "live")}, &f, model.Mapping{})
	for ttd := uint64(1); ttd <= 10; ttd++ {
		live.Exec(&bpf.Exec{Header: hdr(bpf.RecExec, 1, ttd, 0, "x")}, &f, model.Mapping{})
		live.Exit(&bpf.TaskExit{Header: hdr(bpf.RecTaskExit, 1, ttd, 0, "x")})
	}
	if got := live.TaskID(100); got != id {
		t.Errorf("TaskID(live) = %x; want %x", got, id)
	}
}

func TestUnknownTTDIsCounted(t *testing.T) {
	tasks := NewTasks(0)
	if got := tasks.TaskID(42); got != (events.Digest{}) {
		t.Errorf("TaskID(unknown) = %x; want zeros", got)
	}
	if tasks.Unknown() != 1 {
		t.Errorf("Unknown = %d; want 1", tasks.Unknown())
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry(RegistryOptions{FirstID: 7})
	a, err := reg.Create(Options{Origin: OriginRun})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != 7 || a.Name() != "run-7" || a.Mode() != Learning {
		t.Errorf("first namespace = %d %q %s; want 7 run-7 learning", a.ID(), a.Name(), a.Mode())
	}
	b, err := reg.Create(Options{Name: "web", Origin: OriginContainer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(Options{Name: "web"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v; want ErrExists", err)
	}
	if n, ok := reg.Lookup("web"); !ok || n != b {
		t.Errorf("Lookup(web) = %v, %v", n, ok)
	}
	if err := reg.Remove(a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Get(7); ok {
		t.Error("namespace 7 still there after Remove")
	}
	c, _ := reg.Create(Options{})
	if c.ID() != 9 {
		t.Errorf("id after removal = %d; want 9 (ids are never reused)", c.ID())
	}
	if l := reg.List(); len(l) != 2 || l[0] != b || l[1] != c {
		t.Errorf("List = %v", l)
	}
	if err := reg.Remove(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(99) = %v; want ErrNotFound", err)
	}
}

func TestModes(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	n, _ := reg.Create(Options{})
	if err := n.Enforce(); err != nil {
		t.Fatal(err)
	}
	if n.Mode() != Enforcing || !n.Model().Sealed() {
		t.Errorf("mode %s sealed %v; want enforcing and sealed", n.Mode(), n.Model().Sealed())
	}
	if err := n.Seal(); !errors.Is(err, ErrMode) {
		t.Errorf("Seal after Enforce = %v; want ErrMode", err)
	}
	sealed := model.New(model.Options{})
	sealed.Seal()
	m, _ := reg.Create(Options{Model: sealed})
	if m.Mode() != Sealed {
		t.Errorf("namespace of a sealed model is %s; want sealed", m.Mode())
	}
}

func TestAddForensics(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	n, _ := reg.Create(Options{KTime: 1000})
	conv := &events.Converter{Tasks: reg.Tasks()}
	open := func(path string, ttd uint64) *events.Event {
		e, err := conv.Convert(&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, n.ID(), ttd, 0, "app"), File: binary(path)})
		if err != nil {
			t.Fatal(err)
		}
		e.Header.TS = 1500
		return e
	}
	res, err := n.Add(open("/etc/a", 1))
	if err != nil || !res.New || res.Forensic {
		t.Fatalf("learning Add = %+v, %v; want a new model point", res, err)
	}
	if err := n.Seal(); err != nil {
		t.Fatal(err)
	}
	if res, _ := n.Add(open("/etc/a", 1)); res.New || res.Forensic {
		t.Errorf("in-model Add = %+v; want a repeat", res)
	}
	res, _ = n.Add(open("/etc/b", 2))
	if !res.Forensic || !n.Untrusted(2) || n.Untrusted(1) {
		t.Errorf("out-of-model Add = %+v, untrusted(2)=%v untrusted(1)=%v", res, n.Untrusted(2), n.Untrusted(1))
	}
	fs := n.Model().Forensics()
	if len(fs) != 1 || !strings.Contains(string(fs[0].Description), `"pathname": "/etc/b"`) || !strings.Contains(string(fs[0].Description), `"ts": "500"`) {
		t.Errorf("forensics = %+v", fs)
	}
	st := n.Stats()
	if st.Events != 3 || st.ForensicEvents != 1 || st.UntrustedTasks != 1 {
		t.Errorf("stats = %+v", st)
	}
	// The coefficient Add reports is the one the model computes from the
	// description it stored.
	back, err := events.Parse(fs[0].Description)
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.EventCoefficient(back, nil)
	if err != nil || c != res.Coefficient || c != fs[0].Coefficient {
		t.Errorf("coefficient from the stored description %x, %v; Add said %x", c, err, res.Coefficient)
	}
}

func TestUnmodeledAndGaps(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	n, _ := reg.Create(Options{})
	// settime has a kernel cell layout the model does not implement.
	e := &events.Event{Header: events.Header{Type: "settime", Process: "date"}, Payload: &events.Generic{}}
	res, err := n.Add(e)
	if err != nil || !res.Unmodeled {
		t.Errorf("Add(settime) = %+v, %v; want unmodeled", res, err)
	}
	n.RecordGap(0, "none") // nothing lost: no gap
	n.RecordGap(3, "ringbuf_full")
	st := n.Stats()
	if st.Unmodeled != 1 || st.UnmodeledTypes["settime"] != 1 || st.Lost != 3 || len(n.Gaps()) != 1 || n.Model().Len() != 0 {
		t.Errorf("stats = %+v gaps %v", st, n.Gaps())
	}
}

func BenchmarkDispatch(b *testing.B) {
	reg := NewRegistry(RegistryOptions{})
	n, _ := reg.Create(Options{})
	d := NewDispatcher(reg, nil)
	d.Dispatch(&bpf.Exec{Header: hdr(bpf.RecExec, n.ID(), 2, 0, "sh"), PrevTTD: 1, File: binary("/usr/bin/sh")})
	recs := make([]bpf.Record, 64)
	for i := range recs {
		// A working set of 64 distinct files: mostly repeated points.
		recs[i] = &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, n.ID(), 2, 0, "sh"), File: binary("/usr/lib/lib" + string(rune('a'+i%26)) + strings.Repeat("x", i) + ".so")}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Dispatch(recs[i&63]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestRootExecIsKnown: the enrolled stub's first event is its exec (the
// tracepoint backend saw nothing before it); its domain before the exec is
// a namespace root with the zero id, not an unknown one.
func TestRootExecIsKnown(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	ns, _ := reg.Create(Options{Origin: OriginRun})
	var got []*events.Event
	d := NewDispatcher(reg, nil)
	d.RootProcess = "stub"
	d.OnEvent = func(n *Namespace, e *events.Event, res Result) { got = append(got, e) }
	r := &bpf.Exec{Header: hdr(bpf.RecExec, ns.ID(), 2, 0, "sh"), PrevTTD: 1, File: binary("/usr/bin/sh")}
	r.Flags |= bpf.FlagObserved
	if err := d.Dispatch(r); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Header.Process != "stub" || got[0].Header.TaskID != model.SHA256.Zero() || got[0].Header.TTD != 1 {
		t.Fatalf("events = %+v; want the stub's open of sh with the zero task id", got)
	}
	if n := reg.Tasks().Unknown(); n != 0 {
		t.Errorf("Unknown = %d; want 0", n)
	}
	if n := reg.Tasks().Live(); n != 1 {
		t.Errorf("Live = %d; want 1", n)
	}
	d.Dispatch(&bpf.TaskExit{Header: hdr(bpf.RecTaskExit, ns.ID(), 2, 0, "sh")})
	if n := reg.Tasks().Live(); n != 0 {
		t.Errorf("Live after exit = %d; want 0", n)
	}
}

// TestDialectAcrossInstances runs the same program twice, as two instances
// of a container do: its binary and the file it opens are on a new
// overlayfs mount each time (another s_uuid, another anonymous device
// minor). An invariant namespace learns one model from both; a TSEM one
// two.
func TestDialectAcrossInstances(t *testing.T) {
	overlay := func(name string, uuid byte, minor uint32) bpf.File {
		return bpf.File{Present: true, Flags: 0x8020, Inode: bpf.Inode{Mode: 0o100755, SMagic: 0x794c7630, SUUID: [16]byte{uuid}, DevMinor: minor}, Path: bpf.Path{Name: name}}
	}
	for _, tc := range []struct {
		dialect model.Dialect
		points  int
	}{{model.DialectInvariant, 1}, {model.DialectTSEM, 2}} {
		t.Run(tc.dialect.String(), func(t *testing.T) {
			reg := NewRegistry(RegistryOptions{})
			ns, err := reg.Create(Options{Origin: OriginContainer, Dialect: tc.dialect})
			if err != nil {
				t.Fatal(err)
			}
			d := NewDispatcher(reg, nil)
			id := ns.ID()
			for i, inst := range []struct {
				uuid  byte
				minor uint32
			}{{1, 81}, {2, 97}} {
				ttd := uint64(10 * (i + 1))
				for _, r := range []bpf.Record{
					&bpf.Exec{Header: hdr(bpf.RecExec, id, ttd, 0, "app"), PrevTTD: ttd - 1, File: overlay("/app", inst.uuid, inst.minor)},
					&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, ttd, 0, "app"), File: overlay("/etc/app.conf", inst.uuid, inst.minor)},
				} {
					if err := d.Dispatch(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := ns.Model().Len(); n != tc.points {
				t.Errorf("%s namespace: %d points from two instances; want %d", tc.dialect, n, tc.points)
			}
			if ns.Dialect() != tc.dialect {
				t.Errorf("Dialect = %v; want %v", ns.Dialect(), tc.dialect)
			}
		})
	}
	reg := NewRegistry(RegistryOptions{})
	if _, err := reg.Create(Options{Model: model.New(model.Options{Dialect: model.DialectInvariant})}); !errors.Is(err, ErrDialect) {
		t.Errorf("Create with a model of another dialect: error = %v; want ErrDialect", err)
	}
}
