package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
)

// spoolFDs returns the open descriptors of this process whose target is a
// deleted description spool in dir.
func spoolFDs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, e := range ents {
		fd := filepath.Join("/proc/self/fd", e.Name())
		target, err := os.Readlink(fd)
		if err == nil && strings.HasPrefix(target, filepath.Join(dir, "vigil-descriptions-")) && strings.HasSuffix(target, " (deleted)") {
			out = append(out, fd)
		}
	}
	return out
}

// TestContainerDescriptionSpool checks the agent's models keep their
// descriptions in an unlinked spool next to the log, serve the trajectory,
// forensics and model file from it exactly as the log recorded them,
// report a damaged spool instead of dropping descriptions, and free the
// spool with the namespace.
func TestContainerDescriptionSpool(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256", Capable: true}, "")
	dir := filepath.Dir(f.path)
	st, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%s holds %d files; want only the log (the spool is unlinked)", dir, len(ents))
	}
	fds := spoolFDs(t, dir)
	if len(fds) != 1 {
		t.Fatalf("open spools in %s: %v; want one", dir, fds)
	}
	learn := readEvents(t, "process_1.json")
	for _, e := range learn {
		if _, err := st.ns.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.tab.Seal(name); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ns.Add(readEvents(t, "process_6.json")[0]); err != nil {
		t.Fatal(err)
	}
	traj, err := f.tab.Trajectory(name)
	if err != nil {
		t.Fatal(err)
	}
	fors, err := f.tab.Forensics(name)
	if err != nil || len(fors) != 1 {
		t.Fatalf("Forensics = %d points, %v; want 1", len(fors), err)
	}
	if info, _ := f.tab.Namespace(name); info.ForensicsPoints != 1 || info.Points != len(traj) {
		t.Errorf("info: %d points, %d forensics points; want %d, 1", info.Points, info.ForensicsPoints, len(traj))
	}
	file, err := f.tab.Model(name)
	if err != nil {
		t.Fatal(err)
	}

	// The descriptions read back are the ones the log recorded.
	if err := f.log.Flush(); err != nil {
		t.Fatal(err)
	}
	logged := loggedDescriptions(t, f.path)
	for _, p := range append(traj, fors...) {
		if want := logged[p.Coefficient]; len(want) == 0 || !bytes.Equal(p.Event, want) {
			t.Fatalf("point %s: description %q; the log has %q", p.Coefficient, p.Event, want)
		}
	}
	loaded, err := model.Load(bytes.NewReader(file), "exported.model")
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range loaded.Trajectory() {
		if !bytes.Equal(d, traj[i].Event) {
			t.Fatalf("exported model's trajectory line %d = %q; want %q", i, d, traj[i].Event)
		}
	}

	// A damaged spool: reads fail with the file and offset, never other
	// bytes and never nothing. (The forensics point is still in the
	// spool's write buffer, which the damage does not reach.)
	w, err := os.OpenFile(fds[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Truncate(10)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	for what, call := range map[string]func() error{
		"Trajectory": func() error { _, err := f.tab.Trajectory(name); return err },
		"Model":      func() error { _, err := f.tab.Model(name); return err },
	} {
		err := call()
		var se *model.SpoolError
		if !errors.As(err, &se) || !errors.Is(err, model.ErrCorruptSpool) || !strings.Contains(err.Error(), "vigil-descriptions-") || !strings.Contains(err.Error(), "offset ") {
			t.Errorf("%s with a truncated spool = %v; want an error naming the spool and the offset", what, err)
		}
	}

	f.tab.remove(st)
	if fds := spoolFDs(t, dir); len(fds) != 0 {
		t.Errorf("spools still open after the namespace was removed: %v", fds)
	}
}

// loggedDescriptions returns the description of every point record of the
// log at path, by coefficient.
func loggedDescriptions(t *testing.T, path string) map[model.Coefficient][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[model.Coefficient][]byte)
	for line := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
		rec, err := measure.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		c, err := measure.ParseContent(rec.Content)
		if err != nil {
			t.Fatal(err)
		}
		if c.Record != measure.RecordPoint {
			continue
		}
		d, err := c.Description()
		if err != nil {
			t.Fatal(err)
		}
		out[c.Coefficient()] = d
	}
	return out
}

func TestMonotonicNow(t *testing.T) {
	for range 3 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		want := uint64(ts.Sec)*uint64(time.Second) + uint64(ts.Nsec)
		got := monotonicNow()
		if d := time.Duration(got - want); got < want || d > 5*time.Millisecond {
			t.Fatalf("monotonicNow() = %d; CLOCK_MONOTONIC just before was %d", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
