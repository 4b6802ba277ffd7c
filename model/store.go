package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

// DescriptionStore keeps the first event descriptions of a model's points
// outside the Go heap, so that a model of many points costs little memory
// (see Options.Store). A store must be safe for concurrent use.
type DescriptionStore interface {
	// Put stores desc, which it must not retain, and returns where it is.
	Put(desc []byte) (DescriptionRef, error)
	// Get returns a copy of the description stored at ref. A description
	// that cannot be read back exactly as it was put is an error, never
	// other bytes.
	Get(ref DescriptionRef) ([]byte, error)
}

// DescriptionRef says where a DescriptionStore keeps a description; its
// meaning is the store's.
type DescriptionRef uint64

// ErrCorruptSpool is matched (errors.Is) by a Spool read that finds other
// bytes than were put: the spool file was truncated or changed.
var ErrCorruptSpool = errors.New("description spool is corrupt")

// SpoolError is a failed read of a Spool, naming the file and the offset of
// the description's record.
type SpoolError struct {
	File   string
	Offset int64
	Err    error
}

func (e *SpoolError) Error() string {
	return fmt.Sprintf("read description at offset %d of %s: %v", e.Offset, e.File, e.Err)
}

func (e *SpoolError) Unwrap() error { return e.Err }

// A Spool record is a header (u32 length, u32 CRC-32C of the description,
// both little endian) followed by the description. A DescriptionRef of a
// spool is the record's offset shifted left by refLenBits, or'ed with the
// description's length, so a read needs one pread and checks the length
// twice.
const (
	spoolHeader  = 8
	refLenBits   = 24
	MaxSpooled   = 1<<refLenBits - 1 // longest description a Spool takes
	maxSpoolSize = 1 << (64 - refLenBits)
	// spoolBuffer is how much a Spool gathers before one write: a new
	// point then costs a copy, not a system call.
	spoolBuffer = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is a DescriptionStore in a file that exists only while the spool is
// open: CreateSpool unlinks it at once, so it is gone when the process
// exits, however it exits, and its disk space is freed by Close. The kernel
// keeps the written part in the page cache, which (unlike the Go heap) it
// can write back and reclaim under memory pressure; on tmpfs it stays in
// memory. A Spool is safe for concurrent use: Puts are serialised, reads of
// written records run in parallel.
type Spool struct {
	name string

	mu     sync.Mutex
	f      *os.File
	size   int64  // bytes in the file
	buf    []byte // records not written yet, starting at offset size
	broken error  // a failed write: later Puts fail, written records stay readable
}

var _ DescriptionStore = (*Spool)(nil)

// CreateSpool creates an unlinked spool file in dir.
func CreateSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "vigil-descriptions-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create description spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("create description spool: %w", err)
	}
	return &Spool{name: f.Name(), f: f, buf: make([]byte, 0, spoolBuffer)}, nil
}

// Name returns the file name the spool had when it was created (it is
// unlinked; /proc/PID/fd shows it as deleted).
func (s *Spool) Name() string { return s.name }

// Size returns the bytes the spool holds, written or buffered.
func (s *Spool) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size + int64(len(s.buf))
}

// Put implements DescriptionStore.
func (s *Spool) Put(desc []byte) (DescriptionRef, error) {
	if len(desc) > MaxSpooled {
		return 0, fmt.Errorf("spool description: %d bytes, more than %d", len(desc), MaxSpooled)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.f == nil:
		return 0, fmt.Errorf("spool description in %s: %w", s.name, os.ErrClosed)
	case s.broken != nil:
		return 0, fmt.Errorf("spool description in %s: an earlier write failed: %w", s.name, s.broken)
	}
	n := spoolHeader + len(desc)
	if len(s.buf) > 0 && len(s.buf)+n > spoolBuffer {
		if err := s.flushLocked(); err != nil {
			return 0, err
		}
	}
	off := s.size + int64(len(s.buf))
	if off+int64(n) >= maxSpoolSize {
		return 0, fmt.Errorf("spool description in %s: the spool is full (%d bytes)", s.name, off)
	}
	s.buf = binary.LittleEndian.AppendUint32(s.buf, uint32(len(desc)))
	s.buf = binary.LittleEndian.AppendUint32(s.buf, crc32.Checksum(desc, castagnoli))
	s.buf = append(s.buf, desc...)
	if len(s.buf) >= spoolBuffer {
		if err := s.flushLocked(); err != nil {
			// The record is still readable from the buffer, but say so:
			// the spool takes nothing more.
			return 0, err
		}
	}
	return DescriptionRef(uint64(off)<<refLenBits | uint64(len(desc))), nil
}

// flushLocked writes the buffer; s.mu is held.
func (s *Spool) flushLocked() error {
	if _, err := s.f.WriteAt(s.buf, s.size); err != nil {
		s.broken = err
		return fmt.Errorf("write description spool %s at offset %d: %w", s.name, s.size, err)
	}
	s.size += int64(len(s.buf))
	if cap(s.buf) > 2*spoolBuffer {
		s.buf = make([]byte, 0, spoolBuffer) // a single huge description
	} else {
		s.buf = s.buf[:0]
	}
	return nil
}

// Get implements DescriptionStore. A record that is cut short, or whose
// length or checksum does not match, is a *SpoolError matching
// ErrCorruptSpool.
func (s *Spool) Get(ref DescriptionRef) ([]byte, error) {
	off := int64(uint64(ref) >> refLenBits)
	n := int(uint64(ref) & MaxSpooled)
	rec := make([]byte, spoolHeader+n)
	s.mu.Lock()
	f := s.f
	if f == nil {
		s.mu.Unlock()
		return nil, &SpoolError{File: s.name, Offset: off, Err: os.ErrClosed}
	}
	if off >= s.size {
		// Not written yet: from the buffer.
		i := off - s.size
		got := 0
		if i <= int64(len(s.buf)) {
			got = copy(rec, s.buf[i:])
		}
		s.mu.Unlock()
		return s.check(rec, got, off, n, "buffer")
	}
	s.mu.Unlock()
	// Written records never change: read without the lock.
	got, err := f.ReadAt(rec, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &SpoolError{File: s.name, Offset: off, Err: err}
	}
	return s.check(rec, got, off, n, "file")
}

// check verifies a record read into rec (got bytes of it) and returns its
// description.
func (s *Spool) check(rec []byte, got int, off int64, n int, where string) ([]byte, error) {
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, &SpoolError{File: s.name, Offset: off,
			Err: fmt.Errorf("%w: %s", ErrCorruptSpool, fmt.Sprintf(format, args...))}
	}
	if got < len(rec) {
		return fail("truncated: %d of the record's %d bytes in the %s", got, len(rec), where)
	}
	if l := binary.LittleEndian.Uint32(rec); l != uint32(n) {
		return fail("record length %d, want %d", l, n)
	}
	desc := rec[spoolHeader:]
	if sum, want := crc32.Checksum(desc, castagnoli), binary.LittleEndian.Uint32(rec[4:]); sum != want {
		return fail("checksum %08x, want %08x", sum, want)
	}
	return desc, nil
}

// Close closes the spool and frees its disk space; later Puts and Gets
// fail.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.buf = nil, nil
	if err != nil {
		return fmt.Errorf("close description spool %s: %w", s.name, err)
	}
	return nil
}
