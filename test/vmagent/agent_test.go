package vmagent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/internal/agent"
	"github.com/vigil-tsem/vigil/internal/config"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/namespace"
	"github.com/vigil-tsem/vigil/test/agenttest"
)

// wait bounds every wait for the agent: the VM emulates its CPU (TCG).
const wait = time.Minute

// requireLSM reports whether VIGIL_TEST_LSM=require (set by the VM
// harness) turns a refused LSM backend into a failure.
func requireLSM() bool { return os.Getenv("VIGIL_TEST_LSM") == "require" }

// syncBuffer is a bytes.Buffer safe for the agent's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is an agent started in-process by a test.
type running struct {
	ag     *agent.Agent
	cfg    config.Config
	stderr *syncBuffer // the final register line
	cancel context.CancelFunc
	done   chan error
}

// startAgent opens the agent with the LSM backend, its socket, log and
// models in a temp directory, the software register and metrics on a free
// loopback port, and runs it. It skips, giving the reason, when the kernel
// conclusively refuses (not root, LSM programs refused or unsupported),
// and fails instead when VIGIL_TEST_LSM=require.
func startAgent(t *testing.T) *running {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Backend = "lsm"
	cfg.Socket = filepath.Join(dir, "run", "vigil.sock")
	cfg.Log = filepath.Join(dir, "measurements.log")
	cfg.Register = "software"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ModelDir = filepath.Join(dir, "models")
	cfg.ContainerResync = time.Second
	logs := &syncBuffer{}
	r := &running{cfg: cfg, stderr: &syncBuffer{}, done: make(chan error, 1)}
	ag, err := agent.New(cfg, agent.Options{
		Stdout:    io.Discard,
		Stderr:    r.stderr,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StopGrace: time.Hour, // the namespace stays until the agent stops
	})
	if err != nil {
		conclusive := errors.Is(err, agent.ErrNotRoot) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
			errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT)
		if requireLSM() || !conclusive {
			t.Fatalf("agent.New with backend lsm: %v", err)
		}
		t.Skipf("the LSM backend is not available here (LSM programs refused): %v", err)
	}
	r.ag = ag
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			r.done <- err
		case <-time.After(wait):
			t.Errorf("agent did not stop within %v", wait)
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return r
}

// stop ends the agent as SIGTERM does and returns what it wrote to stderr.
func (r *running) stop(t *testing.T) string {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("agent Run after its context ended: %v; want nil", err)
		}
	case <-time.After(wait):
		t.Fatalf("agent did not stop within %v", wait)
	}
	return r.stderr.String()
}

// containerCgroup makes <root>/vigil-vm.slice/docker-<64 hex>.scope as
// Docker's systemd driver names a container's cgroup, and removes it (once
// empty) when the test ends.
func containerCgroup(t *testing.T) (dir string, c namespace.Container) {
	t.Helper()
	root, err := namespace.FindCgroup2Root("/sys/fs/cgroup")
	if err != nil {
		t.Fatalf("no cgroup v2 hierarchy: %v", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	slice := filepath.Join(root, "vigil-vm.slice")
	dir = filepath.Join(slice, "docker-"+hex.EncodeToString(raw[:])+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create a container cgroup: %v", err)
	}
	agenttest.RemoveCgroupAtCleanup(t, dir, slice, 10*time.Second)
	c = agenttest.Container(t, root, dir)
	return dir, c
}

// workload is this test binary in helper mode serve, in a container
// cgroup, answering one command at a time.
type workload struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *syncBuffer
	ended  chan error
	once   sync.Once
}

// startWorkload starts the helper in mode gate and moves it into the
// cgroup before it does anything else: as a container runtime does, the
// workload's first process is in its cgroup before it execs.
func startWorkload(t *testing.T, cgroupDir string) *workload {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{stderr: &syncBuffer{}, ended: make(chan error, 1)}
	w.cmd = exec.Command(self)
	// GOMAXPROCS set: the runtime does not read /proc/self/cgroup at start.
	// GOGC off: no collection, whose signals to its own threads could come
	// only after the model was sealed.
	w.cmd.Env = append(os.Environ(), envHelper+"=gate", "GOMAXPROCS=1", "GOGC=off")
	w.cmd.Stderr = w.stderr
	// In a mount namespace of its own, as a container's processes are:
	// the agent leaves a process in the host's dormant (unrecorded) until
	// it execs into another (a container runtime's init).
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if w.in, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.out = bufio.NewReader(out)
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start workload: %v", err)
	}
	go func() { w.ended <- w.cmd.Wait() }()
	t.Cleanup(func() { w.stop(t) })
	if err := os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(w.cmd.Process.Pid)), 0); err != nil {
		t.Fatalf("move the workload into its cgroup: %v", err)
	}
	return w
}

// release lets the workload exec into mode serve.
func (w *workload) release(t *testing.T) {
	t.Helper()
	if _, err := w.in.Write([]byte{'g'}); err != nil {
		t.Fatalf("release workload: %v", err)
	}
}

// open asks the workload to open path and returns its answer.
func (w *workload) open(t *testing.T, path string) string {
	t.Helper()
	if _, err := fmt.Fprintln(w.in, "open "+path); err != nil {
		t.Fatalf("send open %s to the workload: %v (stderr %q)", path, err, w.stderr.String())
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		t.Fatalf("workload after open %s: %q, %v (stderr %q)", path, line, err, w.stderr.String())
	}
	return strings.TrimSuffix(line, "\n")
}

// stop ends the workload's input and waits for it.
func (w *workload) stop(t *testing.T) {
	w.once.Do(func() {
		w.in.Close()
		select {
		case err := <-w.ended:
			if err != nil {
				t.Logf("workload ended: %v; stderr %q", err, w.stderr.String())
			}
		case <-time.After(wait):
			t.Errorf("workload did not end within %v of its input closing", wait)
			w.cmd.Process.Kill()
			<-w.ended
		}
	})
}

// The agent tests' shared helpers (test/agenttest).
var (
	pathnames = agenttest.Pathnames
	scrape    = agenttest.Scrape
	contains  = slices.Contains[[]string, string]
)

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	agenttest.WaitFor(t, wait, what, cond)
}

// TestAgentEnforce is the agent on the BPF LSM: a container's namespace
// learns, is sealed and enforced through the control API (the agent
// pushes the model's allow set to the kernel), and then the kernel lets
// the learned open through and denies one outside the model with EPERM;
// the denial is in the forensics and the metrics, the task is untrusted
// from then on, and the measured log verifies after the agent stops.
func TestAgentEnforce(t *testing.T) {
	ag := startAgent(t)
	cgDir, ctr := containerCgroup(t)
	nsName := ctr.NamespaceName()
	files := t.TempDir()
	learned, extra := filepath.Join(files, "learned.txt"), filepath.Join(files, "extra.txt")
	for _, p := range []string{learned, extra} {
		if err := os.WriteFile(p, []byte(p+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	client := control.NewClient(ag.cfg.Socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	w := startWorkload(t, cgDir)
	info := agenttest.WaitEnrolled(t, wait, ctx, client, nsName)
	if info.Origin != "container" || info.Container == nil || info.Container.Runtime != "docker" || info.Container.ID != ctr.ID || info.Mode != control.ModeLearning {
		t.Fatalf("namespace %s = %+v (container %+v); want a learning docker container namespace", nsName, info, info.Container)
	}
	w.release(t)

	// Learn.
	if got := w.open(t, learned); got != "ok" {
		t.Fatalf("learning: open %s: %s; want ok", learned, got)
	}
	waitFor(t, "the learned open in the trajectory", func() (bool, error) {
		var buf bytes.Buffer
		err := client.Trajectory(ctx, nsName, &buf)
		return contains(pathnames(t, buf.Bytes()), learned), err
	})

	// Seal and enforce through the control API.
	sealed, err := client.Seal(ctx, nsName)
	if err != nil {
		t.Fatalf("seal %s: %v", nsName, err)
	}
	if sealed.Mode != control.ModeSealed {
		t.Fatalf("after seal: mode %s; want %s", sealed.Mode, control.ModeSealed)
	}
	enforcing, err := client.Enforce(ctx, nsName)
	if err != nil {
		t.Fatalf("enforce %s: %v", nsName, err)
	}
	if enforcing.Mode != control.ModeEnforcing {
		t.Fatalf("after enforce: mode %s; want %s", enforcing.Mode, control.ModeEnforcing)
	}

	// The kernel decides now: the model's open passes, another is denied,
	// and the denial leaves the task untrusted.
	if got := w.open(t, learned); got != "ok" {
		t.Errorf("enforcing: open %s (in the model): %s; want ok", learned, got)
	}
	if got := w.open(t, extra); got != "EPERM" {
		t.Errorf("enforcing: open %s (outside the model): %s; want EPERM", extra, got)
	}
	if got := w.open(t, learned); got != "EPERM" {
		t.Errorf("enforcing, after a denial: open %s: %s; want EPERM (the task is untrusted)", learned, got)
	}

	var forensics []string
	waitFor(t, "the denied open in the forensics", func() (bool, error) {
		var buf bytes.Buffer
		err := client.Forensics(ctx, nsName, &buf)
		forensics = pathnames(t, buf.Bytes())
		return contains(forensics, extra), err
	})
	var final control.NamespaceInfo
	label := `namespace="` + nsName + `"`
	waitFor(t, "denials in the namespace and the metrics", func() (bool, error) {
		before, err := client.Namespace(ctx, nsName)
		if err != nil {
			return false, err
		}
		denials, _ := scrape(t, ag.ag.MetricsAddr().String(), "vigil_denials_total", label)
		forens, _ := scrape(t, ag.ag.MetricsAddr().String(), "vigil_forensics_events_total", label)
		after, err := client.Namespace(ctx, nsName)
		if err != nil || after.Events != before.Events {
			return false, err
		}
		final = after
		if after.Denials < 1 || uint64(denials) != after.Denials || uint64(forens) != after.ForensicsEvents {
			return false, fmt.Errorf("metrics denials %v forensics %v; namespace denials %d forensics %d",
				denials, forens, after.Denials, after.ForensicsEvents)
		}
		return true, nil
	})
	if final.Mode != control.ModeEnforcing || final.ForensicsPoints < 1 || final.UntrustedTasks < 1 || final.Lost != 0 {
		t.Errorf("namespace at the end: mode %s, %d forensics points, %d untrusted tasks, %d lost; want enforcing, forensics, an untrusted task, no loss",
			final.Mode, final.ForensicsPoints, final.UntrustedTasks, final.Lost)
	}
	if n, ok := scrape(t, ag.ag.MetricsAddr().String(), "vigil_capture_backend_info", `backend="lsm"`); !ok || n != 1 {
		t.Errorf("vigil_capture_backend_info{backend=\"lsm\"} = %v (present %v); want 1", n, ok)
	}
	t.Logf("namespace %s: %d points, %d events, %d forensics points, %d denials, measurement %s",
		nsName, final.Points, final.Events, final.ForensicsPoints, final.Denials, final.Measurement)

	// Stop, then verify the log against the register's last value.
	w.stop(t)
	stderr := ag.stop(t)
	m := regexp.MustCompile(`(?m)^register software (\d+) sha384 ([0-9a-f]{96})$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("agent stderr has no final register line:\n%s", stderr)
	}
	index, _ := strconv.Atoi(m[1])
	value, _ := hex.DecodeString(m[2])
	f, err := os.Open(ag.cfg.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := measure.Verify(f, ag.cfg.Log, measure.VerifyOptions{Register: value, Kind: measure.KindSoftware, Index: index})
	if err != nil {
		t.Fatalf("verify the agent's log: %v", err)
	}
	var nsRep *measure.NamespaceReport
	for _, n := range rep.Namespaces {
		if n.Name == nsName {
			nsRep = n
		}
	}
	if nsRep == nil {
		t.Fatalf("log has no namespace %s", nsName)
	}
	if !nsRep.Sealed || !nsRep.Enforcing || nsRep.Points != final.Points || nsRep.Forensics != final.ForensicsPoints || nsRep.Measurement.String() != final.Measurement {
		t.Errorf("log namespace: sealed %v, enforcing %v, %d points, %d forensics, measurement %s; agent said %d points, %d forensics, measurement %s",
			nsRep.Sealed, nsRep.Enforcing, nsRep.Points, nsRep.Forensics, nsRep.Measurement, final.Points, final.ForensicsPoints, final.Measurement)
	}
	t.Logf("log verified: %d records, %s", rep.Records, m[0])
}
