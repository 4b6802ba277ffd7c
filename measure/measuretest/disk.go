package measuretest

import (
	"os"
	"sync"
	"syscall"
)

// Disk is a log file on a disk of a chosen size (measure.LogFile, through
// measure.LogOptions.WrapFile): a write beyond the size writes what fits
// and fails with ENOSPC, as a full file system does; fdatasyncs and
// truncates fail with EIO on demand.
type Disk struct {
	f            *os.File
	mu           sync.Mutex
	capacity     int64 // bytes the file may hold; < 0: no limit
	failSyncs    int
	failTruncate int
}

// NewDisk wraps f on a disk without a limit.
func NewDisk(f *os.File) *Disk { return &Disk{f: f, capacity: -1} }

// SetCapacity limits the file to n bytes (n < 0: no limit).
func (d *Disk) SetCapacity(n int64) { d.mu.Lock(); d.capacity = n; d.mu.Unlock() }

// Fill limits the file to its current size.
func (d *Disk) Fill() error {
	st, err := d.f.Stat()
	if err != nil {
		return err
	}
	d.SetCapacity(st.Size())
	return nil
}

// FailSyncs makes the next n fdatasyncs fail.
func (d *Disk) FailSyncs(n int) { d.mu.Lock(); d.failSyncs = n; d.mu.Unlock() }

// FailTruncates makes the next n truncates fail.
func (d *Disk) FailTruncates(n int) { d.mu.Lock(); d.failTruncate = n; d.mu.Unlock() }

// Write writes b, or what fits of it and then fails with ENOSPC.
func (d *Disk) Write(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.capacity < 0 {
		return d.f.Write(b)
	}
	st, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	room := d.capacity - st.Size()
	if room >= int64(len(b)) {
		return d.f.Write(b)
	}
	n := 0
	if room > 0 {
		n, _ = d.f.Write(b[:room])
	}
	return n, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
}

// Truncate truncates the file unless told to fail.
func (d *Disk) Truncate(size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failTruncate > 0 {
		d.failTruncate--
		return &os.PathError{Op: "truncate", Path: d.f.Name(), Err: syscall.EIO}
	}
	return d.f.Truncate(size)
}

// Datasync fdatasyncs the file unless told to fail.
func (d *Disk) Datasync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSyncs > 0 {
		d.failSyncs--
		return &os.PathError{Op: "fdatasync", Path: d.f.Name(), Err: syscall.EIO}
	}
	return syscall.Fdatasync(int(d.f.Fd()))
}

// Sync fsyncs the file.
func (d *Disk) Sync() error { return d.f.Sync() }
