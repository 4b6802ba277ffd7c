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

	ag := startAgent(t, bin)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startWorkload(t, cgDir)
	waitFor(t, "the container's namespace with its task enrolled", func() (bool, error) {
		list, err := client.Namespaces(ctx)
		for _, n := range list {
			if n.Name == nsName {
				return n.Tasks >= 1, nil
			}
		}
		return false, err
	})
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

	f, err := os.Open(ag.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := measure.Verify(f, ag.log, measure.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify the agent's log: %v", err)
	}
	var points, gaps int
	var lost uint64
	for _, n := range rep.Namespaces {
		if n.Name == nsName {
			points, gaps, lost = n.Points, n.Gaps, n.Lost
		}
	}
	t.Logf("burst of %d files: workload %v, agent settled %v; namespace %s: %d points, %d gaps, %d records lost; agent VmHWM %.1f MiB (now: VmRSS %.1f, RssAnon %.1f, RssFile %.1f, RssShmem %.1f MiB); log %d records, %d bytes",
		nfiles, ran.Round(time.Millisecond), settled.Round(time.Millisecond), nsName, points, gaps, lost, mib(hwm),
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
