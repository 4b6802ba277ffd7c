package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/namespace"
)

// newDiskFixture is newFixture with a batching log (queue records at
// most, retried every 2ms) on a disk that can fill up.
func newDiskFixture(t *testing.T, logFull string, queue int) (*fixture, *measuretest.Disk) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "measurements.log")
	var disk *measuretest.Disk
	l, err := measure.OpenLog(path, measure.NewSoftware(measure.DefaultSoftwareIndex), measure.LogOptions{WrapFile: func(f *os.File) measure.LogFile {
		disk = measuretest.NewDisk(f)
		return disk
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.StartBatching(measure.BatchOptions{Queue: queue, Retry: 2 * time.Millisecond})
	reg := namespace.NewRegistry(namespace.RegistryOptions{FirstID: l.NextNamespaceID()})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tab := newTable(reg, newFakeKernel(false), l, metrics.New(metrics.Options{}), control.Settings{HashAlgorithm: "sha256", Dialect: "tsem"}, "", logger)
	tab.ktime = func() uint64 { return 0 }
	tab.logFull = logFull
	return &fixture{tab: tab, kern: tab.kern.(*fakeKernel), log: l, path: path}, disk
}

// waitLogWritten waits until the log has written everything it holds.
func waitLogWritten(t *testing.T, l *measure.Log) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st := l.Status(); st.Err != nil || st.Waiting > 0; st = l.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("the log did not catch up in 10s: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// metricValue is the value of the sample of family with label namespace.
func metricValue(t *testing.T, m *metrics.Metrics, family, namespace string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == namespace {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// log_full stop: a namespace whose new point finds the log full stops
// modeling; once the log has caught up its skipped events become a gap
// record and it models again. The log and the model agree all along.
func TestLogFullStop(t *testing.T) {
	evs := readEvents(t, "process_1.json")
	f, disk := newDiskFixture(t, logFullStop, 0)
	st, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	// What the reader does with each event (Agent.handle).
	dispatch := func(from, to int) {
		for _, e := range evs[from:to] {
			if st.logStop.skip() {
				continue
			}
			if _, err := st.ns.Add(e); err != nil {
				f.tab.noteLogError(st, err)
			}
		}
	}
	dispatch(0, 20)
	if err := f.log.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := disk.Fill(); err != nil {
		t.Fatal(err)
	}
	dispatch(20, 40)
	deadline := time.Now().Add(10 * time.Second)
	for f.log.Status().Err == nil {
		if time.Now().After(deadline) {
			t.Fatal("no failed commit in 10s on a full disk")
		}
		time.Sleep(time.Millisecond)
	}
	dispatch(40, len(evs)/2)
	info, _ := f.tab.Namespace(name)
	if l := info.Log; l == nil || l.Status != control.LogStopped || l.Skipped == 0 || l.Waiting == 0 || !strings.Contains(l.Error, "no space left on device") {
		t.Fatalf("log state with the disk full = %+v; want stopped, events skipped, records waiting, the error", info.Log)
	}
	disk.SetCapacity(-1)
	waitLogWritten(t, f.log)
	f.tab.pollLog()
	info, _ = f.tab.Namespace(name)
	skipped := info.Log.Skipped
	if info.Log.Status != control.LogIncomplete || info.Log.Waiting != 0 || info.Log.Error != "" || f.tab.stopped.Load() != 0 {
		t.Fatalf("log state after the log caught up = %+v (%d stopped); want incomplete (events skipped), nothing waiting, no error", info.Log, f.tab.stopped.Load())
	}
	dispatch(len(evs)/2, len(evs))
	rep := f.verify(t)
	got := rep.Namespaces[0]
	if got.Measurement != st.ns.Model().Measurement() || got.Points != st.ns.Model().Len() {
		t.Errorf("log: %d points, measurement %s; model: %d points, %s: the stopped namespace's model and log differ",
			got.Points, got.Measurement, st.ns.Model().Len(), st.ns.Model().Measurement())
	}
	if got.Gaps != 1 || got.Lost != skipped || got.GapRecords[0].Reason != reasonStopped {
		t.Errorf("log gaps %+v; want one of the %d events skipped, %q", got.GapRecords, skipped, reasonStopped)
	}
}

// log_full gap: namespaces keep modeling; points beyond the hold are
// counted in a gap record, in the metrics and in the control API.
func TestLogFullGap(t *testing.T) {
	evs := readEvents(t, "process_1.json")
	f, disk := newDiskFixture(t, logFullGap, 8)
	st, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	if err := f.log.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := disk.Fill(); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if _, err := st.ns.Add(e); logFailed(err) {
			t.Fatalf("Add = %v; want nil or measure.ErrLogUnwritable", err)
		}
		f.tab.noteLogError(st, err) // does nothing with gap
	}
	if f.tab.stopped.Load() != 0 {
		t.Fatal("a namespace stopped with log_full gap")
	}
	f.tab.pollLog()
	info, _ := f.tab.Namespace(name)
	unrecorded := info.Log.Unrecorded
	if info.Log.Status != control.LogIncomplete || unrecorded == 0 || info.Log.Skipped != 0 {
		t.Fatalf("log state = %+v; want incomplete, points unrecorded, none skipped", info.Log)
	}
	if got := metricValue(t, f.tab.met, "vigil_log_points_unrecorded_total", name); got != float64(unrecorded) {
		t.Errorf("vigil_log_points_unrecorded_total = %v; want %d", got, unrecorded)
	}
	disk.SetCapacity(-1)
	waitLogWritten(t, f.log)
	rep := f.verify(t)
	got := rep.Namespaces[0]
	if got.Unrecorded != unrecorded || got.Points+int(unrecorded) != st.ns.Model().Len() {
		t.Errorf("log: %d points, %d unrecorded in gap records; model %d points, %d unrecorded", got.Points, got.Unrecorded, st.ns.Model().Len(), unrecorded)
	}
	for _, g := range got.GapRecords {
		if g.Reason != "log write failed: no space left on device" {
			t.Errorf("gap record %+v; want the reason \"log write failed: no space left on device\"", g)
		}
	}
}

// Sealing and loading a model while the log cannot be written work: the
// records are held and written once it can be.
func TestSealAndLoadWhileLogFull(t *testing.T) {
	model, err := os.ReadFile(filepath.Join(tsemDir, "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	f, disk := newDiskFixture(t, logFullGap, 0)
	a, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.log.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := disk.Fill(); err != nil {
		t.Fatal(err)
	}
	b, err := f.tab.startContainer(testContainer(1), "/nonexistent")
	if err != nil {
		t.Fatalf("start a container while the log is full = %v", err)
	}
	if err := f.tab.Load(a.ns.Name(), model); err != nil {
		t.Fatalf("Load while the log is full = %v", err)
	}
	if err := f.tab.Seal(b.ns.Name()); err != nil {
		t.Fatalf("Seal while the log is full = %v", err)
	}
	if info, _ := f.tab.Namespace(a.ns.Name()); info.Log.Status != control.LogWaiting || info.Mode != control.ModeSealed {
		t.Errorf("namespace after Load: mode %s, log %+v; want sealed, log waiting", info.Mode, info.Log)
	}
	disk.SetCapacity(-1)
	waitLogWritten(t, f.log)
	rep := f.verify(t)
	if len(rep.Namespaces) != 2 || !rep.Namespaces[0].Sealed || rep.Namespaces[0].Points != a.ns.Model().Len() || !rep.Namespaces[1].Sealed {
		t.Errorf("log namespaces %+v, %+v; want both sealed, the first with the model's %d points", rep.Namespaces[0], rep.Namespaces[1], a.ns.Model().Len())
	}
}
