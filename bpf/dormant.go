package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// MountNS returns the inode number of the mount namespace of process pid
// ("self" for the caller) under the proc file system at proc, read from
// its ns/mnt link ("mnt:[4026531832]").
func MountNS(proc, pid string) (uint32, error) {
	link := filepath.Join(proc, pid, "ns", "mnt")
	s, err := os.Readlink(link)
	if err != nil {
		return 0, fmt.Errorf("mount namespace: %w", err)
	}
	num, ok := strings.CutPrefix(s, "mnt:[")
	num, ok2 := strings.CutSuffix(num, "]")
	n, err := strconv.ParseUint(num, 10, 32)
	if !ok || !ok2 || err != nil {
		return 0, fmt.Errorf("mount namespace: %s: %q is not mnt:[NUMBER]", link, s)
	}
	return uint32(n), nil
}

// HostMountNS returns the inode number of the host's mount namespace, the
// one container runtimes run in: pid 1's, or where pid 1 cannot be
// inspected (a protected init), the caller's, which is the host's unless
// the caller runs in a container (and then, with the host's pid
// namespace, pid 1 is the host's init).
func HostMountNS(proc string) (uint32, error) {
	if n, err := MountNS(proc, "1"); err == nil {
		return n, nil
	}
	return MountNS(proc, "self")
}

// EnrollDormant puts the task pid into namespace ns dormant until it
// execs outside the host's mount namespace (Options.HostMountNS): until
// then it makes no record and is never denied, and the tasks it forks
// (threads included) are dormant members too. That exec wakes it with TTD
// 0 and PTTD 0, as Enroll leaves a task, so the program it executes gets
// a namespace root's identity; an exec in the host's mount namespace (runc
// running a copy of itself) leaves it dormant. The agent enrols a
// container runtime's own process this way (runc init, which prepares the
// container and then execs the workload): what it does before the exec
// names the container's id and per-container state and would differ in
// every instance of the same image.
func (c *Capture) EnrollDormant(pid int, ns uint64) error {
	return c.setTask(pid, func(v *taskValue) {
		*v = taskValue{NS: ns, Flags: taskEnrolled | taskDormant}
	}, false)
}

// WatchCgroup makes the cgroup v2 directory whose id (inode number) is
// cgroupID a container cgroup of namespace ns. A task moved into it (its
// cgroup.procs written) that has no state yet becomes a dormant member
// (EnrollDormant) at its next event: runc exec moves its process in that
// way just before it execs the command. A task in no namespace (or in the
// host's) that forks in it, or below it up to 4 levels, gives ns its child
// at once, with no record of the fork: dormant when the parent is a
// container runtime's task that has not executed the workload (in the
// host's mount namespace, or running a program from outside its root),
// else awake. Userspace still enrols the processes already in the cgroup;
// this closes the gap until it finds them. 4096 cgroups at most.
func (c *Capture) WatchCgroup(cgroupID, ns uint64) error {
	if err := c.objs.CtrCgroup.Update(cgroupID, ns, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("watch cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// UnwatchCgroup forgets a cgroup given to WatchCgroup; forgetting one
// that is not watched is not an error.
func (c *Capture) UnwatchCgroup(cgroupID uint64) error {
	if err := c.objs.CtrCgroup.Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatch cgroup %d: %w", cgroupID, err)
	}
	return nil
}
