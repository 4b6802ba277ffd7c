package lineio

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Progress prints a running line count to a terminal at most a few times a
// second. A nil *Progress does nothing, so callers need no checks.
type Progress struct {
	w     io.Writer
	verb  string
	n     int64
	start time.Time
	last  time.Time
}

// NewProgress returns a reporter writing to f when f is a terminal, else nil.
func NewProgress(f *os.File, verb string) *Progress {
	if f == nil || !IsTerminal(f) {
		return nil
	}
	now := time.Now()
	return &Progress{w: f, verb: verb, start: now, last: now}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *Progress) add(n int64) {
	if p == nil {
		return
	}
	p.n += n
	if p.n%4096 != 0 {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 250*time.Millisecond {
		p.last = now
		fmt.Fprintf(p.w, "\r%s %d lines (%.0f lines/s)", p.verb, p.n, float64(p.n)/now.Sub(p.start).Seconds())
	}
}

// Done clears the progress line.
func (p *Progress) Done() {
	if p == nil || p.last == p.start {
		return
	}
	fmt.Fprintf(p.w, "\r%s %d lines in %s\n", p.verb, p.n, time.Since(p.start).Round(time.Millisecond))
}
