package compat32

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Numbers of the 32-bit x86 syscall table (arch/x86/entry/syscalls/syscall_32.tbl).
const (
	SysOpen    = 5
	SysClose   = 6
	SysCreat   = 8
	SysGetpid  = 20
	SysKill    = 37
	SysOpenat  = 295
	SysConnect = 362
)

// ErrUnsupported: this architecture has no 32-bit syscall entry here.
var ErrUnsupported = errors.New("32-bit syscalls not supported on this architecture")

// Call makes 32-bit syscall nr with up to three arguments and returns its
// result, or the errno it failed with.
func Call(nr, a1, a2, a3 uint32) (uint32, error) {
	if !supported {
		return 0, ErrUnsupported
	}
	r := int32(int80(uintptr(nr), uintptr(a1), uintptr(a2), uintptr(a3)))
	if r < 0 && r > -4096 {
		return 0, syscall.Errno(-r)
	}
	return uint32(r), nil
}

// Low returns a NUL-terminated copy of s in memory below 2 GiB (an
// anonymous MAP_32BIT mapping that is never unmapped; for tests) and its
// 32-bit address.
func Low(s string) (uint32, error) {
	if !supported {
		return 0, ErrUnsupported
	}
	b, err := syscall.Mmap(-1, 0, len(s)+1, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|map32bit)
	if err != nil {
		return 0, fmt.Errorf("map low memory: %w", err)
	}
	copy(b, s)
	addr := uintptr(unsafe.Pointer(&b[0]))
	if addr > 1<<32-uintptr(len(b)) {
		return 0, fmt.Errorf("map low memory: got address %#x above 4 GiB", addr)
	}
	return uint32(addr), nil
}
