package bpf

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIgnoreRejectsBadPID: Ignore names the bad process id.
func TestIgnoreRejectsBadPID(t *testing.T) {
	c := &Capture{}
	for _, pid := range []int{0, -1} {
		if err := c.Ignore(pid); err == nil || !strings.Contains(err.Error(), strconv.Itoa(pid)) {
			t.Errorf("Ignore(%d) = %v; want an error naming %d", pid, err, pid)
		}
	}
}

// runIgnored has Capture c ignore the helper while it waits, then lets it
// exec into mode fork: it forks a child that opens path. It returns the
// helper's pid and its child's, and the kernel's time when Ignore returned
// (the helper's exec before it is recorded).
func runIgnored(t *testing.T, c *Capture, bin, path string) (pid, child int, since uint64) {
	t.Helper()
	ignore := func(pid int) error {
		if err := c.Ignore(pid); err != nil {
			return err
		}
		var ts unix.Timespec
		err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		since = uint64(ts.Nano())
		return err
	}
	run := runEnrolled(t, c, 0, workload{next: "fork", env: []string{envFiles + "=" + path}, bin: bin, join: ignore})
	for _, line := range strings.Split(run.out, "\n") {
		if rest, ok := strings.CutPrefix(line, "child "); ok {
			child, _ = strconv.Atoi(rest)
		}
	}
	if child == 0 || !strings.Contains(run.out, path+" ok") {
		t.Fatalf("helper fork said %q; want its child's open of %s and its pid", run.out, path)
	}
	return run.pid, child, since
}

// TestTracepointIgnore: with namespace 0 modeled, an ignored process and
// the process it forks make no records, while another host process does;
// the kernel forgets both when they exit.
func TestTracepointIgnore(t *testing.T) {
	c, bin, path := hostCapture(t, "ignore-file")
	col := collect(t, c)
	if err := c.SetNamespace(0, NamespaceConfig{Model: true}); err != nil {
		t.Fatal(err)
	}
	pid, child, since := runIgnored(t, c, bin, path)
	runOpenLoop(t, nil, 0, bin, path, 3)
	if err := c.DropNamespace(0); err != nil {
		t.Fatal(err)
	}
	// The open loop's opens, so the ignored ones had time to arrive too.
	col.until(func(r Record) bool {
		fo, ok := r.(*FileOpen)
		return ok && fo.File.Path.Name == path && fo.NS == 0
	})
	recs := col.finish(t)
	for _, r := range recs {
		h := r.Head()
		if h.NS != 0 || h.KTime < since {
			continue
		}
		switch int(h.TGID) {
		case pid, child:
			t.Errorf("record of ignored process %d (thread %d): %T %s", h.TGID, h.PID, r, describe(r))
		}
	}
	if n := eventCount(recs, func(r Record) bool {
		fo, ok := r.(*FileOpen)
		return ok && fo.File.Path.Name == path && fo.NS == 0
	}); n != 3 {
		t.Errorf("%d namespace 0 opens of %s; want the open loop's 3 (the ignored child's none)", n, path)
	}
	// The kernel forgets them when their group leaders are freed (after
	// an RCU grace period).
	var left []uint32
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left = left[:0]
		var (
			k uint32
			v uint8
		)
		it := c.objs.IgnoreTGID.Iterate()
		for it.Next(&k, &v) {
			left = append(left, k)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) != 0 {
		t.Errorf("ignored processes %v still in the kernel 5s after %d and %d exited", left, pid, child)
	}
}
