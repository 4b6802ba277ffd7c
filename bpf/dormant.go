package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
