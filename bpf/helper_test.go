package bpf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel tests run workloads as re-executions of the test binary in a
// helper mode (the VM has no shell): VIGIL_BPF_HELPER names the mode.
//
//	wait-exec  read one byte from stdin (the test enrolls the process
//	           meanwhile), then exec this binary again in mode
//	           VIGIL_BPF_NEXT, so everything after the exec is captured
//	open       open, read and close each file of VIGIL_BPF_FILES (':'
//	           separated); print "PATH ok" or "PATH ERRNO-NAME" per file
//	wait-open  print "ready", read one byte from stdin (the test switches
//	           the namespace to enforce meanwhile), then act as open
//	open-wait-open  act as open, then as wait-open (the test changes a
//	           file or lets the repeat window pass meanwhile)
//	fork       run this binary in mode "open" as a child and wait for it;
//	           print "child PID"
//	openloop   open and close VIGIL_BPF_FILES (one file) VIGIL_BPF_N times,
//	           print the nanoseconds the loop took
//	dormant-exec  read one byte from stdin (the test enrolls the process
//	           dormant meanwhile), open VIGIL_BPF_DORMANT, exec itself,
//	           open it again, run this binary in mode "open" as a child in
//	           a new mount namespace and print "child PID", then exec this
//	           binary in mode VIGIL_BPF_NEXT in a new mount namespace
//	create     make files with random names in VIGIL_BPF_DIR and use them
//	           (helperCreate)
//	create-loop  create VIGIL_BPF_FILES (one file), then act as openloop
//	connect    connect a TCP socket to VIGIL_BPF_ADDR, print "ok" or the error
//	signal-threads  start VIGIL_BPF_N threads (goroutines locked to new
//	           threads, blocked before any event of their own), send each
//	           SIGURG with tgkill, print "tid TID ERRNO-NAME" per thread
//	open-via   act on VIGIL_BPF_FILES (one file) the way VIGIL_BPF_VIA
//	           names (see openVia), print "ok" or the error
//	fork-pending  fork a child that makes no event (it waits on a pipe),
//	           write its pid to VIGIL_BPF_FILES, print "ready", read one
//	           byte from stdin, then release the child and wait for it
//
// In wait-exec, VIGIL_BPF_EXEC names a file to exec instead of this binary
// (a script whose interpreter is this binary).
const (
	envHelper = "VIGIL_BPF_HELPER"
	envNext   = "VIGIL_BPF_NEXT"
	envFiles  = "VIGIL_BPF_FILES"
	envAddr   = "VIGIL_BPF_ADDR"
	envN      = "VIGIL_BPF_N"
	envDorm   = "VIGIL_BPF_DORMANT"
	envVia    = "VIGIL_BPF_VIA"
	envExec   = "VIGIL_BPF_EXEC"
)

func init() {
	// A helper execs from the main thread: task storage (namespace
	// membership) belongs to the thread that Enroll named.
	if os.Getenv(envHelper) != "" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 3
	}
	switch mode {
	case "wait-exec":
		var b [1]byte
		if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper: wait:", err)
			return 3
		}
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envHelper+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, envHelper+"="+os.Getenv(envNext))
		if p := os.Getenv(envExec); p != "" {
			self = p
		}
		err := syscall.Exec(self, []string{self}, env)
		fmt.Fprintln(os.Stderr, "helper: exec:", err)
		return 3
	case "dormant-exec":
		return helperDormantExec(self)
	case "wait-open":
		os.Stdout.WriteString("ready\n")
		var b [1]byte
		if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper: wait:", err)
			return 3
		}
		return helperMain("open")
	case "open-wait-open":
		for _, p := range strings.Split(os.Getenv(envFiles), ":") {
			if p == "" {
				continue
			}
			if data, err := os.ReadFile(p); err != nil || len(data) == 0 {
				fmt.Fprintln(os.Stderr, "helper: open-wait-open:", p, err)
				return 3
			}
		}
		return helperMain("wait-open")
	case "open":
		var out strings.Builder
		for _, p := range strings.Split(os.Getenv(envFiles), ":") {
			if p == "" {
				continue
			}
			f, err := os.Open(p)
			if err == nil {
				_, err = io.Copy(io.Discard, f)
				f.Close()
			}
			fmt.Fprintf(&out, "%s %s\n", p, errName(err))
		}
		os.Stdout.WriteString(out.String())
		return 0
	case "fork":
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envHelper+"=open")
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: fork:", err)
			return 3
		}
		fmt.Printf("child %d\n", cmd.Process.Pid)
		return 0
	case "openloop":
		n, err := strconv.Atoi(os.Getenv(envN))
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper: openloop:", err)
			return 3
		}
		path := os.Getenv(envFiles)
		start := time.Now()
		for range n {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper: openloop:", err)
				return 3
			}
			unix.Close(fd)
		}
		fmt.Println(time.Since(start).Nanoseconds())
		return 0
	case "fork-pending":
		return helperForkPending()
	case "signal-threads":
		n, err := strconv.Atoi(os.Getenv(envN))
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper: signal-threads:", err)
			return 3
		}
		tids := make(chan int)
		release := make(chan struct{})
		for range n {
			go func() {
				// Never unlocked: the thread ends with the goroutine,
				// so the next one gets a new thread.
				runtime.LockOSThread()
				tids <- unix.Gettid()
				<-release
			}()
		}
		var out strings.Builder
		for range n {
			tid := <-tids
			err := unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
			fmt.Fprintf(&out, "tid %d %s\n", tid, errName(err))
		}
		close(release)
		os.Stdout.WriteString(out.String())
		return 0
	case "open-via":
		fmt.Println(errName(openVia(os.Getenv(envVia), os.Getenv(envFiles))))
		return 0
	case "create":
		return helperCreate()
	case "create-loop":
		return helperCreateLoop()
	case "connect":
		conn, err := net.Dial("tcp", os.Getenv(envAddr))
		if err == nil {
			conn.Close()
		}
		fmt.Println(errName(err))
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
	return 3
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// requireBPF reports whether VIGIL_TEST_BPF=require turns every kernel
// skip into a failure.
func requireBPF() bool { return os.Getenv("VIGIL_TEST_BPF") == "require" }

// requireLSM reports whether VIGIL_TEST_LSM=require (set by the VM harness)
// turns a BPF LSM skip into a failure. It is separate from VIGIL_TEST_BPF
// because CI's hosts have the BPF LSM active yet refuse LSM programs: there
// the tracepoint tests must run and the LSM tests run in the VM instead.
func requireLSM() bool { return os.Getenv("VIGIL_TEST_LSM") == "require" }

// require reports whether a failure to open backend b must fail the test.
func require(b Backend) bool {
	if b == BackendLSM {
		return requireLSM()
	}
	return requireBPF()
}

// openCapture opens a backend with a real load and attach. It skips the
// test, giving the reason, when the kernel conclusively refuses (not root,
// EPERM, not supported), and fails otherwise or when required (VIGIL_TEST_BPF
// for the tracepoint backend, VIGIL_TEST_LSM for the LSM backend).
func openCapture(t testing.TB, b Backend) *Capture {
	t.Helper()
	return openCaptureWith(t, Options{Backend: b, RingBufferBytes: 4 << 20})
}

// openCaptureWith is openCapture with options (opts.Backend set).
func openCaptureWith(t testing.TB, opts Options) *Capture {
	t.Helper()
	b := opts.Backend
	c, err := Open(opts)
	if err != nil {
		conclusive := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
			errors.Is(err, unix.EINVAL) && b == BackendLSM ||
			errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT)
		if require(b) || !conclusive {
			t.Fatalf("Open(%s) = %v", b, err)
		}
		t.Skipf("%s backend not available here: %v", b, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// collector gathers the records of a Capture in the background.
type collector struct {
	mu   sync.Mutex
	recs []Record
	stop context.CancelFunc
	done chan error
}

func collect(t testing.TB, c *Capture) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	col := &collector{stop: cancel, done: make(chan error, 1)}
	go func() {
		col.done <- c.Run(ctx, func(r Record) {
			col.mu.Lock()
			col.recs = append(col.recs, r)
			col.mu.Unlock()
		})
	}()
	t.Cleanup(func() { col.finish(t) })
	return col
}

// until waits (up to 5s) for a record matching ok.
func (col *collector) until(ok func(Record) bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		col.mu.Lock()
		for _, r := range col.recs {
			if ok(r) {
				col.mu.Unlock()
				return true
			}
		}
		col.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func (col *collector) finish(t testing.TB) []Record {
	t.Helper()
	if col.stop != nil {
		col.stop()
		if err := <-col.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		col.stop = nil
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	return col.recs
}

func (col *collector) snapshot() []Record {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]Record(nil), col.recs...)
}

// workload describes one helper run.
type workload struct {
	next string // mode after the exec
	env  []string
	cred *syscall.Credential
	// unshareMnt starts the helper in a mount namespace of its own.
	unshareMnt bool
	bin        string // default: this test binary
	// midway, when set, runs after the helper printed "ready" (mode
	// wait-open); the helper goes on when it returns.
	midway func()
	// join, when set, replaces enrolling the waiting helper in the
	// namespace (e.g. Capture.Ignore).
	join func(pid int) error
}

type ran struct {
	pid int
	out string
}

// runEnrolled starts the helper, enrolls it in ns (or calls w.join) while
// it waits, lets it exec into w.next and waits for it to exit.
func runEnrolled(t testing.TB, c *Capture, ns uint64, w workload) ran {
	t.Helper()
	bin := w.bin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), envHelper+"=wait-exec", envNext+"="+w.next)
	cmd.Env = append(cmd.Env, w.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: w.cred}
	if w.unshareMnt {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	pid := cmd.Process.Pid
	join := w.join
	if join == nil {
		join = func(pid int) error { return c.Enroll(pid, ns) }
	}
	if err := join(pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("enroll %d in %d: %v", pid, ns, err)
	}
	stdin.Write([]byte{'g'})
	out := bufio.NewReader(stdoutPipe)
	if w.midway != nil {
		line, err := out.ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper said %q, %v; want ready", line, err)
		}
		w.midway()
		stdin.Write([]byte{'g'})
	}
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Logf("helper %s exited: %v; stderr: %s", w.next, err, stderr.String())
	}
	return ran{pid: pid, out: string(rest)}
}

// sharedDir makes a directory every uid can read and execute, with a copy
// of the test binary in it (the go-build directory is private to root).
func sharedDir(t testing.TB) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-bpf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "helper.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nextNS returns a namespace id unique to the test process run.
var nsCounter struct {
	sync.Mutex
	n uint64
}

func nextNS() uint64 {
	nsCounter.Lock()
	defer nsCounter.Unlock()
	nsCounter.n++
	return uint64(os.Getpid())<<16 | nsCounter.n
}

// helperForkPending is the mode fork-pending: the child is forked with a
// raw clone and makes raw system calls only (a read, then exit_group), so
// the kernel keeps its membership in the fork's pending table until it
// exits.
func helperForkPending() int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: fork-pending:", err)
		return 3
	}
	rfd := r.Fd()
	var b [1]byte
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "helper: fork-pending: clone:", errno)
		return 3
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_READ, rfd, uintptr(unsafe.Pointer(&b[0])), 1)
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	if err := os.WriteFile(os.Getenv(envFiles), []byte(strconv.Itoa(int(pid))), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "helper: fork-pending:", err)
		return 3
	}
	os.Stdout.WriteString("ready\n")
	if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
		fmt.Fprintln(os.Stderr, "helper: wait:", err)
		return 3
	}
	w.Write(b[:])
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil {
		fmt.Fprintln(os.Stderr, "helper: fork-pending: wait:", err)
		return 3
	}
	return 0
}
