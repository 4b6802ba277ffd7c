package measure

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-tsem/vigil/internal/lineio"
)

// Replayer recomputes a register value from log records, checking on the way
// that recnums count up from 0 without gaps, that every record names the same
// register, and that every digest is the hash of its content.
type Replayer struct {
	Kind    string
	Index   int
	Alg     crypto.Hash
	records uint64
	value   []byte
	scratch []byte
	h       hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}

// NewReplayer starts a replay for a register; kind "" takes the register
// from the first record.
func NewReplayer(kind string, index int, alg crypto.Hash) *Replayer {
	r := &Replayer{Kind: kind, Index: index, Alg: alg}
	if kind != "" {
		r.value = make([]byte, alg.Size())
	}
	return r
}

// Records is the number of records replayed.
func (r *Replayer) Records() uint64 { return r.records }

// Value is the register value the replayed records explain (nil before the
// first record when the register is not known yet).
func (r *Replayer) Value() []byte { return r.value }

// Add checks rec and extends the replayed value with its digest.
func (r *Replayer) Add(rec Record) error {
	if r.Kind == "" {
		r.Kind, r.Index, r.Alg = rec.Kind, rec.Index, rec.Alg
		r.value = make([]byte, rec.Alg.Size())
	}
	if rec.Recnum != r.records {
		return fmt.Errorf("record number is %d, want %d (a record was removed, inserted or moved)", rec.Recnum, r.records)
	}
	if rec.Kind != r.Kind || rec.Index != r.Index || rec.Alg != r.Alg {
		return fmt.Errorf("record %d is for register %s %d %s, the log is for %s %d %s",
			rec.Recnum, rec.Kind, rec.Index, AlgName(rec.Alg), r.Kind, r.Index, AlgName(r.Alg))
	}
	if r.h == nil {
		r.h = r.Alg.New().(hashWriter)
	}
	r.h.Reset()
	r.h.Write(rec.Content)
	r.scratch = r.h.Sum(r.scratch[:0])
	if !bytes.Equal(r.scratch, rec.Digest) {
		return fmt.Errorf("record %d: digest %x is not the %s of its content (%x): the content was changed",
			rec.Recnum, rec.Digest, AlgName(r.Alg), r.scratch)
	}
	r.h.Reset()
	r.h.Write(r.value)
	r.h.Write(rec.Digest)
	r.value = r.h.Sum(r.value[:0])
	r.records++
	return nil
}

// LineError places a problem in a log file: the 1-based line and, when the
// line parsed, the record number.
type LineError struct {
	File   string
	Line   int
	Offset int64
	Err    error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrTornLine: the log ends in a partial line (no newline), as a crash in the
// middle of an append leaves it, or a truncation.
var ErrTornLine = errors.New("log ends in a partial line")

// MaxLogLine is the longest log line read, in bytes: room for a record
// holding a description of lineio.MaxLine bytes, in base64 too. A longer
// line is an error naming the file, line and offset (wrapping
// lineio.ErrLineTooLong), read no further than the cap.
const MaxLogLine = 2 * lineio.MaxLine

// eachLine calls fn for every newline-terminated line of r (without the
// newline), with its 1-based number and byte offset. A final partial line is
// returned as tail with its offset; fn is not called for it. file names r
// in the error for a line longer than MaxLogLine.
func eachLine(r io.Reader, file string, fn func(line []byte, n int, off int64) error) (tail []byte, tailOff int64, err error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var off int64
	var long []byte
	for n := 1; ; n++ {
		line, err := lineio.NextLine(br, &long, MaxLogLine)
		if errors.Is(err, lineio.ErrLineTooLong) {
			return nil, off, &LineError{File: file, Line: n, Offset: off, Err: err}
		}
		if err == io.EOF {
			if len(line) > 0 {
				return append([]byte(nil), line...), off, nil
			}
			return nil, off, nil
		}
		if err != nil {
			return nil, off, err
		}
		if ferr := fn(line[:len(line)-1], n, off); ferr != nil {
			return nil, off, ferr
		}
		off += int64(len(line))
	}
}

// Scan parses every record of the log read from r (named file in errors) and
// checks numbering, register and digests as a replay does, calling fn for each
// record in order; the record's Digest and Content are valid only during the
// call. A partial last line is ErrTornLine.
func Scan(r io.Reader, file string, fn func(line int, rec Record) error) error {
	rp := NewReplayer("", 0, 0)
	lines := 0
	var rec Record
	tail, _, err := eachLine(r, file, func(line []byte, n int, _ int64) error {
		lines = n
		if err := parseLine(line, &rec); err != nil {
			return &LineError{File: file, Line: n, Err: err}
		}
		if err := rp.Add(rec); err != nil {
			return &LineError{File: file, Line: n, Err: err}
		}
		return fn(n, rec)
	})
	if err != nil {
		return err
	}
	if len(tail) > 0 {
		return &LineError{File: file, Line: lines + 1, Err: ErrTornLine}
	}
	return nil
}
