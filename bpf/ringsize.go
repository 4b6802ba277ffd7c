package bpf

import (
	"fmt"
	"os"
)

// MaxRingBufferBytes is the largest ring buffer Vigil maps: 1 GiB. The
// kernel takes up to 2 GiB in the map's 32-bit max_entries, but the
// reader's RSS holds the ring buffer twice (the kernel maps its data pages
// twice), and no burst needs more.
const MaxRingBufferBytes = 1 << 30

// CheckRingBufferBytes says whether n bytes is a ring buffer size the kernel
// accepts and Vigil maps: a power of two, at least a page, at most
// MaxRingBufferBytes. The error quotes n; callers name the flag or key.
func CheckRingBufferBytes(n int64) error {
	page := int64(os.Getpagesize())
	switch {
	case n < page || n&(n-1) != 0:
		return fmt.Errorf("%d is not a power of two of at least the page size (%d)", n, page)
	case n > MaxRingBufferBytes:
		return fmt.Errorf("%d is more than %d (1 GiB), the largest ring buffer Vigil maps", n, MaxRingBufferBytes)
	}
	return nil
}
