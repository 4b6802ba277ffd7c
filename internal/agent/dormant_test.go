package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/internal/control"
)

// TestSetupProbe checks the rule that tells a container runtime's process
// before its exec, on a proc tree made of ordinary files: ns/mnt links
// name a mount namespace as the kernel's do, and exe and root are links to
// files on the same mount or on another (procfs).
func TestSetupProbe(t *testing.T) {
	const pid = 42
	tests := []struct {
		name     string
		hostMnt  bool   // pid's ns/mnt is the host's
		exe      string // where exe points ("" none), relative to the fake root or absolute
		want     bool
		noPidDir bool
		noInit   bool // pid 1 cannot be inspected: the agent's own namespace stands for the host's
	}{
		{name: "in the host's mount namespace", hostMnt: true, exe: "bin/sh", want: true},
		{name: "in the agent's mount namespace, pid 1 hidden", hostMnt: true, noInit: true, exe: "bin/sh", want: true},
		{name: "runtime binary outside the root", exe: "/proc/self/status", want: true},
		{name: "workload program on the root", exe: "bin/sh", want: false},
		{name: "exited", noPidDir: true, want: false},
		{name: "no exe (a kernel thread)", exe: "", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			ctrRoot := t.TempDir()
			mustWrite(t, filepath.Join(ctrRoot, "bin", "sh"), "")
			init := "1"
			if tc.noInit {
				init = "self"
			}
			mustSymlink(t, "mnt:[4026531832]", filepath.Join(proc, init, "ns", "mnt"))
			if !tc.noPidDir {
				dir := filepath.Join(proc, strconv.Itoa(pid))
				mnt := filepath.Join(dir, "ns", "mnt")
				if tc.hostMnt {
					mustSymlink(t, "mnt:[4026531832]", mnt)
				} else {
					mustSymlink(t, "mnt:[4026533001]", mnt)
				}
				if tc.exe != "" {
					target := tc.exe
					if !filepath.IsAbs(target) {
						target = filepath.Join(ctrRoot, target)
					}
					mustSymlink(t, target, filepath.Join(dir, "exe"))
				}
				mustSymlink(t, ctrRoot, filepath.Join(dir, "root"))
			}
			if got := (setupProbe{proc: proc}).beforeExec(pid); got != tc.want {
				t.Errorf("beforeExec(%d) = %v; want %v", pid, got, tc.want)
			}
		})
	}
}

// TestEnrolDormantBeforeExec: the enroller enrols the processes the probe
// names dormant, the others awake, all in the container's namespace.
func TestEnrolDormantBeforeExec(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "cgroup.procs"), "10\n11\n")
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(9), root)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnroller(f.kern, f.tab.log, 1)
	defer func() {
		if e.in != nil {
			e.in.Close()
		}
	}()
	e.beforeExec = func(pid int) bool { return pid == 10 }
	e.add(st)
	for pid, dormant := range map[int]bool{10: true, 11: false} {
		if got := f.kern.tasks[pid]; got != st.ns.ID() {
			t.Errorf("pid %d in namespace %d; want %d", pid, got, st.ns.ID())
		}
		if f.kern.dormant[pid] != dormant {
			t.Errorf("pid %d enrolled dormant %v; want %v", pid, f.kern.dormant[pid], dormant)
		}
	}
	if n := st.tasks.Load(); n != 2 {
		t.Errorf("tasks = %d; want 2 (a dormant task is a member)", n)
	}
}

// TestEnrolSkipsMembersChildren: a process whose parent is a member was
// forked in the namespace and is a member already (its state waits for its
// first event); the enroller leaves it alone instead of making it a
// namespace root, and still claims a child of a host task.
func TestEnrolSkipsMembersChildren(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "cgroup.procs"), "20\n21\n22\n")
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(11), root)
	if err != nil {
		t.Fatal(err)
	}
	f.kern.tasks[20] = st.ns.ID() // the container's shell
	f.kern.tasks[30] = 0          // a host task the modeled host picked up
	e := newEnroller(f.kern, f.tab.log, 1)
	defer func() {
		if e.in != nil {
			e.in.Close()
		}
	}()
	e.beforeExec = func(int) bool { return false }
	parents := map[int]int{20: 1, 21: 20, 22: 30}
	e.parent = func(pid int) (int, error) { return parents[pid], nil }
	var enrolled []int
	kern := f.kern
	e.kern = enrolSpy{fakeKernel: kern, enrolled: &enrolled}
	e.add(st)
	if len(enrolled) != 1 || enrolled[0] != 22 {
		t.Errorf("enrolled %v; want only 22 (21 is the shell's child, a member already)", enrolled)
	}
	if n := st.tasks.Load(); n != 3 {
		t.Errorf("tasks = %d; want 3", n)
	}
}

// enrolSpy records the pids enrolled.
type enrolSpy struct {
	*fakeKernel
	enrolled *[]int
}

func (s enrolSpy) Enroll(pid int, ns uint64) error {
	*s.enrolled = append(*s.enrolled, pid)
	return s.fakeKernel.Enroll(pid, ns)
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatal(err)
	}
}

// TestWatchContainerCgroup: a container's cgroup is watched in the kernel
// under its id while the namespace exists.
func TestWatchContainerCgroup(t *testing.T) {
	root := t.TempDir()
	var fi unix.Stat_t
	if err := unix.Stat(root, &fi); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(10), root)
	if err != nil {
		t.Fatal(err)
	}
	if ns, ok := f.kern.cgroups[fi.Ino]; !ok || ns != st.ns.ID() {
		t.Errorf("kernel watches cgroups %v; want %d (the directory's inode) for namespace %d", f.kern.cgroups, fi.Ino, st.ns.ID())
	}
	f.tab.remove(st)
	if len(f.kern.cgroups) != 0 {
		t.Errorf("after remove the kernel still watches %v", f.kern.cgroups)
	}
}
