package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory for the test
// (the tests run as root); a mount that fails skips the test with the
// reason, or fails it when CI is set.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a %d-byte tmpfs on %s: %v", size, dir, err)
		}
		t.Skipf("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// vigilOut runs the vigil binary and returns its output and exit status.
func vigilOut(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("vigil %s: %v", strings.Join(args, " "), err)
	return "", 0
}

// finalRegister is the "register ..." line the agent printed on exit.
func finalRegister(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^register software 23 sha384 [0-9a-f]{96}$`).FindString(stderr)
	if m == "" {
		t.Fatalf("agent stderr has no final register line:\n%s", stderr)
	}
	return m
}

// TestAgentLogOnFullDisk: the agent's measured log on a small tmpfs that a
// container's new points fill. The failure is never silent: the metrics
// count failed writes and unrecorded points, `vigil ns show` and `vigil ns
// list` flag the namespace, and once space is freed the log catches up,
// writes the namespace's gap record, and `vigil verify` reports the gap
// (exit status 3) instead of a bare "verified".
func TestAgentLogOnFullDisk(t *testing.T) {
	bin := mustHaveCapture(t)
	cgDir, ctr := containerCgroup(t)
	nsName := "docker-" + ctr.ID
	disk := mountTmpfs(t, 4<<20)
	logPath := filepath.Join(disk, "measurements.log")
	// Most of the disk is taken; the rest fills with the log (and the
	// agent's description spool, which lives next to it).
	ballast := filepath.Join(disk, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 3584<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	const nfiles = 3000
	files := t.TempDir()
	for i := range nfiles {
		if err := os.WriteFile(filepath.Join(files, fmt.Sprintf("f%04d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ag := startAgent(t, bin, "--log", logPath)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := startWorkload(t, cgDir)
	waitEnrolled(t, ctx, client, nsName)
	w.release(t)

	// Each open of a new file is a new point: about 800 bytes of log
	// each, far more than the disk has left.
	w.do(t, "for f in "+files+"/f*; do : < $f; done")
	var info control.NamespaceInfo
	waitFor(t, "points not recorded", func() (bool, error) {
		var err error
		info, err = client.Namespace(ctx, nsName)
		return err == nil && info.Log != nil && info.Log.Unrecorded > 0, err
	})
	if info.Log.Status != control.LogIncomplete || !strings.Contains(info.Log.Error, "no space left on device") {
		t.Errorf("log state with the disk full = %+v; want incomplete, no space left on device", info.Log)
	}
	appendErrors, _ := scrape(t, ag.metrics, "vigil_log_append_errors_total")
	if appendErrors < 1 {
		t.Errorf("vigil_log_append_errors_total = %v; want > 0", appendErrors)
	}
	show, code := vigilOut(t, bin, "ns", "show", "--socket", ag.socket, nsName)
	if code != 0 || !regexp.MustCompile(`log: +incomplete: \d+ model points not recorded`).MatchString(show) || !strings.Contains(show, "no space left on device") {
		t.Errorf("vigil ns show = exit %d\n%s\nwant a log line: incomplete, points not recorded, no space left on device", code, show)
	}
	list, code := vigilOut(t, bin, "ns", "list", "--socket", ag.socket)
	if code != 0 || !regexp.MustCompile(`(?m)^`+nsName+` .* incomplete `).MatchString(list) {
		t.Errorf("vigil ns list = exit %d\n%s\nwant %s with LOG incomplete", code, list, nsName)
	}

	// Space comes back: the held records and the gap record are written.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log to catch up", func() (bool, error) {
		var err error
		info, err = client.Namespace(ctx, nsName)
		return err == nil && info.Log.Waiting == 0 && info.Log.Error == "", err
	})
	unrecorded := info.Log.Unrecorded
	if n, _ := scrape(t, ag.metrics, "vigil_log_points_unrecorded_total", `namespace="`+nsName+`"`); uint64(n) != unrecorded {
		t.Errorf("vigil_log_points_unrecorded_total = %v; want the namespace's %d", n, unrecorded)
	}
	// Extends counted are records written, not points queued.
	extends, _ := scrape(t, ag.metrics, "vigil_register_extends_total")
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if records := bytes.Count(data, []byte("\n")); int(extends) != records {
		t.Errorf("vigil_register_extends_total = %v; the log has %d records", extends, records)
	}

	w.stop(t)
	stderr := ag.stop(t)
	for _, want := range []string{"the measured log cannot be written", "the measured log can be written again", "model points not recorded in the measured log"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("agent stderr does not say %q:\n%s", want, stderr)
		}
	}
	out, code := vigilOut(t, bin, "verify", "--log", logPath, "--register", finalRegister(t, stderr))
	wantOut := []string{
		"verified, with gaps: the register is explained by the log, but the log is incomplete:",
		fmt.Sprintf("%d points not recorded: log write failed: no space left on device", unrecorded),
	}
	if code != 3 || !strings.Contains(out, wantOut[0]) || !strings.Contains(out, wantOut[1]) {
		t.Errorf("vigil verify = exit %d\n%s\nwant exit 3 and %q", code, out, wantOut)
	}
	t.Logf("%d failed writes, %d points not recorded; vigil verify (exit %d):\n%s", int(appendErrors), unrecorded, code, out)
}

// TestAgentRestartAfterCut: records cut from the end of the log between
// two runs of the agent (software register, which replays the log at
// start) do not verify silently: the second run's start record finds no
// stop record, the agent warns, and `vigil verify` reports run 1 as ended
// unclean (exit status 3).
func TestAgentRestartAfterCut(t *testing.T) {
	bin := mustHaveCapture(t)
	cgDir, ctr := containerCgroup(t)
	nsName := "docker-" + ctr.ID
	logPath := filepath.Join(t.TempDir(), "measurements.log")
	file := filepath.Join(t.TempDir(), "seen.txt")
	if err := os.WriteFile(file, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	ag := startAgent(t, bin, "--log", logPath)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := startWorkload(t, cgDir)
	waitEnrolled(t, ctx, control.NewClient(ag.socket), nsName)
	w.release(t)
	w.do(t, "cat "+file)
	w.stop(t)
	stderr := ag.stop(t)
	if out, code := vigilOut(t, bin, "verify", "--log", logPath, "--register", finalRegister(t, stderr)); code != 0 {
		t.Fatalf("vigil verify after run 1 = exit %d; want 0\n%s", code, out)
	}

	const cut = 3
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1] // after the last newline
	if len(lines) <= cut+1 {
		t.Fatalf("run 1 wrote %d records; want more than %d", len(lines), cut+1)
	}
	if err := os.WriteFile(logPath, bytes.Join(lines[:len(lines)-cut], nil), 0o600); err != nil {
		t.Fatal(err)
	}

	ag = startAgent(t, bin, "--log", logPath)
	stderr = ag.stop(t)
	for _, want := range []string{"the previous run of the measured log did not end with a stop record", "records of earlier runs cannot be attested"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("agent stderr does not say %q:\n%s", want, stderr)
		}
	}
	out, code := vigilOut(t, bin, "verify", "--log", logPath, "--register", finalRegister(t, stderr))
	if code != 3 || !regexp.MustCompile(`run 1 \(line 1\): started \S+, ended UNCLEAN`).MatchString(out) || !strings.Contains(out, "run 1 (line 1) ended without a stop record") {
		t.Errorf("vigil verify after the cut and a restart = exit %d\n%s\nwant exit 3, run 1 ended unclean", code, out)
	}
	t.Logf("vigil verify after %d records were cut and a restart (exit %d):\n%s", cut, code, out)
}
