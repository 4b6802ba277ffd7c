package export

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rotatedTime is the layout of the time in a rotated file's name (UTC).
const rotatedTime = "20060102T150405"

// Rotating is an append-only line file that rotates when a write would take
// it past MaxSize bytes. A rotated file is renamed once, to
// PATH.<UTC time>.<sequence> (events.json.20261206T103000.000042), and never
// renamed again; the sequence orders the files, oldest first, so a clock
// that steps back does not reorder them. Rotating keeps the list of its
// rotated files, so a rotation is one rename, one create and at most one
// unlink however many files it keeps.
type Rotating struct {
	path     string
	maxSize  int64
	maxFiles int
	now      func() time.Time
	log      *slog.Logger // removal failures; nil: slog.Default()

	mu      sync.Mutex
	f       *os.File // nil after Close, or after a rotation that could not reopen
	closed  bool
	size    int64
	rotated []rotatedFile // oldest first
	nextSeq uint64
}

type rotatedFile struct {
	name string
	seq  uint64
}

// OpenRotating opens (appending to) the file at path. maxSize <= 0 never
// rotates; maxFiles is how many rotated files to keep besides the current
// one (0 keeps none: the file is truncated when full). Rotated files
// already in path's directory count towards maxFiles: the oldest beyond it
// are removed now. Files of other names (the path.1, path.2 ... of older
// versions) are left alone.
func OpenRotating(path string, maxSize int64, maxFiles int) (*Rotating, error) {
	r := &Rotating{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now, nextSeq: 1}
	if err := r.scan(); err != nil {
		return nil, err
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// scan finds the rotated files already there and removes those beyond
// maxFiles.
func (r *Rotating) scan() error {
	ents, err := os.ReadDir(filepath.Dir(r.path))
	if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	base := filepath.Base(r.path)
	for _, e := range ents {
		if seq, ok := parseRotated(base, e.Name()); ok && e.Type().IsRegular() {
			r.rotated = append(r.rotated, rotatedFile{name: filepath.Join(filepath.Dir(r.path), e.Name()), seq: seq})
		}
	}
	slices.SortFunc(r.rotated, func(a, b rotatedFile) int { return cmpUint(a.seq, b.seq) })
	if n := len(r.rotated); n > 0 {
		r.nextSeq = r.rotated[n-1].seq + 1
	}
	for len(r.rotated) > max(r.maxFiles, 0) {
		r.removeOldest()
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseRotated reports whether name is base's rotated file
// (base.<time>.<sequence>) and its sequence.
func parseRotated(base, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok || len(rest) < len(rotatedTime)+2 || rest[len(rotatedTime)] != '.' {
		return 0, false
	}
	if _, err := time.Parse(rotatedTime, rest[:len(rotatedTime)]); err != nil {
		return 0, false
	}
	digits := rest[len(rotatedTime)+1:]
	if digits[0] == '+' || digits[0] == '-' {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
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

// Write appends p, which must be whole lines. When p does not fit under
// MaxSize, the lines that do are written, the file rotates and the rest
// goes to the new file; a line longer than MaxSize goes to a fresh file
// alone. A write that fails part way leaves the file ending in a whole
// line: n counts only the whole lines written.
func (r *Rotating) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	if r.f == nil {
		// A rotation failed to reopen the file: try again.
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	written := 0
	for len(p) > 0 {
		cut := len(p)
		if r.maxSize > 0 && r.size+int64(len(p)) > r.maxSize {
			cut = 0
			if room := r.maxSize - r.size; room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			if cut == 0 && r.size == 0 {
				// A fresh file and a first line longer than MaxSize.
				if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
					cut = len(p)
				}
			}
		}
		if cut == 0 {
			if err := r.rotate(); err != nil {
				return written, err
			}
			continue
		}
		n, err := r.writeLines(p[:cut])
		written += n
		if err != nil {
			return written, err
		}
		p = p[cut:]
	}
	return written, nil
}

// writeLines writes whole lines; after a short write it cuts the file back
// to the last whole line and returns what was kept.
func (r *Rotating) writeLines(p []byte) (int, error) {
	n, err := r.f.Write(p)
	if err == nil {
		r.size += int64(n)
		return n, nil
	}
	keep := bytes.LastIndexByte(p[:n], '\n') + 1
	if keep < n {
		if terr := r.f.Truncate(r.size + int64(keep)); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut back a partial line: %w", terr))
		}
	}
	r.size += int64(keep)
	return keep, fmt.Errorf("write export file: %w", err)
}

// rotate renames the current file to its rotated name, removes the oldest
// rotated file beyond maxFiles and starts a new file. Called with mu held.
func (r *Rotating) rotate() error {
	if err := r.f.Close(); err != nil {
		r.f = nil
		return fmt.Errorf("rotate export file: %w", err)
	}
	r.f = nil
	if r.maxFiles <= 0 {
		if err := os.Truncate(r.path, 0); err != nil {
			return fmt.Errorf("rotate export file: %w", err)
		}
		return r.open()
	}
	stamp := r.now().UTC().Format(rotatedTime)
	var name string
	for {
		name = fmt.Sprintf("%s.%s.%06d", r.path, stamp, r.nextSeq)
		r.nextSeq++
		// Never replace a file (a copy an operator put there).
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err := os.Rename(r.path, name); err != nil {
		if oerr := r.open(); oerr != nil {
			err = errors.Join(err, oerr)
		}
		return fmt.Errorf("rotate export file: %w", err)
	}
	r.rotated = append(r.rotated, rotatedFile{name: name, seq: r.nextSeq - 1})
	if len(r.rotated) > r.maxFiles {
		r.removeOldest()
	}
	return r.open()
}

// removeOldest removes the oldest rotated file. A file that cannot be
// removed is logged and forgotten: it holds lines, so nothing is lost, and
// the next rotation must not try it again.
func (r *Rotating) removeOldest() {
	old := r.rotated[0]
	r.rotated[0] = rotatedFile{}
	r.rotated = r.rotated[1:]
	if err := os.Remove(old.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		log := r.log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("export: remove the oldest rotated file", "file", old.name, "err", err)
	}
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
	r.closed = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
