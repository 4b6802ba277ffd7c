package namespace

import (
	"sync"

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
	// type has no coefficient layout (counted, not modeled).
	Forensic, Unmodeled bool
}

// repeatTable maps the kernel's repeat cache entries (bpf.Header.RepeatID)
// to what their records became, so that the counts Capture.Run delivers
// later (*bpf.RepeatCount) land on the same coefficient. A count that
// arrives before its record (the reader lagged behind a cache rotation)
// waits for it.
type repeatTable struct {
	mu      sync.Mutex
	targets map[uint64]repeatTarget
	early   map[uint64]uint64 // counts of entries whose record is still to come
	// maxID is the largest RepeatID of a record seen: ids grow with
	// time, so an early count far below it waits for a record that was
	// dropped (its namespace unknown then) and is pruned.
	maxID uint64
}

// earlyKept bounds how far below the newest record's id an early count
// may wait, and earlyPrune how many early counts trigger a prune.
const (
	earlyKept  = 1 << 20
	earlyPrune = 4096
)

type repeatTarget struct {
	ns        *Namespace
	c         model.Coefficient
	rt        bpf.RecordType // its TSEM type, RecordType.String (kept small: one per cached record)
	unmodeled bool
}

// record notes what the record of entry id became; it returns the count
// that arrived before it, to add now.
func (t *repeatTable) record(id uint64, target repeatTarget) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxID = max(t.maxID, id)
	if n, ok := t.early[id]; ok {
		// The entry ended before its record was read: no more counts
		// will come for it.
		delete(t.early, id)
		return n
	}
	if t.targets == nil {
		t.targets = make(map[uint64]repeatTarget)
	}
	t.targets[id] = target
	return 0
}

// count takes the final count of entry id: its target, or ok false when
// its record was not read yet (the count is kept for it).
func (t *repeatTable) count(id, n uint64) (repeatTarget, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if target, ok := t.targets[id]; ok {
		delete(t.targets, id)
		return target, true
	}
	if t.early == nil {
		t.early = make(map[uint64]uint64)
	}
	t.early[id] += n
	if len(t.early) >= earlyPrune && t.maxID > earlyKept {
		for old := range t.early {
			if old < t.maxID-earlyKept {
				delete(t.early, old)
			}
		}
	}
	return repeatTarget{}, false
}

// apply adds n repeats to target and says what it did (ok false: nothing
// to add).
func (target repeatTarget) apply(n uint64) (r Repeats, ok bool) {
	if n == 0 || target.ns == nil {
		return Repeats{}, false
	}
	r = Repeats{Coefficient: target.c, Type: target.rt.String(), Count: n, Unmodeled: target.unmodeled}
	if target.unmodeled {
		target.ns.unmodeled.Add(n)
		return r, true
	}
	recorded, forensic := target.ns.AddRepeats(target.c, n)
	r.Forensic = forensic
	return r, recorded
}

// dispatchRepeats handles a *bpf.RepeatCount.
func (d *Dispatcher) dispatchRepeats(r *bpf.RepeatCount) {
	if _, ok := d.reg.Get(r.NS); !ok {
		d.foreign.Add(1)
		return
	}
	target, ok := d.repeats.count(r.RepeatID, r.Count)
	if !ok {
		return
	}
	if rep, ok := target.apply(r.Count); ok && d.OnRepeats != nil {
		d.OnRepeats(target.ns, rep)
	}
}
