package measure

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// A batching log written by concurrent namespaces verifies, keeps each
// namespace's points in model order (the recomputed measurements match)
// and shares fdatasyncs between records.
func TestBatchLearnAndVerify(t *testing.T) {
	events, coefs := trajectory(t)
	tests := []struct {
		name    string
		queue   int
		workers int
	}{
		{name: "one namespace", queue: 0, workers: 1},
		{name: "queue of one", queue: 1, workers: 3},
		{name: "eight namespaces", queue: 64, workers: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg := NewSoftware(23)
			l := openLog(t, path, reg)
			l.StartBatching(BatchOptions{Queue: tc.queue})
			l.StartBatching(BatchOptions{Queue: tc.queue}) // a second call does nothing
			models := make([]*model.Model, tc.workers)
			var wg sync.WaitGroup
			errs := make(chan error, tc.workers)
			for w := range tc.workers {
				ns, err := l.Namespace(uint64(w+1), fmt.Sprintf("w%d", w), model.Coefficient{}, model.Coefficient{})
				if err != nil {
					t.Fatal(err)
				}
				models[w] = model.New(model.Options{Observer: ns})
				wg.Go(func() {
					for i := range coefs {
						if _, err := models[w].Add(coefs[i], events[i]); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := l.Flush(); err != nil {
				t.Fatalf("Flush = %v", err)
			}
			want := uint64(tc.workers * (1 + unique(coefs)))
			if pos := l.Position(); pos.Records != want {
				t.Errorf("after Flush: position %d records; want %d", pos.Records, want)
			}
			syncs := l.syncs
			if err := l.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if tc.queue != 1 && syncs >= want {
				t.Errorf("%d fdatasyncs for %d records: nothing was grouped", syncs, want)
			}
			v, _ := reg.Read()
			rep, err := verifyFile(t, path, VerifyOptions{Register: v})
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if rep.Records != want {
				t.Errorf("Verify: %d records; want %d", rep.Records, want)
			}
			for _, ns := range rep.Namespaces {
				m := models[ns.ID-1]
				if ns.Measurement != m.Measurement() || ns.State != m.State() || ns.Points != unique(coefs) {
					t.Errorf("namespace %d: measurement %s state %s points %d; model %s %s %d", ns.ID, ns.Measurement, ns.State, ns.Points, m.Measurement(), m.State(), unique(coefs))
				}
			}
		})
	}
}

// Records queued by NewPoint and appended by Append keep the order of the
// calls, and a forensic point queues the seal before itself.
func TestBatchOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l := openLog(t, path, reg)
	l.StartBatching(BatchOptions{Queue: 2})
	ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := ns.NewPoint(model.Point{Coefficient: c32(byte(i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.NewPoint(model.Point{Coefficient: c32(99), Forensic: true}); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Append([]byte(`{"record":"other"}`))
	if err != nil {
		t.Fatalf("Append = %v", err)
	}
	if rec.Recnum != 13 {
		t.Errorf("Append: record %d; want 13 (after created, 10 points, sealed, a forensic point)", rec.Recnum)
	}
	if err := ns.Sealed(); err != nil { // already queued: nothing
		t.Fatal(err)
	}
	l.Close()
	var kinds []string
	scanFile(t, path, func(n int, r Record) error {
		if int(r.Recnum) != n-1 {
			t.Errorf("line %d has recnum %d", n, r.Recnum)
		}
		c, err := ParseContent(r.Content)
		if err != nil {
			kinds = append(kinds, "?")
			return nil
		}
		k := c.Record
		if c.Record == RecordPoint {
			cf := c.Coefficient()
			k = fmt.Sprintf("%s%d", k, cf.Bytes()[0])
		}
		kinds = append(kinds, k)
		return nil
	})
	want := "created point1 point2 point3 point4 point5 point6 point7 point8 point9 point10 sealed point99 ?"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("records %s; want %s", got, want)
	}
}

// A failed extend in a group commit takes the record back with everything
// after it; the error comes from the next NewPoint or Flush, and the log
// goes on and verifies.
func TestBatchExtendFailure(t *testing.T) {
	tests := []struct {
		name    string
		before  bool
		wantErr bool
	}{
		{name: "device refuses", before: true, wantErr: true},
		{name: "device extends then fails", before: false, wantErr: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			fake := measuretest.NewTDX()
			reg := &measuretest.Faulty{Reg: tdxReg(t, fake)}
			l := openLog(t, path, reg)
			l.StartBatching(BatchOptions{})
			ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			size := fileSize(t, path)
			reg.FailBefore(tc.before)
			reg.FailAfter(!tc.before)
			for i := range 5 {
				if err := ns.NewPoint(model.Point{Coefficient: c32(byte(i + 1))}); err != nil {
					t.Fatalf("NewPoint %d = %v; want the error reported later", i, err)
				}
			}
			err = l.Flush()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Flush = %v; want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if !errors.Is(err, measuretest.ErrInjected) {
					t.Errorf("Flush = %v; want %v", err, measuretest.ErrInjected)
				}
				if got := fileSize(t, path); got != size {
					t.Errorf("failed commit left %d bytes; want the log cut back to %d", got, size)
				}
				if err := l.Flush(); err != nil {
					t.Errorf("second Flush = %v; the error is reported once", err)
				}
			}
			reg.FailBefore(false)
			reg.FailAfter(false)
			other, err := l.Namespace(2, "other", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			if err := other.NewPoint(model.Point{Coefficient: c32(8)}); err != nil {
				t.Errorf("NewPoint of another namespace = %v; want nil: the failures were not its", err)
			}
			// The namespace hears of its lost records once, from its next
			// NewPoint, whose own record is queued all the same.
			err = ns.NewPoint(model.Point{Coefficient: c32(9)})
			if tc.wantErr && !errors.Is(err, measuretest.ErrInjected) || !tc.wantErr && err != nil {
				t.Errorf("NewPoint after failure = %v; want the earlier failure %v", err, tc.wantErr)
			}
			if err := ns.NewPoint(model.Point{Coefficient: c32(10)}); err != nil {
				t.Fatalf("second NewPoint after failure = %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if _, err := l.Append([]byte(`{}`)); !errors.Is(err, ErrLogClosed) {
				t.Errorf("Append after Close = %v; want %v", err, ErrLogClosed)
			}
			if _, err := verifyFile(t, path, VerifyOptions{Register: fake.RTMR(3)}); err != nil {
				t.Errorf("Verify = %v", err)
			}
		})
	}
}

// A crash between a group commit's fdatasync and its last extend leaves the
// register behind the log by up to MaxBatch records: OpenLog extends the
// missing ones, in order. More is not a crash of Vigil's and is refused.
func TestBatchCrashRepair(t *testing.T) {
	const points = MaxBatch + 43 // records: created + points
	tests := []struct {
		name     string
		missing  int
		repaired string
		wantErr  error
	}{
		{name: "one", missing: 1, repaired: "extend was interrupted"},
		{name: "several", missing: 7, repaired: fmt.Sprintf("records %d to %d", points-6, points)},
		{name: "a whole batch", missing: MaxBatch, repaired: fmt.Sprintf("records %d to %d", points+1-MaxBatch, points)},
		{name: "more than a batch", missing: MaxBatch + 1, wantErr: ErrRegisterMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			fake := measuretest.NewTDX()
			l := openLog(t, path, tdxReg(t, fake))
			l.StartBatching(BatchOptions{})
			ns, err := l.Namespace(1, "n", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range points {
				if err := ns.NewPoint(model.Point{Coefficient: c32(byte(i), byte(i>>8))}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want := fake.RTMR(3)
			// The crash: the register got only the first extends.
			var digests [][]byte
			scanFile(t, path, func(_ int, r Record) error { digests = append(digests, append([]byte(nil), r.Digest...)); return nil })
			fake.Reset()
			for _, d := range digests[:len(digests)-tc.missing] {
				fake.WriteFile("rtmr3:sha384", d)
			}
			l, err = OpenLog(path, tdxReg(t, fake), LogOptions{Now: fixedNow})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("OpenLog = %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenLog = %v", err)
			}
			defer l.Close()
			if reps := l.Repairs(); len(reps) != 1 || !strings.Contains(reps[0].Action, tc.repaired) {
				t.Errorf("Repairs() = %+v; want %q", reps, tc.repaired)
			}
			if got := fake.RTMR(3); string(got) != string(want) {
				t.Errorf("repaired register %x; want %x", got, want)
			}
		})
	}
}

// A queue deeper than the old batch of 256 is committed in a few large
// group commits (fewer fdatasyncs than batches of 256 would take), written
// in several pieces, and the log keeps the exact order of the calls
// across namespaces and record kinds, with each point's time taken when it
// was queued.
func TestBatchDeepQueue(t *testing.T) {
	events, _ := trajectory(t)
	tests := []struct {
		name   string
		points int
		queue  int
	}{
		{name: "two full batches and a bit", points: 2*MaxBatch + 10, queue: 4 * MaxBatch},
		{name: "queue bound below a batch", points: 600, queue: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg := NewSoftware(23)
			l := openLog(t, path, reg)
			tick := 0
			l.now = func() time.Time { tick++; return fixedNow().Add(time.Duration(tick) * time.Second) }
			l.StartBatching(BatchOptions{Queue: tc.queue})
			a, err := l.Namespace(1, "a", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := l.Namespace(2, "b", model.Coefficient{}, model.Coefficient{})
			if err != nil {
				t.Fatal(err)
			}
			syncs0, writes0 := l.syncs, l.writes
			// Hold the committer off (it needs l.mu), so the records pile
			// up as behind a slow fdatasync; release it once the queue
			// is full or every point is queued.
			l.mu.Lock()
			var want []string
			var wantTime []int
			release := sync.OnceFunc(l.mu.Unlock)
			defer release()
			for i := range tc.points {
				l.batch.mu.Lock()
				full := len(l.batch.queue) >= l.batch.limit
				l.batch.mu.Unlock()
				if full {
					release()
				}
				ns, name := a, "a"
				if i%3 == 2 {
					ns, name = b, "b"
				}
				c := c32(byte(i), byte(i>>8), 1)
				if err := ns.NewPoint(model.Point{Coefficient: c, Description: events[i%len(events)]}); err != nil {
					t.Fatalf("NewPoint %d = %v", i, err)
				}
				want = append(want, fmt.Sprintf("%s:%x", name, c.Bytes()[:2]))
				wantTime = append(wantTime, tick)
			}
			release()
			if err := a.Gap(3, "test"); err != nil { // waits for its commit
				t.Fatalf("Gap = %v", err)
			}
			want = append(want, "gap:a")
			syncs, writes := l.syncs-syncs0, l.writes-writes0
			if err := l.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			// The committer may take the first point alone before the
			// rest piles up, and the gap after the release may get a
			// commit of its own.
			most := uint64(2 + (tc.points+MaxBatch-1)/MaxBatch)
			if tc.queue < MaxBatch {
				most = uint64(2 + (tc.points+tc.queue-1)/tc.queue*2)
			}
			if syncs > most {
				t.Errorf("%d points and a gap in %d fdatasyncs; want at most %d (batches of up to %d)", tc.points, syncs, most, MaxBatch)
			}
			if tc.queue >= MaxBatch && syncs*256 >= uint64(tc.points) {
				t.Errorf("%d points in %d fdatasyncs: no commit carried more than 256", tc.points, syncs)
			}
			if tc.queue >= MaxBatch && writes <= syncs {
				t.Errorf("%d writes for %d fdatasyncs; want a large commit written in pieces", writes, syncs)
			}
			var got []string
			var gotTime []int
			scanFile(t, path, func(n int, r Record) error {
				if int(r.Recnum) != n-1 {
					t.Errorf("line %d has recnum %d", n, r.Recnum)
				}
				if n <= 2 {
					return nil // the created records
				}
				c, err := ParseContent(r.Content)
				if err != nil {
					t.Fatalf("line %d: %v", n, err)
				}
				if c.Record != RecordPoint {
					got = append(got, c.Record+":"+c.Namespace.Name)
					return nil
				}
				co := c.Coefficient()
				got = append(got, fmt.Sprintf("%s:%x", c.Namespace.Name, co.Bytes()[:2]))
				ts, err := time.Parse(time.RFC3339Nano, c.Time)
				if err != nil {
					t.Fatalf("line %d: time %q: %v", n, c.Time, err)
				}
				gotTime = append(gotTime, int(ts.Sub(fixedNow())/time.Second))
				return nil
			})
			if !slices.Equal(got, want) {
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Fatalf("record %d of the points is %s; want %s (%d records, want %d)", i, got[i], want[i], len(got), len(want))
					}
				}
				t.Fatalf("%d point records; want %d", len(got), len(want))
			}
			if !slices.Equal(gotTime, wantTime) {
				t.Errorf("point times %v...; want the times of their NewPoint calls %v...", gotTime[:5], wantTime[:5])
			}
			v, _ := reg.Read()
			rep, err := verifyFile(t, path, VerifyOptions{Register: v})
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if rep.Records != uint64(tc.points+3) {
				t.Errorf("Verify: %d records; want %d", rep.Records, tc.points+3)
			}
		})
	}
}

// BenchmarkBatchedPoints measures NewPoint on a batching log: the time per
// point while the committer groups fdatasyncs, including the final flush.
func BenchmarkBatchedPoints(b *testing.B) {
	events, _ := trajectory(b)
	l := openLog(b, filepath.Join(b.TempDir(), "events.log"), NewSoftware(DefaultSoftwareIndex))
	defer l.Close()
	l.StartBatching(BatchOptions{})
	ns, err := l.Namespace(1, "bench", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := c32(byte(i), byte(i>>8), byte(i>>16), byte(i>>24))
		if err := ns.NewPoint(model.Point{Coefficient: c, Count: 1, Description: events[i%len(events)]}); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	l.mu.Lock()
	b.ReportMetric(float64(b.N)/float64(max(l.syncs, 1)), "records/sync")
	l.mu.Unlock()
}
