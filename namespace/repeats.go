package namespace

import (
	"sync"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/model"
)

// AddRepeats counts n more occurrences of c, an event the namespace has
// already added: events the kernel's repeat cache counted instead of
// reporting one by one. They are numbered (event.number moves on by n)
// and counted like the events Add takes; c must be recorded in the model
// (a Result's Coefficient), else nothing is counted and recorded is false.
// forensic says whether c is outside the sealed model.
func (n *Namespace) AddRepeats(c model.Coefficient, count uint64) (recorded, forensic bool) {
	if count == 0 {
		return true, false
	}
	recorded, forensic = n.model.AddRepeats(c, count)
	return n.countRepeats(recorded, forensic, count)
}

// AddRepeatsRef is AddRepeats for the point ref names (Result.Ref of an
// Add to this namespace).
func (n *Namespace) AddRepeatsRef(ref model.PointRef, count uint64) (recorded, forensic bool) {
	if count == 0 {
		return true, false
	}
	recorded, forensic = n.model.AddRepeatsRef(ref, count)
	return n.countRepeats(recorded, forensic, count)
}

func (n *Namespace) countRepeats(recorded, forensic bool, count uint64) (bool, bool) {
	if !recorded {
		return false, false
	}
	n.number.Add(count)
	n.events.Add(count)
	if forensic {
		n.forensicEvents.Add(count)
	}
	return true, forensic
}

// Repeats is what Dispatcher.OnRepeats receives: Count more occurrences
// of an event already added to a namespace.
type Repeats struct {
	Coefficient model.Coefficient
	Type        string // the event's TSEM type
	Count       uint64
	// Forensic: the event is outside the sealed model. Unmodeled: its
	// type has no coefficient layout (counted, not modeled). Unlearned:
	// it was not learned (Result.Unlearned; counted, not modeled).
	Forensic, Unmodeled, Unlearned bool
}

// repeatTable maps the kernel's repeat cache entries (bpf.Header.RepeatID)
// to what their records became, so that the counts Capture.Run delivers
// later (*bpf.RepeatCount) land on the same coefficient. Run delivers an
// entry's records, then its count if it was repeated, then a finish
// marker covering its id; a count or a record that breaks this order is
// counted (errs) and dropped, never added on a guess.
//
// RepeatIDs come from one counter per capture and arrive nearly in
// order, so the table is a slice indexed by id - base: O(1) to record and
// to count, O(entries left) to drop a finished prefix (moving the few
// left to the front), 48 bytes per id of the current window, no pointers
// for the garbage collector to scan. Its backing array keeps the size a
// window needed and shrinks after a window that needed far less (peak),
// so a burst costs no regrowth per window and its memory goes back after
// it. The ids below floor are finished (the last marker's Below).
type repeatTable struct {
	mu    sync.Mutex
	floor uint64
	base  uint64 // the id of slots[0]; floor <= base when slots is not empty
	slots []repeatTarget
	live  int // slots with set
	peak  int // the most slots used since the last marker
	errs  atomic.Uint64
}

// repeatSpan bounds how many ids the table spans (48 MiB). Ids are dense,
// so only a stream that is not Run's (a replay, records of two captures)
// reaches it; the oldest entries are then dropped as errors.
const repeatSpan = 1 << 20

type repeatTarget struct {
	ns        uint64         // the namespace of the record
	point     model.PointRef // in the namespace's model: 4 bytes, not a coefficient
	rt        bpf.RecordType // its TSEM type, RecordType.String (kept small: one per cached record)
	unmodeled bool
	unlearned bool
	skip      bool // the record was dropped (Dispatcher.Skip)
	set       bool // the slot holds an entry
}

// slot returns the slot of id, growing the table to hold it; nil when id
// is finished.
func (t *repeatTable) slot(id uint64) *repeatTarget {
	if id < t.floor {
		return nil
	}
	if len(t.slots) == 0 {
		// After a marker the ids to come start at floor.
		t.base = id
		if t.floor != 0 && id-t.floor < repeatSpan/2 {
			t.base = t.floor
		}
	}
	if id < t.base {
		if t.base-id >= repeatSpan/2 {
			return nil
		}
		// An id taken a little before those already seen, whose
		// record came later (another CPU): grow at the front.
		grow := int(t.base - id)
		t.slots = append(t.slots, make([]repeatTarget, grow)...)
		copy(t.slots[grow:], t.slots)
		clear(t.slots[:grow])
		t.base = id
		t.peak = max(t.peak, len(t.slots))
	}
	i := id - t.base
	if i >= repeatSpan {
		live := t.live
		t.dropBelow(id - repeatSpan + 1)
		t.errs.Add(uint64(live - t.live))
		t.floor = max(t.floor, id-repeatSpan+1)
		if len(t.slots) == 0 {
			t.base = id
		}
		i = id - t.base
	}
	if n := int(i) + 1; n > len(t.slots) {
		t.slots = append(t.slots, make([]repeatTarget, n-len(t.slots))...)
		t.peak = max(t.peak, n)
	}
	return &t.slots[i]
}

// record notes what the record of entry id became. An entry may have
// several records (one whose check denied, one made again after a lost
// record): the last one's target counts, they are the same event.
func (t *repeatTable) record(id uint64, target repeatTarget) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.slot(id)
	if s == nil {
		t.errs.Add(1) // a record after its entry's marker
		return
	}
	if !s.set {
		t.live++
	}
	target.set = true
	*s = target
}

// count takes the final count of entry id: its target, or ok false when
// no record of it is pending (counted as an error: the record was never
// seen, or the entry already ended).
func (t *repeatTable) count(id uint64) (repeatTarget, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id < t.base || id-t.base >= uint64(len(t.slots)) || !t.slots[id-t.base].set {
		t.errs.Add(1)
		return repeatTarget{}, false
	}
	s := &t.slots[id-t.base]
	target := *s
	*s = repeatTarget{}
	t.live--
	return target, true
}

// finish ends every entry below below (a finish marker).
func (t *repeatTable) finish(below uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if below <= t.floor {
		return
	}
	t.floor = below
	t.dropBelow(below)
	// Shrink after a window that needed far less than the array holds.
	if c := cap(t.slots); c > 1024 && c > 4*t.peak {
		if len(t.slots) == 0 {
			t.slots = nil
		} else {
			t.slots = append(make([]repeatTarget, 0, 2*len(t.slots)), t.slots...)
		}
	}
	t.peak = len(t.slots)
}

// dropBelow forgets the slots of the ids below id, moving the rest to the
// front of the array.
func (t *repeatTable) dropBelow(id uint64) {
	if len(t.slots) == 0 || id <= t.base {
		return
	}
	n := min(id-t.base, uint64(len(t.slots)))
	for i := range n {
		if t.slots[i].set {
			t.live--
		}
	}
	left := copy(t.slots, t.slots[n:])
	clear(t.slots[left:])
	t.slots = t.slots[:left]
	t.base += n
}

// pending returns how many entries wait for their count or marker.
func (t *repeatTable) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}

// apply adds count repeats of target to n, its namespace, and says what
// it did (ok false: nothing to add).
func (target repeatTarget) apply(n *Namespace, count uint64) (r Repeats, ok bool) {
	if count == 0 || target.skip {
		return Repeats{}, false
	}
	r = Repeats{Type: target.rt.String(), Count: count, Unmodeled: target.unmodeled, Unlearned: target.unlearned}
	if target.unmodeled {
		n.unmodeled.Add(count)
		return r, true
	}
	if target.unlearned {
		n.number.Add(count)
		n.unlearned.Add(count)
		return r, true
	}
	r.Coefficient, _ = n.model.CoefficientOf(target.point)
	recorded, forensic := n.AddRepeatsRef(target.point, count)
	r.Forensic = forensic
	return r, recorded
}

// dispatchRepeats handles a *bpf.RepeatCount: a count or a finish
// marker.
func (d *Dispatcher) dispatchRepeats(r *bpf.RepeatCount) {
	if r.Finished() {
		// Ids are the capture's, not the namespace's: the marker ends
		// every entry below it, whatever namespace it names.
		d.repeats.finish(r.Below)
		return
	}
	n, ok := d.reg.Get(r.NS)
	if !ok {
		d.foreign.Add(1)
		return
	}
	// A count 0 ends an entry without repeats (Run sends markers
	// instead, but it is a valid end).
	target, ok := d.repeats.count(r.RepeatID)
	if !ok {
		return
	}
	if target.ns != r.NS && !target.skip {
		d.repeats.errs.Add(1) // not the namespace of its record
		return
	}
	if rep, ok := target.apply(n, r.Count); ok && d.OnRepeats != nil {
		d.OnRepeats(n, rep)
	}
}

// RepeatErrors counts the repeat counts and records that came out of the
// order Capture.Run keeps (a count with no record pending, a record after
// the finish marker of its id); their events are not in the model counts
// (a count's) or not in their entry (a record's, counted alone).
func (d *Dispatcher) RepeatErrors() uint64 { return d.repeats.errs.Load() }

// Skip tells the dispatcher that r is dropped before Dispatch (e.g. a
// record of the agent's own): its repeat count, if any, is dropped too
// instead of counted as an error.
func (d *Dispatcher) Skip(r bpf.Record) {
	if id := r.Head().RepeatID; id != 0 {
		d.repeats.record(id, repeatTarget{skip: true})
	}
}
