package measure

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// openDiskLog opens the log at path with its appends going through a
// measuretest.Disk, without a limit.
func openDiskLog(t testing.TB, path string, reg Register) (*Log, *measuretest.Disk) {
	t.Helper()
	var disk *measuretest.Disk
	l, err := OpenLog(path, reg, LogOptions{Now: fixedNow, WrapFile: func(f *os.File) LogFile {
		disk = measuretest.NewDisk(f)
		return disk
	}})
	if err != nil {
		t.Fatalf("OpenLog(%s) = %v", path, err)
	}
	return l, disk
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitStatus polls l's status until ok holds, failing t after 10s.
func waitStatus(t *testing.T, l *Log, what string, ok func(LogStatus) bool) LogStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := l.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: status %+v", what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkComplete verifies the log at path against reg and the model m of
// its only namespace: every point is there, no gap, every run stopped.
func checkComplete(t *testing.T, path string, reg Register, m *model.Model) *Report {
	t.Helper()
	v, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	ns := rep.Namespaces[0]
	if ns.Points != m.Len() || ns.Measurement != m.Measurement() || ns.Gaps != 0 {
		t.Errorf("log: %d points, measurement %s, %d gaps; model: %d points, %s, none", ns.Points, ns.Measurement, ns.Gaps, m.Len(), m.Measurement())
	}
	if inc := rep.Incomplete(); len(inc) > 0 {
		t.Errorf("Incomplete() = %q; want nothing", inc)
	}
	return rep
}

// A batching log on a full disk: the commit's partial line is cut off and
// nothing written before is touched; the records wait in memory, the
// committer tries again, and once there is room they are all written, in
// order, and the log verifies complete.
func TestLogFullDiskCatchesUp(t *testing.T) {
	events, coefs := trajectory(t)
	tests := []struct {
		name  string
		setup func(d *measuretest.Disk, size int64)
	}{
		{name: "ENOSPC in the middle of a line", setup: func(d *measuretest.Disk, size int64) { d.SetCapacity(size + 100) }},
		{name: "ENOSPC at a line's start", setup: func(d *measuretest.Disk, size int64) { d.SetCapacity(size) }},
		{name: "fdatasync fails", setup: func(d *measuretest.Disk, _ int64) { d.FailSyncs(1 << 30) }},
		{name: "cut back fails too", setup: func(d *measuretest.Disk, size int64) { d.SetCapacity(size + 100); d.FailTruncates(2) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg := NewSoftware(23)
			l, disk := openDiskLog(t, path, reg)
			l.StartBatching(BatchOptions{Retry: 2 * time.Millisecond})
			if _, err := l.BeginRun(); err != nil {
				t.Fatal(err)
			}
			ns, err := l.Namespace(1, "full", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			m := model.New(model.Options{Observer: ns})
			for i := range 10 {
				if _, err := m.Add(coefs[i], events[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			good := readFile(t, path)
			tc.setup(disk, int64(len(good)))
			for i := 10; i < len(coefs); i++ {
				if _, err := m.Add(coefs[i], events[i]); err != nil && !errors.Is(err, ErrLogUnwritable) {
					t.Fatalf("Add(event %d) = %v; want nil or ErrLogUnwritable", i+1, err)
				}
			}
			st := waitStatus(t, l, "a failed commit", func(st LogStatus) bool { return st.Err != nil })
			if !errors.Is(st.Err, ErrLogUnwritable) || st.AppendErrors == 0 || st.Since.IsZero() || st.Unrecorded != 0 {
				t.Errorf("Status() = %+v; want ErrLogUnwritable, append errors, a time, nothing unrecorded", st)
			}
			if err := l.Flush(); !errors.Is(err, ErrLogUnwritable) {
				t.Errorf("Flush on a full disk = %v; want ErrLogUnwritable", err)
			}
			if nst := ns.Status(); nst.Waiting == 0 || nst.Unrecorded != 0 {
				t.Errorf("namespace Status() = %+v; want records waiting, none unrecorded", nst)
			}
			if !strings.HasPrefix(tc.name, "cut back fails") {
				l.mu.Lock()
				got := readFile(t, path)
				l.mu.Unlock()
				if !bytes.Equal(got, good) {
					t.Errorf("after the failed commit the log has %d bytes; want the %d written before, unchanged", len(got), len(good))
				}
			}
			disk.SetCapacity(-1)
			disk.FailSyncs(0)
			waitStatus(t, l, "the log to catch up", func(st LogStatus) bool { return st.Err == nil && st.Waiting == 0 })
			if err := l.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			rep := checkComplete(t, path, reg, m)
			if len(rep.Runs) != 1 || rep.Runs[0].End != RunStopped {
				t.Errorf("runs %+v; want one, stopped", rep.Runs)
			}
			if !bytes.HasPrefix(readFile(t, path), good) {
				t.Error("the records written before the disk was full changed")
			}
		})
	}
}

// With room for part of what waits, the log takes as much as fits (the
// committer halves its batches) and goes on waiting for the rest.
func TestLogFullDiskPartialCatchUp(t *testing.T) {
	events, coefs := trajectory(t)
	// The size of the whole log, written where there is room.
	full := filepath.Join(t.TempDir(), "full.log")
	fl := openLog(t, full, NewSoftware(23))
	learn(t, fl, "partial", events, coefs)
	fl.Close()
	fullSize := int64(len(readFile(t, full)))

	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l, disk := openDiskLog(t, path, reg)
	l.StartBatching(BatchOptions{Retry: 2 * time.Millisecond})
	ns, err := l.Namespace(1, "partial", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Observer: ns})
	size := int64(len(readFile(t, path)))
	disk.SetCapacity(size)
	l.mu.Lock() // every point is queued before the first attempt
	for i := range coefs {
		m.Add(coefs[i], events[i])
	}
	l.mu.Unlock()
	waitStatus(t, l, "a failed commit", func(st LogStatus) bool { return st.Err != nil })
	// Room for about half the points: the lines of the whole log say
	// exactly how many fit, in order.
	capacity := size + (fullSize-size)/2
	fit, end := 0, size
	for _, line := range bytes.SplitAfter(readFile(t, full), []byte("\n"))[1:] {
		if end += int64(len(line)); end > capacity {
			break
		}
		fit++
	}
	disk.SetCapacity(capacity)
	waitStatus(t, l, fmt.Sprintf("the %d points that fit written", fit), func(st LogStatus) bool { return st.Waiting == m.Len()-fit })
	time.Sleep(20 * time.Millisecond) // more attempts, which cannot write more
	if st := l.Status(); st.Err == nil || st.Waiting != m.Len()-fit {
		t.Fatalf("Status() = %+v; want still failing, %d records waiting", st, m.Len()-fit)
	}
	rep, err := verifyFile(t, path, VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify of the log that caught up in part = %v", err)
	}
	if got := rep.Namespaces[0].Points; got != fit {
		t.Errorf("%d points in the log; want the %d that fit", got, fit)
	}
	disk.SetCapacity(-1)
	waitStatus(t, l, "the log to catch up", func(st LogStatus) bool { return st.Err == nil && st.Waiting == 0 })
	l.Close()
	checkComplete(t, path, reg, m)
}

// Beyond the hold (the queue's bound) points of a log that cannot be
// written are not kept: each is counted, and its namespace's gap record,
// queued in their place, says how many and why once the log can be
// written. The points held are written in order before it.
func TestLogFullDiskGap(t *testing.T) {
	events, coefs := trajectory(t)
	const queue = 8
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l, disk := openDiskLog(t, path, reg)
	// No retry during the test: Close makes the last attempt.
	l.StartBatching(BatchOptions{Queue: queue, Retry: time.Hour})
	if _, err := l.BeginRun(); err != nil {
		t.Fatal(err)
	}
	ns, err := l.Namespace(1, "full", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Observer: ns})
	disk.SetCapacity(int64(len(readFile(t, path))))
	if _, err := m.Add(coefs[0], events[0]); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "a failed commit", func(st LogStatus) bool { return st.Err != nil })
	const more = 20
	var errs []error
	for i := 1; m.Len() < 1+more; i++ {
		if _, err := m.Add(coefs[i], events[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != more {
		t.Errorf("%d errors for %d points added while the log cannot be written; want one each", len(errs), more)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrLogUnwritable) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Add = %v; want ErrLogUnwritable and ENOSPC", err)
		}
	}
	dropped := uint64(1 + more - queue)
	if st := ns.Status(); st.Unrecorded != dropped || st.Waiting != queue+1 {
		t.Errorf("namespace Status() = %+v; want %d unrecorded, %d waiting (the held points and a gap record)", st, dropped, queue+1)
	}
	if st := l.Status(); st.Unrecorded != dropped {
		t.Errorf("Status().Unrecorded = %d; want %d", st.Unrecorded, dropped)
	}
	disk.SetCapacity(-1)
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	v, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	got := rep.Namespaces[0]
	if got.Points != queue || got.Gaps != 1 || got.Unrecorded != dropped || got.Lost != 0 {
		t.Errorf("log namespace: %d points, %d gaps, %d unrecorded, %d lost; want %d, 1, %d, 0", got.Points, got.Gaps, got.Unrecorded, got.Lost, queue, dropped)
	}
	if len(got.GapRecords) != 1 || got.GapRecords[0].Reason != "log write failed: no space left on device" {
		t.Errorf("gap records %+v; want one, reason \"log write failed: no space left on device\"", got.GapRecords)
	}
	// The held points are the first ones, in the model's order.
	want := model.New(model.Options{})
	for _, p := range m.Points()[:queue] {
		want.Add(p.Coefficient, nil)
	}
	if got.Measurement != want.Measurement() {
		t.Errorf("log measurement %s; want the first %d points' %s", got.Measurement, queue, want.Measurement())
	}
	if inc := rep.Incomplete(); len(inc) != 1 || !strings.Contains(inc[0], fmt.Sprintf("%d points not recorded", dropped)) {
		t.Errorf("Incomplete() = %q; want the namespace's %d points not recorded", inc, dropped)
	}
}

// Without batching a point that cannot be written fails its NewPoint; the
// next append writes its gap record first. Whatever byte the disk fills
// at, the log is left as it was.
func TestLogFullDiskDirect(t *testing.T) {
	for _, at := range []int64{0, 1, 150, -1} { // bytes of the next line that fit; -1: all but one
		t.Run(fmt.Sprintf("room %d", at), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg := NewSoftware(23)
			l, disk := openDiskLog(t, path, reg)
			ns, err := l.Namespace(1, "direct", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			good := readFile(t, path)
			room := at
			if at < 0 {
				var w contentWriter
				w.begin(RecordPoint, fixedNow(), 1, "direct")
				w.hexCoef("coefficient", c32(1))
				line := AppendLine(nil, Record{Recnum: 1, Kind: KindSoftware, Index: 23, Alg: reg.Alg(), Digest: make([]byte, 48), Content: w.end()})
				room = int64(len(line)) - 1
			}
			disk.SetCapacity(int64(len(good)) + room)
			err = ns.NewPoint(model.Point{Coefficient: c32(1)})
			if !errors.Is(err, ErrLogUnwritable) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("NewPoint on a full disk = %v; want ErrLogUnwritable, ENOSPC", err)
			}
			if got := readFile(t, path); !bytes.Equal(got, good) {
				t.Fatalf("after the failed append the log has %d bytes; want the %d before, unchanged", len(got), len(good))
			}
			disk.SetCapacity(-1)
			if err := ns.NewPoint(model.Point{Coefficient: c32(2)}); err != nil {
				t.Fatalf("NewPoint with room again = %v", err)
			}
			l.Close()
			v, _ := reg.Read()
			rep, err := verifyFile(t, path, VerifyOptions{Register: v})
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if n := rep.Namespaces[0]; n.Points != 1 || n.Gaps != 1 || n.Unrecorded != 1 || n.GapRecords[0].Line != 2 {
				t.Errorf("log: %d points, %d gaps (%+v), %d unrecorded; want the gap record on line 2, then the point", n.Points, n.Gaps, n.GapRecords, n.Unrecorded)
			}
		})
	}
}

// Without batching nothing is held: a namespace, seal or enforcing record
// that cannot be written fails, and no later record pretends it was.
func TestLogFullDiskDirectLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l, disk := openDiskLog(t, path, reg)
	ns, err := l.Namespace(1, "a", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	disk.SetCapacity(int64(len(readFile(t, path))))
	if got, err := l.Namespace(2, "b", model.Coefficient{}, model.Coefficient{}); got != nil || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Namespace on a full disk = %v, %v; want nil, ENOSPC", got, err)
	}
	if err := ns.Enforcing(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Enforcing on a full disk = %v; want ENOSPC", err)
	}
	disk.SetCapacity(-1)
	if err := ns.NewPoint(model.Point{Coefficient: c32(1)}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	v, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if n := rep.Namespaces; len(n) != 1 || n[0].Sealed || n[0].Enforcing || n[0].Points != 1 {
		t.Errorf("log namespaces %+v; want namespace 1 only, learning, one point", n[0])
	}
}

// A log closed while it cannot be written gives up on the records still
// held and says how many; what is in the file stays whole, and the run
// has no stop record.
func TestLogCloseWhileFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l, disk := openDiskLog(t, path, reg)
	l.StartBatching(BatchOptions{Retry: time.Hour})
	if _, err := l.BeginRun(); err != nil {
		t.Fatal(err)
	}
	ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	disk.SetCapacity(int64(len(readFile(t, path))) + 10)
	for i := range 3 {
		ns.NewPoint(model.Point{Coefficient: c32(byte(i + 1))})
	}
	waitStatus(t, l, "a failed commit", func(st LogStatus) bool { return st.Err != nil })
	err = l.Close()
	if !errors.Is(err, ErrLogUnwritable) || !strings.Contains(err.Error(), "3 records not written") {
		t.Errorf("Close on a full disk = %v; want ErrLogUnwritable, 3 records not written", err)
	}
	if st := ns.Status(); st.Unrecorded != 3 || st.Waiting != 0 {
		t.Errorf("namespace Status() after Close = %+v; want 3 unrecorded, none waiting", st)
	}
	rep, err := verifyFile(t, path, VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if rep.Records != 2 || len(rep.Runs) != 1 || rep.Runs[0].End != RunOpen {
		t.Errorf("log: %d records, runs %+v; want the start and created records, the run without a stop", rep.Records, rep.Runs)
	}
}

// mustMountTmpfs mounts a tmpfs of size bytes on a new directory for the
// test: as root; it skips with the reason otherwise, and fails when CI is
// set.
func mustMountTmpfs(t *testing.T, size int) string {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		skip("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// The same on a real full file system: a small tmpfs filled by a ballast
// file, then freed.
func TestLogOnFullTmpfs(t *testing.T) {
	events, coefs := trajectory(t)
	dir := mustMountTmpfs(t, 256<<10)
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "events.log")
	reg := NewSoftware(23)
	l := openLog(t, path, reg)
	l.StartBatching(BatchOptions{Retry: 5 * time.Millisecond})
	if _, err := l.BeginRun(); err != nil {
		t.Fatal(err)
	}
	ns, err := l.Namespace(1, "tmpfs", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Observer: ns})
	for i := range coefs {
		if _, err := m.Add(coefs[i], events[i]); err != nil && !errors.Is(err, ErrLogUnwritable) {
			t.Fatalf("Add(event %d) = %v", i+1, err)
		}
	}
	st := waitStatus(t, l, "the tmpfs to fill", func(st LogStatus) bool { return st.Err != nil })
	if !errors.Is(st.Err, syscall.ENOSPC) {
		t.Errorf("Status().Err = %v; want ENOSPC", st.Err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, l, "the log to catch up", func(st LogStatus) bool { return st.Err == nil && st.Waiting == 0 })
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	checkComplete(t, path, reg, m)
	l = openLog(t, path, NewSoftware(23))
	defer l.Close()
	if r := l.Repairs(); len(r) != 0 {
		t.Errorf("reopening needed repairs %+v; want none", r)
	}
}
