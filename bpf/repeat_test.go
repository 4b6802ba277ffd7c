package bpf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
