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
	"sync"
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
// tracepoint backend attached, outside any namespace and inside one, in
// the same run: with the repeat cache (the default: the first open of the
// file per window makes a 760-byte record, the rest only count) and
// without (every open makes a record that a reader decodes). ns/open is
// the workload's own time per open; events/s and lost are the capture's
// for the inside case, events counted as records plus repeat counts.
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
	var events, insideNS atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, opensOf(path, &insideNS, &events)) }()
	defer func() { cancel(); <-done }()
	// Outside: the programs run for every open but the task is in no
	// namespace (and the host is not modeled).
	b.Run("outside", func(b *testing.B) {
		b.ReportMetric(runOpenLoop(b, nil, 0, bin, path, b.N), "ns/open")
	})
	// Interleaved: rounds alternate outside and inside so that the
	// machine's drift hits both; reports the medians and the added time.
	// bpf-ns/open is the kernel's own accounting (bpf_stats) of the
	// syscall programs' run time per open, inside the namespace.
	for _, cache := range []bool{true, false} {
		name := "interleaved"
		if !cache {
			name = "interleaved-nocache"
		}
		b.Run(name, func(b *testing.B) { interleaved(b, c, bin, path, NamespaceConfig{NoRepeatCache: !cache}) })
	}
	b.Run("inside", func(b *testing.B) {
		ns := nextNS()
		insideNS.Store(ns)
		before := events.Load()
		perOpen := runOpenLoop(b, c, ns, bin, path, b.N)
		b.ReportMetric(perOpen, "ns/open")
		b.ReportMetric(1e9/perOpen, "events/s")
		// Let the reader catch up (records, then the repeat counts of
		// the next cache rotation) before counting.
		for deadline := time.Now().Add(5 * time.Second); events.Load()-before < uint64(b.N) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if got := events.Load() - before; got != uint64(b.N) {
			b.Errorf("%d events delivered (records + repeats); want %d", got, b.N)
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
// events per second the capture delivered (records plus repeat counts,
// which must add up to the opens), the records per second, and how many
// were lost; with the repeat cache and without.
func BenchmarkCaptureRate(b *testing.B) {
	if os.Getenv("VIGIL_VM") != "" {
		b.Skip("host benchmark")
	}
	dir, bin := sharedDir(b)
	path := filepath.Join(dir, "bench-file")
	writeFile(b, path, "x")
	for _, cache := range []bool{true, false} {
		name := "cache"
		if !cache {
			name = "nocache"
		}
		b.Run(name, func(b *testing.B) { captureRate(b, bin, path, NamespaceConfig{NoRepeatCache: !cache}) })
	}
}

func captureRate(b *testing.B, bin, path string, cfg NamespaceConfig) {
	c := openCapture(b, BackendTracepoint)
	var records, events atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	count := opensOf(path, nil, &events)
	go func() {
		done <- c.Run(ctx, func(r Record) {
			if fo, ok := r.(*FileOpen); ok && fo.File.Path.Name == path {
				records.Add(1)
			}
			count(r)
		})
	}()
	ns := nextNS()
	if err := c.SetNamespace(ns, cfg); err != nil {
		b.Fatal(err)
	}
	const workers = 2
	per := max(b.N/workers, 1)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { runOpenLoop(b, c, ns, bin, path, per) })
	}
	wg.Wait()
	for deadline := time.Now().Add(10 * time.Second); records.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	// Ending Run delivers the rest of the ring and the repeat counts.
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
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
	// Lost records may be any type (exec, exit, ...): exactness is
	// checked when nothing was lost.
	if got := events.Load(); n == 0 && got != uint64(per*workers) {
		b.Errorf("%d events, none lost; want %d opens", got, per*workers)
	}
	b.ReportMetric(float64(events.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(records.Load())/elapsed.Seconds(), "records/s")
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

// interleaved alternates rounds outside and inside a namespace configured
// with cfg so that the machine's drift hits both; it reports the medians
// and the added time (also paired per round). bpf-ns/open is the kernel's
// own accounting (bpf_stats) of the run time of the syscall programs
// (vg_sys_enter, vg_sys_exit) during the inside rounds, per open of the
// loop; bpf-out-ns/open the same outside. Both programs run for every
// syscall of the machine, so each also holds the loop's close and what
// other processes did meanwhile (the same share in both).
func interleaved(b *testing.B, c *Capture, bin, path string, cfg NamespaceConfig) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable bpf stats: %v", err)
	}
	defer stats.Close()
	progs := []*ebpf.Program{c.objs.hooks["vg_sys_enter"], c.objs.hooks["vg_sys_exit"]}
	runtime := func() time.Duration {
		var t time.Duration
		for _, p := range progs {
			s, err := p.Stats()
			if err != nil {
				b.Fatal(err)
			}
			t += s.Runtime
		}
		return t
	}
	// Rounds of at least 20,000 opens (about 0.1 s each): with -benchtime
	// 1s the framework stops after b.N=1, and rounds of a few milliseconds
	// measured scheduling noise more than the programs.
	const rounds = 20
	n := max(b.N/rounds, 20000)
	ns := nextNS()
	if err := c.SetNamespace(ns, cfg); err != nil {
		b.Fatal(err)
	}
	var (
		out, in         []float64
		inTime, outTime time.Duration
	)
	for range rounds {
		t0 := runtime()
		out = append(out, runOpenLoop(b, nil, 0, bin, path, n))
		t1 := runtime()
		in = append(in, runOpenLoop(b, c, ns, bin, path, n))
		t2 := runtime()
		outTime, inTime = outTime+t1-t0, inTime+t2-t1
	}
	mo, mi := median(out), median(in)
	b.ReportMetric(mo, "outside-ns/open")
	b.ReportMetric(mi, "inside-ns/open")
	b.ReportMetric(100*(mi-mo)/mo, "added-%")
	// paired-added-%: the median over rounds of each inside round against
	// the outside round just before it, which cancels slow drift.
	ratios := make([]float64, len(in))
	for i := range in {
		ratios[i] = 100 * (in[i] - out[i]) / out[i]
	}
	b.ReportMetric(median(ratios), "paired-added-%")
	b.ReportMetric(float64(inTime.Nanoseconds())/float64(rounds*n), "bpf-ns/open")
	b.ReportMetric(float64(outTime.Nanoseconds())/float64(rounds*n), "bpf-out-ns/open")
}

// opensOf returns a Run function that adds to events the opens of path
// its records stand for: one per file_open record plus the repeat counts
// of their repeat cache entries (which may come first when the reader
// lags); with ns, only those of namespace ns.Load().
func opensOf(path string, ns, events *atomic.Uint64) func(Record) {
	ids := map[uint64]bool{}
	early := map[uint64]uint64{}
	return func(r Record) {
		if ns != nil && r.Head().NS != ns.Load() {
			return
		}
		switch r := r.(type) {
		case *FileOpen:
			if r.File.Path.Name != path {
				return
			}
			events.Add(1)
			if id := r.RepeatID; id != 0 {
				ids[id] = true
				events.Add(early[id])
				delete(early, id)
			}
		case *RepeatCount:
			if ids[r.RepeatID] {
				events.Add(r.Count)
				delete(ids, r.RepeatID)
			} else {
				early[r.RepeatID] += r.Count
			}
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkCaptureOpen measures what a standalone `vigil run` pays before
// its command starts and after it ends: Open (parse the object, create
// the maps, load and verify the programs, attach) and Close (detach, free)
// of the tracepoint backend, and of BackendAuto (which probes the BPF LSM
// first and falls back to tracepoints where it is refused). cpu-ms is the
// CPU time of this process (the kernel's verifier included), which a busy
// machine disturbs less than the wall-clock open-ms and close-ms.
func BenchmarkCaptureOpen(b *testing.B) {
	for _, be := range []Backend{BackendTracepoint, BackendAuto} {
		b.Run(string(be), func(b *testing.B) {
			var open, closing time.Duration
			cpu0 := cpuTime(b)
			for range b.N {
				t0 := time.Now()
				c := openCaptureWith(b, Options{Backend: be, RingBufferBytes: 16 << 20})
				t1 := time.Now()
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
				open, closing = open+t1.Sub(t0), closing+time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(open)/1e6/n, "open-ms")
			b.ReportMetric(float64(closing)/1e6/n, "close-ms")
			b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/n, "cpu-ms")
		})
	}
}

// cpuTime is the user and system time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSyscall measures a syscall that makes no event (getppid) with
// no capture and with the tracepoint backend attached: the cost the
// capture adds to every syscall of the machine, in or out of a namespace.
func BenchmarkSyscall(b *testing.B) {
	b.Run("no-capture", func(b *testing.B) {
		for range b.N {
			unix.Getppid()
		}
	})
	b.Run("tracepoint", func(b *testing.B) {
		c := openCapture(b, BackendTracepoint)
		stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
		if err != nil {
			b.Fatalf("enable bpf stats: %v", err)
		}
		defer stats.Close()
		enter, exit := c.objs.hooks["vg_sys_enter"], c.objs.hooks["vg_sys_exit"]
		e0, _ := enter.Stats()
		x0, _ := exit.Stats()
		b.ResetTimer()
		for range b.N {
			unix.Getppid()
		}
		b.StopTimer()
		e1, _ := enter.Stats()
		x1, _ := exit.Stats()
		// The programs' own time per syscall, over every syscall of
		// the machine meanwhile (bpf_stats; the tracepoint dispatch
		// around them is not counted).
		if n := x1.RunCount - x0.RunCount; n > 0 {
			b.ReportMetric(float64((e1.Runtime-e0.Runtime+x1.Runtime-x0.Runtime).Nanoseconds())/float64(n), "bpf-ns/syscall")
		}
	})
}
