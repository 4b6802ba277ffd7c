package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/test/agenttest"
)

// TestAgentSIGHUP checks that SIGHUP neither stops nor disturbs the agent:
// it reads the config file again and says what differs, keeps serving, and
// a later SIGTERM still stops it cleanly (status 0, the final register line
// that verifies its log, the socket removed). SIGHUP's default action used
// to kill it (status 129) with none of that.
func TestAgentSIGHUP(t *testing.T) {
	bin := mustHaveCapture(t)
	conf := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(conf, []byte("hash: sha256\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, bin, "--config", conf)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, step := range []struct {
		config, log string
	}{
		{"hash: sha256\n", "SIGHUP: configuration read again: no change"},
		{"hash: sha384\nfail_closed: true\n", `changed=hash,fail_closed`},
		{"hash: md5\n", `level=WARN msg="SIGHUP: the configuration does not load`},
	} {
		if err := os.WriteFile(conf, []byte(step.config), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ag.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("send SIGHUP: %v", err)
		}
		agenttest.WaitFor(t, 10*time.Second, "the agent to log "+step.log, func() (bool, error) {
			select {
			case err := <-ag.exited:
				ag.exited <- err
				t.Fatalf("agent exited after SIGHUP: %v; want it running", err)
			default:
			}
			b, err := os.ReadFile(ag.stderr)
			return strings.Contains(string(b), step.log), err
		})
		if _, err := client.Agent(ctx); err != nil {
			t.Fatalf("control socket after SIGHUP: %v", err)
		}
		if _, found := agenttest.Scrape(t, ag.metrics, "vigil_namespaces"); !found {
			t.Fatalf("metrics after SIGHUP: no vigil_namespaces")
		}
	}

	stderr := ag.stop(t)
	verifyAgentLog(t, ag, stderr)
	if !strings.Contains(stderr, `msg="agent stopped"`) {
		t.Errorf("agent stderr has no 'agent stopped':\n%s", stderr)
	}
	if _, err := os.Stat(ag.socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket %s after the agent stopped: %v; want it removed", ag.socket, err)
	}
}

// TestRunSIGHUP sends SIGHUP to a standalone 'vigil run' (as a closing
// terminal does) in each of its phases. Before CMD starts it stops the run
// cleanly: exit status 129, CMD never started, no output file. While CMD
// runs it goes to CMD: a CMD that ignores it runs to its end, one that dies
// of it gives status 129; both leave a complete model file. SIGHUP's
// default action used to kill vigil before CMD started, outputs unwritten.
func TestRunSIGHUP(t *testing.T) {
	bin := mustHaveCapture(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	for _, tc := range []struct {
		name    string
		script  string // GO: a file the test creates after the signal
		trigger string // signal when this shows on vigil's standard error or output
		status  int
		ran     bool // CMD ran: the model has /etc/hostname
		stderr  string
	}{
		{"before the command starts", `touch "$RAN"; cat /etc/hostname`,
			"loading the capture programs", 129, false, "vigil: SIGHUP before the command started: not started, no output written"},
		{"command ignores it", `trap "" HUP; touch "$RAN"; echo ready; while [ ! -e "$GO" ]; do sleep 0.05; done; cat /etc/hostname`,
			"ready", 0, true, ""},
		{"command dies of it", `touch "$RAN"; cat /etc/hostname; echo ready; exec sleep 60`,
			"ready", 129, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "m.model")
			ran, goFile := filepath.Join(dir, "ran"), filepath.Join(dir, "go")
			cmd := exec.Command(bin, "run", "--agent", "never", "-o", out, "--", sh, "-c", tc.script)
			cmd.Env = append(os.Environ(), "RAN="+ran, "GO="+goFile)
			pr, pw := io.Pipe()
			var seen bytes.Buffer
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait(); pw.Close() }()
			t.Cleanup(func() { cmd.Process.Kill() })
			sc := bufio.NewScanner(pr)
			signaled := false
			for sc.Scan() {
				seen.WriteString(sc.Text() + "\n")
				if !signaled && strings.Contains(sc.Text(), tc.trigger) {
					if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
						t.Fatal(err)
					}
					signaled = true
					time.Sleep(100 * time.Millisecond)
					os.WriteFile(goFile, nil, 0o644)
				}
			}
			err := <-exited
			var ee *exec.ExitError
			status := 0
			if errors.As(err, &ee) {
				if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
					t.Fatalf("vigil run killed by %v; want it to exit by itself\n%s", ws.Signal(), seen.String())
				}
				status = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if !signaled || status != tc.status || !strings.Contains(seen.String(), tc.stderr) {
				t.Fatalf("vigil run: signaled %v, exit status %d; want %d and %q\n%s", signaled, status, tc.status, tc.stderr, seen.String())
			}
			if _, err := os.Stat(ran); (err == nil) != tc.ran {
				t.Errorf("the command ran: %v; want %v", err == nil, tc.ran)
			}
			m, err := model.LoadFile(out)
			if !tc.ran {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("model file of a run stopped before the command started: %v; want none", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("model file: %v\n%s", err, seen.String())
			}
			var paths []string
			for _, d := range m.Trajectory() {
				paths = append(paths, agenttest.Pathnames(t, append(d, '\n'))...)
			}
			if !slices.Contains(paths, "/etc/hostname") {
				t.Errorf("model trajectory pathnames %v; want /etc/hostname", paths)
			}
		})
	}
}
