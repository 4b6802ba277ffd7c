package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The repeat cache from userspace (doc.go, "Repeat cache", has the whole
// argument): the table rotation, the memo collector and the counts they
// hand on, and FlushRepeats.

// repeatValue mirrors struct vg_rval.
type repeatValue struct {
	ID      uint64
	Count   uint64
	Gen     uint32
	Allowed uint16
	Valid   uint16
	Key     [repeatKeySize]byte // struct vg_rkey
}

// repeatKey mirrors struct vg_rhkey, the table's key.
type repeatKey struct {
	NS   uint64
	Hash uint64
}

// repeatKeySize is sizeof(struct vg_rkey), the whole key an entry holds.
const repeatKeySize = 168

// repeatBatch is how many entries one batch lookup of the old repeat
// cache table reads (49 KiB of buffers).
const repeatBatch = 256

// memoCount is what the collector took from the memos of one entry.
type memoCount struct {
	ns, count uint64
}

// memoOutSize is sizeof(struct vg_memo_out): ns, rid, count.
const memoOutSize = 24

// repeatCache owns the kernel's repeat cache: the map of its two table
// slots, the window and id counters, the memo collector, the current
// table, and the FlushRepeats requests Run serves.
type repeatCache struct {
	// mu orders the replacement of cur against close; closed says close
	// has run.
	mu     sync.Mutex
	closed bool
	slots  *ebpf.Map     // repeats: the tables of two windows, by gen&1
	gens   *ebpf.Map     // rep_gen: [0] the current window, [1] the collected one
	ids    *ebpf.Map     // rid_counter: the last RepeatID handed out
	table  *ebpf.MapSpec // of a fresh table
	cur    *ebpf.Map     // the current window's table (slot gen&1)
	gen    uint32        // the current window (rep_gen[0])

	collect *link.Iter // vg_collect
	window  time.Duration

	// Under the reader's lock (rotations run in Run or Open): carry,
	// the namespaces whose entries the last finish markers did not
	// cover (see rotate), and reused buffers.
	carry   map[uint64]struct{}
	memoBuf map[uint64]memoCount
	keys    []repeatKey
	vals    []repeatValue
	noBatch bool // the kernel has no batch lookup: iterate

	// FlushRepeats asks Run for a rotation (flushAsk) and waits on a
	// channel in flushWait; running says whether a Run serves them.
	flushMu   sync.Mutex
	flushWait []chan error
	flushAsk  atomic.Bool
	running   bool
}

// newRepeatCache attaches the memo collector; the first rotate installs
// the first table.
func newRepeatCache(o *objects, table *ebpf.MapSpec, window time.Duration) (*repeatCache, error) {
	it, err := link.AttachIter(link.IterOptions{Program: o.Collect})
	if err != nil {
		return nil, fmt.Errorf("attach repeat memo collector: %w", err)
	}
	return &repeatCache{
		slots:   o.Repeats,
		gens:    o.RepGen,
		ids:     o.RIDCounter,
		table:   table,
		collect: it,
		window:  window,
	}, nil
}

// close drops the current table and detaches the collector; rotate
// returns ErrClosed from then on.
func (r *repeatCache) close() error {
	r.mu.Lock()
	r.closed = true
	if r.cur != nil {
		r.cur.Close()
	}
	r.mu.Unlock()
	return r.collect.Close()
}

// rotate puts a fresh table in place and, with fn, hands fn the records
// made before the swap (drain), then the counts of the old table (with
// the memos' counts of its window) and the finish markers.
//
// Why this order is exact. The table of window g is in slot g&1 of
// repeats, and a program reads rep_gen[0] once and uses that slot. The
// new table goes into the other slot, then rep_gen[0] is bumped, then a
// second update of the slot waits for every running program (the kernel
// waits when a map-in-map slot changes): from then on no program counts
// in window g, and every record a program made with one of its entries
// is committed in the ring buffer before the reader's position as it is
// now. Reading up to there first puts every record before its count.
// Counts of window g still held by memos are frozen; the collector takes
// each with a compare-and-swap (a task's exit may take it first and add
// it to the old table, which stays in its slot); one more slot update
// waits for such exits, after which the old table and the collector's
// counts are final. RepeatIDs come from one counter; a program takes its
// id after it looked the table up (repeat_begin), so every id handed out
// before the swap began (below, read first) belongs to the old table or
// an earlier one: all of them are finished after this rotation. An old
// entry with a larger id (taken during the swap) is finished by the next
// rotation's markers: carry keeps its namespace for them.
func (r *repeatCache) rotate(ctx context.Context, fn func(Record), drain func(context.Context, func(Record)) error) error {
	old, oldGen, below, err := r.swap()
	if err != nil || old == nil {
		return err
	}
	defer old.Close()
	if fn == nil {
		return nil
	}
	if err := drain(ctx, fn); err != nil {
		return err
	}
	memos, err := r.collectMemos(oldGen)
	if err != nil {
		return err
	}
	// Wait for the exits that took a count of the old window before the
	// collector did: they have added it to old.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	err = r.slots.Update(oldGen&1, old, ebpf.UpdateAny)
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("finish repeat window: %w", err)
	}
	return r.report(old, memos, below, fn)
}

// swap installs a fresh table for the next window and waits for the
// programs of the current one. It returns the table replaced (nil at the
// first swap), its window and the RepeatID counter read before the swap.
func (r *repeatCache) swap() (old *ebpf.Map, oldGen uint32, below uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, 0, 0, ErrClosed
	}
	if err := r.ids.Lookup(uint32(0), &below); err != nil {
		return nil, 0, 0, fmt.Errorf("read repeat id counter: %w", err)
	}
	next, err := ebpf.NewMap(r.table)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("create repeat cache table: %w", err)
	}
	gen := r.gen + 1
	if gen == 0 {
		gen = 2 // never 0; keep the slot parity
	}
	// The new window's slot held the table two windows back, read at the
	// last rotation: nothing uses it.
	if err := r.slots.Update(gen&1, next, ebpf.UpdateAny); err != nil {
		next.Close()
		return nil, 0, 0, fmt.Errorf("install repeat cache table: %w", err)
	}
	if err := r.gens.Update(uint32(0), gen, ebpf.UpdateAny); err != nil {
		next.Close()
		return nil, 0, 0, fmt.Errorf("start repeat window: %w", err)
	}
	// Wait for the programs that read the old window.
	if err := r.slots.Update(gen&1, next, ebpf.UpdateAny); err != nil {
		next.Close()
		return nil, 0, 0, fmt.Errorf("end repeat window: %w", err)
	}
	old, oldGen = r.cur, r.gen
	r.cur, r.gen = next, gen
	return old, oldGen, below, nil
}

// report hands fn the counts of the finished table old plus the memos'
// (by id), then one finish marker per namespace that had an entry.
func (r *repeatCache) report(old *ebpf.Map, memos map[uint64]memoCount, below uint64, fn func(Record)) error {
	var ts unix.Timespec
	// KTime: when the counts were taken, on the kernel's clock.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := uint64(ts.Nano())
	mark := r.carry
	r.carry = nil
	emit := func(ns, id, count uint64) {
		if mark == nil {
			mark = make(map[uint64]struct{})
		}
		mark[ns] = struct{}{}
		if id > below {
			if r.carry == nil {
				r.carry = make(map[uint64]struct{})
			}
			r.carry[ns] = struct{}{}
		}
		if count != 0 {
			fn(&RepeatCount{Header: Header{Type: RecRepeatCount, NS: ns, KTime: now, RepeatID: id}, Count: count})
		}
	}
	err := r.each(old, func(ns uint64, v *repeatValue) {
		if v.Valid == 0 {
			return // no record was made for it, so nothing counted
		}
		count := v.Count
		if m, ok := memos[v.ID]; ok {
			count += m.count
			delete(memos, v.ID)
		}
		emit(ns, v.ID, count)
	})
	if err != nil {
		return err
	}
	// A memo names an entry of its window's table; none should be left.
	for id, m := range memos {
		emit(m.ns, id, m.count)
		delete(memos, id)
	}
	if below == 0 {
		return nil // no id handed out before the swap
	}
	for ns := range mark {
		fn(&RepeatCount{Header: Header{Type: RecRepeatCount, NS: ns, KTime: now}, Below: below + 1})
	}
	return nil
}

// collectMemos runs the collector (vg_collect) over every task for the
// memos of window gen, which has ended, and returns their counts by
// RepeatID.
func (r *repeatCache) collectMemos(gen uint32) (map[uint64]memoCount, error) {
	if err := r.gens.Update(uint32(1), gen, ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("set collected repeat window: %w", err)
	}
	rd, err := r.collect.Open()
	if err != nil {
		return nil, fmt.Errorf("run repeat memo collector: %w", err)
	}
	defer rd.Close()
	out, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read repeat memo collector: %w", err)
	}
	if len(out)%memoOutSize != 0 {
		return nil, fmt.Errorf("read repeat memo collector: %d bytes, not a multiple of %d", len(out), memoOutSize)
	}
	if r.memoBuf == nil {
		r.memoBuf = make(map[uint64]memoCount)
	}
	for ; len(out) > 0; out = out[memoOutSize:] {
		ns := binary.LittleEndian.Uint64(out)
		id := binary.LittleEndian.Uint64(out[8:])
		m := r.memoBuf[id]
		m.ns = ns
		m.count += binary.LittleEndian.Uint64(out[16:])
		r.memoBuf[id] = m
	}
	return r.memoBuf, nil
}

// each calls fn for every entry of the table m, which no program uses
// any more.
func (r *repeatCache) each(m *ebpf.Map, fn func(ns uint64, v *repeatValue)) error {
	if !r.noBatch {
		if r.keys == nil {
			r.keys = make([]repeatKey, repeatBatch)
			r.vals = make([]repeatValue, repeatBatch)
		}
		var cursor ebpf.MapBatchCursor
		for first := true; ; first = false {
			n, err := m.BatchLookup(&cursor, r.keys, r.vals, nil)
			if first && errors.Is(err, ebpf.ErrNotSupported) {
				r.noBatch = true // before 5.6
				break
			}
			for i := range n {
				fn(r.keys[i].NS, &r.vals[i])
			}
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read repeat cache table: %w", err)
			}
		}
	}
	var (
		k repeatKey
		v repeatValue
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k.NS, &v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read repeat cache table: %w", err)
	}
	return nil
}

// serve marks Run as serving FlushRepeats; the function it returns ends
// that and answers the calls still waiting with ErrNoRun.
func (r *repeatCache) serve() (end func()) {
	r.flushMu.Lock()
	r.running = true
	r.flushMu.Unlock()
	return func() {
		r.flushMu.Lock()
		r.running = false
		waiting := r.flushWait
		r.flushWait = nil
		r.flushMu.Unlock()
		for _, w := range waiting {
			w <- ErrNoRun
		}
	}
}

// flushAsked says whether a FlushRepeats call waits for a rotation.
func (r *repeatCache) flushAsked() bool { return r.flushAsk.Load() }

// askFlush queues a FlushRepeats call: the channel gets the result of the
// next rotation Run makes. ErrNoRun when no Run serves.
func (r *repeatCache) askFlush() (<-chan error, error) {
	done := make(chan error, 1)
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if !r.running {
		return nil, ErrNoRun
	}
	r.flushWait = append(r.flushWait, done)
	r.flushAsk.Store(true)
	return done, nil
}

// rotateAndReport rotates for Run and answers the FlushRepeats calls made
// before the rotation began.
func (r *repeatCache) rotateAndReport(ctx context.Context, fn func(Record), drain func(context.Context, func(Record)) error) error {
	r.flushMu.Lock()
	waiting := r.flushWait
	r.flushWait = nil
	r.flushAsk.Store(false)
	r.flushMu.Unlock()
	err := r.rotate(ctx, fn, drain)
	for _, w := range waiting {
		w <- err
	}
	return err
}

// rotateRepeats rotates the repeat cache, draining the ring buffer
// through the reader (Run holds readMu).
func (c *Capture) rotateRepeats(ctx context.Context, fn func(Record)) error {
	return c.rep.rotate(ctx, fn, c.drainLocked)
}

// FlushRepeats has Run replace the repeat cache now and returns when Run
// has handed its fn every record the kernel made and every repeat it
// counted before the call (the counts and finish markers included): the
// counts of events that have happened are then complete without waiting
// for the repeat window. It returns ErrNoRun when no Run is reading (or
// Run ends first without a last rotation), ctx's error when ctx ends
// first, or the rotation's error. Call it from any goroutine but Run's.
func (c *Capture) FlushRepeats(ctx context.Context) error {
	done, err := c.rep.askFlush()
	if err != nil {
		return fmt.Errorf("flush repeat counts: %w", err)
	}
	c.wakeReader()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("flush repeat counts: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
