package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the writer goroutine and a test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or 10 s passed: long enough for a
// loaded machine, and the property checked is that it happens at all
// without Flush or Close.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSinkForensicsOnly(t *testing.T) {
	var stdout lockedBuffer
	s, err := Open("-", &stdout, Options{ForensicsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Export([]byte(`{"event": {"number": "1"}}`), false)
	s.Export([]byte(`{"event": {"number": "2"}}`), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "{\"event\": {\"number\": \"2\"}}\n"; got != want {
		t.Errorf("forensics-only sink wrote %q; want %q", got, want)
	}
	if st := s.Stats(); st != (Stats{Written: 1}) {
		t.Errorf("Stats() = %+v; want one line written", st)
	}
	if _, err := Open("", &stdout, Options{}); err == nil {
		t.Error("Open(\"\") = nil error; want one")
	}
}

// TestSinkFlushesWithoutClose: a few events on a quiet node reach the file
// within the flush interval, so a kill -9 does not take them along.
func TestSinkFlushesWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s, err := Open(path, nil, Options{MaxSize: 1 << 20, MaxFiles: 1, FlushInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	want := []string{`{"n": 1}`, `{"n": 2}`, `{"n": 3}`}
	for _, l := range want {
		s.Export([]byte(l), false)
	}
	time.Sleep(150 * time.Millisecond)
	waitFor(t, "three events written to the file", func() bool { return slices.Equal(readLines(t, path), want) })
}

// TestSinkForensicsAtOnce: a forensics event does not wait for the flush
// interval (an hour here) nor for a full buffer.
func TestSinkForensicsAtOnce(t *testing.T) {
	for _, only := range []bool{true, false} {
		t.Run(fmt.Sprintf("forensics_only=%v", only), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.json")
			s, err := Open(path, nil, Options{ForensicsOnly: only, FlushInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			s.Export([]byte(`{"n": 1}`), false)
			s.Export([]byte(`{"forensics": 2}`), true)
			want := []string{`{"n": 1}`, `{"forensics": 2}`}
			if only {
				want = want[1:]
			}
			waitFor(t, "the forensics event written", func() bool { return slices.Equal(readLines(t, path), want) })
		})
	}
}

// failingWriter fails every write with err after writing half of it.
type failingWriter struct {
	mu     sync.Mutex
	err    error
	writes int
	got    bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.err == nil {
		return w.got.Write(p)
	}
	n := len(p) / 2
	w.got.Write(p[:n])
	return n, w.err
}

func (w *failingWriter) set(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// TestSinkWriteErrors: failed writes are counted and logged, at most one
// line per 10 s however many fail, and the lines after a recovery start
// on a line of their own.
func TestSinkWriteErrors(t *testing.T) {
	w := &failingWriter{err: syscall.ENOSPC}
	var logged lockedBuffer
	s, err := Open("-", w, Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		s.Export(fmt.Appendf(nil, `{"n": %d}`, i), true) // one write each
		s.Flush()
	}
	st := s.Stats()
	if st.WriteErrors != 20 || st.Failed != 20 || st.Written != 0 {
		t.Errorf("Stats() = %+v; want 20 write errors, 20 lines failed", st)
	}
	if n := strings.Count(logged.String(), "lines lost"); n != 1 || !strings.Contains(logged.String(), "no space left") {
		t.Errorf("log after 20 failed writes:\n%s\nwant one line naming the error", logged.String())
	}
	w.set(nil)
	s.Export([]byte(`{"n": "after"}`), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(w.got.String(), "\n")
	if last := lines[len(lines)-2]; last != `{"n": "after"}` {
		t.Errorf("line after recovery = %q; want it whole on its own line", last)
	}
	if n := strings.Count(logged.String(), "lines lost"); n != 2 || !strings.Contains(logged.String(), "failed=19") {
		t.Errorf("log after Close:\n%s\nwant a second line with the 19 failures not yet reported", logged.String())
	}
}

// TestSinkClosedPipe: standard output whose reader went away.
func TestSinkClosedPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	s, err := Open("-", w, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Export([]byte(`{"n": 1}`), false)
	s.Export([]byte(`{"n": 2}`), false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Failed != 2 || st.WriteErrors != 1 {
		t.Errorf("Stats() = %+v; want 2 lines failed in 1 write", st)
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	got     lockedBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.got.Write(p)
}

// TestSinkSlowDestination: a destination that takes nothing never blocks
// Export; what does not fit is dropped and counted, and Close gives up
// after its timeout.
func TestSinkSlowDestination(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	s, err := Open("-", w, Options{CloseTimeout: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 1000)
	const total = 5000 // 5 MB: more than the batches hold
	exported := make(chan struct{})
	go func() {
		for range total {
			s.Export(line, false)
		}
		close(exported)
	}()
	select {
	case <-exported:
	case <-time.After(30 * time.Second):
		t.Fatal("Export blocked on a destination that takes nothing")
	}
	if st := s.Stats(); st.Dropped == 0 || st.Written != 0 {
		t.Errorf("Stats() = %+v; want lines dropped, none written", st)
	}
	if err := s.Flush(); err == nil || !strings.Contains(err.Error(), "took nothing") {
		t.Errorf("Flush() = %v; want an error after the close timeout", err)
	}
	close(w.release)
	if err := s.Close(); err != nil {
		t.Fatalf("Close() after the destination woke up = %v", err)
	}
	st := s.Stats()
	if st.Written+st.Dropped != total || st.Written != uint64(strings.Count(w.got.String(), "\n")) {
		t.Errorf("Stats() = %+v; want written + dropped = %d, written = lines received", st, total)
	}
}

func TestSinkCloseBlockedDestination(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	defer close(w.release)
	s, err := Open("-", w, Options{CloseTimeout: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Export([]byte("a"), true) // the writer blocks on it
	s.Export([]byte("b"), false)
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "2 lines not written") {
		t.Errorf("Close() = %v; want an error counting the lines not written", err)
	}
	s.Export([]byte("c"), false)
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("Stats() = %+v; want the line exported after Close dropped", st)
	}
	if err := s.Flush(); err == nil {
		t.Error("Flush after Close = nil; want an error")
	}
}

var _ io.Writer = (*Rotating)(nil)

func TestSinkCloseTwice(t *testing.T) {
	s, err := Open("-", io.Discard, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.Close(), s.Close()); err != nil {
		t.Errorf("Close twice = %v", err)
	}
}

// slowWriter takes every write, slowly.
type slowWriter struct {
	delay time.Duration
	got   lockedBuffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return w.got.Write(p)
}

// TestSinkCloseWaitsForProgress: the close timeout is for a destination
// that takes nothing; one that is slow but moving gets everything.
func TestSinkCloseWaitsForProgress(t *testing.T) {
	w := &slowWriter{delay: 100 * time.Millisecond}
	s, err := Open("-", w, Options{CloseTimeout: 250 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 { // six batches: 600ms of writes
		s.Export(fmt.Appendf(nil, `{"n": %d}`, i), true)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() with a slow destination = %v; want everything written", err)
	}
	if st := s.Stats(); st.Written != 6 || strings.Count(w.got.String(), "\n") != 6 {
		t.Errorf("Stats() = %+v, destination got %q; want 6 lines", st, w.got.String())
	}
}
