package vmrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// requireLSM reports whether VIGIL_TEST_LSM=require (set by the VM
// harness) turns a missing BPF LSM into a failure.
func requireLSM() bool { return os.Getenv("VIGIL_TEST_LSM") == "require" }

// mustHaveLSM skips, giving the reason, unless the test runs as root on a
// kernel that loads and attaches the LSM programs (a real load and
// attach), and fails instead under VIGIL_TEST_LSM=require. It returns the
// vigil binary to run.
func mustHaveLSM(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if requireLSM() {
			t.Fatalf("VIGIL_TEST_LSM=require: needs root to load eBPF programs (euid %d)", os.Geteuid())
		}
		t.Skipf("needs root to load eBPF programs (euid %d)", os.Geteuid())
	}
	c, err := bpf.Open(bpf.Options{Backend: bpf.BackendLSM, RingBufferBytes: 1 << 20})
	if err != nil {
		conclusive := errors.Is(err, bpf.ErrNoBPFLSM) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
			errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT)
		if requireLSM() || !conclusive {
			t.Fatalf("open the LSM backend: %v", err)
		}
		t.Skipf("the BPF LSM backend is not available here, enforcement is tested in the VM (go run ./test/vm -bin ./cmd/vigil -- ./test/vmrun): %v", err)
	}
	c.Close()
	return vigilBinary(t)
}

var builtVigil string

// vigilBinary is VIGIL_BIN, else the guest's $VIGIL_VM_BIN/vigil, else a
// vigil built for the test run.
func vigilBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("VIGIL_BIN"); bin != "" {
		return bin
	}
	if dir := os.Getenv("VIGIL_VM_BIN"); dir != "" {
		bin := filepath.Join(dir, "vigil")
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
		t.Fatalf("no vigil in the guest's %s: boot the VM with -bin ./cmd/vigil", dir)
	}
	if builtVigil != "" {
		return builtVigil
	}
	dir, err := os.MkdirTemp("", "vigil-vmrun")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vigil-tsem/vigil/cmd/vigil").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("build vigil: %v\n%s", err, out)
	}
	builtVigil = bin
	return bin
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCreate); dir != "" {
		os.Exit(createMain(dir))
	}
	code := m.Run()
	if builtVigil != "" {
		os.RemoveAll(filepath.Dir(builtVigil))
	}
	os.Exit(code)
}

// runResult is what one `vigil run` gave.
type runResult struct {
	args           []string
	status         int
	stdout, stderr string
}

// vigilRun runs `vigil run ARGS...` with stdin as the command's standard
// input (through a pipe); stdout is the command's.
func vigilRun(t *testing.T, bin, stdin string, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := runResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.status = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vigil run %q: %v", args, err)
	}
	return res
}

// readEvents parses a file of TSEM JSON lines; a missing file has none.
func readEvents(t *testing.T, name string) ([]*events.Event, []string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var evs []*events.Event
	var lines []string
	for i, l := range bytes.Split(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		e, err := events.Parse(l)
		if err != nil {
			t.Fatalf("%s:%d: %v\n%s", name, i+1, err, l)
		}
		evs = append(evs, e)
		lines = append(lines, string(l))
	}
	return evs, lines
}

// opens returns the pathnames of the file_open events.
func opens(evs []*events.Event) []string {
	var out []string
	for _, e := range evs {
		if p, ok := e.Payload.(*events.FileEvent); ok && e.Header.Type == "file_open" {
			out = append(out, p.File.Path.Pathname)
		}
	}
	return out
}

// byPolicy reports whether the kernel lets e pass by policy whatever the
// model says (bpf.DecidePass): an anonymous mapping without PROT_EXEC, or
// a signal to the sender's own process. Such events are forensics when
// the learning run did not make them (a heap grown another way) without
// making the task untrusted.
func byPolicy(e *events.Event) bool {
	switch p := e.Payload.(type) {
	case *events.MmapFile:
		return !p.HasFile && p.Prot&0x4 == 0
	case *events.TaskKill:
		// A Go runtime's preemption signal (SIGURG) to one of its own
		// threads (a brand-new thread is described by the state it
		// inherits, so the target is the sender's own task id).
		return p.Target == e.Header.TaskID
	}
	return false
}

// summary names an event for the log: type, process and what it acted on.
func summary(e *events.Event) string {
	s := fmt.Sprintf("%s %q", e.Header.Type, e.Header.Process)
	switch p := e.Payload.(type) {
	case *events.FileEvent:
		s += fmt.Sprintf(" %q", p.File.Path.Pathname)
	case *events.MmapFile:
		s += fmt.Sprintf(" prot %#x flags %#x", p.Prot, p.Flags)
		if p.HasFile {
			s += fmt.Sprintf(" %q", p.File.Path.Pathname)
		}
	case *events.TaskKill:
		s += fmt.Sprintf(" sig %d", p.Sig)
	}
	return s
}

// relative reports whether lm holds e as made by another task of the same
// executable identity: the exec'd task (p_task_id its exec parent's, in
// parents) for a thread or forked child (p_task_id = task_id), and the
// reverse. Which thread of a Go program makes an open is the scheduler's
// choice; vigil run keeps such an event forensics only.
func relative(t *testing.T, lm *model.Model, parents map[events.Digest]events.Digest, e *events.Event) bool {
	t.Helper()
	alt := *e
	if e.Header.PTaskID != e.Header.TaskID {
		alt.Header.PTaskID = e.Header.TaskID
	} else if p, ok := parents[e.Header.TaskID]; ok {
		alt.Header.PTaskID = p
	} else {
		return false
	}
	c, err := lm.Coefficient(&alt) // in the model's dialect, with its pseudonyms
	return err == nil && lm.Contains(c)
}

// sealedModel loads and seals the model file m, and maps the task id of
// each exec in the learned events to its parent's (for relative).
func sealedModel(t *testing.T, m string, learned []*events.Event) (*model.Model, map[events.Digest]events.Digest) {
	t.Helper()
	lm, err := model.LoadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	lm.Seal()
	parents := make(map[events.Digest]events.Digest)
	for _, e := range learned {
		if e.Header.PTaskID != e.Header.TaskID {
			parents[e.Header.TaskID] = e.Header.PTaskID
		}
	}
	return lm, parents
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRunEnforce learns `cat a /proc/self/fd/0 a` (stdin a pipe), then
// runs commands enforcing that model. The learned command must behave
// exactly as it did while learning (same output, exit 0, nothing denied,
// no forensics but events the kernel passes by policy or the model holds
// as made by another thread of the process), however the Go runtime differs
// in details the model must not depend on: heap addresses and sizes, the
// pid behind /proc/self (the runtime reads /proc/self/cgroup), the pipe's
// inode number, thread scheduling and preemption signals. An open of a
// file the model never saw must fail with EPERM, named in the command's
// error, and be in the forensics.
func TestRunEnforce(t *testing.T) {
	bin := mustHaveLSM(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte(filepath.Base(f)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const stdin = "from a pipe\n"
	m := filepath.Join(dir, "m.model")
	learned := filepath.Join(dir, "learned.json")
	learnCmd := []string{"cat", a, "/proc/self/fd/0", a}
	learnOut := "a\n" + stdin + "a\n"
	learn := vigilRun(t, bin, stdin, append([]string{"--backend", "lsm", "-o", m, "--trajectory", learned, "--"}, learnCmd...)...)
	if learn.status != 0 || learn.stdout != learnOut {
		t.Fatalf("learn: exit %d, stdout %q; want 0 and %q\n%s", learn.status, learn.stdout, learnOut, learn.stderr)
	}
	learnedEvents, learnedLines := readEvents(t, learned)
	if got := opens(learnedEvents); !contains(got, a) || !contains(got, "pipe:/") || !contains(got, "/proc/self/cgroup") {
		t.Errorf("the learned trajectory lacks the opens of %s, pipe:/ or /proc/self/cgroup: %q", a, got)
	}
	t.Logf("learned, opening %q:\n%s", opens(learnedEvents), learn.stderr)
	lm, parents := sealedModel(t, m, learnedEvents)

	tests := []struct {
		name       string
		cmd        []string
		ok         bool     // exit 0, else a failure
		stdout     string   // the command's output
		stderr     []string // what standard error must contain
		forensics  []string // pathnames of file_open forensics; nil: none but by policy or of a relative
		inModelNot []string // pathnames that must not be forensics
	}{
		{name: "learned command", cmd: learnCmd, ok: true, stdout: learnOut},
		{name: "learned command again", cmd: learnCmd, ok: true, stdout: learnOut},
		{name: "learned opens, fewer", cmd: []string{"cat", a}, ok: true, stdout: "a\n"},
		{
			name: "out-of-model open", cmd: []string{"cat", a, b}, ok: false, stdout: "a\n",
			stderr:    []string{b, "operation not permitted", "the kernel denied"},
			forensics: []string{b}, inModelNot: []string{a},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forensics := filepath.Join(t.TempDir(), "forensics.json")
			r := vigilRun(t, bin, stdin, append([]string{"--backend", "lsm", "--model", m, "--enforce", "--forensics", forensics, "--"}, tc.cmd...)...)
			fevs, flines := readEvents(t, forensics)
			if (r.status == 0) != tc.ok {
				t.Errorf("exit status %d; want success %v", r.status, tc.ok)
			}
			if tc.ok && strings.Contains(r.stderr, "the kernel denied") {
				t.Error("the kernel denied events of an in-model run")
			}
			if r.stdout != tc.stdout {
				t.Errorf("stdout %q; want %q", r.stdout, tc.stdout)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(s)) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if tc.forensics == nil {
				for i, e := range fevs {
					if !byPolicy(e) && !relative(t, lm, parents, e) {
						t.Errorf("forensics of the learned command:\n%s", flines[i])
					}
				}
			}
			got := opens(fevs)
			for _, p := range tc.forensics {
				if !contains(got, p) {
					t.Errorf("forensics lack the open of %s", p)
				}
			}
			for _, p := range tc.inModelNot {
				if contains(got, p) {
					t.Errorf("forensics hold the in-model open of %s", p)
				}
			}
			if t.Failed() {
				t.Logf("vigil run %q: exit %d\nstdout %q\nstderr:\n%s\nforensics:\n%s\nlearned trajectory:\n%s",
					r.args, r.status, r.stdout, r.stderr, strings.Join(flines, "\n"), strings.Join(learnedLines, "\n"))
			} else {
				t.Logf("vigil run %q: exit %d, stdout %q\n%s", r.args, r.status, r.stdout, r.stderr)
				for _, e := range fevs {
					t.Logf("forensics: %s", summary(e))
				}
			}
		})
	}
}
