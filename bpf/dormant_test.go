package bpf

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envReexec marks the helper's own re-exec in mode dormant-exec.
const envReexec = "VIGIL_BPF_REEXEC"

// helperDormantExec is the helper mode dormant-exec (helper_test.go), which
// does what a container runtime's init does: in the host's mount
// namespace it opens a file and execs itself again (runc runs a copy of
// itself); then it runs a child that execs in a mount namespace of its
// own, and finally enters a new mount namespace and execs mode
// VIGIL_BPF_NEXT there.
func helperDormantExec(self string) int {
	if os.Getenv(envReexec) == "" {
		var b [1]byte
		if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper: wait:", err)
			return 3
		}
	}
	if _, err := os.ReadFile(os.Getenv(envDorm)); err != nil {
		fmt.Fprintln(os.Stderr, "helper: dormant open:", err)
		return 3
	}
	if os.Getenv(envReexec) == "" {
		err := syscall.Exec(self, []string{self}, append(os.Environ(), envReexec+"=1"))
		fmt.Fprintln(os.Stderr, "helper: re-exec:", err)
		return 3
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), envHelper+"=open")
	child.Stdout = io.Discard
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if err := child.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "helper: child:", err)
		return 3
	}
	fmt.Printf("child %d\n", child.Process.Pid)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envHelper+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, envHelper+"="+os.Getenv(envNext))
	// The main thread (locked since init) leaves the host's mount
	// namespace and execs.
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		fmt.Fprintln(os.Stderr, "helper: unshare:", err)
		return 3
	}
	err := syscall.Exec(self, []string{self}, env)
	fmt.Fprintln(os.Stderr, "helper: exec:", err)
	return 3
}

func TestTracepointDormantUntilExec(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testDormantUntilExec(t, BackendTracepoint)
}

func TestLSMDormantUntilExec(t *testing.T) {
	testDormantUntilExec(t, BackendLSM)
}

// testDormantUntilExec enrols a waiting helper dormant (as the agent
// enrols a container runtime's init): what it does before its exec into
// another mount namespace makes no record, not even its re-exec in the
// host's or the fork of a child, while the child's exec and the helper's
// own exec in mount namespaces of their own wake them, each a namespace
// root (PTTD 0), and everything after is recorded.
func testDormantUntilExec(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	before, after := filepath.Join(dir, "runtime-state"), filepath.Join(dir, "workload-file")
	writeFile(t, before, "runtime\n")
	writeFile(t, after, "workload\n")
	col := collect(t, c)
	ns := nextNS()
	run := runEnrolled(t, c, ns, workload{
		next: "open", bin: bin,
		env:  []string{envHelper + "=dormant-exec", envDorm + "=" + before, envFiles + "=" + after},
		join: func(pid int) error { return c.EnrollDormant(pid, ns) },
	})
	var child int
	for _, line := range strings.Split(run.out, "\n") {
		fmt.Sscanf(line, "child %d", &child)
	}
	if child == 0 || !strings.Contains(run.out, after+" ok\n") {
		t.Fatalf("helper output %q; want a child pid and %s ok", run.out, after)
	}
	if !col.until(exitedMain(run.pid)) {
		t.Errorf("no task_exit record of pid %d", run.pid)
	}
	recs := recordsOf(col.finish(t), ns)
	checkOnly(t, recs, ns, run.pid, child)

	execs := map[int]*Exec{}
	for _, r := range recs {
		switch r := r.(type) {
		case *FileOpen:
			if r.File.Path.Name == before {
				t.Errorf("file_open of %s by pid %d (%s) while dormant", before, r.PID, r.Process())
			}
		case *TaskFork:
			if int(r.ChildPID) == child {
				t.Errorf("task_fork record of child %d, forked while its parent was dormant", child)
			}
		case *Exec:
			if _, ok := execs[int(r.TGID)]; ok {
				t.Errorf("second exec record of pid %d", r.TGID)
			}
			execs[int(r.TGID)] = r
		}
	}
	for _, pid := range []int{child, run.pid} {
		ex := execs[pid]
		if ex == nil {
			t.Errorf("no exec record of pid %d", pid)
			continue
		}
		if ex.PTTD != 0 || ex.TTD == 0 || ex.TTD == ex.PrevTTD || ex.File.Path.Name != bin {
			t.Errorf("exec of pid %d: %s ttd %d prev %d pttd %d; want %s, a new ttd, pttd 0 (a namespace root)",
				pid, ex.File.Path.Name, ex.TTD, ex.PrevTTD, ex.PTTD, bin)
		}
		fo := checkFileOpen(t, recs, ns, pid, after, 0, 0)
		if fo != nil && fo.TTD != ex.TTD {
			t.Errorf("file_open of %s by pid %d: ttd %d; want its exec's %d", after, pid, fo.TTD, ex.TTD)
		}
	}
}

// cgroupV2 makes a cgroup directory for the test under the cgroup v2
// mount and returns it and its id.
func cgroupV2(t *testing.T) (string, uint64) {
	t.Helper()
	root := ""
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var fs unix.Statfs_t
		if unix.Statfs(dir, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			root = dir
			break
		}
	}
	if root == "" {
		if requireBPF() || requireLSM() {
			t.Fatal("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
		}
		t.Skip("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	dir := filepath.Join(root, fmt.Sprintf("vigil-bpf-test-%d-%d", os.Getpid(), nextNS()&0xffff))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // tasks still exiting
		}
		t.Errorf("remove cgroup %s", dir)
	})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return dir, st.Ino
}

func TestTracepointContainerCgroup(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testContainerCgroup(t, BackendTracepoint)
}

func TestLSMContainerCgroup(t *testing.T) {
	testContainerCgroup(t, BackendLSM)
}

// testContainerCgroup: a process in no namespace is moved into a watched
// container cgroup (as runc exec moves its process in): it is a dormant
// member (vg_cgroup_attach). A process in no namespace found in the cgroup
// when it becomes watched is not, but what it forks there is the
// namespace's at once (cgroup_fork), a namespace root, awake when the
// parent runs a program on its root in a mount namespace of its own (a
// container's process), dormant when it is in the host's (a runtime's).
// An exec in a mount namespace of its own wakes a dormant task; one in the
// host's does not. An unwatched cgroup gives nothing.
func testContainerCgroup(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	target := filepath.Join(dir, "in-container")
	writeFile(t, target, "x")
	tests := []struct {
		name       string
		next       string // mode after the helper's exec
		unshareMnt bool
		watch      bool
		late       bool   // the cgroup is watched only once the helper is in it
		want       string // whose records: "child" (of mode fork), "self", "" none
	}{
		{"fork by a container process found late", "fork", true, true, true, "child"},
		{"moved in, exec in its own mount namespace", "open", true, true, false, "self"},
		{"moved in, exec and fork in the host's mount namespace", "fork", false, true, false, ""},
		{"found late in the host's mount namespace, exec and fork there", "fork", false, true, true, ""},
		{"unwatched cgroup", "fork", true, false, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cg, id := cgroupV2(t)
			ns := nextNS()
			watch := func() error {
				if !tc.watch {
					return nil
				}
				t.Cleanup(func() {
					if err := c.UnwatchCgroup(id); err != nil {
						t.Error(err)
					}
				})
				return c.WatchCgroup(id, ns)
			}
			if !tc.late {
				if err := watch(); err != nil {
					t.Fatal(err)
				}
			}
			col := collect(t, c)
			run := runEnrolled(t, c, ns, workload{
				next: tc.next, bin: bin, unshareMnt: tc.unshareMnt,
				env: []string{envFiles + "=" + target},
				join: func(pid int) error {
					if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil || !tc.late {
						return err
					}
					return watch()
				},
			})
			who := run.pid
			if tc.next == "fork" {
				who = 0
				for _, line := range strings.Split(run.out, "\n") {
					fmt.Sscanf(line, "child %d", &who)
				}
				if who == 0 {
					t.Fatalf("helper output %q: no child pid", run.out)
				}
			}
			if tc.want != "" {
				col.until(exitedMain(who))
			} else {
				time.Sleep(300 * time.Millisecond)
			}
			recs := recordsOf(col.finish(t), ns)
			if tc.want == "" {
				if len(recs) != 0 {
					t.Errorf("%d records in the namespace; want none", len(recs))
				}
				return
			}
			if tc.want == "child" {
				// Everything the helper forks in the cgroup joins (its
				// threads, a probe child Go's os package makes), all
				// but its main thread, which is in no namespace.
				for _, r := range recs {
					if h := r.Head(); h.PID == uint32(run.pid) {
						t.Errorf("record %s of the parent's main thread %d, which is in no namespace", h.Type, run.pid)
					}
				}
			}
			var ex *Exec
			for _, r := range recs {
				if e, ok := r.(*Exec); ok && int(e.TGID) == who {
					ex = e
				}
			}
			if ex == nil || ex.PTTD != 0 {
				t.Fatalf("exec record of pid %d: %+v; want one with PTTD 0 (a namespace root)", who, ex)
			}
			if fo := checkFileOpen(t, recs, ns, who, target, 0, 0); fo != nil && fo.TTD != ex.TTD {
				t.Errorf("file_open of pid %d: ttd %d; want its exec's %d", who, fo.TTD, ex.TTD)
			}
		})
	}
}
