package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultFlushInterval is the longest a line waits in the sink's
	// buffer before it is written.
	DefaultFlushInterval = time.Second
	// DefaultCloseTimeout is how long Flush and Close wait for a
	// destination that takes nothing.
	DefaultCloseTimeout = 5 * time.Second
)

const (
	// batchSize is the size a batch is handed to the writer at.
	batchSize = 64 << 10
	// batches bounds the memory of lines waiting for the destination:
	// the one being filled plus those queued or being written.
	batches = 16
	// reportEvery bounds the log lines about lost lines.
	reportEvery = 10 * time.Second
)

// Options tune Open.
type Options struct {
	// MaxSize and MaxFiles rotate a file destination (OpenRotating).
	MaxSize  int64
	MaxFiles int
	// ForensicsOnly keeps only forensics events.
	ForensicsOnly bool
	// FlushInterval is the longest a line is buffered before it is
	// written; DefaultFlushInterval when zero. Forensics are written at
	// once.
	FlushInterval time.Duration
	// CloseTimeout is how long Flush and Close wait for a destination
	// that takes nothing; DefaultCloseTimeout when zero.
	CloseTimeout time.Duration
	// Log receives the rate-limited reports of lost lines; nil means
	// slog.Default().
	Log *slog.Logger
}

// Stats count the lines a Sink took and what became of them. Every line
// exported is, in the end, written, dropped or failed (after Close; lines
// still queued are none of these yet).
type Stats struct {
	// Written lines reached the destination.
	Written uint64
	// Dropped lines were refused because the destination was too far
	// behind (every batch buffer full) or the sink was closed.
	Dropped uint64
	// Failed lines were in a write that failed (a full disk, a closed
	// pipe).
	Failed uint64
	// WriteErrors counts the failed writes.
	WriteErrors uint64
}

// batch is lines handed to the writer in one write.
type batch struct {
	buf   []byte
	lines uint64
}

// Sink is where exported event descriptions go. Export only appends to an
// in-memory batch; a writer goroutine writes full batches, batches older
// than the flush interval and forensics, so a slow or failing destination
// never holds up the caller: when every batch buffer waits for the
// destination, new lines are dropped and counted (Stats, and a log line at
// most every 10 s). See the package documentation.
type Sink struct {
	forensicsOnly bool
	interval      time.Duration
	closeTimeout  time.Duration
	dest          string
	w             io.Writer // the destination
	closer        io.Closer // nil for standard output
	log           *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond // signalled when the writer finishes a batch
	cur      batch      // being filled
	free     chan []byte
	queue    chan batch
	queued   uint64 // batches handed to the writer
	finished uint64 // batches the writer is done with
	pending  uint64 // lines in batches handed to the writer and not done
	timer    *time.Timer
	armed    bool
	closed   bool
	done     chan struct{} // the writer returned

	written, dropped, failed, writeErrors atomic.Uint64
	partial                               bool // writer only: the last write ended inside a line

	rep reporter
}

// Open returns the sink for an export destination: "-" is standard output
// (never closed by the sink), anything else a Rotating file.
func Open(dest string, stdout io.Writer, opts Options) (*Sink, error) {
	if dest == "" {
		return nil, errors.New("open export: no destination")
	}
	s := &Sink{
		forensicsOnly: opts.ForensicsOnly,
		interval:      opts.FlushInterval,
		closeTimeout:  opts.CloseTimeout,
		dest:          dest,
		log:           opts.Log,
		free:          make(chan []byte, batches),
		queue:         make(chan batch, batches),
		done:          make(chan struct{}),
	}
	if s.interval <= 0 {
		s.interval = DefaultFlushInterval
	}
	if s.closeTimeout <= 0 {
		s.closeTimeout = DefaultCloseTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if dest == "-" {
		s.w = stdout
	} else {
		r, err := OpenRotating(dest, opts.MaxSize, opts.MaxFiles)
		if err != nil {
			return nil, err
		}
		r.log = s.log
		s.w, s.closer = r, r
	}
	s.cond = sync.NewCond(&s.mu)
	s.cur.buf = make([]byte, 0, batchSize)
	for range batches - 1 {
		s.free <- make([]byte, 0, batchSize)
	}
	s.timer = time.AfterFunc(time.Hour, s.tick)
	s.timer.Stop()
	go s.run()
	return s, nil
}

// Export adds one event description (without its newline) unless the sink
// keeps forensics only and this event is not one. It never waits for the
// destination: a line it cannot buffer is dropped and counted.
func (s *Sink) Export(line []byte, forensics bool) {
	if s.forensicsOnly && !forensics {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.dropped.Add(1)
		return
	}
	if len(s.cur.buf) > 0 && len(s.cur.buf)+len(line)+1 > batchSize && !s.handOff() {
		s.dropped.Add(1)
		s.arm() // the tick reports the drop
		return
	}
	s.cur.buf = append(append(s.cur.buf, line...), '\n')
	s.cur.lines++
	if forensics && s.handOff() {
		return
	}
	s.arm()
}

// arm starts the flush timer unless it runs. Called with mu held.
func (s *Sink) arm() {
	if !s.armed {
		s.armed = true
		s.timer.Reset(s.interval)
	}
}

// handOff queues the current batch for the writer and starts a new one
// in a free buffer; false when there is none (the writer is behind).
// Called with mu held.
func (s *Sink) handOff() bool {
	if len(s.cur.buf) == 0 {
		return true
	}
	select {
	case b := <-s.free:
		s.queue <- s.cur // never blocks: the queue holds every buffer
		s.queued++
		s.pending += s.cur.lines
		s.cur = batch{buf: b}
		return true
	default:
		return false
	}
}

// tick writes out what the current batch holds, at most FlushInterval
// after its first line.
func (s *Sink) tick() {
	s.mu.Lock()
	s.armed = false
	if !s.closed && !s.handOff() {
		s.arm() // the writer is behind: try again
	}
	s.mu.Unlock()
	s.report(nil)
}

// run is the writer goroutine.
func (s *Sink) run() {
	defer close(s.done)
	for b := range s.queue {
		s.write(b)
		buf := b.buf[:0]
		if cap(buf) > 4*batchSize {
			buf = make([]byte, 0, batchSize) // a long line grew it
		}
		s.mu.Lock()
		s.free <- buf
		s.finished++
		s.pending -= b.lines
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *Sink) write(b batch) {
	if s.partial {
		// End the line a failed write cut, so the next lines stay whole.
		if _, err := s.w.Write([]byte{'\n'}); err == nil {
			s.partial = false
		}
	}
	n, err := s.w.Write(b.buf)
	if err == nil && n < len(b.buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		s.written.Add(b.lines)
		return
	}
	lost := uint64(bytes.Count(b.buf[n:], []byte{'\n'}))
	if n > 0 {
		s.partial = b.buf[n-1] != '\n'
	}
	s.written.Add(b.lines - lost)
	s.failed.Add(lost)
	s.writeErrors.Add(1)
	s.report(err)
}

// Stats returns the sink's counts so far.
func (s *Sink) Stats() Stats {
	return Stats{Written: s.written.Load(), Dropped: s.dropped.Load(), Failed: s.failed.Load(), WriteErrors: s.writeErrors.Load()}
}

// Flush writes out every line exported so far; it gives up when the
// destination takes nothing for the close timeout.
func (s *Sink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("flush export: %w", errors.New("sink closed"))
	}
	return s.flushLocked()
}

// flushLocked is Flush with mu held. It gives up when the writer finishes
// no batch for the close timeout: a slow destination that keeps taking
// lines is waited for.
func (s *Sink) flushLocked() error {
	timedOut, returned := false, false
	seen := s.finished
	var t *time.Timer
	t = time.AfterFunc(s.closeTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case returned:
		case s.finished != seen:
			seen = s.finished
			t.Reset(s.closeTimeout)
		default:
			timedOut = true
			s.cond.Broadcast()
		}
	})
	defer func() {
		returned = true // under mu: the caller holds it
		t.Stop()
	}()
	for !s.handOff() && !timedOut {
		s.cond.Wait()
	}
	for s.finished < s.queued && !timedOut {
		s.cond.Wait()
	}
	if timedOut {
		return fmt.Errorf("flush export to %s: the destination took nothing for %v: %d lines not written", s.dest, s.closeTimeout, s.pending+s.cur.lines)
	}
	return nil
}

// Close writes out what is buffered (giving up on a destination that
// takes nothing for the close timeout),
// closes the destination (standard output stays open) and logs the lines
// lost since the last report. A destination that stays blocked is left
// open: the error says so.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.flushLocked()
	if err != nil {
		// Lines the writer never got are lost now; those it holds
		// may still be written if the destination wakes up.
		s.dropped.Add(s.cur.lines)
		s.cur = batch{}
	}
	s.closed = true
	s.timer.Stop()
	close(s.queue)
	s.mu.Unlock()
	if err == nil {
		<-s.done
		if s.closer != nil {
			err = s.closer.Close()
		}
	}
	s.rep.mu.Lock()
	s.rep.last = time.Time{} // the last report is not held back
	s.rep.mu.Unlock()
	s.report(nil)
	return err
}

// reporter rate-limits the log lines about lost lines.
type reporter struct {
	mu      sync.Mutex
	last    time.Time // of the last line
	seen    Stats     // at the last line
	lastErr error
	later   *time.Timer // a held-back report
}

// report logs the lines lost since the last report, unless one was logged
// less than reportEvery ago; then it is logged when that time is up. err
// is the latest write error, if any.
func (s *Sink) report(err error) {
	r := &s.rep
	r.mu.Lock()
	if err != nil {
		r.lastErr = err
	}
	st := s.Stats()
	if st.Dropped == r.seen.Dropped && st.Failed == r.seen.Failed && st.WriteErrors == r.seen.WriteErrors {
		r.mu.Unlock()
		return
	}
	if wait := reportEvery - time.Since(r.last); wait > 0 {
		if r.later == nil {
			r.later = time.AfterFunc(wait, func() {
				r.mu.Lock()
				r.later = nil
				r.mu.Unlock()
				s.report(nil)
			})
		}
		r.mu.Unlock()
		return
	}
	attrs := []any{"destination", s.dest,
		"dropped", st.Dropped - r.seen.Dropped, "failed", st.Failed - r.seen.Failed,
		"write_errors", st.WriteErrors - r.seen.WriteErrors}
	if r.lastErr != nil {
		attrs = append(attrs, "err", r.lastErr)
	}
	r.last, r.seen, r.lastErr = time.Now(), st, nil
	r.mu.Unlock()
	s.log.Error("export: event lines lost (dropped: the destination was behind; failed: a write failed)", attrs...)
}
