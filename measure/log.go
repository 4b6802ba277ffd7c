package measure

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// LogOptions tune OpenLog.
type LogOptions struct {
	// Now stamps records; time.Now when nil.
	Now func() time.Time
	// WrapFile, when set, wraps the opened log file for appends (writes,
	// syncs, truncates): tests inject faults with it (measuretest.Disk).
	WrapFile func(f *os.File) LogFile
	// Extended, when set, is called after each commit with the number of
	// records it measured (written, synced and extended) and how long the
	// commit took, under the log's lock: it must be quick.
	Extended func(records int, took time.Duration)
}

// Repair says what OpenLog fixed after a crash.
type Repair struct {
	Line   int    // line of the log it concerns
	Action string // what was done, for people
}

// Log is a measured event log bound to one register: every record appended
// is written, synced, and then its digest is extended into the register.
//
// The log file is held under an exclusive flock(2) from OpenLog to Close, so
// one process appends at a time. A Log is safe for concurrent use.
//
// Two locks: qmu orders records (it is held while a record's content is
// built and the record appended or queued) and guards content, batch, run,
// appended, owed and every Namespace's sealed flag and owed count; mu
// guards the file, the register and the position. qmu is taken before mu,
// never the reverse; the committer of a batching log (batch.go) takes only
// mu.
type Log struct {
	qmu      sync.Mutex
	content  contentWriter
	batch    *batcher                // set by StartBatching
	batched  atomic.Pointer[batcher] // batch, for Status (which must not wait for qmu)
	run      uint64                  // this process's run (BeginRun), 0 before
	appended bool                    // a record was appended since OpenLog
	owed     []*Namespace            // without batching: namespaces owed a gap record (full.go)

	mu      sync.Mutex
	f       *os.File
	w       LogFile // appends write through it: f, or a test's fault injection
	cut     bool    // a failed write may have left bytes after size: cut them first
	path    string
	reg     Register
	kind    string
	index   int
	alg     crypto.Hash
	size    int64
	records uint64
	value   []byte
	maxNS   uint64
	broken  error
	repairs []Repair
	now     func() time.Time
	line    []byte
	ends    []int64       // commitLocked's scratch
	points  contentWriter // commitLocked's scratch: queued points' content
	syncs   uint64        // fdatasyncs of commits, for tests
	writes  uint64        // writes of commits, for tests

	extended func(int, time.Duration) // LogOptions.Extended
	replayed bool                     // the register was set by replaying the log
	runs     uint64                   // start records in the log
	lastStop bool                     // the last record is a stop record

	appendErrors atomic.Uint64 // failed writes and syncs (full.go)
	unrecorded   atomic.Uint64 // points not recorded, all namespaces
}

// volatile registers start at zero in every process; a log opened on one is
// replayed into it.
type volatile interface {
	volatile()
}

// OpenLog opens (creating it if needed) the event log at path for appending
// records measured into reg. It replays the existing records and compares the
// result with the register:
//
//   - a partial last line (a crash during an append, before the extend) is
//     cut off;
//   - a register that lacks exactly the last record's extend (a crash between
//     the sync and the extend) is extended with it;
//   - a software register (zero in every new process) is set by replay
//     (that is normal, not a repair);
//   - anything else that leaves the register unexplained fails with
//     ErrRegisterMismatch, and a malformed or tampered record with ErrMalformed
//     or an error naming its line.
//
// Repairs lists what was fixed.
func OpenLog(path string, reg Register, opts LogOptions) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open log %s: %w", path, ErrLogLocked)
		}
		return nil, fmt.Errorf("lock log %s: %w", path, err)
	}
	l := &Log{f: f, w: osFile{f}, path: path, reg: reg, kind: reg.Name(), index: reg.Index(), alg: reg.Alg(), now: opts.Now, extended: opts.Extended}
	if l.now == nil {
		l.now = time.Now
	}
	if opts.WrapFile != nil {
		l.w = opts.WrapFile(f)
	}
	if err := l.recover(); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) recover() error {
	rp := NewReplayer(l.kind, l.index, l.alg)
	// The last MaxBatch records: the value before each and its digest, in a
	// ring indexed by record number.
	var hist [MaxBatch]struct{ before, digest []byte }
	lines := 0
	tail, tailOff, err := eachLine(l.f, l.path, func(line []byte, n int, off int64) error {
		lines = n
		rec, err := ParseLine(line)
		if err != nil {
			return &LineError{File: l.path, Line: n, Offset: off, Err: err}
		}
		h := &hist[rp.Records()%MaxBatch]
		h.before = append(h.before[:0], rp.Value()...)
		if err := rp.Add(rec); err != nil {
			return &LineError{File: l.path, Line: n, Offset: off, Err: err}
		}
		h.digest = append(h.digest[:0], rec.Digest...)
		if id, ok := contentNamespaceID(rec.Content); ok && id > l.maxNS {
			l.maxNS = id
		}
		l.lastStop = bytes.HasPrefix(rec.Content, []byte(`{"record":"`+RecordStop+`"`))
		if bytes.HasPrefix(rec.Content, []byte(`{"record":"`+RecordStart+`"`)) {
			l.runs++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	l.size = tailOff
	if len(tail) > 0 {
		// Appends write a whole line, sync, and only then extend: a partial
		// line was never extended and is cut off.
		if err := l.f.Truncate(tailOff); err != nil {
			return fmt.Errorf("cut partial line %d of %s: %w", lines+1, l.path, err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", l.path, err)
		}
		l.repairs = append(l.repairs, Repair{Line: lines + 1,
			Action: fmt.Sprintf("cut off a partial last line of %d bytes (an append interrupted before its extend)", len(tail))})
	}
	l.records, l.value = rp.Records(), rp.Value()
	cur, err := l.reg.Read()
	if err != nil {
		return fmt.Errorf("read register: %w", err)
	}
	// behind is how many last records the register lacks, if it is the
	// value before one of the last MaxBatch records (a crash between a
	// commit's sync and its extends). A zero register explains only one
	// missing extend, as before group commit: more is taken for a reboot
	// (so a crash during the very first group commit of a new log, before
	// any extend, is refused too).
	behind := uint64(0)
	for k := uint64(1); k <= min(l.records, MaxBatch); k++ {
		if (k == 1 || !isZero(cur)) && bytes.Equal(cur, hist[(l.records-k)%MaxBatch].before) {
			behind = k
			break
		}
	}
	switch {
	case bytes.Equal(cur, l.value):
	case isZero(cur) && isVolatile(l.reg):
		// Not a repair: a software register starts at zero in every process.
		if err := l.replayInto(); err != nil {
			return err
		}
		l.replayed = l.records > 0
	case behind > 0:
		for r := l.records - behind; r < l.records; r++ {
			if err := l.reg.Extend(hist[r%MaxBatch].digest); err != nil {
				return fmt.Errorf("extend register with record %d: %w", r, err)
			}
		}
		action := fmt.Sprintf("extended the register with record %d, whose extend was interrupted", l.records-1)
		if behind > 1 {
			action = fmt.Sprintf("extended the register with records %d to %d, whose extends were interrupted (a crash during a group commit)", l.records-behind, l.records-1)
		}
		l.repairs = append(l.repairs, Repair{Line: lines, Action: action})
	case isZero(cur):
		return fmt.Errorf("open log %s: %w: the register is zero but the log has %d records: it was reset (a reboot?) and the log belongs to an earlier boot; move the log away to start a new one",
			l.path, ErrRegisterMismatch, l.records)
	case l.records == 0:
		return fmt.Errorf("open log %s: %w: the log is empty but register %s %d is %x: it was extended before (by something else, or for another log); use the log that explains it, another register, or start after a reboot",
			l.path, ErrRegisterMismatch, l.kind, l.index, cur)
	default:
		return fmt.Errorf("open log %s: %w: register %s %d is %x, the %d records replay to %x: something else extended it, or the log was changed",
			l.path, ErrRegisterMismatch, l.kind, l.index, cur, l.records, l.value)
	}
	return nil
}

// replayInto re-extends every digest of the log into a volatile register.
func (l *Log) replayInto() error {
	if _, err := l.f.Seek(0, 0); err != nil {
		return err
	}
	_, _, err := eachLine(l.f, l.path, func(line []byte, n int, _ int64) error {
		rec, err := ParseLine(line)
		if err != nil {
			return err
		}
		return l.reg.Extend(rec.Digest)
	})
	if err != nil {
		return fmt.Errorf("replay log into register: %w", err)
	}
	cur, err := l.reg.Read()
	if err != nil {
		return fmt.Errorf("read register: %w", err)
	}
	if !bytes.Equal(cur, l.value) {
		return fmt.Errorf("replay log into register: %w: got %x, want %x", ErrRegisterMismatch, cur, l.value)
	}
	return nil
}

func isVolatile(r Register) bool {
	_, ok := r.(volatile)
	return ok
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Repairs returns what OpenLog fixed after a crash (nil normally).
func (l *Log) Repairs() []Repair { return l.repairs }

// Path returns the log's file name.
func (l *Log) Path() string { return l.path }

// Register returns the register the log is measured into.
func (l *Log) Register() Register { return l.reg }

// Position is a point in a log: the number of records and the register value
// they explain.
type Position struct {
	Records uint64
	Value   []byte
}

// Position returns the current position.
func (l *Log) Position() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Position{Records: l.records, Value: append([]byte(nil), l.value...)}
}

// AtPosition runs fn with appends held off, so that what fn reads from the
// register (a quote, for example) matches the position.
func (l *Log) AtPosition(fn func(Position) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fn(Position{Records: l.records, Value: append([]byte(nil), l.value...)})
}

// NextNamespaceID returns an id no namespace of the log has used.
func (l *Log) NextNamespaceID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxNS + 1
}

// Append writes content as the next record and extends its digest into the
// register: write, sync, extend. If the extend fails the record is taken
// back; if that is impossible the log is broken (ErrLogBroken) and the next
// OpenLog sorts it out.
//
// On a batching log (StartBatching) the record goes through the queue, after
// every record queued before it, and Append returns once it is extended.
func (l *Log) Append(content []byte) (Record, error) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.appendQueued(append([]byte(nil), content...), true, nil)
}

// appendQueued appends content, which it owns, for ns (nil for Append): at
// once, or through the batch queue (waiting for the commit with wait).
// Called under l.qmu.
func (l *Log) appendQueued(content []byte, wait bool, ns *Namespace) (Record, error) {
	return l.appendEntry(&entry{content: content, ns: ns}, wait)
}

// appendEntry appends e: at once, or through the batch queue (waiting for
// the commit with wait). Called under l.qmu.
func (l *Log) appendEntry(e *entry, wait bool) (Record, error) {
	l.appended = true
	if l.batch != nil {
		return l.batch.enqueue(e, wait)
	}
	return l.appendDirect(e)
}

// Close releases the log and its lock; the register stays open.
//
// A batching log first commits every queued record; the first error of a
// record nobody waited for is returned. While the log cannot be written,
// Close tries once more, then gives up on the records still held (they
// are lost, and Close says how many). After BeginRun, Close ends the run
// with a stop record when every record of the run was written (ErrLogBroken
// or records given up leave the run without one: an unclean end).
func (l *Log) Close() error {
	var errs []error
	l.qmu.Lock()
	clean := true
	if l.batch != nil {
		err := l.batch.stop()
		clean = err == nil || !errors.Is(err, ErrLogUnwritable)
		errs = append(errs, err)
		l.batch = nil
	}
	if l.run != 0 && clean {
		errs = append(errs, l.endRun())
	}
	l.qmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.Join(errs...)
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		errs = append(errs, fmt.Errorf("close log %s: %w", l.path, err))
	}
	return errors.Join(errs...)
}

// Namespace is the log's view of one modeling namespace. It implements
// model.Observer: the model calls NewPoint once per new unique coefficient.
type Namespace struct {
	log    *Log
	id     uint64
	name   string
	sealed bool  // guarded by log.qmu
	failed error // guarded by the batcher's mu: a queued record's failure not reported yet

	unrecorded atomic.Uint64 // points the log could not record (full.go)
	owed       owedGap       // guarded by log.qmu, without batching: points not in a gap record yet
	gap        *entry        // guarded by the batcher's mu: the queued gap record counting dropped points
	waiting    int           // guarded by the batcher's mu: records of it in the queue
}

var _ model.Observer = (*Namespace)(nil)

// Namespace appends the "created" record of a modeling namespace and returns
// the observer that records its points and lifecycle. The namespace's hash
// is the one of aggregate's length (give model.Model.Aggregate, which has
// it); a hash other than sha256 is recorded in the created record.
//
// On a batching log that cannot be written the record is held (see
// ErrLogUnwritable): the error wraps ErrLogUnwritable and the namespace
// returned is usable.
func (l *Log) Namespace(id uint64, name string, aggregate, base model.Coefficient) (*Namespace, error) {
	n := &Namespace{log: l, id: id, name: name}
	err := n.append(RecordCreated, func(w *contentWriter) {
		if h, _ := aggregate.Hash(); h != model.SHA256 {
			w.str("hash", h.String())
		}
		w.hexCoef("aggregate", aggregate)
		w.hexCoef("base", base)
	})
	if err != nil && !isHeld(err) {
		return nil, err
	}
	l.mu.Lock()
	if id > l.maxNS {
		l.maxNS = id
	}
	l.mu.Unlock()
	return n, err
}

// ID returns the namespace id.
func (n *Namespace) ID() uint64 { return n.id }

func (n *Namespace) append(kind string, fields func(w *contentWriter)) error {
	l := n.log
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return n.appendLocked(kind, fields, true)
}

// appendLocked builds the record and appends it; on a batching log it
// waits for the commit only with wait. Called under log.qmu.
func (n *Namespace) appendLocked(kind string, fields func(w *contentWriter), wait bool) error {
	l := n.log
	w := &l.content
	w.begin(kind, l.now(), n.id, n.name)
	if fields != nil {
		fields(w)
	}
	if _, err := l.appendQueued(append([]byte(nil), w.end()...), wait, n); err != nil {
		return fmt.Errorf("record %s of namespace %d: %w", kind, n.id, err)
	}
	return nil
}

// NewPoint records a new model point. A forensic point of a namespace not
// yet recorded as sealed records the seal first: a verifier expects points
// before the seal and forensics after it.
//
// On a batching log NewPoint returns once the record is queued (see
// StartBatching). An error wrapping ErrLogUnwritable says the log cannot
// be written: the point is held until it can, or (beyond the hold, and
// without batching) not recorded and counted in a gap record.
func (n *Namespace) NewPoint(p model.Point) error {
	n.log.qmu.Lock()
	defer n.log.qmu.Unlock()
	var sealErr error
	if p.Forensic && !n.sealed {
		sealErr = n.sealLocked(false)
		if sealErr != nil && !n.sealed {
			return sealErr
		}
	}
	// The content is built by the commit (pointContent): on a batching
	// log that is the committer's work, not the caller's.
	e := &entry{ns: n, isPoint: true, point: pointEntry{at: n.log.now(), coef: p.Coefficient, forensic: p.Forensic,
		desc: append([]byte(nil), p.Description...)}}
	_, err := n.log.appendEntry(e, false)
	if err != nil {
		err = fmt.Errorf("record %s of namespace %d: %w", RecordPoint, n.id, err)
	}
	return errors.Join(sealErr, err)
}

// pointContent builds the content of the point record e into l.points and
// returns it (valid until the next call). Called under l.mu.
func (l *Log) pointContent(e *entry) []byte {
	p, n := &e.point, e.ns
	w := &l.points
	w.begin(RecordPoint, p.at, n.id, n.name)
	w.hexCoef("coefficient", p.coef)
	if p.forensic {
		w.b = append(w.b, `,"forensic":true`...)
	}
	w.event(p.desc)
	return w.end()
}

// Sealed records that the namespace's model was sealed (once; later calls
// do nothing).
func (n *Namespace) Sealed() error {
	n.log.qmu.Lock()
	defer n.log.qmu.Unlock()
	if n.sealed {
		return nil
	}
	return n.sealLocked(true)
}

// sealLocked records the seal. On a batching log the record is queued
// even when an error (of an earlier record, or saying it is held) comes
// back, so the namespace counts as sealed.
func (n *Namespace) sealLocked(wait bool) error {
	err := n.appendLocked(RecordSealed, nil, wait)
	if err == nil || n.log.batch != nil && (!wait || isHeld(err)) {
		n.sealed = true
	}
	return err
}

// Enforcing records that the namespace's model is now enforced, recording
// the seal first if that was not done.
func (n *Namespace) Enforcing() error {
	n.log.qmu.Lock()
	defer n.log.qmu.Unlock()
	if !n.sealed {
		if err := n.sealLocked(true); err != nil && !isHeld(err) {
			return err
		}
	}
	return n.appendLocked(RecordEnforcing, nil, true)
}

// Gap records that lost events of the namespace (lost of them, for reason)
// were never modeled: its model and measurement are incomplete from here.
// (Points the log itself could not record get their gap records from the
// log: see ErrLogUnwritable.)
func (n *Namespace) Gap(lost uint64, reason string) error {
	return n.append(RecordGap, func(w *contentWriter) {
		w.uint("lost", lost)
		w.str("reason", reason)
	})
}
