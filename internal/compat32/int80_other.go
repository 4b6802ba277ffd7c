//go:build !amd64

package compat32

const (
	supported = false
	map32bit  = 0
)

func int80(nr, a1, a2, a3 uintptr) uintptr { return 0 }
