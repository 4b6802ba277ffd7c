package namespace

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// TestExecScriptOpen: the tracepoint backend's script record becomes the
// script's file_open, made by the task before the exec under its name
// then, ahead of the interpreter's open; two scripts with the same
// interpreter differ there (and only there: the task id is the
// interpreter's).
func TestExecScriptOpen(t *testing.T) {
	run := func(script string) []*events.Event {
		reg := NewRegistry(RegistryOptions{})
		ns, _ := reg.Create(Options{Origin: OriginRun})
		var got []*events.Event
		d := NewDispatcher(reg, nil)
		d.OnEvent = func(n *Namespace, e *events.Event, res Result) { got = append(got, e) }
		id := ns.ID()
		exec := &bpf.Exec{Header: hdr(bpf.RecExec, id, 3, 2, "script"), PrevTTD: 2, File: binary("/usr/bin/dash")}
		exec.Flags |= bpf.FlagObserved
		for _, r := range []bpf.Record{
			&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 2, 0, "sh"), File: binary("/etc/profile")},
			&bpf.ExecScript{Header: hdr(bpf.RecExecScript, id, 2, 0, "script"), File: binary(script)},
			exec,
			&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 3, 0, "script"), File: binary("/etc/hostname")},
		} {
			if err := d.Dispatch(r); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	a, b := run("/opt/a.sh"), run("/opt/b.sh")
	if len(a) != 4 {
		t.Fatalf("%d events; want the open, the script's, the interpreter's and the script's own open", len(a))
	}
	for i, want := range []string{"/etc/profile", "/opt/a.sh", "/usr/bin/dash", "/etc/hostname"} {
		if p := a[i].Payload.(*events.FileEvent).File.Path.Pathname; p != want {
			t.Errorf("event %d opens %q; want %q", i, p, want)
		}
	}
	if h := a[1].Header; h.Type != "file_open" || h.Process != "sh" || h.TTD != 2 || h.TaskID != a[0].Header.TaskID {
		t.Errorf("script open header %+v; want file_open by sh (TTD 2, its task id)", h)
	}
	if a[3].Header.TaskID != b[3].Header.TaskID {
		t.Errorf("task id of the program differs between scripts (%x, %x); want the interpreter's for both", a[3].Header.TaskID, b[3].Header.TaskID)
	}
	if a[1].Payload.(*events.FileEvent).File.Path.Pathname == b[1].Payload.(*events.FileEvent).File.Path.Pathname {
		t.Error("the two runs' script opens name the same script")
	}

	// A script the kernel could not find: named by path, unhashable.
	reg := NewRegistry(RegistryOptions{})
	ns, _ := reg.Create(Options{Origin: OriginRun})
	var res []Result
	d := NewDispatcher(reg, nil)
	d.OnEvent = func(n *Namespace, e *events.Event, r Result) { res = append(res, r) }
	r := &bpf.ExecScript{Header: hdr(bpf.RecExecScript, ns.ID(), 2, 0, "x"), File: bpf.File{Path: bpf.Path{Name: "./x.sh", Flags: bpf.PathDetached}}}
	if err := d.Dispatch(r); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Unlearned {
		t.Errorf("results %+v; want one unlearned event", res)
	}
}

// TestUnhashableNeverInModel: an event whose file could not be hashed is
// not learned, and sealed it is forensics, even when the same unhashable
// event was seen while learning.
func TestUnhashableNeverInModel(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "payload")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := bpf.File{Present: true, Flags: 0x8000, Inode: inodeOf(t, p), Path: bpf.Path{Name: p}}
	gone := f
	gone.Path.Name = filepath.Join(dir, "gone") // never reachable, never hashed: unhashable
	gone.Inode.Ino++

	reg := NewRegistry(RegistryOptions{})
	ns, _ := reg.Create(Options{Origin: OriginRun})
	var res []Result
	d := NewDispatcher(reg, events.NewDigestCache(events.DigestOptions{ProcRoot: filepath.Join(dir, "noproc")}))
	d.OnEvent = func(n *Namespace, e *events.Event, r Result) { res = append(res, r) }
	id := ns.ID()
	open := func(f bpf.File) {
		t.Helper()
		if err := d.Dispatch(&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, id, 2, 0, "cat"), File: f}); err != nil {
			t.Fatal(err)
		}
	}
	open(f)
	open(gone)
	if len(res) != 2 || res[0].Unlearned || !res[1].Unlearned || res[1].New {
		t.Fatalf("learning: results %+v; want the hashed open learned, the unhashable one not", res)
	}
	if st := ns.Stats(); st.Unlearned != 1 || st.Events != 1 || ns.Model().Len() != 1 {
		t.Errorf("learning: stats %+v, %d points; want 1 event, 1 unlearned, 1 point", st, ns.Model().Len())
	}
	if err := ns.Seal(); err != nil {
		t.Fatal(err)
	}
	res = nil
	open(f)
	open(gone)
	if len(res) != 2 || res[0].Forensic || !res[1].Forensic || res[1].Unlearned {
		t.Errorf("sealed: results %+v; want the hashed open in the model, the unhashable one forensics", res)
	}
	if !ns.Untrusted(2) {
		t.Error("the task of the unhashable open is not untrusted")
	}
}

// TestPseudonymNotRead: a file whose pathname is a pseudonym of the
// model is described with the zero digest, as TSEM does, whatever its
// content and whether or not it could be hashed (the runtime's
// per-instance file is gone once the container is removed): learned, and
// in the model once sealed.
func TestPseudonymNotRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hostname")
	if err := os.WriteFile(p, []byte("instance-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hashed := bpf.File{Present: true, Inode: inodeOf(t, p), Path: bpf.Path{Name: p}}
	gone := hashed
	gone.Inode.Ino++ // not the file at p any more: unhashable

	reg := NewRegistry(RegistryOptions{})
	ns, _ := reg.Create(Options{Origin: OriginContainer})
	ns.Model().AddPseudonym(model.PseudonymOf(p))
	var res []Result
	var descs []*events.Event
	digests := events.NewDigestCache(events.DigestOptions{ProcRoot: filepath.Join(dir, "noproc")})
	d := NewDispatcher(reg, digests)
	d.OnEvent = func(n *Namespace, e *events.Event, r Result) { res, descs = append(res, r), append(descs, e) }
	open := func(f bpf.File) {
		t.Helper()
		if err := d.Dispatch(&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, ns.ID(), 2, 0, "cat"), File: f}); err != nil {
			t.Fatal(err)
		}
	}
	open(hashed)
	open(gone)
	if len(res) != 2 || !res[0].New || res[1].Unlearned || res[1].New {
		t.Fatalf("learning: results %+v; want one point, the unhashable open of the pseudonym its repeat", res)
	}
	for i, e := range descs {
		if got := e.File().Digest; got != events.EmptyDigest {
			t.Errorf("event %d: digest %x; want the zero digest of a pseudonym", i, got)
		}
	}
	if st := digests.Stats(); st.Misses+st.Hits != 0 {
		t.Errorf("digest cache %+v; want the pseudonym's file not read", st)
	}
	if err := ns.Seal(); err != nil {
		t.Fatal(err)
	}
	res = nil
	open(gone)
	if len(res) != 1 || res[0].Forensic {
		t.Errorf("sealed: results %+v; want the pseudonym's open in the model", res)
	}
	// An event converted without the namespace's pseudonyms (its file
	// unhashable) is described and mapped the same way by Add.
	conv := &events.Converter{Digests: digests, Tasks: reg.Tasks()}
	e, err := conv.Convert(&bpf.FileOpen{Header: hdr(bpf.RecFileOpen, ns.ID(), 2, 0, "cat"), File: gone})
	if err != nil || !e.HasUnhashableFile() {
		t.Fatalf("Convert = %v, unhashable %v; want an unhashable file", err, e != nil && e.HasUnhashableFile())
	}
	if r, _ := ns.Add(e); r.Forensic || r.Unlearned || e.File().Digest != events.EmptyDigest {
		t.Errorf("Add(unhashable pseudonym) = %+v, digest %x; want it in the model with the zero digest", r, e.File().Digest)
	}
}

// inodeOf describes a real file as the kernel reports it.
func inodeOf(t *testing.T, path string) bpf.Inode {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return bpf.Inode{
		Ino: st.Ino, Size: uint64(st.Size), Mode: st.Mode, UID: st.Uid, GID: st.Gid, SMagic: 0xef53,
		CTimeSec: st.Ctim.Sec, CTimeNsec: uint32(st.Ctim.Nsec), MTimeSec: st.Mtim.Sec, MTimeNsec: uint32(st.Mtim.Nsec),
		DevMajor: unix.Major(st.Dev), DevMinor: unix.Minor(st.Dev),
	}
}
