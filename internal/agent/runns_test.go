package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/namespace"
)

// helperEnv makes the test binary the helper process; with
// helperOpenEnv it then reads the file that names before it exits.
const (
	helperEnv     = "VIGIL_AGENT_TEST_HELPER"
	helperOpenEnv = "VIGIL_AGENT_TEST_OPEN"
)

// TestHelperProcess is not a test: it is the child process the run
// namespace tests enrol, waiting until its standard input closes.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for the run namespace tests")
	}
	io.Copy(io.Discard, os.Stdin)
	if p := os.Getenv(helperOpenEnv); p != "" {
		if _, err := os.ReadFile(p); err != nil {
			os.Exit(1)
		}
	}
	os.Exit(0)
}

// startHelper starts a child of this process that waits until stop.
func startHelper(t *testing.T) (pid int, stop func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if !done {
			done = true
			in.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	return cmd.Process.Pid, stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func self() control.Peer { return control.Peer{PID: int32(os.Getpid())} }

func TestRunNamespace(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256", Capable: true, FailClosed: true}, "")
	f.tab.runs.grace = 100 * time.Millisecond
	f.tab.runs.countWait = 200 * time.Millisecond

	info, err := f.tab.Create(control.CreateRequest{Name: "build", Origin: control.OriginRun, Settings: control.Settings{Capable: false}, Owner: self()})
	if err != nil {
		t.Fatal(err)
	}
	id := info.Context
	if info.Origin != "run" || info.Name != "build" || info.Mode != control.ModeLearning || info.Settings.HashAlgorithm != "sha256" || info.Ended {
		t.Fatalf("Create() = %+v; want a learning run namespace named build with the agent's hash", info)
	}
	if cfg, ok := f.kern.config[id]; !ok || cfg.Mode != bpf.ModeLearn || !cfg.NoCapable {
		t.Errorf("kernel config of %d = %+v (%v); want learning without capable events", id, cfg, ok)
	}
	if list := f.tab.Namespaces(); len(list) != 1 || list[0].Name != "build" {
		t.Errorf("Namespaces() = %+v; want the run namespace listed", list)
	}

	// Refusals.
	refused := []struct {
		name string
		req  control.CreateRequest
		want error
	}{
		{"name in use", control.CreateRequest{Name: "build"}, control.ErrConflict},
		{"enforce on an observe-only backend", control.CreateRequest{Settings: control.Settings{Enforce: true}}, bpf.ErrObserveOnly},
		{"other hash", control.CreateRequest{Settings: control.Settings{HashAlgorithm: "sha1"}}, control.ErrInvalid},
		{"container origin", control.CreateRequest{Origin: "container"}, control.ErrInvalid},
		{"bad name", control.CreateRequest{Name: "../x"}, control.ErrInvalid},
	}
	for _, tc := range refused {
		if _, err := f.tab.Create(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("Create(%s) = %v; want %v", tc.name, err, tc.want)
		}
	}

	// Enrol a child of ours; a process that is not is refused.
	pid, stop := startHelper(t)
	if err := f.tab.AddTask("build", control.TaskRequest{PID: pid, Caller: control.Peer{PID: 1}}); !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "parent") {
		t.Errorf("AddTask(someone else's child) = %v; want ErrInvalid naming the parent", err)
	}
	if err := f.tab.AddTask("build", control.TaskRequest{PID: os.Getpid(), Caller: self()}); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("AddTask(the agent) = %v; want ErrInvalid", err)
	}
	if err := f.tab.AddTask("build", control.TaskRequest{PID: pid, Caller: self()}); err != nil {
		t.Fatalf("AddTask() = %v", err)
	}
	if ns := f.kern.tasks[pid]; ns != id {
		t.Fatalf("kernel has pid %d in namespace %d; want %d", pid, ns, id)
	}
	if err := f.tab.AddTask("build", control.TaskRequest{PID: pid, Caller: self()}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("AddTask(again) = %v; want ErrConflict (membership is sticky)", err)
	}
	if info, _ := f.tab.Namespace("build"); info.Tasks != 1 {
		t.Errorf("tasks = %d; want 1", info.Tasks)
	}

	// The tracepoint backend's first record of the root is its exec: the
	// exec's open is described under the name the root had when enrolled.
	_, comm, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe := &bpf.Exec{Header: bpf.Header{Type: bpf.RecExec, Flags: bpf.FlagObserved, NS: id, PID: uint32(pid), TGID: uint32(pid), TTD: 11, PTTD: 0}, PrevTTD: 10}
	copy(exe.Comm[:], "after-exec")
	disp := namespace.NewDispatcher(f.tab.reg, nil)
	f.tab.beforeDispatch(exe)
	if err := disp.Dispatch(exe); err != nil {
		t.Fatal(err)
	}
	f.tab.afterDispatch(exe)
	traj, err := f.tab.Trajectory("build")
	if err != nil || len(traj) != 1 {
		t.Fatalf("trajectory = %d points, %v; want the exec's open", len(traj), err)
	}
	e, err := events.Parse(traj[0].Event)
	if err != nil {
		t.Fatal(err)
	}
	if e.Header.Type != "file_open" || e.Header.Process != comm {
		t.Errorf("exec open: type %s process %q; want file_open by %q (the name when enrolled)", e.Header.Type, e.Header.Process, comm)
	}

	// Sync waits for the exit record of the enrolled pid.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	exited, err := f.tab.Sync(ctx, "build", pid)
	cancel()
	if err != nil || exited {
		t.Errorf("Sync(before the exit record) = %v, %v; want false after the timeout", exited, err)
	}
	if _, err := f.tab.Sync(context.Background(), "build", pid+100000); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("Sync(pid not enrolled) = %v; want ErrInvalid", err)
	}
	synced := make(chan bool, 1)
	go func() {
		ok, _ := f.tab.Sync(context.Background(), "build", pid)
		synced <- ok
	}()
	stop()
	other := &bpf.TaskExit{Header: bpf.Header{Type: bpf.RecTaskExit, NS: id + 1, PID: uint32(pid), TTD: 11}}
	f.tab.afterDispatch(other) // another namespace's task of that pid
	select {
	case <-synced:
		t.Fatal("Sync returned on the exit of a task of another namespace")
	case <-time.After(50 * time.Millisecond):
	}
	exit := &bpf.TaskExit{Header: bpf.Header{Type: bpf.RecTaskExit, NS: id, PID: uint32(pid), TTD: 11}}
	f.tab.beforeDispatch(exit)
	disp.Dispatch(exit)
	f.tab.afterDispatch(exit)
	exitDone := time.Now()
	select {
	case ok := <-synced:
		if !ok {
			t.Error("Sync() = false after the exit record")
		}
		// The repeat counts of the window still running come later.
		if d := time.Since(exitDone); d < 190*time.Millisecond {
			t.Errorf("Sync returned %v after the exit record; want it to wait the 200ms of the repeat counts", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync did not return after the exit record")
	}
	if ok, err := f.tab.Sync(context.Background(), "build", pid); !ok || err != nil {
		t.Errorf("Sync(after the exit) = %v, %v; want true at once", ok, err)
	}
	if info, _ := f.tab.Namespace("build"); info.Tasks != 0 {
		t.Errorf("tasks after the exit = %d; want 0", info.Tasks)
	}

	// End: listed as ended for the grace, then removed; a new run may
	// take the name at once.
	end, err := f.tab.End("build")
	if err != nil || !end.Ended || end.Points != 1 {
		t.Fatalf("End() = %+v, %v; want ended with its point", end, err)
	}
	if again, err := f.tab.End("build"); err != nil || !again.Ended {
		t.Errorf("End(again) = %v; want the same answer", err)
	}
	pid2, _ := startHelper(t)
	if err := f.tab.AddTask("build", control.TaskRequest{PID: pid2, Caller: self()}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("AddTask(ended) = %v; want ErrConflict", err)
	}
	if _, err := f.tab.Sync(context.Background(), "build", pid); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("Sync(ended) = %v; want ErrInvalid", err)
	}
	waitUntil(t, "the ended namespace's removal", func() bool {
		_, err := f.tab.Namespace("build")
		return errors.Is(err, control.ErrNotFound)
	})
	f.kern.mu.Lock()
	_, configured := f.kern.config[id]
	f.kern.mu.Unlock()
	if configured {
		t.Errorf("kernel still configures namespace %d after its removal", id)
	}

	second, err := f.tab.Create(control.CreateRequest{Name: "build"})
	if err != nil || second.Context == id {
		t.Fatalf("Create(build) after the removal = %+v, %v; want a new namespace", second, err)
	}
	if _, err := f.tab.End("build"); err != nil {
		t.Fatal(err)
	}
	third, err := f.tab.Create(control.CreateRequest{Name: "build"})
	if err != nil || third.Context == second.Context {
		t.Fatalf("Create(build) while the ended one is kept = %+v, %v; want it replaced", third, err)
	}

	// The run's point is in the measured log.
	rep := f.verify(t)
	var found bool
	for _, n := range rep.Namespaces {
		if n.ID == id {
			found = n.Name == "build" && n.Points == 1
		}
	}
	if !found {
		t.Errorf("log namespaces %+v; want namespace %d (build) with 1 point", rep.Namespaces, id)
	}
}

// TestRunOwnerExit: a namespace whose creator dies without ending it is
// ended by the agent.
func TestRunOwnerExit(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	f.tab.runs.ownerPoll = 10 * time.Millisecond
	owner, stop := startHelper(t)
	if _, err := f.tab.Create(control.CreateRequest{Name: "orphan", Owner: control.Peer{PID: int32(owner)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if info, _ := f.tab.Namespace("orphan"); info.Ended {
		t.Fatal("ended while its creator runs")
	}
	stop()
	waitUntil(t, "the orphan namespace to end", func() bool {
		info, _ := f.tab.Namespace("orphan")
		return info.Ended
	})
}

// TestRunRoutesOnContainers: containers' namespaces are not run's.
func TestRunRoutesOnContainers(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	if err := f.tab.AddTask(name, control.TaskRequest{PID: os.Getpid()}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("AddTask(container) = %v; want ErrConflict", err)
	}
	if _, err := f.tab.End(name); !errors.Is(err, control.ErrConflict) {
		t.Errorf("End(container) = %v; want ErrConflict", err)
	}
	if _, err := f.tab.Create(control.CreateRequest{Name: name}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("Create(a container's name) = %v; want ErrConflict", err)
	}
	if _, err := f.tab.End("nope"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("End(nope) = %v; want ErrNotFound", err)
	}
}

func TestProcStat(t *testing.T) {
	ppid, comm, err := procStat(os.Getpid())
	if err != nil || ppid != os.Getppid() || comm == "" {
		t.Errorf("procStat(self) = %d %q %v; want parent %d and a name", ppid, comm, err, os.Getppid())
	}
	pid, stop := startHelper(t)
	stop()
	if _, _, err := procStat(pid); err == nil {
		t.Errorf("procStat(exited %d) = nil error", pid)
	}
}

// TestRunEnforceLSM: on a backend that can deny, a run namespace created
// with enforce on and then given its model (what `vigil run --model M
// --enforce` does) enforces before the workload starts.
func TestRunEnforceLSM(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(tsemDir, "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, true, control.Settings{HashAlgorithm: "sha256"}, "")
	// `vigil run` asks for the model file's dialect (the kernel's here).
	info, err := f.tab.Create(control.CreateRequest{Settings: control.Settings{Enforce: true, Dialect: "tsem"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != control.ModeLearning || !strings.HasPrefix(info.Name, "run-") {
		t.Fatalf("Create() = %+v; want a learning run-<id> namespace (no model yet)", info)
	}
	if err := f.tab.Load(info.Name, good); err != nil {
		t.Fatal(err)
	}
	after, _ := f.tab.Namespace(info.Name)
	f.kern.mu.Lock()
	cfg := f.kern.config[info.Context]
	f.kern.mu.Unlock()
	if after.Mode != control.ModeEnforcing || cfg.Mode != bpf.ModeEnforce {
		t.Errorf("after the model: mode %s, kernel mode %s; want enforcing", after.Mode, cfg.Mode)
	}
	if a := f.tab.Agent(); !a.CanEnforce || a.PID != os.Getpid() || a.Defaults.HashAlgorithm != "sha256" {
		t.Errorf("Agent() = %+v; want this process, able to enforce, sha256", a)
	}
}
