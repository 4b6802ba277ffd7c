package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// eventCount counts the events the records stand for among those match
// picks: one per record plus the repeats the kernel suppressed for their
// repeat cache entries (RepeatCount records).
func eventCount(recs []Record, match func(Record) bool) int {
	ids := map[uint64]bool{}
	n := 0
	for _, r := range recs {
		if match(r) {
			n++
			if id := r.Head().RepeatID; id != 0 {
				ids[id] = true
			}
		}
	}
	for _, r := range recs {
		if rc, ok := r.(*RepeatCount); ok && ids[rc.RepeatID] {
			n += int(rc.Count)
		}
	}
	return n
}

// checkRepeatStream checks the order Run keeps for the repeat cache
// entries of namespace ns in recs: an entry's records come first, then
// its count if it was repeated (never a count 0), then a finish marker
// whose Below is above its id; nothing of an entry follows its count or
// its marker. With ended (Run has returned), every entry must be ended.
func checkRepeatStream(t *testing.T, recs []Record, ns uint64, ended bool) {
	t.Helper()
	var (
		below   uint64 // of the last marker
		markers int
		state   = map[uint64]string{} // id -> "recorded", "counted"
	)
	for i, r := range recs {
		h := r.Head()
		if h.NS != ns {
			continue
		}
		rc, ok := r.(*RepeatCount)
		switch {
		case ok && rc.Finished():
			if rc.Count != 0 {
				t.Errorf("record %d: finish marker %+v with a count", i, rc)
			}
			if rc.Below < below {
				t.Errorf("record %d: finish marker below %d after one below %d", i, rc.Below, below)
			}
			below = max(below, rc.Below)
			markers++
		case ok:
			switch {
			case rc.Count == 0:
				t.Errorf("record %d: count 0 for repeat id %d; want counts of repeated entries only", i, rc.RepeatID)
			case rc.RepeatID < below:
				t.Errorf("record %d: count of repeat id %d after the marker below %d", i, rc.RepeatID, below)
			case state[rc.RepeatID] == "":
				t.Errorf("record %d: count of repeat id %d before any record of it", i, rc.RepeatID)
			case state[rc.RepeatID] == "counted":
				t.Errorf("record %d: second count of repeat id %d", i, rc.RepeatID)
			}
			state[rc.RepeatID] = "counted"
		case h.RepeatID != 0:
			switch {
			case h.RepeatID < below:
				t.Errorf("record %d: %s with repeat id %d after the marker below %d", i, h.Type, h.RepeatID, below)
			case state[h.RepeatID] == "counted":
				t.Errorf("record %d: %s with repeat id %d after its count", i, h.Type, h.RepeatID)
			}
			state[h.RepeatID] = "recorded"
		}
	}
	if !ended {
		return
	}
	for id, st := range state {
		if st == "recorded" && id >= below {
			t.Errorf("repeat id %d: neither counted nor below the last marker (%d) when Run ended", id, below)
		}
	}
	if len(state) != 0 && markers == 0 {
		t.Errorf("%d repeat cache entries and no finish marker", len(state))
	}
}

func fileOpens(path string, pid int) func(Record) bool {
	return func(r Record) bool {
		fo, ok := r.(*FileOpen)
		return ok && fo.File.Path.Name == path && (pid == 0 || int(fo.TGID) == pid)
	}
}

func countRecords(recs []Record, match func(Record) bool) int {
	n := 0
	for _, r := range recs {
		if match(r) {
			n++
		}
	}
	return n
}

// testRepeatExact: a task opening one file n times in a namespace makes
// few records with the repeat cache on, yet the records and the repeat
// counts Run delivers add up to exactly n; with the cache off every open
// makes its record.
func testRepeatExact(t *testing.T, b Backend) {
	const n = 5000
	for _, off := range []bool{false, true} {
		name := "cache-on"
		if off {
			name = "cache-off"
		}
		t.Run(name, func(t *testing.T) {
			c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 16 << 20, RepeatWindow: 100 * time.Millisecond})
			dir, bin := sharedDir(t)
			path := filepath.Join(dir, "repeated")
			writeFile(t, path, "x")
			ns := nextNS()
			if err := c.SetNamespace(ns, NamespaceConfig{NoRepeatCache: off}); err != nil {
				t.Fatal(err)
			}
			col := collect(t, c)
			runOpenLoop(t, c, ns, bin, path, n)
			// Ending Run delivers what is in the ring buffer, then
			// the counts still in the kernel.
			recs := col.finish(t)
			match := fileOpens(path, 0)
			if got := eventCount(recs, match); got != n {
				t.Errorf("records + repeats of %s = %d; want exactly %d", path, got, n)
			}
			checkRepeatStream(t, recs, ns, true)
			records := countRecords(recs, match)
			switch {
			case off && records != n:
				t.Errorf("cache off: %d file_open records; want %d", records, n)
			case !off && records >= n/10:
				t.Errorf("cache on: %d file_open records for %d opens; want far fewer", records, n)
			}
			t.Logf("%d opens: %d records", n, records)
			lost, err := c.Lost()
			if err != nil {
				t.Fatal(err)
			}
			if len(lost) != 0 {
				t.Errorf("Lost() = %v; want none", lost)
			}
		})
	}
}

// testRepeatReemit: the same task opens a file three times, then (while it
// waits) the file changes or the window passes, then it opens it three
// times more: the second batch makes a record of its own, and the counts
// still add up to six.
func testRepeatReemit(t *testing.T, b Backend) {
	tests := []struct {
		name   string
		window time.Duration
		midway func(t *testing.T, path string, window time.Duration)
		// wantNewKey: the second batch makes a record of its own.
		wantNewKey bool
	}{
		{"file written", time.Minute, func(t *testing.T, path string, _ time.Duration) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("more"); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}, true},
		{"window expired", 100 * time.Millisecond, func(t *testing.T, _ string, window time.Duration) {
			time.Sleep(3 * window)
		}, true},
		{"nothing changed", time.Minute, func(*testing.T, string, time.Duration) {}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 4 << 20, RepeatWindow: tc.window})
			dir, bin := sharedDir(t)
			path := filepath.Join(dir, "changing")
			writeFile(t, path, "x")
			ns := nextNS()
			col := collect(t, c)
			files := strings.Repeat(path+":", 3)
			run := runEnrolled(t, c, ns, workload{next: "open-wait-open", env: []string{envFiles + "=" + files}, bin: bin,
				midway: func() { tc.midway(t, path, tc.window) }})
			match := fileOpens(path, run.pid)
			recs := col.finish(t)
			checkRepeatStream(t, recs, ns, true)
			if got := eventCount(recs, match); got != 6 {
				t.Errorf("records + repeats of %s = %d; want 6", path, got)
			}
			want := 1
			if tc.wantNewKey {
				want = 2
			}
			if got := countRecords(recs, match); got != want {
				t.Errorf("%d file_open records of %s; want %d", got, path, want)
				for _, r := range recs {
					if match(r) {
						t.Logf("%+v", r)
					}
				}
			}
		})
	}
}

// testRepeatHardLink: a file and a hard link to it (one inode, two
// paths) opened in turns are two keys: each path makes its record and
// keeps its own count.
func testRepeatHardLink(t *testing.T, b Backend) {
	c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 4 << 20, RepeatWindow: time.Minute})
	dir, bin := sharedDir(t)
	a, l := filepath.Join(dir, "file"), filepath.Join(dir, "link")
	writeFile(t, a, "x")
	if err := os.Link(a, l); err != nil {
		t.Fatal(err)
	}
	ns := nextNS()
	col := collect(t, c)
	run := runEnrolled(t, c, ns, workload{next: "open", env: []string{envFiles + "=" + strings.Repeat(a+":"+l+":", 3)}, bin: bin})
	recs := col.finish(t)
	checkRepeatStream(t, recs, ns, true)
	for _, p := range []string{a, l} {
		match := fileOpens(p, run.pid)
		if n, records := eventCount(recs, match), countRecords(recs, match); n != 3 || records != 1 {
			t.Errorf("%s: %d records standing for %d opens; want 1 for 3", p, records, n)
		}
	}
}

func TestTracepointRepeatHardLink(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testRepeatHardLink(t, BackendTracepoint)
}

func TestLSMRepeatHardLink(t *testing.T) { testRepeatHardLink(t, BackendLSM) }

func TestTracepointRepeatExact(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testRepeatExact(t, BackendTracepoint)
}

func TestTracepointRepeatReemit(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testRepeatReemit(t, BackendTracepoint)
}

func TestLSMRepeatExact(t *testing.T)  { testRepeatExact(t, BackendLSM) }
func TestLSMRepeatReemit(t *testing.T) { testRepeatReemit(t, BackendLSM) }

// testRepeatFlush: with a repeat window far longer than the test,
// FlushRepeats delivers the counts of a finished workload at once (records
// + counts = opens before Run ends), also when called again and again
// while the workload runs; without a Run it returns ErrNoRun.
func testRepeatFlush(t *testing.T, b Backend) {
	const n = 20000
	c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 16 << 20, RepeatWindow: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushRepeats(ctx); !errors.Is(err, ErrNoRun) {
		t.Errorf("FlushRepeats() without Run = %v; want ErrNoRun", err)
	}
	dir, bin := sharedDir(t)
	col := collect(t, c)
	snapshot := func() []Record {
		col.mu.Lock()
		defer col.mu.Unlock()
		return slices.Clone(col.recs)
	}
	for _, during := range []bool{false, true} {
		path := filepath.Join(dir, "flushed")
		if during {
			path += "-during"
		}
		writeFile(t, path, "x")
		ns := nextNS()
		stop := make(chan struct{})
		var (
			wg      sync.WaitGroup
			flushes int
		)
		if during {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := c.FlushRepeats(ctx); err != nil {
						t.Errorf("FlushRepeats() during the workload = %v", err)
						return
					}
					flushes++
				}
			})
		}
		runOpenLoop(t, c, ns, bin, path, n)
		close(stop)
		wg.Wait()
		start := time.Now()
		if err := c.FlushRepeats(ctx); err != nil {
			t.Fatalf("FlushRepeats() = %v", err)
		}
		took := time.Since(start)
		recs := snapshot()
		checkRepeatStream(t, recs, ns, false)
		match := fileOpens(path, 0)
		if got := eventCount(recs, match); got != n {
			t.Errorf("flushes during the workload %v: records + repeats of %s after FlushRepeats = %d; want exactly %d", during, path, got, n)
		}
		if took > 2*time.Second {
			t.Errorf("FlushRepeats() took %v; want it at once, not at the hour's window", took)
		}
		t.Logf("flushes during the workload %v (%d): %d records for %d opens, last FlushRepeats took %v", during, flushes, countRecords(recs, match), n, took)
	}
	col.finish(t)
	if err := c.FlushRepeats(ctx); !errors.Is(err, ErrNoRun) {
		t.Errorf("FlushRepeats() after Run returned = %v; want ErrNoRun", err)
	}
}

func TestTracepointRepeatFlush(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testRepeatFlush(t, BackendTracepoint)
}

func TestLSMRepeatFlush(t *testing.T) { testRepeatFlush(t, BackendLSM) }

// BenchmarkRepeatRotation: one rotation of a repeat cache holding n
// entries (one in ten repeated), the work Run does every window: the
// records it hands on (counts and finish markers) and their allocations.
// The entries are written from userspace, so it needs only a loaded
// capture.
func BenchmarkRepeatRotation(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := openCaptureWith(b, Options{Backend: BackendTracepoint, RepeatWindow: time.Hour})
			keys := make([]repeatKey, n)
			vals := make([]repeatValue, n)
			for i := range n {
				keys[i] = repeatKey{NS: 1, Hash: uint64(i)}
				vals[i] = repeatValue{ID: uint64(i + 1), Valid: 1}
				if i%10 == 0 {
					vals[i].Count = 3
				}
			}
			records := 0
			fn := func(Record) { records++ }
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				c.rep.mu.Lock()
				cur := c.rep.cur
				c.rep.mu.Unlock()
				if _, err := cur.BatchUpdate(keys, vals, nil); err != nil {
					b.Fatal(err)
				}
				if err := c.rep.ids.Update(uint32(0), uint64(n), ebpf.UpdateAny); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := c.rotateRepeats(context.Background(), fn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}

// TestRepeatRotationSpec: what the rotation reads from the kernel has the
// layout it assumes, in both objects: the table's key (repeatKey, read by
// batch) and the RepeatID counter (one 64-bit slot).
func TestRepeatRotationSpec(t *testing.T) {
	for _, b := range []Backend{BackendLSM, BackendTracepoint} {
		sp, err := collectionSpec(b)
		if err != nil {
			t.Fatal(err)
		}
		if inner := sp.Maps["repeats"].InnerMap; inner == nil || binary.Size(repeatKey{}) != int(inner.KeySize) {
			t.Errorf("%s: Go mirror of vg_rhkey: %d bytes; the table's key %v", b, binary.Size(repeatKey{}), inner)
		}
		rc := sp.Maps["rid_counter"]
		if rc == nil || rc.Type != ebpf.Array || rc.KeySize != 4 || rc.ValueSize != 8 || rc.MaxEntries != 1 {
			t.Errorf("%s: rid_counter = %v; want an array of one 64-bit counter", b, rc)
		}
	}
}

// testRepeatMemo: repeats counted in the tasks' memos reach the counts
// exactly while many processes open one file at once, short ones exit in
// the middle of a window, Run rotates every few milliseconds and
// FlushRepeats rotates in between: records + counts equal the opens of
// every process. Without the collector the memos' counts of each ended
// window would be missing.
func testRepeatMemo(t *testing.T, b Backend) {
	c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 16 << 20, RepeatWindow: 3 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, bin := sharedDir(t)
	col := collect(t, c)
	path := filepath.Join(dir, "memo")
	writeFile(t, path, "x")
	ns := nextNS()
	stop := make(chan struct{})
	var flusher sync.WaitGroup
	flusher.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := c.FlushRepeats(ctx); err != nil {
				t.Errorf("FlushRepeats() during the workload = %v", err)
				return
			}
		}
	})
	sizes := []int{30000, 200, 5000, 1, 30000, 50, 2000, 30000, 10, 700, 15000, 3}
	var (
		work  sync.WaitGroup
		total int
	)
	for round := range 2 {
		for i, n := range sizes {
			total += n
			work.Go(func() {
				if round == 1 && i%3 == 0 {
					time.Sleep(time.Duration(i) * time.Millisecond)
				}
				runOpenLoop(t, c, ns, bin, path, n)
			})
		}
	}
	work.Wait()
	close(stop)
	flusher.Wait()
	if err := c.FlushRepeats(ctx); err != nil {
		t.Fatalf("FlushRepeats() = %v", err)
	}
	col.mu.Lock()
	recs := slices.Clone(col.recs)
	col.mu.Unlock()
	checkRepeatStream(t, recs, ns, false)
	match := fileOpens(path, 0)
	if got := eventCount(recs, match); got != total {
		t.Errorf("records + repeats of %s = %d; want exactly %d (%d processes)", path, got, total, 2*len(sizes))
	}
	t.Logf("%d records for %d opens of %d processes", countRecords(recs, match), total, 2*len(sizes))
	col.finish(t)
}

func TestTracepointRepeatMemo(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testRepeatMemo(t, BackendTracepoint)
}

func TestLSMRepeatMemo(t *testing.T) { testRepeatMemo(t, BackendLSM) }
