package tdx

import (
	"crypto"
	_ "crypto/sha512" // RTMRs are SHA-384
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultRoot is the directory of the kernel's measurement-register files.
const DefaultRoot = "/sys/class/misc/tdx_guest/measurements"

// DefaultIndex is the RTMR Vigil extends: RTMR 3 is left to the workload by
// the firmware and kernel, which use 0 to 2.
const DefaultIndex = 3

// DigestSize is the size of an RTMR and of every digest extended into it.
const DigestSize = 48

var (
	// ErrNoDevice: the measurement file of the RTMR does not exist.
	ErrNoDevice = errors.New("no TDX measurement register")
	// ErrIndex: only RTMR 2 and 3 may be extended from user space.
	ErrIndex = errors.New("RTMR index must be 2 or 3")
)

// FS is the access to the measurement files. ReadFile returns a register's
// value; WriteFile must hand data to the kernel in a single write(2), which
// extends the register.
type FS interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
}

// DirFS is the measurement directory on the real file system.
type DirFS string

// ReadFile reads the named file under the directory.
func (d DirFS) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}

// WriteFile writes data with one write(2) and no truncation or creation, as
// a sysfs attribute expects.
func (d DirFS) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(filepath.Join(string(d), name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(data) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(data))
	}
	return err
}

// FileName is the measurement file of RTMR index.
func FileName(index int) string { return fmt.Sprintf("rtmr%d:sha384", index) }

// RTMR is one runtime measurement register.
type RTMR struct {
	fs    FS
	index int
	file  string
}

// Open opens RTMR index under root (DefaultRoot when empty).
func Open(root string, index int) (*RTMR, error) {
	if root == "" {
		root = DefaultRoot
	}
	return OpenFS(DirFS(root), index)
}

// OpenFS opens RTMR index through fsys, checking that it reads as a register.
func OpenFS(fsys FS, index int) (*RTMR, error) {
	if index != 2 && index != 3 {
		return nil, fmt.Errorf("open RTMR %d: %w", index, ErrIndex)
	}
	r := &RTMR{fs: fsys, index: index, file: FileName(index)}
	if _, err := r.Read(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open RTMR %d: %w: %v", index, ErrNoDevice, err)
		}
		return nil, fmt.Errorf("open RTMR %d: %w", index, err)
	}
	return r, nil
}

// Name returns "tdx".
func (r *RTMR) Name() string { return "tdx" }

// Index returns the RTMR number.
func (r *RTMR) Index() int { return r.index }

// Alg returns SHA-384.
func (r *RTMR) Alg() crypto.Hash { return crypto.SHA384 }

// Extend extends the RTMR with a 48-byte digest.
func (r *RTMR) Extend(digest []byte) error {
	if len(digest) != DigestSize {
		return fmt.Errorf("extend RTMR %d: digest is %d bytes, want %d", r.index, len(digest), DigestSize)
	}
	if err := r.fs.WriteFile(r.file, digest); err != nil {
		return fmt.Errorf("extend RTMR %d: %w", r.index, err)
	}
	return nil
}

// Read returns the RTMR's value.
func (r *RTMR) Read() ([]byte, error) {
	b, err := r.fs.ReadFile(r.file)
	if err != nil {
		return nil, fmt.Errorf("read RTMR %d: %w", r.index, err)
	}
	if len(b) != DigestSize {
		return nil, fmt.Errorf("read RTMR %d: got %d bytes, want %d", r.index, len(b), DigestSize)
	}
	return b, nil
}
