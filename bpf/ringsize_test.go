package bpf

import (
	"os"
	"strings"
	"testing"
)

func TestCheckRingBufferBytes(t *testing.T) {
	page := int64(os.Getpagesize())
	for _, tc := range []struct {
		n    int64
		want string // "" for accepted
	}{
		{page, ""},
		{16 << 20, ""},
		{MaxRingBufferBytes, ""},
		{0, "not a power of two"},
		{-page, "not a power of two"},
		{page / 2, "not a power of two"},
		{3 * page, "not a power of two"},
		{2 * MaxRingBufferBytes, "more than"},
		{1 << 32, "more than"}, // became 0 through a uint32 cast
	} {
		err := CheckRingBufferBytes(tc.n)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckRingBufferBytes(%d) = %v; want %q", tc.n, err, tc.want)
		}
	}
}

// TestOpenRefusesRingBufferSize checks that Open refuses a bad size before
// touching the kernel, so the check needs no privilege.
func TestOpenRefusesRingBufferSize(t *testing.T) {
	_, err := Open(Options{Backend: BackendTracepoint, RingBufferBytes: 3 << 12})
	if err == nil || !strings.Contains(err.Error(), "ring buffer size: 12288 is not a power of two") {
		t.Errorf("Open(RingBufferBytes 12288) = %v; want the size refused", err)
	}
}
