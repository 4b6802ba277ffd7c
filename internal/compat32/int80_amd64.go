package compat32

const (
	supported = true
	map32bit  = 0x40 // MAP_32BIT
)

// int80 runs int $0x80 with eax=nr, ebx=a1, ecx=a2, edx=a3.
func int80(nr, a1, a2, a3 uintptr) uintptr
