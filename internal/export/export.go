package export

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Rotating is an append-only line file that rotates when a write would take
// it past MaxSize bytes.
type Rotating struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotating opens (appending to) the file at path. maxSize <= 0 never
// rotates; maxFiles is how many rotated files to keep besides the current
// one (0 keeps none: the file is truncated when full).
func OpenRotating(path string, maxSize int64, maxFiles int) (*Rotating, error) {
	r := &Rotating{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rotating) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open export file: %w", err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends p, which must be whole lines, rotating first if p would
// not fit. A single write larger than MaxSize goes to a fresh file alone.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.maxSize > 0 && r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write export file: %w", err)
	}
	return n, nil
}

// rotate shifts path.(i) to path.(i+1), drops the oldest and starts a new
// file. Called with mu held.
func (r *Rotating) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("rotate export file: %w", err)
	}
	r.f = nil
	if r.maxFiles <= 0 {
		if err := os.Truncate(r.path, 0); err != nil {
			return fmt.Errorf("rotate export file: %w", err)
		}
		return r.open()
	}
	os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate export file: %w", err)
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("rotate export file: %w", err)
	}
	return r.open()
}

// Sync flushes the current file to disk.
func (r *Rotating) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return os.ErrClosed
	}
	return r.f.Sync()
}

// Close closes the current file.
func (r *Rotating) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Sink is where exported event descriptions go: it buffers lines, keeps
// only forensics when asked, and flushes on Flush and Close.
type Sink struct {
	forensicsOnly bool

	mu     sync.Mutex
	w      io.Writer // the destination
	buf    *bufio.Writer
	closer io.Closer // nil for standard output
	long   []byte    // line + newline, for lines longer than the buffer
}

// Open returns the sink for an export destination: "-" is standard output
// (never closed by the sink), anything else a Rotating file.
func Open(dest string, stdout io.Writer, maxSize int64, maxFiles int, forensicsOnly bool) (*Sink, error) {
	if dest == "" {
		return nil, errors.New("open export: no destination")
	}
	s := &Sink{forensicsOnly: forensicsOnly}
	if dest == "-" {
		s.w, s.buf = stdout, bufio.NewWriterSize(stdout, 64<<10)
		return s, nil
	}
	r, err := OpenRotating(dest, maxSize, maxFiles)
	if err != nil {
		return nil, err
	}
	s.w, s.buf, s.closer = r, bufio.NewWriterSize(r, 64<<10), r
	return s, nil
}

// Export writes one event description (without its newline) unless the
// sink keeps forensics only and this event is not one.
func (s *Sink) Export(line []byte, forensics bool) error {
	if s.forensicsOnly && !forensics {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep a line whole in one underlying write so rotation never splits it.
	if s.buf.Available() < len(line)+1 {
		if err := s.buf.Flush(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if len(line)+1 > s.buf.Size() {
			s.long = append(append(s.long[:0], line...), '\n')
			if _, err := s.w.Write(s.long); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			return nil
		}
	}
	s.buf.Write(line)
	if err := s.buf.WriteByte('\n'); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Flush writes out buffered lines.
func (s *Sink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Close flushes and closes the destination (standard output stays open).
func (s *Sink) Close() error {
	err := s.Flush()
	if s.closer != nil {
		if cerr := s.closer.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
