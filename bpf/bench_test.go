package bpf

import (
	"context"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runOpenLoop runs the openloop helper n times over path, enrolled in ns
// when c is not nil, and returns the loop's time per open.
func runOpenLoop(tb testing.TB, c *Capture, ns uint64, bin, path string, n int) float64 {
	tb.Helper()
	env := []string{envFiles + "=" + path, envN + "=" + strconv.Itoa(n), "GOMAXPROCS=1"}
	var out string
	if c != nil {
		out = runEnrolled(tb, c, ns, workload{next: "openloop", env: env, bin: bin}).out
	} else {
		cmd := exec.Command(bin)
		cmd.Env = append(append(os.Environ(), envHelper+"=openloop"), env...)
		o, err := cmd.Output()
		if err != nil {
			tb.Fatalf("openloop: %v", err)
		}
		out = string(o)
	}
	ns64, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		tb.Fatalf("openloop output %q: %v", out, err)
	}
	return float64(ns64) / float64(n)
}

// BenchmarkOpenClose measures open+close in a workload process with the
// tracepoint backend attached, outside any namespace and inside one (every
// open then makes a 752-byte record that a reader decodes), in the same
// run. ns/open is the workload's own time per open; events/s and lost
// are the capture's for the inside case.
func BenchmarkOpenClose(b *testing.B) {
	if os.Getenv("VIGIL_VM") != "" {
		b.Skip("host benchmark")
	}
	dir, bin := sharedDir(b)
	path := filepath.Join(dir, "bench-file")
	writeFile(b, path, "x")
	b.Run("no-capture", func(b *testing.B) {
		b.ReportMetric(runOpenLoop(b, nil, 0, bin, path, b.N), "ns/open")
	})
	c := openCapture(b, BackendTracepoint)
	var decoded atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(Record) { decoded.Add(1) }) }()
	defer func() { cancel(); <-done }()
	// Outside: the programs run for every open but the task is in no
	// namespace (and the host is not modeled).
	b.Run("outside", func(b *testing.B) {
		b.ReportMetric(runOpenLoop(b, nil, 0, bin, path, b.N), "ns/open")
	})
	// Interleaved: rounds alternate outside and inside so that the
	// machine's drift hits both; reports the medians and the added time.
	// bpf-ns/open is the kernel's own accounting (bpf_stats) of the
	// sys_exit_openat program's run time per call, inside the namespace.
	b.Run("interleaved", func(b *testing.B) {
		stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
		if err != nil {
			b.Fatalf("enable bpf stats: %v", err)
		}
		defer stats.Close()
		prog := c.coll.Programs["vg_exit_openat"]
		const rounds = 10
		n := max(b.N/rounds, 1000)
		ns := nextNS()
		var out, in []float64
		var runtime time.Duration
		var runs uint64
		for range rounds {
			out = append(out, runOpenLoop(b, nil, 0, bin, path, n))
			s0, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			in = append(in, runOpenLoop(b, c, ns, bin, path, n))
			s1, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			runtime += s1.Runtime - s0.Runtime
			runs += s1.RunCount - s0.RunCount
		}
		mo, mi := median(out), median(in)
		b.ReportMetric(mo, "outside-ns/open")
		b.ReportMetric(mi, "inside-ns/open")
		b.ReportMetric(100*(mi-mo)/mo, "added-%")
		if runs > 0 {
			b.ReportMetric(float64(runtime.Nanoseconds())/float64(runs), "bpf-ns/open")
		}
	})
	b.Run("inside", func(b *testing.B) {
		ns := nextNS()
		before := decoded.Load()
		perOpen := runOpenLoop(b, c, ns, bin, path, b.N)
		b.ReportMetric(perOpen, "ns/open")
		b.ReportMetric(1e9/perOpen, "events/s")
		// Let the reader catch up before counting.
		for deadline := time.Now().Add(5 * time.Second); decoded.Load()-before < uint64(b.N) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		lost, err := c.Lost()
		if err != nil {
			b.Fatal(err)
		}
		var n uint64
		for k, v := range lost {
			if k.NS == ns {
				n += v
			}
		}
		b.ReportMetric(float64(n), "lost")
	})
}

// BenchmarkCaptureRate runs two enrolled workloads at once (one per CPU
// of a 2-CPU machine, the reader competing with them) and reports the
// records per second the capture delivered and how many were lost.
func BenchmarkCaptureRate(b *testing.B) {
	if os.Getenv("VIGIL_VM") != "" {
		b.Skip("host benchmark")
	}
	dir, bin := sharedDir(b)
	path := filepath.Join(dir, "bench-file")
	writeFile(b, path, "x")
	c := openCapture(b, BackendTracepoint)
	var decoded atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(Record) { decoded.Add(1) }) }()
	defer func() { cancel(); <-done }()
	ns := nextNS()
	const workers = 2
	per := max(b.N/workers, 1)
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, workers)
	for range workers {
		go func() {
			defer func() { errs <- nil }()
			runOpenLoop(b, c, ns, bin, path, per)
		}()
	}
	for range workers {
		<-errs
	}
	for deadline := time.Now().Add(10 * time.Second); decoded.Load() < uint64(per*workers) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	lost, err := c.Lost()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	for _, v := range lost {
		n += v
	}
	b.ReportMetric(float64(decoded.Load())/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(n), "lost")
}

// TestTracepointLossCounted: with a tiny ring buffer and no reader, the
// records that do not fit are counted for the namespace, not dropped
// silently.
func TestTracepointLossCounted(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	c, err := Open(Options{Backend: BackendTracepoint, RingBufferBytes: uint32(os.Getpagesize())})
	if err != nil {
		if requireBPF() {
			t.Fatal(err)
		}
		t.Skipf("tracepoint backend not available: %v", err)
	}
	defer c.Close()
	dir, bin := sharedDir(t)
	path := filepath.Join(dir, "f")
	writeFile(t, path, "x")
	ns := nextNS()
	runOpenLoop(t, c, ns, bin, path, 1000)
	lost, err := c.Lost()
	if err != nil {
		t.Fatal(err)
	}
	// A 4 KiB ring holds at most 5 file_open records.
	if got := lost[LossKey{NS: ns, Reason: LossRingBuffer}]; got < 900 {
		t.Errorf("Lost()[%d, ringbuf_full] = %d; want at least 900 of 1000 opens (all: %v)", ns, got, lost)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
