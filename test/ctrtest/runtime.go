package ctrtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Runtime is a container engine's command line.
type Runtime struct {
	// Name is "podman" or "docker": the runtime part of the namespace
	// names the agent gives their containers.
	Name string
	bin  string
	// global flags before every subcommand, and flags of every run.
	global, run []string
}

// Debian's paths first: another docker client may come earlier in PATH.
var (
	podmanPaths = []string{"/usr/bin/podman"}
	dockerPaths = []string{"/usr/bin/docker"}
	dockerd     = []string{"/usr/sbin/dockerd", "/usr/bin/dockerd"}
	runcPaths   = []string{"/usr/sbin/runc", "/usr/bin/runc"}
)

// requireRuntimes reports whether a missing runtime must fail the test.
func requireRuntimes() bool {
	return os.Getenv("CI") == "true" || os.Getenv("VIGIL_TEST_BPF") == "require"
}

// skipOrFail skips t with the reason, or fails it where runtimes are
// required.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireRuntimes() {
		t.Fatalf("container runtime required (CI=true or VIGIL_TEST_BPF=require): "+format, args...)
	}
	t.Skipf(format, args...)
}

func find(paths []string, name string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// Podman returns Podman with runc and the cgroupfs manager, or skips t
// (fails it under CI) when Podman or runc is missing or not working.
func Podman(t testing.TB) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("container tests need root")
	}
	exclusive(t)
	bin, runc := find(podmanPaths, "podman"), find(runcPaths, "runc")
	if bin == "" || runc == "" {
		skipOrFail(t, "podman (%q) or runc (%q) not installed: run make deps as root", bin, runc)
	}
	r := &Runtime{
		Name: "podman", bin: bin,
		global: []string{"--runtime", runc, "--cgroup-manager", "cgroupfs"},
		run:    []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := r.Command(ctx, "info").CombinedOutput(); err != nil {
		skipOrFail(t, "podman info: %v\n%s", err, out)
	}
	return r
}

// Docker returns Docker. When no daemon answers it starts dockerd (with
// the cgroupfs driver, no bridge, no iptables) and stops it when t ends;
// it skips t (fails it under CI) when Docker is missing or its daemon does
// not start within a minute.
func Docker(t testing.TB) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("container tests need root")
	}
	exclusive(t)
	bin, daemon := find(dockerPaths, "docker"), find(dockerd, "dockerd")
	if bin == "" || daemon == "" {
		skipOrFail(t, "docker (%q) or dockerd (%q) not installed: run make deps as root", bin, daemon)
	}
	r := &Runtime{Name: "docker", bin: bin}
	if r.answers() {
		return r
	}
	logf, err := os.CreateTemp("", "vigil-dockerd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--exec-opt", "native.cgroupdriver=cgroupfs",
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		skipOrFail(t, "start dockerd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		os.Remove(logf.Name())
	}
	deadline := time.Now().Add(time.Minute)
	for !r.answers() {
		select {
		case err := <-done:
			b, _ := os.ReadFile(logf.Name())
			done <- err
			stop()
			skipOrFail(t, "dockerd exited: %v\n%s", err, tail(b, 2000))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			stop()
			skipOrFail(t, "dockerd did not answer within a minute\n%s", tail(b, 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(stop)
	return r
}

func (r *Runtime) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Command(ctx, "info").Run() == nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Command returns the runtime's command line with its global flags and
// args.
func (r *Runtime) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.bin, append(append([]string(nil), r.global...), args...)...)
}

// Import imports the tar archive of a root file system as image ref.
func (r *Runtime) Import(ctx context.Context, archive, ref string) error {
	if out, err := r.Command(ctx, "import", archive, ref).CombinedOutput(); err != nil {
		return fmt.Errorf("%s import %s: %w\n%s", r.Name, ref, err, out)
	}
	return nil
}

// RunSpec is one container run.
type RunSpec struct {
	Image string
	Cmd   []string
	// Args are more flags for run (before the image).
	Args []string
	// Stdin feeds the container's standard input (run -i) when not nil.
	Stdin []byte
}

// Result is a finished container: its id (64 hex digits), its output and
// exit error.
type Result struct {
	ID     string
	Stdout []byte
	Stderr []byte
	Err    error
}

// NamespaceName is the name the agent gives the container's modeling
// namespace.
func (r *Runtime) NamespaceName(id string) string { return r.Name + "-" + id }

// Run runs a container to its end with --network none and removes it.
// The error is the container's exit (an *exec.ExitError) or a failure to
// run it; the id is known in both cases once the runtime created it.
func (r *Runtime) Run(ctx context.Context, spec RunSpec) Result {
	dir, err := os.MkdirTemp("", "vigil-ctr-")
	if err != nil {
		return Result{Err: err}
	}
	defer os.RemoveAll(dir)
	cidfile := filepath.Join(dir, "cid")
	args := []string{"run", "--rm", "--network", "none", "--cidfile", cidfile}
	args = append(args, r.run...)
	if spec.Stdin != nil {
		args = append(args, "-i")
	}
	args = append(args, spec.Args...)
	args = append(args, spec.Image)
	args = append(args, spec.Cmd...)
	cmd := r.Command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if spec.Stdin != nil {
		cmd.Stdin = bytes.NewReader(spec.Stdin)
	}
	runErr := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Err: runErr}
	b, err := os.ReadFile(cidfile)
	if err != nil {
		if res.Err == nil {
			res.Err = fmt.Errorf("%s run: no container id: %w", r.Name, err)
		}
		return res
	}
	res.ID = strings.TrimSpace(string(b))
	if !isID(res.ID) {
		res.Err = errors.Join(res.Err, fmt.Errorf("%s run: container id %q is not 64 hex digits", r.Name, res.ID))
	}
	return res
}

// Exec runs a command in a running container (exec), returning its
// combined output.
func (r *Runtime) Exec(ctx context.Context, id string, cmd ...string) ([]byte, error) {
	return r.Command(ctx, append([]string{"exec", id}, cmd...)...).CombinedOutput()
}

// Start runs a container in the background (run -d) and returns its id;
// the container is removed when t ends.
func (r *Runtime) Start(t testing.TB, ctx context.Context, spec RunSpec) string {
	t.Helper()
	args := []string{"run", "-d", "--network", "none"}
	args = append(args, r.run...)
	args = append(args, spec.Args...)
	args = append(args, spec.Image)
	args = append(args, spec.Cmd...)
	out, err := r.Command(ctx, args...).Output()
	if err != nil {
		t.Fatalf("%s run -d %s: %v %s", r.Name, spec.Image, err, stderrOf(err))
	}
	id := strings.TrimSpace(string(out))
	if !isID(id) {
		t.Fatalf("%s run -d: id %q is not 64 hex digits", r.Name, id)
	}
	t.Cleanup(func() { r.Remove(id) })
	return id
}

// Remove removes a container, stopping it first.
func (r *Runtime) Remove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"rm", "-f", id}
	if r.Name == "podman" {
		args = []string{"rm", "-f", "--time", "0", id} // no grace: the workload may ignore SIGTERM
	}
	if out, err := r.Command(ctx, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s rm -f %s: %w\n%s", r.Name, id, err, out)
	}
	return nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
