package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/internal/compat32"
)

// openVia acts on path the way via names, for the helper mode open-via:
// the syscalls that open a file, an O_PATH open (which opens none), and
// the same through the 32-bit syscall entry (int $0x80).
func openVia(via, path string) error {
	switch via {
	case "openat":
		return closeFd(unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0))
	case "creat":
		// the creat syscall itself (unix.Creat is an openat)
		p, err := unix.BytePtrFromString(path)
		if err != nil {
			return err
		}
		fd, _, errno := unix.Syscall(unix.SYS_CREAT, uintptr(unsafe.Pointer(p)), 0o644, 0)
		if errno != 0 {
			return errno
		}
		return unix.Close(int(fd))
	case "open_by_handle_at":
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
		if err != nil {
			return fmt.Errorf("name_to_handle_at: %w", err)
		}
		dir, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dir)
		return closeFd(unix.OpenByHandleAt(dir, h, unix.O_RDONLY|unix.O_CLOEXEC))
	case "o_path":
		return closeFd(unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0))
	case "int80-open", "int80-openat", "int80-creat":
		p, err := compat32.Low(path)
		if err != nil {
			return err
		}
		var fd uint32
		switch via {
		case "int80-open":
			fd, err = compat32.Call(compat32.SysOpen, p, unix.O_RDONLY, 0)
		case "int80-openat":
			fd, err = compat32.Call(compat32.SysOpenat, uint32(0xffffff9c) /* AT_FDCWD */, p, unix.O_RDONLY)
		default:
			fd, err = compat32.Call(compat32.SysCreat, p, 0o644, 0)
		}
		return closeFd(int(fd), err)
	case "int80-kill":
		_, err := compat32.Call(compat32.SysKill, uint32(os.Getpid()), 0, 0)
		return err
	case "int80-connect":
		return connect32(os.Getenv(envAddr))
	case "int80-getpid":
		pid, err := compat32.Call(compat32.SysGetpid, 0, 0, 0)
		if err == nil && int(pid) != os.Getpid() {
			return fmt.Errorf("getpid through int $0x80 = %d; want %d", pid, os.Getpid())
		}
		return err
	}
	return fmt.Errorf("unknown way %q", via)
}

// connect32 connects a TCP socket to addr with the 32-bit connect.
func connect32(addr string) error {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sa [16]byte // struct sockaddr_in
	binary.LittleEndian.PutUint16(sa[0:], unix.AF_INET)
	binary.BigEndian.PutUint16(sa[2:], uint16(ta.Port))
	copy(sa[4:8], ta.IP.To4())
	p, err := compat32.Low(string(sa[:]))
	if err != nil {
		return err
	}
	_, err = compat32.Call(compat32.SysConnect, uint32(fd), p, uint32(len(sa)))
	return err
}

func closeFd(fd int, err error) error {
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
