package measure

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
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

// DefaultRetry is how long the committer of a log that cannot be written
// waits before it tries again, when BatchOptions.Retry is zero.
const DefaultRetry = time.Second

// BatchOptions tune StartBatching.
type BatchOptions struct {
	// Queue bounds the records waiting for their commit; DefaultBatchQueue
	// when zero. A NewPoint that finds the queue full waits for room, or,
	// while the log cannot be written, is not kept (ErrLogUnwritable).
	Queue int
	// Retry is how long the committer waits between attempts to write
	// records the log could not take; DefaultRetry when zero.
	Retry time.Duration
}

// entry is one record waiting for its commit.
type entry struct {
	content []byte      // owned by the entry; unused for a point or a gap
	ns      *Namespace  // whose record it is; nil for Append and run records
	wait    chan result // gets the record's result once; nil: nobody waits (any more)
	rec     Record      // set by the commit; no Content for a point or a gap
	err     error       // set by the commit
	isPoint bool        // a point record whose content the commit builds
	point   pointEntry
	isGap   bool    // a gap record of points not recorded, built by the commit
	gap     owedGap // guarded by the batcher's mu until the committer takes the entry
	isStop  bool    // the stop record of run, built by the commit
	run     uint64
}

// result is what a waiter of a queued record hears.
type result struct {
	rec Record
	err error
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
	retry time.Duration
	wake  chan struct{} // closed by stop: cuts a retry's wait short

	mu       sync.Mutex
	changed  sync.Cond // on mu: room in the queue, or a commit ended
	work     sync.Cond // on mu: the queue became non-empty, or stopping
	queue    []*entry
	busy     bool      // a commit is running
	stopping bool      // stop was called
	err      error     // first failure of a record nobody waited for since the last flush
	failing  error     // why the last commit could not write (ErrLogUnwritable); nil if it could
	since    time.Time // when failing began
	take     int       // records the next commit takes: MaxBatch, less while failing
	pause    bool      // wait Retry before the next attempt
	inflight int       // records of the commit running
	gaveUp   int       // records given up when the log was closed while failing
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
// records still return once their record is durable and extended, or once
// it is held because the log cannot be written (ErrLogUnwritable). Flush
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
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	b := &batcher{l: l, limit: o.Queue, retry: o.Retry, take: MaxBatch, wake: make(chan struct{}), done: make(chan struct{})}
	b.changed.L = &b.mu
	b.work.L = &b.mu
	l.batch = b
	l.batched.Store(b)
	go b.run()
}

// Flush waits until every record queued so far is written, synced and
// extended, and returns the first error of a record nobody waited for
// since the last Flush (NewPoint also reports it, once, to its namespace).
// While the log cannot be written it returns at once, with an error
// wrapping ErrLogUnwritable, once a commit has failed. Without batching it
// does nothing.
func (l *Log) Flush() error {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.batch == nil {
		return nil
	}
	return l.batch.flush()
}

// enqueue queues e (whose content or point it then owns) for e.ns. With
// wait it returns once the record is committed, with its result, or held
// (ErrLogUnwritable); without, at once, with the first failure of an
// earlier record of e.ns not reported yet. While the log cannot be written
// a point that finds the queue full is counted for a gap record instead.
// Called under l.qmu.
func (b *batcher) enqueue(e *entry, wait bool) (Record, error) {
	ns := e.ns
	b.mu.Lock()
	for len(b.queue) >= b.limit && b.failing == nil {
		b.changed.Wait()
	}
	failing := b.failing
	if len(b.queue) >= b.limit && e.isPoint {
		b.dropLocked(ns, failing)
		b.mu.Unlock()
		return Record{}, fmt.Errorf("not recorded (the hold is full; a gap record counts it): %w", failing)
	}
	var done chan result
	if wait && failing == nil {
		done = make(chan result, 1)
		e.wait = done
	}
	b.pushLocked(e)
	var err error
	if !wait && ns != nil {
		err, ns.failed = ns.failed, nil
	}
	b.mu.Unlock()
	if done != nil {
		r := <-done
		return r.rec, r.err
	}
	if err != nil {
		err = fmt.Errorf("an earlier queued record: %w", err)
	}
	if failing != nil {
		err = errors.Join(err, &heldError{failing})
	}
	return Record{}, err
}

// pushLocked appends e to the queue. Called under b.mu.
func (b *batcher) pushLocked(e *entry) {
	b.queue = append(b.queue, e)
	if e.ns != nil {
		e.ns.waiting++
	}
	if len(b.queue) == 1 {
		// Only an idle committer waits for work, and only on an empty
		// queue: one wake-up per batch, not per record.
		b.work.Signal()
	}
}

// dropLocked counts a point of n that is not recorded because of cause,
// in the gap record of n waiting in the queue (queued now if there is
// none: past the queue's bound, one per namespace). Called under b.mu.
func (b *batcher) dropLocked(n *Namespace, cause error) {
	n.unrecorded.Add(1)
	b.l.unrecorded.Add(1)
	g := n.gap
	if g == nil {
		g = &entry{ns: n, isGap: true, gap: owedGap{at: b.l.now(), reason: gapReason(cause)}}
		n.gap = g
		b.pushLocked(g)
	}
	g.gap.points++
}

func (b *batcher) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for (len(b.queue) > 0 || b.busy) && (b.failing == nil || b.busy) {
		b.changed.Wait()
	}
	if b.failing != nil && len(b.queue) > 0 {
		return fmt.Errorf("%d records held in memory: %w", len(b.queue), b.failing)
	}
	err := b.err
	b.err = nil
	return err
}

// stop flushes and ends the committer. A log that cannot be written gets
// one more attempt; what it cannot write then is given up, and the error
// (wrapping ErrLogUnwritable) says how many records.
func (b *batcher) stop() error {
	err := b.flush()
	if errors.Is(err, ErrLogUnwritable) {
		err = nil // the last attempt decides
	}
	b.mu.Lock()
	b.stopping = true
	close(b.wake)
	b.work.Signal()
	b.mu.Unlock()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		err = errors.Join(err, b.err)
		b.err = nil
	}
	if b.gaveUp > 0 {
		err = errors.Join(err, fmt.Errorf("%d records not written: %w", b.gaveUp, b.failing))
	}
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
		if b.pause && !b.stopping {
			b.mu.Unlock()
			t := time.NewTimer(b.retry)
			select {
			case <-t.C:
			case <-b.wake:
				t.Stop()
			}
			b.mu.Lock()
		}
		b.pause = false
		final := b.stopping
		n := min(len(b.queue), b.take)
		batch = append(batch[:0], b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		for _, e := range batch {
			if e.isGap && e.ns.gap == e {
				e.ns.gap = nil // taken: later drops count in a new one
			}
		}
		b.busy, b.inflight = true, n
		b.changed.Broadcast()
		b.mu.Unlock()

		b.l.mu.Lock()
		err := b.l.commitLocked(batch)
		b.l.mu.Unlock()

		b.mu.Lock()
		if err != nil {
			b.failedLocked(n, err)
			b.holdLocked(batch, err, final && b.pause)
		} else {
			b.committedLocked(n)
			b.finishLocked(batch)
		}
		clear(batch)
		b.busy, b.inflight = false, 0
		b.changed.Broadcast()
		b.mu.Unlock()
	}
}

// failedLocked notes a commit of n records that could not write (err):
// a smaller batch may fit where this one did not, so the next attempt,
// at once, takes half as many, down to one record; after that one fails
// the committer waits Retry and starts over with a full batch. Called
// under b.mu.
func (b *batcher) failedLocked(n int, err error) {
	if b.failing == nil {
		b.since = time.Now()
	}
	b.failing = err
	b.take = n / 2
	if b.take == 0 {
		b.take, b.pause = MaxBatch, true
	}
}

// committedLocked notes a commit of n records that worked. While records
// are held the batches grow back, doubling; the log counts as writable
// again once a full batch, or everything held, is written. Called under
// b.mu.
func (b *batcher) committedLocked(n int) {
	if b.failing == nil {
		return
	}
	if b.take >= MaxBatch || len(b.queue) == 0 {
		b.failing, b.since, b.take = nil, time.Time{}, MaxBatch
		return
	}
	b.take = min(MaxBatch, 2*max(b.take, n))
}

// holdLocked puts back batch, which the log could not take (err), at the
// head of the queue, in order, and tells its waiters that their records
// are held. On the final attempt (stopping, with one record) it gives up
// on batch and on everything queued instead. Called under b.mu.
func (b *batcher) holdLocked(batch []*entry, err error, final bool) {
	if b.failing == nil {
		b.since = time.Now()
	}
	b.failing = err
	if final {
		lost := append(append([]*entry(nil), batch...), b.queue...)
		clear(b.queue)
		b.queue = b.queue[:0]
		b.gaveUp += len(lost)
		for _, e := range lost {
			if e.isPoint {
				e.ns.unrecorded.Add(1)
				b.l.unrecorded.Add(1)
			}
			if e.ns != nil {
				e.ns.waiting--
			}
			if e.wait != nil { // stop reports the others, counted
				e.wait <- result{err: fmt.Errorf("not written: the log was closed while it could not be written: %w", err)}
				e.wait = nil
			}
		}
		return
	}
	b.queue = append(append(make([]*entry, 0, len(batch)+len(b.queue)), batch...), b.queue...)
	for _, e := range batch {
		if e.isGap && e.ns.gap == nil {
			e.ns.gap = e // counts again: it is queued
		}
		if e.wait != nil {
			e.wait <- result{err: &heldError{err}}
			e.wait = nil
		}
	}
}

// finishLocked hands each committed entry of batch its result, and counts
// every point that failed for a gap record. Called under b.mu.
func (b *batcher) finishLocked(batch []*entry) {
	for _, e := range batch {
		b.finishOneLocked(e)
		if e.err != nil && e.isPoint {
			b.dropLocked(e.ns, e.err)
		}
	}
}

func (b *batcher) finishOneLocked(e *entry) {
	if e.ns != nil {
		e.ns.waiting--
	}
	if e.wait != nil {
		e.wait <- result{rec: e.rec, err: e.err}
		e.wait = nil
		return
	}
	if e.err != nil {
		if b.err == nil {
			b.err = e.err
		}
		if e.ns != nil && e.ns.failed == nil {
			e.ns.failed = e.err
		}
	}
}

// commitLocked writes the records of batch (in pieces of about
// writeChunk bytes), syncs once, then extends each digest in order, setting
// each entry's rec or err. A point, gap or stop entry's content is built
// here, into scratch memory: its rec keeps no Content. A record whose extend
// fails is taken back with every record after it; if the device may have
// extended it, the log is broken.
//
// When the batch cannot be written or synced (a full disk) it returns an
// error wrapping ErrLogUnwritable and leaves the entries alone: the log is
// cut back to where it was, and the batch can be tried again (the
// committer tries halves of it at once, down to one record, so that the
// log catches up as far as the space allows, then waits). Called under
// l.mu.
func (l *Log) commitLocked(batch []*entry) error {
	fail := func(from int, err error) {
		for _, e := range batch[from:] {
			e.err = err
		}
	}
	if l.broken != nil {
		fail(0, fmt.Errorf("append to %s: %w: %v", l.path, ErrLogBroken, l.broken))
		return nil
	}
	if l.f == nil {
		fail(0, fmt.Errorf("append to %s: %w", l.path, ErrLogClosed))
		return nil
	}
	if l.cut {
		if err := l.cutBack(); err != nil {
			l.appendErrors.Add(1)
			return fmt.Errorf("%w: %w", ErrLogUnwritable, err)
		}
	}
	start := time.Now()
	l.line = l.line[:0]
	if cap(l.ends) < len(batch) {
		l.ends = make([]int64, len(batch))
	}
	ends := l.ends[:len(batch)] // end of each record's line, from l.size
	first := l.records
	var written int64 // bytes of the batch written before l.line
	for i, e := range batch {
		content, scratch := e.content, true
		switch {
		case e.isPoint:
			content = l.pointContent(e)
		case e.isGap:
			content = l.gapContent(e)
		case e.isStop:
			content = l.stopContent(batch, i)
		default:
			scratch = false
		}
		h := l.alg.New()
		h.Write(content)
		e.rec = Record{Recnum: first + uint64(i), Kind: l.kind, Index: l.index, Alg: l.alg, Digest: h.Sum(nil), Content: content}
		l.line = AppendLine(l.line, e.rec)
		if scratch {
			e.rec.Content = nil
		}
		ends[i] = written + int64(len(l.line))
		if len(l.line) >= writeChunk && i < len(batch)-1 {
			l.writes++
			if _, err := l.w.Write(l.line); err != nil {
				return l.writeFailed(fmt.Errorf("write records %d to %d to %s: %w", first, first+uint64(i), l.path, err))
			}
			written += int64(len(l.line))
			l.line = l.line[:0]
		}
	}
	l.writes++
	if _, err := l.w.Write(l.line); err != nil {
		return l.writeFailed(fmt.Errorf("write record %d to %s: %w", first, l.path, err))
	}
	if cap(l.line) > 2*writeChunk {
		l.line = nil // one record larger than a chunk: do not keep it
	}
	l.syncs++
	if err := l.w.Datasync(); err != nil {
		return l.writeFailed(fmt.Errorf("sync %s: %w", l.path, err))
	}
	// Durable: the descriptions are not needed any more.
	for _, e := range batch {
		e.point.desc = nil
	}
	// Now extend, in order. After record i the log and the register agree
	// on records [0, first+i].
	done := func(k int) { // the first k records of batch are measured
		if k > 0 {
			l.size += ends[k-1]
		}
		l.records += uint64(k)
		if l.extended != nil && k > 0 {
			l.extended(k, time.Since(start))
		}
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
				err := fmt.Errorf("extend register with record %d: %w", e.rec.Recnum, err)
				if cerr := l.cutBack(); cerr != nil {
					err = fmt.Errorf("%w (then: %v)", err, cerr)
				}
				e.err = err
				for _, later := range batch[i+1:] {
					later.err = fmt.Errorf("record %d not measured: %w", later.rec.Recnum, err)
				}
				return nil
			default:
				done(i)
				l.broken = fmt.Errorf("extend register with record %d: %w", e.rec.Recnum, err)
				fail(i, fmt.Errorf("append to %s: %w: %v", l.path, ErrLogBroken, l.broken))
				return nil
			}
		}
		l.value = next
	}
	done(len(batch))
	return nil
}
