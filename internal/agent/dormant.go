package agent

import (
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
)

// A container runtime starts a container with a process of its own in the
// container's cgroup (runc init): it sets up namespaces and mounts, waits
// for the start signal on a fifo named after the container id and only
// then execs the workload. Everything it does before that exec names the
// container's id or its per-container state (overlay mounts below
// /var/lib/containers/storage/overlay/<id>, /run/runc/<id>/exec.fifo), so
// a model learned from one instance of an image would see every other
// instance as new. The enroller therefore enrols a process that has not
// yet executed the container's workload dormant (bpf
// Capture.EnrollDormant): it is a member of the namespace but makes no
// record until its first exec outside the host's mount namespace (runc
// running a copy of itself in the host's does not count), and its
// children and threads inherit that.
// The workload's first program is then a namespace root: its task id is
// derived from the zero parent id, as for `vigil run`.
//
// A process has not executed the workload yet when
//
//   - it is still in the host's mount namespace (bpf.HostMountNS: the
//     runtime's process before it entered the container's, runc init's
//     first stage, or a process `runc exec` moved into the cgroup before
//     it joined the container), or
//   - the program it runs is not on the mount that is its root (runc init
//     after it entered the container's mount namespace runs the runtime's
//     binary, which lies outside the container's root file system).
//
// Every other process found in the cgroup (one already running the
// container's programs when the enroller finds it) is enrolled awake and
// modeled from then on. The kernel applies the same rule to what is
// forked in a watched container cgroup by a task in no namespace, and
// makes a task moved into the cgroup (a `docker exec` or `podman exec`
// command, moved in by runc just before its exec) a dormant member at
// once (bpf Capture.WatchCgroup): it wakes at its exec into the
// container, a namespace root as the entrypoint is. A host process moved
// into a container's cgroup by hand never entered the container: it stays
// dormant (unrecorded) until it execs in another mount namespace.

// setupProbe tells whether a process is a container runtime's process
// that has not yet executed the container's workload. proc is the proc
// file system's mount point ("/proc" on the host).
type setupProbe struct {
	proc string
}

// beforeExec reports whether process pid has not executed its container's
// workload yet (see above). A process that cannot be inspected (it
// exited, or /proc does not say) is taken as awake.
func (p setupProbe) beforeExec(pid int) bool {
	dir := filepath.Join(p.proc, strconv.Itoa(pid))
	own, err := bpf.MountNS(p.proc, strconv.Itoa(pid))
	if err != nil {
		return false
	}
	if host, err := bpf.HostMountNS(p.proc); err == nil && own == host {
		return true
	}
	exe, err := mountID(filepath.Join(dir, "exe"))
	if err != nil {
		return false
	}
	root, err := mountID(filepath.Join(dir, "root"))
	if err != nil {
		return false
	}
	return exe != root
}

// mountID returns the id of the mount the file at path (symbolic links
// followed) is on.
func mountID(path string) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, err
	}
	return stx.Mnt_id, nil
}
