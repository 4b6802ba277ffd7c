package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
)

// envBurst turns on TestAgentBurstNewPoints and gives its number of files
// (50000 when set to "1").
const envBurst = "VIGIL_TEST_BURST"

// TestAgentBurstNewPoints is the burst check of issue 5: a container
// workload opens N distinct files (created beforehand) as fast as it can,
// so that each open is a new model point, and the agent must lose no
// record and keep its peak RSS (VmHWM) under 80 MiB. It runs only with
// VIGIL_TEST_BURST=1 (or =N files) because it takes a while; put TMPDIR on
// tmpfs to keep the disk's fdatasync latency out of it, and VIGIL_BIN to
// measure another build.
func TestAgentBurstNewPoints(t *testing.T) {
	nfiles := 0
	switch v := os.Getenv(envBurst); v {
	case "":
		t.Skipf("set %s=1 (or a number of files) to run the burst check", envBurst)
	case "1":
		nfiles = 50000
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want 1 or a number of files", envBurst, v)
		}
		nfiles = n
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 for the workload:", err)
	}
	// The interpreter itself, not a wrapper script (pyenv shims).
	out, err := exec.Command(python, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skip("python3 does not run:", err)
	}
	python = strings.TrimSpace(string(out))

	bin := mustHaveCapture(t)
	cgDir, ctr := containerCgroup(t)
	nsName := "docker-" + ctr.ID
	files := t.TempDir()
	for i := range nfiles {
		if err := os.WriteFile(filepath.Join(files, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(t.TempDir(), "burst.py")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`import os
d = %q
for i in range(%d):
    os.close(os.open(os.path.join(d, "f%%06d" %% i), os.O_RDONLY))
`, files, nfiles)), 0o644); err != nil {
		t.Fatal(err)
	}

	// VIGIL_TEST_RATE_ARGS adds agent flags, e.g. --repeat-cache=false
	// to make the kernel record every open.
	ag := startAgent(t, bin, strings.Fields(os.Getenv(envRate+"_ARGS"))...)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startWorkload(t, cgDir)
	waitEnrolled(t, ctx, client, nsName)
	w.release(t)

	start := time.Now()
	w.do(t, python+" "+script)
	ran := time.Since(start)
	// The agent is done when its log stops growing.
	var last int64 = -1
	stable := 0
	for stable < 20 && time.Since(start) < 4*time.Minute {
		time.Sleep(100 * time.Millisecond)
		st, err := os.Stat(ag.log)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() == last {
			stable++
		} else {
			stable, last = 0, st.Size()
		}
	}
	settled := time.Since(start)
	mem := procStatus(t, ag.cmd.Process.Pid)
	hwm := mem["VmHWM"]
	ag.stop(t)
	w.stop(t)

	rep := verifyLog(t, ag.log, measure.VerifyOptions{})
	var points, gaps int
	var lost uint64
	for _, n := range rep.Namespaces {
		if n.Name == nsName {
			points, gaps, lost = n.Points, n.Gaps, n.Lost
		}
	}
	t.Logf("burst of %d files: workload %v (%.0f opens/s), agent settled %v; namespace %s: %d points, %d gaps, %d records lost; agent VmHWM %.1f MiB (now: VmRSS %.1f, RssAnon %.1f, RssFile %.1f, RssShmem %.1f MiB); log %d records, %d bytes",
		nfiles, ran.Round(time.Millisecond), float64(nfiles)/ran.Seconds(), settled.Round(time.Millisecond), nsName, points, gaps, lost, mib(hwm),
		mib(mem["VmRSS"]), mib(mem["RssAnon"]), mib(mem["RssFile"]), mib(mem["RssShmem"]), rep.Records, last)
	if lost != 0 {
		t.Errorf("%d records lost in %d gaps; want none", lost, gaps)
	}
	if points < nfiles {
		t.Errorf("%d points; want at least %d (one per file)", points, nfiles)
	}
	if hwm >= 80<<20 {
		t.Errorf("agent VmHWM %.1f MiB; want under 80 MiB", mib(hwm))
	}
}

// envRate turns on TestAgentEventRate: a comma-separated list of event
// rates per second ("1" for 10000,100000,200000).
const envRate = "VIGIL_TEST_RATE"

// TestAgentEventRate is the rate check of issue 5: a container workload
// (two Go processes) opens one file at a paced rate for a few seconds per
// rate, so every event repeats a model point; the agent must lose nothing.
// It logs, per rate, the events the agent counted per second, its CPU
// time (user+system) per second of wall time, and its RSS. It runs only
// with VIGIL_TEST_RATE set. The agent exports every event (startAgent's
// --export), which a deployment need not do: the numbers are pessimistic.
func TestAgentEventRate(t *testing.T) {
	var rates []int
	switch v := os.Getenv(envRate); v {
	case "":
		t.Skipf("set %s=1 (or a comma-separated list of events per second) to run the rate check", envRate)
	case "1":
		rates = []int{10000, 100000, 200000}
	default:
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want 1 or a comma-separated list of rates", envRate, v)
			}
			rates = append(rates, n)
		}
	}
	const (
		workers = 2
		seconds = 5
	)
	bin := mustHaveCapture(t)
	cgDir, ctr := containerCgroup(t)
	nsName := "docker-" + ctr.ID
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The workload is a Go program (an interpreter tops out below 100k
	// opens/s here), paced: it catches up with rate*elapsed every half
	// millisecond, so short stalls are made up at once.
	dir := t.TempDir()
	src := filepath.Join(dir, "rate.go")
	if err := os.WriteFile(src, []byte(`package main

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	path := os.Args[1]
	rate, _ := strconv.ParseFloat(os.Args[2], 64)
	dur, _ := time.ParseDuration(os.Args[3])
	n, start := 0, time.Now()
	for {
		el := time.Since(start)
		if el >= dur {
			return
		}
		for target := int(el.Seconds() * rate); n < target; n++ {
			fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
			if err != nil {
				os.Exit(1)
			}
			syscall.Close(fd)
		}
		time.Sleep(500 * time.Microsecond)
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	workload := filepath.Join(dir, "rate")
	build := exec.Command("go", "build", "-o", workload, src)
	build.Dir, build.Env = dir, append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the workload: %v\n%s", err, out)
	}

	// VIGIL_TEST_RATE_ARGS adds agent flags, e.g. --repeat-cache=false
	// to make the kernel record every open.
	ag := startAgent(t, bin, strings.Fields(os.Getenv(envRate+"_ARGS"))...)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startWorkload(t, cgDir)
	waitEnrolled(t, ctx, client, nsName)
	w.release(t)
	w.do(t, fmt.Sprintf("GOMAXPROCS=1 %s %s 1000 100ms", workload, file)) // the point, learned

	pid := ag.cmd.Process.Pid
	events := func() float64 {
		v, _ := scrape(t, ag.metrics, "vigil_events_total", `namespace="`+nsName+`"`)
		return v
	}
	lostNow := func() float64 {
		v, _ := scrape(t, ag.metrics, "vigil_records_lost_total")
		return v
	}
	for _, rate := range rates {
		e0, cpu0, start := events(), procCPU(t, pid), time.Now()
		var cmd []string
		for range workers {
			cmd = append(cmd, fmt.Sprintf("GOMAXPROCS=1 %s %s %d %ds &", workload, file, rate/workers, seconds))
		}
		w.do(t, strings.Join(cmd, " ")+" wait")
		// Let the reader drain, then count.
		var e1 float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			if e := events(); e == e1 {
				break
			} else {
				e1 = e
			}
		}
		wall := time.Since(start).Seconds()
		cpu := procCPU(t, pid) - cpu0
		mem := procStatus(t, pid)
		t.Logf("rate %d/s for %ds: %.0f events in %.1fs, %.0f events/s over the workload's %ds; agent CPU %.0f%% of one CPU (%.2fs user+system), VmRSS %.1f MiB, VmHWM %.1f MiB; records lost so far %.0f",
			rate, seconds, e1-e0, wall, (e1-e0)/seconds, seconds, 100*cpu/float64(seconds), cpu, mib(mem["VmRSS"]), mib(mem["VmHWM"]), lostNow())
	}
	if l := lostNow(); l != 0 {
		t.Errorf("%.0f records lost; want none", l)
	}
	ag.stop(t)
	w.stop(t)

	rep := verifyLog(t, ag.log, measure.VerifyOptions{})
	for _, n := range rep.Namespaces {
		if n.Name == nsName && (n.Gaps != 0 || n.Lost != 0) {
			t.Errorf("namespace %s: %d gaps, %d records lost in the log; want none", nsName, n.Gaps, n.Lost)
		}
	}
}

// procCPU returns the user+system CPU seconds of process pid so far.
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime
	// and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on
	// Linux).
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q: too few fields", pid, b)
	}
	var ticks float64
	for _, s := range f[11:13] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %q: %v", pid, s, err)
		}
		ticks += v
	}
	return ticks / 100
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// procStatus returns the memory sizes (the "kB" fields) of
// /proc/PID/status in bytes.
func procStatus(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string]int64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		v, kb := strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok || !kb {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status %s: %q: %v", pid, k, v, err)
		}
		out[k] = n << 10
	}
	if _, ok := out["VmHWM"]; !ok {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	return out
}
