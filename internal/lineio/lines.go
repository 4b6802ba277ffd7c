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

// Each calls fn for every line of the named files in order; "-" (or no names
// at all) reads stdin. Blank lines are skipped. fn's error stops the walk
// and is returned as is; read errors name the file.
func Each(names []string, stdin io.Reader, progress *Progress, fn func(Line) error) error {
	if len(names) == 0 {
		names = []string{"-"}
	}
	for _, name := range names {
		if err := eachIn(name, stdin, progress, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachIn(name string, stdin io.Reader, progress *Progress, fn func(Line) error) error {
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
		chunk, err := br.ReadSlice('\n')
		line := chunk
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it.
			long = append(long[:0], chunk...)
			for errors.Is(err, bufio.ErrBufferFull) {
				chunk, err = br.ReadSlice('\n')
				long = append(long, chunk...)
			}
			line = long
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
