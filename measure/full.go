package measure

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrLogUnwritable: the log file could not be written or synced (a full
// disk, an I/O error). The log is cut back to its last measured record, so
// nothing already in it is affected and no partial line is left in it.
//
// On a batching log the records that could not be written are held in
// memory, in order, and the committer tries again, in halves of the batch
// down to one record (so the log catches up as far as the space allows),
// then every BatchOptions.Retry until they are written. While it cannot write, a new point that finds the
// queue full is not kept: it is counted, and the namespace gets a gap
// record ("points": how many, "reason": why) in the queue, written in its
// place once the log can be written. Records other than points are always
// held. Without batching a point that could not be written is counted the
// same way, and its gap record is written before the next record.
var ErrLogUnwritable = errors.New("log cannot be written")

// heldError says a record is held: a batching log could not write it now
// (cause wraps ErrLogUnwritable) and writes it when it can.
type heldError struct{ cause error }

func (e *heldError) Error() string { return "held until it can be written: " + e.cause.Error() }
func (e *heldError) Unwrap() error { return e.cause }

// isHeld says whether err says its record is held (not lost).
func isHeld(err error) bool {
	var h *heldError
	return errors.As(err, &h)
}

// LogFile is what appends need of the log file: the *os.File itself, or
// a test's fault injection (LogOptions.WrapFile, measuretest.Disk).
type LogFile interface {
	Write(b []byte) (int, error)
	Truncate(size int64) error
	Datasync() error
	Sync() error
}

type osFile struct{ f *os.File }

func (o osFile) Write(b []byte) (int, error) { return o.f.Write(b) }
func (o osFile) Truncate(size int64) error   { return o.f.Truncate(size) }
func (o osFile) Datasync() error             { return syscall.Fdatasync(int(o.f.Fd())) }
func (o osFile) Sync() error                 { return o.f.Sync() }

// cutBack truncates the file to the end of the last measured record and
// syncs, so that whatever a failed write left (a partial line, records
// never extended) is gone. Until it succeeds l.cut stays set and every
// commit tries it first: no record is ever written after a partial line.
// Called under l.mu.
func (l *Log) cutBack() error {
	l.cut = true
	if err := l.w.Truncate(l.size); err != nil {
		return fmt.Errorf("cut %s back to %d bytes: %w", l.path, l.size, err)
	}
	if err := l.w.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.path, err)
	}
	l.cut = false
	return nil
}

// writeFailed counts a failed write or sync of a commit, cuts the log back
// and returns err wrapped in ErrLogUnwritable. Called under l.mu.
func (l *Log) writeFailed(err error) error {
	l.appendErrors.Add(1)
	if cerr := l.cutBack(); cerr != nil {
		err = fmt.Errorf("%w (then: %v)", err, cerr)
	}
	return fmt.Errorf("%w: %w", ErrLogUnwritable, err)
}

// owedGap is a gap record a namespace is owed: points not recorded since
// its last gap record, when the first was lost and why.
type owedGap struct {
	points uint64
	at     time.Time
	reason string
}

// gapContent builds the content of the gap record e into l.points and
// returns it (valid until the next call). Called under l.mu.
func (l *Log) gapContent(e *entry) []byte {
	g, n := &e.gap, e.ns
	w := &l.points
	w.begin(RecordGap, g.at, n.id, n.name)
	w.uint("points", g.points)
	w.str("reason", g.reason)
	return w.end()
}

// gapReason says why points were not recorded, for their gap record: the
// kind of failure and its innermost cause ("log write failed: no space
// left on device").
func gapReason(err error) string {
	what := "log append failed"
	if errors.Is(err, ErrLogUnwritable) {
		what = "log write failed"
	}
	return what + ": " + rootCause(err).Error()
}

// rootCause follows err's wrapped errors to the innermost (the last of a
// join or of several %w).
func rootCause(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next := u.Unwrap()
			if next == nil {
				return err
			}
			err = next
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				return err
			}
			err = errs[len(errs)-1]
		default:
			return err
		}
	}
}

// appendDirect commits e at once (no batching), after the gap records
// owed to namespaces whose points an earlier append could not record. A
// point that cannot be recorded is owed a gap record in turn. Called under
// l.qmu.
func (l *Log) appendDirect(e *entry) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := make([]*entry, 0, len(l.owed)+1)
	for _, n := range l.owed {
		batch = append(batch, &entry{ns: n, isGap: true, gap: n.owed})
	}
	batch = append(batch, e)
	if err := l.commitLocked(batch); err != nil {
		for _, be := range batch {
			be.err = err
		}
	}
	owed := l.owed[:0]
	for _, ge := range batch[:len(batch)-1] {
		if ge.err == nil {
			ge.ns.owed = owedGap{}
		} else {
			owed = append(owed, ge.ns)
		}
	}
	clear(l.owed[len(owed):])
	l.owed = owed
	if e.err != nil && e.isPoint {
		l.owe(e.ns, e.err)
		e.err = fmt.Errorf("not recorded (a gap record counts it): %w", e.err)
	}
	return e.rec, e.err
}

// owe counts a point of n that could not be recorded, for the gap record
// the next append writes first. Called under l.qmu (and l.mu).
func (l *Log) owe(n *Namespace, cause error) {
	n.unrecorded.Add(1)
	l.unrecorded.Add(1)
	if n.owed.points == 0 {
		n.owed = owedGap{at: l.now(), reason: gapReason(cause)}
		l.owed = append(l.owed, n)
	}
	n.owed.points++
}

// LogStatus says whether a log keeps up with its records.
type LogStatus struct {
	// Err is why the log cannot be written now (it wraps
	// ErrLogUnwritable); nil when its last write worked.
	Err error
	// Since is when the log became unwritable (zero while Err is nil).
	Since time.Time
	// Waiting counts the records held in memory for the log (queued).
	Waiting int
	// AppendErrors counts the writes and fdatasyncs of the log that failed
	// since OpenLog; each failed retry counts.
	AppendErrors uint64
	// Unrecorded counts the points the log could not record: each is
	// counted in a gap record, written once the log can be written.
	Unrecorded uint64
}

// Status returns the log's status. It does not wait for appends.
func (l *Log) Status() LogStatus {
	st := LogStatus{AppendErrors: l.appendErrors.Load(), Unrecorded: l.unrecorded.Load()}
	if b := l.batched.Load(); b != nil {
		b.mu.Lock()
		st.Err, st.Since, st.Waiting = b.failing, b.since, len(b.queue)+b.inflight
		b.mu.Unlock()
	}
	return st
}

// NamespaceStatus is a namespace's part of LogStatus.
type NamespaceStatus struct {
	// Unrecorded counts the namespace's points the log could not record
	// (each counted in a gap record of the namespace).
	Unrecorded uint64
	// Waiting counts its records held in memory for the log.
	Waiting int
}

// Status returns the namespace's part of the log's status.
func (n *Namespace) Status() NamespaceStatus {
	st := NamespaceStatus{Unrecorded: n.unrecorded.Load()}
	if b := n.log.batched.Load(); b != nil {
		b.mu.Lock()
		st.Waiting = n.waiting
		b.mu.Unlock()
	}
	return st
}
