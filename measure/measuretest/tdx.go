package measuretest

import (
	"crypto/sha512"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"sync"
	"syscall"
)

// TDX behaves like /sys/class/misc/tdx_guest/measurements: files
// "rtmr<N>:sha384" for N in 0..3 read 48 bytes, and a write of exactly 48
// bytes to RTMR 2 or 3 extends it with SHA-384(old ‖ written). Like the
// kernel, writes to RTMR 0 and 1 fail with EPERM and writes of another size
// with EINVAL; other names do not exist. It implements tdx.FS.
type TDX struct {
	mu     sync.Mutex
	rtmr   [4][48]byte
	writes int
}

// NewTDX returns a fake whose RTMRs are all zero.
func NewTDX() *TDX { return &TDX{} }

var rtmrName = regexp.MustCompile(`^rtmr([0-3]):sha384$`)

func (t *TDX) index(name string) (int, error) {
	m := rtmrName.FindStringSubmatch(name)
	if m == nil {
		return 0, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	i, _ := strconv.Atoi(m[1])
	return i, nil
}

// ReadFile returns the value of an RTMR.
func (t *TDX) ReadFile(name string) ([]byte, error) {
	i, err := t.index(name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.rtmr[i][:]...), nil
}

// WriteFile extends an RTMR as one write(2) to its sysfs file does.
func (t *TDX) WriteFile(name string, data []byte) error {
	i, err := t.index(name)
	if err != nil {
		return err
	}
	if i < 2 {
		return &fs.PathError{Op: "write", Path: name, Err: syscall.EPERM}
	}
	if len(data) != 48 {
		return &fs.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h := sha512.New384()
	h.Write(t.rtmr[i][:])
	h.Write(data)
	h.Sum(t.rtmr[i][:0])
	t.writes++
	return nil
}

// RTMR returns RTMR i's value.
func (t *TDX) RTMR(i int) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.rtmr[i][:]...)
}

// Writes returns how many extends succeeded.
func (t *TDX) Writes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes
}

// Reset zeroes every RTMR, as a reboot of the trust domain does.
func (t *TDX) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rtmr = [4][48]byte{}
}

// String describes the fake.
func (t *TDX) String() string { return fmt.Sprintf("fake TDX RTMRs (%d extends)", t.Writes()) }
