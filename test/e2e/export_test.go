package e2e

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAgentExportFlushes: the events of a short command reach the export
// file within the flush interval while the agent runs, so a kill -9 does
// not lose them.
func TestAgentExportFlushes(t *testing.T) {
	bin := mustHaveCapture(t)
	ag := startAgent(t, bin, "--export-flush-interval", "200ms")
	r := vigilRun(t, bin, "--agent", "always", "--socket", ag.socket, "--", "cat", "/etc/hostname")
	if r.status != 0 {
		t.Fatalf("vigil run: exit %d\n%s", r.status, r.stderr)
	}
	waitUntil(t, "the command's events in the export file", func() bool {
		b, _ := os.ReadFile(ag.export)
		return contains(pathnames(t, b), "/etc/hostname")
	})
	ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.exited
	ag.exited <- nil
	b, _ := os.ReadFile(ag.export)
	if !contains(pathnames(t, b), "/etc/hostname") {
		t.Errorf("the export lost the command's events at kill -9")
	}
}

// TestAgentExportClosedPipe: an export to standard output whose reader is
// gone neither kills the agent nor goes unseen: the failed writes are
// counted and logged, and the agent stops normally.
func TestAgentExportClosedPipe(t *testing.T) {
	bin := mustHaveCapture(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgentStdout(t, bin, pw, "--export", "-", "--export-flush-interval", "100ms")
	pw.Close()
	pr.Close() // the reader goes away
	r := vigilRun(t, bin, "--agent", "always", "--socket", ag.socket, "--", "cat", "/etc/hostname")
	if r.status != 0 {
		t.Fatalf("vigil run: exit %d\n%s", r.status, r.stderr)
	}
	waitUntil(t, "failed export writes counted", func() bool {
		if resp, err := http.Get("http://" + ag.metrics + "/healthz"); err != nil {
			select {
			case err := <-ag.exited:
				ag.exited <- err
				t.Fatalf("the agent died (%v) when its export reader went away", err)
			case <-time.After(5 * time.Second):
				t.Fatalf("the agent's metrics are gone: %v", err)
			}
		} else {
			resp.Body.Close()
		}
		errs, _ := scrape(t, ag.metrics, "vigil_export_write_errors_total")
		failed, _ := scrape(t, ag.metrics, "vigil_export_lines_total", `result="failed"`)
		return errs > 0 && failed > 0
	})
	if out := ag.stop(t); !strings.Contains(out, "event lines lost") || !strings.Contains(out, "broken pipe") {
		t.Errorf("agent log does not report the lost lines and the error:\n%s", out)
	}
}
