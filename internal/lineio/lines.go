package lineio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// Line is one input line without its line terminator. Bytes is only valid
// until the callback returns.
type Line struct {
	Name   string // file name, or "<stdin>"
	Number int    // 1-based line number
	Bytes  []byte
}

// PlaceError is an error at a line of an input.
type PlaceError struct {
	Name   string
	Number int
	Err    error
}

func (e *PlaceError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Number, e.Err) }
func (e *PlaceError) Unwrap() error { return e.Err }

// At wraps err with the line's place.
func (l Line) At(err error) error { return &PlaceError{Name: l.Name, Number: l.Number, Err: err} }

// StdinName is the name standard input gets in errors.
const StdinName = "<stdin>"

// MaxLine is the longest line, in bytes without its terminator, that a
// line-oriented input may hold: an event description (a TSEM trajectory,
// an export). Real descriptions are a few KiB (a pathname is at most 4096
// bytes); the cap keeps one bad line from taking the memory of its whole
// length. Formats that wrap a description in a line of their own (a model
// file's trajectory lines, a measured log's records, both possibly in
// base64) allow 2*MaxLine.
const MaxLine = 16 << 20

// ErrLineTooLong is matched (errors.Is) by the error for a line longer than
// its cap.
var ErrLineTooLong = errors.New("line too long")

// NextLine returns the next line of br, with its terminator, refusing one
// whose length without the terminator exceeds max (an error wrapping
// ErrLineTooLong, after reading at most max+2 bytes of it plus br's buffer).
// The line aliases br's buffer or *scratch, which holds lines longer than
// br's buffer and is kept for reuse: it is valid until the next call. At the
// end of the input it returns the last line, if any, with io.EOF.
func NextLine(br *bufio.Reader, scratch *[]byte, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append((*scratch)[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) <= max+1 {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		*scratch = long[:0]
		line = long
	}
	if len(trimEOL(line)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, max)
	}
	return line, err
}

// Each calls fn for every line of the named files in order; "-" (or no names
// at all) reads stdin. Blank lines are skipped. A line longer than MaxLine
// stops the walk with an error naming the file and line (a *PlaceError
// wrapping ErrLineTooLong). fn's error stops the walk and is returned as
// is; read errors name the file.
func Each(names []string, stdin io.Reader, progress *Progress, fn func(Line) error) error {
	return EachMax(names, stdin, progress, MaxLine, fn)
}

// EachMax is Each with lines of at most max bytes.
func EachMax(names []string, stdin io.Reader, progress *Progress, max int, fn func(Line) error) error {
	if len(names) == 0 {
		names = []string{"-"}
	}
	for _, name := range names {
		if err := eachIn(name, stdin, progress, max, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachIn(name string, stdin io.Reader, progress *Progress, max int, fn func(Line) error) error {
	var r io.Reader
	display := name
	if name == "-" {
		r, display = stdin, StdinName
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte
	for n := 1; ; n++ {
		line, err := NextLine(br, &long, max)
		if errors.Is(err, ErrLineTooLong) {
			return &PlaceError{Name: display, Number: n, Err: err}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", display, err)
		}
		line = trimEOL(line)
		if len(line) > 0 {
			if ferr := fn(Line{Name: display, Number: n, Bytes: line}); ferr != nil {
				return ferr
			}
			progress.add(1)
		}
		if err != nil { // io.EOF
			return nil
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
