package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/namespace"
	"github.com/vigil-tsem/vigil/test/agenttest"
)

// agentProc is a `vigil agent` started by a test.
type agentProc struct {
	cmd     *exec.Cmd
	stderr  string // file
	socket  string
	log     string
	export  string
	metrics string // host:port
	exited  chan error
}

// startAgent starts the agent binary with its state in a temp directory,
// the tracepoint backend, the software register and metrics on a free
// loopback port, and waits until it serves. Flags in extra come last (and
// so win).
func startAgent(t *testing.T, bin string, extra ...string) *agentProc {
	t.Helper()
	return startAgentStdout(t, bin, nil, extra...)
}

// startAgentStdout is startAgent with the agent's standard output on
// stdout (nil: with its standard error).
func startAgentStdout(t *testing.T, bin string, stdout *os.File, extra ...string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	a := &agentProc{
		stderr: filepath.Join(dir, "agent.err"),
		socket: filepath.Join(dir, "run", "vigil.sock"),
		log:    filepath.Join(dir, "measurements.log"),
		export: filepath.Join(dir, "export.json"),
		exited: make(chan error, 1),
	}
	errf, err := os.Create(a.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	a.cmd = exec.Command(bin, "agent", "--config=", "--backend", "tracepoint",
		"--socket", a.socket, "--log", a.log, "--register", "software",
		"--metrics-addr", "127.0.0.1:0", "--model-dir", filepath.Join(dir, "models"),
		"--export", a.export, "--container-resync", "1s")
	a.cmd.Args = append(a.cmd.Args, extra...)
	a.cmd.Stdout, a.cmd.Stderr = errf, errf
	if stdout != nil {
		a.cmd.Stdout = stdout
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(a.stderr)
			t.Logf("agent stderr:\n%s", b)
		}
	})
	metricsRE := regexp.MustCompile(`msg="agent running".* metrics=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(a.stderr)
		if m := metricsRE.FindSubmatch(b); m != nil {
			a.metrics = string(m[1])
			break
		}
		select {
		case err := <-a.exited:
			a.exited <- err
			t.Fatalf("agent exited before serving (%v):\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start in 30s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a
}

// stop sends SIGTERM and returns the agent's stderr after it exited.
func (a *agentProc) stop(t *testing.T) string {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal agent: %v", err)
	}
	select {
	case err := <-a.exited:
		a.exited <- err
		if err != nil {
			b, _ := os.ReadFile(a.stderr)
			t.Fatalf("agent after SIGTERM: %v; want exit status 0\n%s", err, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30s of SIGTERM")
	}
	b, err := os.ReadFile(a.stderr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// containerCgroup makes <root>/vigil-e2e-<n>.slice/docker-<64 hex>.scope
// as Docker's systemd driver names a container's cgroup, and removes it
// (once empty) when the test ends.
func containerCgroup(t *testing.T) (dir string, c namespace.Container) {
	t.Helper()
	root, err := namespace.FindCgroup2Root("/sys/fs/cgroup")
	if err != nil {
		skipOrFail(t, "no cgroup v2 hierarchy: %v", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	slice := filepath.Join(root, fmt.Sprintf("vigil-e2e-%d.slice", os.Getpid()))
	dir = filepath.Join(slice, "docker-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		skipOrFail(t, "create a cgroup: %v", err)
	}
	agenttest.RemoveCgroupAtCleanup(t, dir, slice, 5*time.Second)
	c = agenttest.Container(t, root, dir)
	return dir, c
}

// workload is a shell in a container cgroup that runs the commands it is
// sent, one at a time, and says "done" after each.
type workload struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	gate  *os.File
	ended chan error
	once  sync.Once
}

// startWorkload starts a shell that waits on a gate pipe before it execs
// the command loop, and moves it into the cgroup: as a container runtime
// does, the workload's first process is in its cgroup before it execs.
func startWorkload(t *testing.T, cgroupDir string) *workload {
	t.Helper()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	w := &workload{gate: gateW, ended: make(chan error, 1)}
	w.cmd = exec.Command(sh, "-c", `read _ <&3; exec 3<&-; exec `+sh+` -c 'while read -r cmd; do sh -c "$cmd" >/dev/null; echo done; done'`)
	w.cmd.ExtraFiles = []*os.File{gateR}
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
	gateR.Close()
	go func() { w.ended <- w.cmd.Wait() }()
	t.Cleanup(func() { w.stop(t) })
	if err := os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(w.cmd.Process.Pid)), 0); err != nil {
		t.Fatalf("move the workload into its cgroup: %v", err)
	}
	return w
}

// release lets the workload exec its command loop.
func (w *workload) release(t *testing.T) {
	t.Helper()
	if _, err := w.gate.Write([]byte{1}); err != nil {
		t.Fatalf("release workload: %v", err)
	}
	w.gate.Close()
}

// do runs one shell command in the workload and waits until it is done.
func (w *workload) do(t *testing.T, command string) {
	t.Helper()
	if _, err := fmt.Fprintln(w.in, command); err != nil {
		t.Fatalf("send %q to the workload: %v", command, err)
	}
	line, err := w.out.ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("workload after %q: %q, %v; want done", command, line, err)
	}
}

// stop ends the command loop and waits for the workload.
func (w *workload) stop(t *testing.T) {
	w.once.Do(func() {
		w.gate.Close()
		w.in.Close()
		select {
		case <-w.ended:
		case <-time.After(10 * time.Second):
			t.Errorf("workload did not end within 10s of its input closing")
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

func waitEnrolled(t *testing.T, ctx context.Context, client *control.Client, name string) control.NamespaceInfo {
	t.Helper()
	return agenttest.WaitEnrolled(t, 15*time.Second, ctx, client, name)
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	agenttest.WaitFor(t, 15*time.Second, what, cond)
}

// TestAgentContainerLifecycle is the agent's main job on the host kernel:
// a container cgroup appears, gets its own namespace, learns, is sealed,
// steps outside its model (forensics), the metrics agree with the
// namespace, and the measured log verifies after a graceful stop.
func TestAgentContainerLifecycle(t *testing.T) {
	bin := mustHaveCapture(t)
	cgDir, ctr := containerCgroup(t)
	nsName := "docker-" + ctr.ID
	files := t.TempDir()
	learned, extra := filepath.Join(files, "learned.txt"), filepath.Join(files, "extra.txt")
	for _, p := range []string{learned, extra} {
		if err := os.WriteFile(p, []byte(p+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ag := startAgent(t, bin)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	w := startWorkload(t, cgDir)
	info := waitEnrolled(t, ctx, client, nsName)
	if info.Origin != "container" || info.Container == nil || info.Container.Runtime != "docker" || info.Container.ID != ctr.ID || info.Mode != control.ModeLearning {
		t.Fatalf("namespace %s = %+v (container %+v); want a learning docker container namespace", nsName, info, info.Container)
	}
	w.release(t)

	// Learn.
	w.do(t, "cat "+learned)
	waitFor(t, "the learned open in the trajectory", func() (bool, error) {
		var buf bytes.Buffer
		err := client.Trajectory(ctx, nsName, &buf)
		return contains(pathnames(t, buf.Bytes()), learned), err
	})

	// Seal, by a prefix of the name as an operator would type it.
	sealed, err := client.Seal(ctx, nsName[:19])
	if err != nil {
		t.Fatalf("seal %s: %v", nsName[:19], err)
	}
	if sealed.Mode != control.ModeSealed || sealed.Name != nsName {
		t.Fatalf("after seal: %s mode %s; want %s sealed", sealed.Name, sealed.Mode, nsName)
	}
	if _, err := client.Seal(ctx, nsName); !errors.Is(err, control.ErrConflict) {
		t.Errorf("sealing twice: %v; want ErrConflict", err)
	}

	// What the model knows stays quiet; what it does not is forensics.
	w.do(t, "cat "+learned)
	w.do(t, "cat "+extra)
	var forensics []string
	waitFor(t, "the extra open in the forensics", func() (bool, error) {
		var buf bytes.Buffer
		err := client.Forensics(ctx, nsName, &buf)
		forensics = pathnames(t, buf.Bytes())
		return contains(forensics, extra), err
	})
	if contains(forensics, learned) {
		t.Errorf("forensics %q include the learned %s", forensics, learned)
	}

	// Metrics agree with the namespace once the workload is idle.
	var final control.NamespaceInfo
	waitFor(t, "metrics that match the namespace", func() (bool, error) {
		before, err := client.Namespace(ctx, nsName)
		if err != nil {
			return false, err
		}
		label := `namespace="` + nsName + `"`
		evs, _ := scrape(t, ag.metrics, "vigil_events_total", label)
		for_, _ := scrape(t, ag.metrics, "vigil_forensics_events_total", label)
		pts, _ := scrape(t, ag.metrics, "vigil_model_points", label)
		after, err := client.Namespace(ctx, nsName)
		if err != nil || after.Events != before.Events {
			return false, err
		}
		final = after
		if uint64(evs) != after.Events || uint64(for_) != after.ForensicsEvents || int(pts) != after.Points {
			return false, fmt.Errorf("metrics events %v forensics %v points %v; namespace events %d forensics %d points %d",
				evs, for_, pts, after.Events, after.ForensicsEvents, after.Points)
		}
		return true, nil
	})
	if final.ForensicsPoints < 1 || final.Points < 1 || final.Lost != 0 {
		t.Errorf("namespace at the end: %d points, %d forensics points, %d lost; want points, forensics, no loss", final.Points, final.ForensicsPoints, final.Lost)
	}
	if n, ok := scrape(t, ag.metrics, "vigil_capture_backend_info", `backend="tracepoint"`); !ok || n != 1 {
		t.Errorf("vigil_capture_backend_info{backend=\"tracepoint\"} = %v (present %v); want 1", n, ok)
	}

	// Graceful stop, then verify the log against the register's last value.
	w.stop(t)
	stderr := ag.stop(t)
	rep, m := verifyAgentLog(t, ag, stderr)
	var nsRep *measure.NamespaceReport
	for _, n := range rep.Namespaces {
		if n.Name == nsName {
			nsRep = n
		}
	}
	if nsRep == nil {
		t.Fatalf("log has no namespace %s", nsName)
	}
	if !nsRep.Sealed || nsRep.Points != final.Points || nsRep.Forensics != final.ForensicsPoints || nsRep.Measurement.String() != final.Measurement {
		t.Errorf("log namespace: sealed %v, %d points, %d forensics, measurement %s; agent said %d points, %d forensics, measurement %s",
			nsRep.Sealed, nsRep.Points, nsRep.Forensics, nsRep.Measurement, final.Points, final.ForensicsPoints, final.Measurement)
	}
	if out, err := exec.Command(bin, "verify", "--log", ag.log, "--register", m[0]).CombinedOutput(); err != nil {
		t.Errorf("vigil verify: %v\n%s", err, out)
	}

	// The export holds the events, the forensics one included.
	exported, err := os.ReadFile(ag.export)
	if err != nil {
		t.Fatal(err)
	}
	if got := pathnames(t, exported); !contains(got, extra) || !contains(got, learned) {
		t.Errorf("export has pathnames %q; want %s and %s among them", got, learned, extra)
	}
}

// TestAgentRefusesNonRoot checks the plain message for a user who forgot
// sudo; it needs a user to switch to, so it runs as root.
func TestAgentRefusesNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the agent as another user")
	}
	bin := mustHaveCapture(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv:", err)
	}
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "agent", "--config=").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "vigil agent needs root") {
		t.Fatalf("agent as uid 65534: %v\n%s\nwant exit status 1 and a message saying it needs root", err, out)
	}
}

// verifyAgentLog verifies the agent's measured log against the final
// register line on its stderr (software register 23) and returns the
// report and the line's match (m[0] the line, m[1] the value).
func verifyAgentLog(t *testing.T, ag *agentProc, stderr string) (*measure.Report, []string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^register software 23 sha384 ([0-9a-f]{96})$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("agent stderr has no final register line:\n%s", stderr)
	}
	value, _ := hex.DecodeString(m[1])
	return verifyLog(t, ag.log, measure.VerifyOptions{Register: value, Kind: measure.KindSoftware, Index: 23}), m
}

// verifyLog verifies the measured log at path with opts and fails the
// test if it does not verify.
func verifyLog(t *testing.T, path string, opts measure.VerifyOptions) *measure.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := measure.Verify(f, path, opts)
	if err != nil {
		t.Fatalf("verify the agent's log: %v", err)
	}
	return rep
}
