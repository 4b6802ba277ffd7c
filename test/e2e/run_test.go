package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// envConnect makes the test binary a client that connects to the address
// it names and exits: the workload of the socket test. envReadDelete makes
// it read the file it names and delete it at once.
const (
	envConnect    = "VIGIL_E2E_CONNECT"
	envReadDelete = "VIGIL_E2E_READ_DELETE"
)

func TestMain(m *testing.M) {
	if p := os.Getenv(envReadDelete); p != "" {
		if _, err := os.ReadFile(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.Remove(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv(envConnect); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func requireBPF() bool { return os.Getenv("VIGIL_TEST_BPF") == "require" }

// skipOrFail skips with the reason, or fails under VIGIL_TEST_BPF=require.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireBPF() {
		t.Fatalf("VIGIL_TEST_BPF=require: "+format, args...)
	}
	t.Skipf(format, args...)
}

var (
	vigilBin string
	buildDir string // where the tests built vigilBin, removed at the end
)

// mustHaveCapture skips unless the test runs as root on a kernel that
// loads and attaches the capture programs (a real load and attach), and
// returns the vigil binary to run.
func mustHaveCapture(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to load eBPF programs (euid %d)", os.Geteuid())
	}
	c, err := bpf.Open(bpf.Options{Backend: bpf.BackendAuto, RingBufferBytes: 1 << 20})
	if err != nil {
		conclusive := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
			errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) ||
			errors.Is(err, bpf.ErrNoBackend)
		if !conclusive || requireBPF() {
			t.Fatalf("open capture: %v", err)
		}
		t.Skipf("no capture backend here: %v", err)
	}
	c.Close()
	if vigilBin == "" {
		vigilBin = os.Getenv("VIGIL_BIN")
	}
	if vigilBin == "" {
		dir, err := os.MkdirTemp("", "vigil-e2e")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
		bin := filepath.Join(dir, "vigil")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/vigil-tsem/vigil/cmd/vigil").CombinedOutput()
		if err != nil {
			t.Fatalf("build vigil: %v\n%s", err, out)
		}
		vigilBin = bin
	}
	return vigilBin
}

// runResult is what one `vigil run` gave.
type runResult struct {
	status     int
	stderr     string
	trajectory []*events.Event
	lines      [][]byte
}

// vigilRun runs `vigil run --trajectory FILE ARGS...` and parses the
// trajectory.
func vigilRun(t *testing.T, bin string, args ...string) runResult {
	t.Helper()
	traj := filepath.Join(t.TempDir(), "trajectory.json")
	cmd := exec.Command(bin, append([]string{"run", "--trajectory", traj}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	res := runResult{stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.status = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vigil run: %v", err)
	}
	b, err := os.ReadFile(traj)
	if errors.Is(err, os.ErrNotExist) {
		return res
	}
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := append([]byte(nil), sc.Bytes()...)
		e, err := events.Parse(line)
		if err != nil {
			t.Fatalf("trajectory line %d: %v\n%s", n, err, line)
		}
		res.trajectory = append(res.trajectory, e)
		res.lines = append(res.lines, line)
	}
	return res
}

// fileOpens returns the file_open events of pathname.
func (r runResult) fileOpens(pathname string) []*events.Event {
	var out []*events.Event
	for _, e := range r.trajectory {
		if p, ok := e.Payload.(*events.FileEvent); ok && e.Header.Type == "file_open" && p.File.Path.Pathname == pathname {
			out = append(out, e)
		}
	}
	return out
}

// worldReadable makes a file in a fresh temp dir readable by everyone.
func worldReadable(t *testing.T, name string, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunFileOpen(t *testing.T) {
	bin := mustHaveCapture(t)
	content := []byte("vigil-e2e-host\n")
	target := worldReadable(t, "hostname", content)
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil {
		t.Fatal(err)
	}
	catPath, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat:", err)
	}
	tests := []struct {
		name string
		args []string
		coe  events.COE
	}{
		{"root", []string{"--", catPath, target}, events.COE{}},
		{"uid 65534 through setpriv", []string{"--", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", catPath, target},
			events.COE{UID: 65534, EUID: 65534, SUID: 65534, GID: 65534, EGID: 65534, SGID: 65534, FSUID: 65534, FSGID: 65534}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.coe.UID != 0 {
				if _, err := exec.LookPath("setpriv"); err != nil {
					t.Skip("no setpriv:", err)
				}
			}
			r := vigilRun(t, bin, tc.args...)
			if r.status != 0 {
				t.Fatalf("vigil run exit %d:\n%s", r.status, r.stderr)
			}
			if strings.Contains(r.stderr, "WARNING") {
				t.Errorf("a plain run warns:\n%s", r.stderr)
			}
			opens := r.fileOpens(target)
			if len(opens) != 1 {
				t.Fatalf("%d file_open events of %s in %d trajectory lines; want 1\n%s", len(opens), target, len(r.lines), r.stderr)
			}
			e := opens[0]
			f := e.Payload.(*events.FileEvent).File
			if want := events.Digest32(sha256.Sum256(content)); f.Digest != want {
				t.Errorf("digest = %x; want %x (sha256 of the file)", f.Digest, want)
			}
			if e.Header.Process != "cat" {
				t.Errorf("process = %q; want cat", e.Header.Process)
			}
			want := tc.coe
			if want.UID == 0 {
				// root keeps its capabilities: compare with ours.
				want.CapEff = effectiveCaps(t)
			}
			if e.COE != want {
				t.Errorf("COE = %+v; want %+v", e.COE, want)
			}
			if f.Inode.UID != st.Uid || f.Inode.GID != st.Gid || f.Inode.Mode != st.Mode {
				t.Errorf("inode = %+v; want uid %d gid %d mode %o", f.Inode, st.Uid, st.Gid, st.Mode)
			}
			major, minor := unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))
			if major != 0 && (!f.Path.HasDev || f.Path.Dev.Major != major || f.Path.Dev.Minor != minor) {
				t.Errorf("path dev = %+v; want %d:%d", f.Path, major, minor)
			}
			var sfs unix.Statfs_t
			if err := unix.Statfs(target, &sfs); err == nil && f.Inode.SMagic != uint32(sfs.Type) {
				t.Errorf("s_magic = %#x; want %#x", f.Inode.SMagic, sfs.Type)
			}
			if f.Flags&unix.O_ACCMODE != unix.O_RDONLY {
				t.Errorf("flags = %#x; want a read-only open", f.Flags)
			}
		})
	}
}

// effectiveCaps returns this process's effective capability set.
func effectiveCaps(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			var c uint64
			fmt.Sscanf(strings.TrimSpace(v), "%x", &c)
			return c
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return 0
}

// TestRunTaskIdentity checks the exec chain: sh forks and execs cat; every
// event of cat carries task_id = model.TaskID(p_task_id, cell of the
// executed file) where the cell is the exec's file_open (its digest is the
// binary's SHA-256), and p_task_id is sh's task id.
func TestRunTaskIdentity(t *testing.T) {
	bin := mustHaveCapture(t)
	target := worldReadable(t, "x", []byte("x\n"))
	catPath, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat:", err)
	}
	catPath, _ = filepath.EvalSymlinks(catPath)
	r := vigilRun(t, bin, "--", "sh", "-c", catPath+" "+target+"; true")
	if r.status != 0 {
		t.Fatalf("vigil run exit %d:\n%s", r.status, r.stderr)
	}
	var execOpen *events.Event
	for _, e := range r.fileOpens(catPath) {
		if e.Payload.(*events.FileEvent).File.Flags&0x20 != 0 { // __FMODE_EXEC
			execOpen = e
		}
	}
	if execOpen == nil {
		t.Fatalf("no exec open of %s in the trajectory:\n%s", catPath, bytes.Join(r.lines, []byte("\n")))
	}
	file := execOpen.Payload.(*events.FileEvent).File
	bin2, err := os.ReadFile(catPath)
	if err != nil {
		t.Fatal(err)
	}
	if file.Digest != events.Digest32(sha256.Sum256(bin2)) {
		t.Errorf("digest of %s = %x; want its sha256", catPath, file.Digest)
	}
	opens := r.fileOpens(target)
	if len(opens) != 1 {
		t.Fatalf("%d opens of %s; want 1", len(opens), target)
	}
	cat := opens[0]
	if file.Flags != events.ExecFlags {
		t.Errorf("exec open of %s: flags %d; want %d", catPath, file.Flags, events.ExecFlags)
	}
	want := model.TaskID(model.Coefficient(cat.Header.PTaskID), &file)
	if cat.Header.TaskID != want {
		t.Errorf("cat task_id = %x; want TaskID(p_task_id, exec file) = %x", cat.Header.TaskID, want)
	}
	// The exec open was made by the forked sh, whose task id is sh's.
	if execOpen.Header.TaskID != cat.Header.PTaskID {
		t.Errorf("cat p_task_id = %x; want the task id of the sh that forked it, %x", cat.Header.PTaskID, execOpen.Header.TaskID)
	}
	if cat.Header.PTTD != execOpen.Header.TTD || cat.Header.TTD == cat.Header.PTTD {
		t.Errorf("cat ttd %d p_ttd %d; exec open ttd %d", cat.Header.TTD, cat.Header.PTTD, execOpen.Header.TTD)
	}
}

// TestRunScriptTaskIdentity runs a "#!/bin/sh" script: its task id is
// derived from the interpreter's file cell (the file the kernel holds when
// the new credentials are committed), not the script's.
func TestRunScriptTaskIdentity(t *testing.T) {
	bin := mustHaveCapture(t)
	target := worldReadable(t, "x", []byte("x\n"))
	shPath, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh:", err)
	}
	script := worldReadable(t, "script", []byte("#!/bin/sh\nread line < "+target+"\n"))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	r := vigilRun(t, bin, "--", "sh", "-c", script+"; true")
	if r.status != 0 {
		t.Fatalf("vigil run exit %d:\n%s", r.status, r.stderr)
	}
	opens := r.fileOpens(target)
	if len(opens) != 1 {
		t.Fatalf("%d opens of %s; want 1:\n%s", len(opens), target, bytes.Join(r.lines, []byte("\n")))
	}
	task := opens[0]
	interp, err := os.ReadFile(shPath)
	if err != nil {
		t.Fatal(err)
	}
	// The exec opens the interpreter for the task that ran the script,
	// before its exec: under that task's TTD.
	var file *events.File
	for _, e := range r.fileOpens(shPath) {
		f := e.Payload.(*events.FileEvent).File
		if f.Flags&0x20 != 0 && e.Header.TTD == task.Header.PTTD {
			file = &f
		}
	}
	if file == nil {
		t.Fatalf("no exec open of the interpreter %s by ttd %d:\n%s", shPath, task.Header.PTTD, bytes.Join(r.lines, []byte("\n")))
	}
	if file.Digest != events.Digest32(sha256.Sum256(interp)) {
		t.Errorf("digest of %s = %x; want its sha256", shPath, file.Digest)
	}
	if want := model.TaskID(model.Coefficient(task.Header.PTaskID), file); task.Header.TaskID != want {
		t.Errorf("script task_id = %x; want TaskID(p_task_id, interpreter %s) = %x", task.Header.TaskID, shPath, want)
	}
}

// TestRunConnect runs a client that connects to a loopback listener and
// checks socket_connect's address in TSEM's convention (network-order
// fields printed as integers), and that nothing the test process itself
// does, outside the namespace, appears.
func TestRunConnect(t *testing.T) {
	bin := mustHaveCapture(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	// Outside the namespace, this process keeps opening a marker file.
	marker := worldReadable(t, "outside-marker", []byte("m"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := os.ReadFile(marker); err != nil || len(b) != 1 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := vigilRun(t, bin, "--", "env", envConnect+"="+ln.Addr().String(), self, "-test.run=^$")
	close(stop)
	<-done
	if r.status != 0 {
		t.Fatalf("vigil run exit %d:\n%s", r.status, r.stderr)
	}
	wantPort := uint32(port>>8 | port&0xff<<8) // htons, read little-endian
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("port convention checked on little-endian machines only")
	}
	var found bool
	for i, e := range r.trajectory {
		if e.Header.Type != "socket_connect" {
			continue
		}
		p := e.Payload.(*events.SocketAddr)
		if p.Addr.Kind != events.AddrInet {
			continue
		}
		found = true
		if p.Addr.Port != wantPort || p.Addr.Address != 0x0100007f {
			t.Errorf("socket_connect addr = port %d address %d; want %d and %d (127.0.0.1:%d)", p.Addr.Port, p.Addr.Address, wantPort, 0x0100007f, port)
		}
		if p.Sock.Family != 2 || p.Sock.Type != 1 {
			t.Errorf("sock = %+v; want AF_INET SOCK_STREAM", p.Sock)
		}
		if want := fmt.Sprintf(`{"port": "%d", "address": "16777343"}`, wantPort); !bytes.Contains(r.lines[i], []byte(want)) {
			t.Errorf("line %s lacks %s", r.lines[i], want)
		}
	}
	if !found {
		t.Errorf("no AF_INET socket_connect in the trajectory:\n%s", bytes.Join(r.lines, []byte("\n")))
	}
	if len(r.fileOpens(marker)) != 0 {
		t.Errorf("the marker opened outside the namespace appears in its trajectory")
	}
	ctx := r.trajectory[0].Header.Context
	for _, e := range r.trajectory {
		if e.Header.Context != ctx {
			t.Errorf("event of context %d in a trajectory of context %d", e.Header.Context, ctx)
		}
	}
}

// TestRunSealed learns a model, then runs the same command sealed to it
// (no forensics) and another command (forensics), and checks the exit
// status is the command's.
func TestRunSealed(t *testing.T) {
	bin := mustHaveCapture(t)
	dir := t.TempDir()
	a := worldReadable(t, "a", []byte("a\n"))
	b := worldReadable(t, "b", []byte("b\n"))
	m := filepath.Join(dir, "m.model")
	if r := vigilRun(t, bin, "-o", m, "--", "sh", "-c", "cat "+a); r.status != 0 {
		t.Fatalf("learn: exit %d\n%s", r.status, r.stderr)
	}
	forensics := filepath.Join(dir, "forensics.json")
	r := vigilRun(t, bin, "--model", m, "--forensics", forensics, "--", "sh", "-c", "cat "+a)
	if r.status != 0 {
		t.Fatalf("sealed rerun: exit %d\n%s", r.status, r.stderr)
	}
	if fb, _ := os.ReadFile(forensics); len(fb) != 0 {
		t.Errorf("the learned command strays from its own model:\n%s", fb)
	}
	r = vigilRun(t, bin, "--model", m, "--forensics", forensics, "--", "sh", "-c", "cat "+b+"; exit 7")
	if r.status != 7 {
		t.Errorf("exit status = %d; want the command's 7\n%s", r.status, r.stderr)
	}
	fb, err := os.ReadFile(forensics)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(fb, []byte(`"pathname": "`+b+`"`)) {
		t.Errorf("forensics lack the open of %s:\n%s", b, fb)
	}
	if bytes.Contains(fb, []byte(`"pathname": "`+a+`"`)) {
		t.Errorf("forensics hold the in-model open of %s:\n%s", a, fb)
	}
}

func TestRunRefusals(t *testing.T) {
	bin := mustHaveCapture(t)
	tests := []struct {
		name   string
		args   []string
		status int
		msg    string
	}{
		{"enforce without a model", []string{"--enforce", "--", "true"}, 2, "--enforce needs --model"},
		{"enforce on the tracepoint backend", []string{"--backend", "tracepoint", "--model", "/dev/null", "--enforce", "--", "true"}, 2, "observes only"},
		{"command not found", []string{"--", "/nonexistent/vigil-e2e"}, 127, "nonexistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := vigilRun(t, bin, tc.args...)
			if r.status != tc.status || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.status, r.stderr, tc.status, tc.msg)
			}
		})
	}
	t.Run("not root", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("no setpriv:", err)
		}
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "run", "--", "true")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "needs root") {
			t.Errorf("as uid 65534: %v %q; want exit 1 saying it needs root", err, out)
		}
	})
}

// TestRunLossIsReported squeezes the ring buffer to one page under a burst
// of opens: the lost records must be reported and recorded as gaps in the
// measured log, never dropped silently.
func TestRunLossIsReported(t *testing.T) {
	bin := mustHaveCapture(t)
	// 200 files: the kernel's repeat cache makes one record per file and
	// window of a repeated open, so the burst has to open distinct files.
	target := worldReadable(t, "burst.0", []byte("b"))
	for i := 1; i < 200; i++ {
		if err := os.WriteFile(fmt.Sprintf("%s.%d", target[:len(target)-2], i), []byte("b"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(t.TempDir(), "events.log")
	burst := "i=0; while [ $i -lt 20000 ]; do : < " + target[:len(target)-2] + ".$((i % 200)); i=$((i+1)); done"
	r := vigilRun(t, bin, "--ring-buffer", "4096", "--log", logPath, "--register", "software", "--", "sh", "-c", burst)
	if r.status != 0 {
		t.Fatalf("vigil run exit %d:\n%s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "lost (ringbuf_full)") {
		t.Fatalf("no loss reported for 20000 opens through a 4 KiB ring buffer:\n%s", r.stderr)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"record":"gap"`)) {
		t.Errorf("the measured log records no gap:\n%s", b)
	}
}

// Enforcement (vigil run --model M --enforce) needs the BPF LSM: its test,
// TestRunEnforce, is in test/vmrun and runs in the VM (make vmtest).
