package measure

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// ErrLogClosed: a record was appended to a log after Close.
var ErrLogClosed = errors.New("log is closed")

// MaxBatch is the most records one group commit writes before its single
// fdatasync. A commit takes every record waiting, up to MaxBatch, so the
// batch grows with the queue: when new points arrive faster than the disk
// syncs, each fdatasync carries more of them. OpenLog repairs a register
// that lacks the extends of up to MaxBatch last records (a crash between a
// group commit's sync and its last extend), so the two must change
// together.
const MaxBatch = 1024

// writeChunk is how many bytes of lines a commit builds before it writes
// them: a batch of MaxBatch records (about 1.3 MB of point records) is
// written in pieces, so the buffer the log keeps stays small. The pieces
// share the batch's one fdatasync; a crash between them leaves whole lines
// that were never extended, which OpenLog treats like any other unextended
// tail of a batch.
const writeChunk = 256 << 10

// DefaultBatchQueue is the queue bound of StartBatching when none is given.
const DefaultBatchQueue = 4096

// BatchOptions tune StartBatching.
type BatchOptions struct {
	// Queue bounds the records waiting for their commit; DefaultBatchQueue
	// when zero. A NewPoint that finds the queue full waits for room.
	Queue int
}

// entry is one record waiting for its commit.
type entry struct {
	content []byte        // owned by the entry; unused for a point
	ns      *Namespace    // whose record it is; nil for Append
	wait    chan struct{} // closed once committed; nil: nobody waits
	rec     Record        // set by the commit; no Content for a point
	err     error         // set by the commit
	isPoint bool          // a point record whose content the commit builds
	point   pointEntry
}

// pointEntry is what a point record's content is built from. NewPoint
// queues it instead of the content so that the ring-buffer reader, which
// calls NewPoint, pays only for a copy of the description: the content
// (the description checked and embedded, coefficient in hex) is built by
// the committer, in the queue's order and with the time NewPoint saw.
type pointEntry struct {
	at       time.Time
	coef     model.Coefficient
	forensic bool
	desc     []byte // owned
}

// batcher is the committer goroutine of a batching Log and its queue.
type batcher struct {
	l     *Log
	limit int

	mu       sync.Mutex
	changed  sync.Cond // on mu: room in the queue, or a commit ended
	work     sync.Cond // on mu: the queue became non-empty, or stopping
	queue    []*entry
	busy     bool  // a commit is running
	stopping bool  // stop was called
	err      error // first failure of a record nobody waited for since the last flush
	done     chan struct{}
}

// StartBatching switches the log to group commit: from now on records are
// queued and a committer goroutine writes all that are waiting (at most
// MaxBatch), fdatasyncs once and then extends each digest in order, under
// the log's lock, so the invariants of Append hold for every record: the
// digest is the hash of the bytes stored, the register is never ahead of
// the log, and records are logged and extended in the order they were
// queued.
//
// Namespace.NewPoint then returns once its record is queued, not once it is
// durable (it waits only while the queue is full); its error may be that of
// an earlier queued record of the same namespace, reported once. Append and the other Namespace
// records still return once their record is durable and extended. Flush
// waits for every queued record; Close flushes. Calling StartBatching again
// does nothing.
func (l *Log) StartBatching(o BatchOptions) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.batch != nil {
		return
	}
	if o.Queue <= 0 {
		o.Queue = DefaultBatchQueue
	}
	b := &batcher{l: l, limit: o.Queue, done: make(chan struct{})}
	b.changed.L = &b.mu
	b.work.L = &b.mu
	l.batch = b
	go b.run()
}

// Flush waits until every record queued so far is written, synced and
// extended, and returns the first error of a record nobody waited for
// since the last Flush (NewPoint also reports it, once, to its namespace).
// Without batching it does nothing.
func (l *Log) Flush() error {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.batch == nil {
		return nil
	}
	return l.batch.flush()
}

// enqueue queues e (whose content or point it then owns) for e.ns. With
// wait it returns once the record is committed, with its result; without,
// at once, with the first failure of an earlier record of e.ns not
// reported yet. Called under l.qmu.
func (b *batcher) enqueue(e *entry, wait bool) (Record, error) {
	ns := e.ns
	if wait {
		e.wait = make(chan struct{})
	}
	b.mu.Lock()
	for len(b.queue) >= b.limit {
		b.changed.Wait()
	}
	b.queue = append(b.queue, e)
	if len(b.queue) == 1 {
		// Only an idle committer waits for work, and only on an empty
		// queue: one wake-up per batch, not per record.
		b.work.Signal()
	}
	var err error
	if !wait && ns != nil {
		err, ns.failed = ns.failed, nil
	}
	b.mu.Unlock()
	if !wait {
		if err != nil {
			return Record{}, fmt.Errorf("an earlier queued record: %w", err)
		}
		return Record{}, nil
	}
	<-e.wait
	return e.rec, e.err
}

func (b *batcher) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > 0 || b.busy {
		b.changed.Wait()
	}
	err := b.err
	b.err = nil
	return err
}

// stop flushes and ends the committer.
func (b *batcher) stop() error {
	err := b.flush()
	b.mu.Lock()
	b.stopping = true
	b.work.Signal()
	b.mu.Unlock()
	<-b.done
	return err
}

func (b *batcher) run() {
	defer close(b.done)
	var batch []*entry
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.stopping {
			b.work.Wait()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), MaxBatch)
		batch = append(batch[:0], b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.busy = true
		b.changed.Broadcast()
		b.mu.Unlock()

		b.l.mu.Lock()
		b.l.commitLocked(batch)
		b.l.mu.Unlock()

		b.mu.Lock()
		for _, e := range batch {
			if e.wait != nil {
				close(e.wait)
			} else if e.err != nil {
				if b.err == nil {
					b.err = e.err
				}
				if e.ns != nil && e.ns.failed == nil {
					e.ns.failed = e.err
				}
			}
		}
		clear(batch)
		b.busy = false
		b.changed.Broadcast()
		b.mu.Unlock()
	}
}

// commitLocked writes the records of batch (in pieces of about
// writeChunk bytes), syncs once, then extends each digest in order, setting
// each entry's rec or err. A point entry's content is built here, into
// scratch memory: its rec keeps no Content. A record whose extend fails is
// taken back with every record after it; if that is impossible the log is
// broken. Called under l.mu.
func (l *Log) commitLocked(batch []*entry) {
	fail := func(from int, err error) {
		for _, e := range batch[from:] {
			e.err = err
		}
	}
	if l.broken != nil {
		fail(0, fmt.Errorf("append to %s: %w: %v", l.path, ErrLogBroken, l.broken))
		return
	}
	if l.f == nil {
		fail(0, fmt.Errorf("append to %s: %w", l.path, ErrLogClosed))
		return
	}
	l.line = l.line[:0]
	if cap(l.ends) < len(batch) {
		l.ends = make([]int64, len(batch))
	}
	ends := l.ends[:len(batch)] // end of each record's line, from l.size
	first := l.records
	var written int64 // bytes of the batch written before l.line
	for i, e := range batch {
		content := e.content
		if e.isPoint {
			content = l.pointContent(e)
			e.point.desc = nil // not needed any more
		}
		h := l.alg.New()
		h.Write(content)
		e.rec = Record{Recnum: first + uint64(i), Kind: l.kind, Index: l.index, Alg: l.alg, Digest: h.Sum(nil), Content: content}
		l.line = AppendLine(l.line, e.rec)
		if e.isPoint {
			e.rec.Content = nil // scratch
		}
		ends[i] = written + int64(len(l.line))
		if len(l.line) >= writeChunk && i < len(batch)-1 {
			l.writes++
			if _, err := l.f.Write(l.line); err != nil {
				fail(0, l.takeBack(fmt.Errorf("write records %d to %d to %s: %w", first, first+uint64(i), l.path, err)))
				return
			}
			written += int64(len(l.line))
			l.line = l.line[:0]
		}
	}
	l.writes++
	if _, err := l.f.Write(l.line); err != nil {
		fail(0, l.takeBack(fmt.Errorf("write record %d to %s: %w", first, l.path, err)))
		return
	}
	if cap(l.line) > 2*writeChunk {
		l.line = nil // one record larger than a chunk: do not keep it
	}
	l.syncs++
	if err := syscall.Fdatasync(int(l.f.Fd())); err != nil {
		fail(0, l.takeBack(fmt.Errorf("sync %s: %w", l.path, err)))
		return
	}
	// Durable: now extend, in order. After record i the log and the
	// register agree on records [0, first+i].
	done := func(k int) { // the first k records of batch are measured
		if k > 0 {
			l.size += ends[k-1]
		}
		l.records += uint64(k)
	}
	for i, e := range batch {
		next := ExtendValue(l.alg, l.value, e.rec.Digest)
		if err := l.reg.Extend(e.rec.Digest); err != nil {
			// The device may have extended before failing: look.
			cur, rerr := l.reg.Read()
			switch {
			case rerr == nil && bytes.Equal(cur, next):
			case rerr == nil && bytes.Equal(cur, l.value):
				done(i)
				err := l.takeBack(fmt.Errorf("extend register with record %d: %w", e.rec.Recnum, err))
				e.err = err
				for _, later := range batch[i+1:] {
					later.err = fmt.Errorf("record %d not measured: %w", later.rec.Recnum, err)
				}
				return
			default:
				done(i)
				l.broken = fmt.Errorf("extend register with record %d: %w", e.rec.Recnum, err)
				fail(i, fmt.Errorf("append to %s: %w: %v", l.path, ErrLogBroken, l.broken))
				return
			}
		}
		l.value = next
	}
	done(len(batch))
}
