package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vigil-tsem/vigil/events"
)

// Options configures a new Model.
type Options struct {
	// Hash is the namespace's digest algorithm (default SHA-256): the
	// coefficients, pseudonyms, measurement and state have its length.
	Hash Hash
	// Dialect is how the namespace's events map to coefficients (default
	// DialectTSEM, the kernel's); see Model.Coefficient.
	Dialect Dialect
	// Aggregate is the value the measurement and the state start from
	// (TSEM's hardware aggregate); zero when the platform has none. It
	// and Base are digests of Hash; a zero-length one is zero bytes.
	Aggregate Coefficient
	// Base is hashed in front of every coefficient before it is extended;
	// zero unless a relying party asked for a freshness value.
	Base Coefficient
	// Observer, if set, is told about every new unique coefficient.
	Observer Observer
	// Store, if set, keeps the points' first descriptions instead of the
	// model's memory (a Spool, for the agent); nil keeps them in memory.
	// The model owns it: Close closes it when it is an io.Closer. Use the
	// Read methods (ReadPoints, ReadForensics, ReadTrajectory) with a
	// store: they report a description that cannot be read back.
	Store DescriptionStore
}

// Observer is told about each new unique coefficient of a model exactly
// once, in arrival order: model points while learning and forensics points
// after the seal. Calls are serialised, so an Observer need not be safe for
// concurrent use; the measurement stage uses it to extend a register. The
// Point's Description is shared with the model and must not be modified;
// in a model with a Store it is the caller's buffer given to Add, valid
// only during the call.
type Observer interface {
	NewPoint(p Point) error
}

// Point is one unique coefficient of a model and what is known about it.
type Point struct {
	Coefficient Coefficient
	// Count is how many events mapped to the coefficient. Points loaded
	// from a model file start at zero: no event has been seen yet.
	Count uint64
	// Description is the TSEM JSON line of the coefficient's first event;
	// nil when the point was loaded from a model file without trajectory.
	Description []byte
	// Forensic is set for a coefficient that arrived after the model was
	// sealed and is not part of it.
	Forensic bool
}

// AddResult says what Add did with a coefficient.
type AddResult struct {
	// New is set when the coefficient had not been seen before: it became
	// a model point (learning) or a forensics point (sealed).
	New bool
	// Forensic is set when the coefficient is outside the sealed model,
	// whether new or repeated; the task that caused it is untrusted.
	Forensic bool
	// Ref names the point for AddRepeatsRef (zero: none).
	Ref PointRef
}

// PointRef names a point of one model compactly (4 bytes instead of a
// coefficient of up to 65): the zero PointRef names none. It is only
// meaningful to the model that returned it.
type PointRef uint32

// entry is a recorded coefficient. Everything but count is fixed once the
// entry is published in Model.index.
//
// An entry keeps the first 32 bytes of its coefficient (all of a SHA-256
// one): a SHA-256 model, the common case, costs what it did when every
// coefficient was 32 bytes. The rest of a SHA-384 or SHA-512 coefficient
// is in Model.tails.
type entry struct {
	head     [32]byte
	count    atomic.Uint64
	desc     []byte         // in memory: no store, or the store failed
	ref      DescriptionRef // where the store keeps it, when stored
	ref1     PointRef       // its place in Model.all, plus one
	stored   bool
	forensic bool
}

// Model is the model of one security modeling namespace: its points with
// counts and first descriptions, its forensics, pseudonyms, measurement and
// state. All methods are safe for concurrent use.
type Model struct {
	hash            Hash
	dialect         Dialect
	aggregate, base Coefficient // fixed at construction

	mu sync.RWMutex
	// index finds an entry by the first 32 bytes of its coefficient. In
	// a SHA-384 or SHA-512 model, tails holds the rest of each entry's
	// coefficient, and overflow the entries whose first 32 bytes equal
	// those of an earlier one (never seen in practice; kept for
	// correctness).
	index       map[[32]byte]*entry
	tails       map[*entry][32]byte
	overflow    map[Coefficient]*entry
	points      []*entry // model points, arrival order
	forensics   []*entry // forensics points, arrival order
	all         []*entry // both, arrival order: what the measurement covers
	measurement Coefficient
	sealed      bool
	pseudonyms  map[Coefficient]struct{}
	pseudoOrder []Coefficient
	npseudo     atomic.Int64 // len(pseudonyms), read without mu on the hot path

	stateMu sync.Mutex
	stateN  int // len(all) that state was computed for; -1 for none
	state   Coefficient

	// Observer calls happen outside mu, in the order in which entries were
	// appended to all: the Add that appended entry n waits until notified
	// is n-1.
	obsMu    sync.Mutex
	obsCond  sync.Cond
	notified int
	observer Observer

	store DescriptionStore // fixed at construction
}

// New returns an empty model that is learning.
func New(opts Options) *Model {
	if opts.Aggregate.Len() == 0 {
		opts.Aggregate = opts.Hash.Zero()
	}
	if opts.Base.Len() == 0 {
		opts.Base = opts.Hash.Zero()
	}
	m := &Model{
		hash:       opts.Hash,
		dialect:    opts.Dialect,
		aggregate:  opts.Aggregate,
		base:       opts.Base,
		index:      make(map[[32]byte]*entry),
		pseudonyms: make(map[Coefficient]struct{}),
		stateN:     -1,
		observer:   opts.Observer,
		store:      opts.Store,
	}
	m.obsCond.L = &m.obsMu
	m.measurement = initialValue(m.hash, m.aggregate, m.base)
	return m
}

// Add records an event whose coefficient is c and whose TSEM description
// is description (copied when kept). While learning, a new coefficient
// becomes a model point and is extended into the measurement. Once sealed,
// a coefficient outside the model is recorded as forensics (and extended
// into the measurement when new, as TSEM does). Repeats only count.
//
// A non-nil error comes from the Observer or the Store; the point is
// recorded anyway (a description the store refused is kept in memory).
func (m *Model) Add(c Coefficient, description []byte) (AddResult, error) {
	if c.Len() != m.hash.Size() {
		return AddResult{}, fmt.Errorf("add point %s to a %s model: %w", c, m.hash, ErrHashMismatch)
	}
	m.mu.RLock()
	e, ok := m.lookup(&c)
	if ok {
		e.count.Add(1)
		m.mu.RUnlock()
		return AddResult{Forensic: e.forensic, Ref: e.ref1}, nil
	}
	m.mu.RUnlock()

	m.mu.Lock()
	if e, ok := m.lookup(&c); ok { // added since the read lock was dropped
		e.count.Add(1)
		m.mu.Unlock()
		return AddResult{Forensic: e.forensic, Ref: e.ref1}, nil
	}
	var storeErr error
	if m.store != nil && len(description) > 0 {
		var ref DescriptionRef
		if ref, storeErr = m.store.Put(description); storeErr == nil {
			e = m.record(c, nil, m.sealed)
			e.ref, e.stored = ref, true
		} else {
			storeErr = fmt.Errorf("store description of point %s (kept in memory): %w", c, storeErr)
		}
	}
	if e == nil {
		e = m.record(c, bytes.Clone(description), m.sealed)
	}
	e.count.Store(1)
	seq := len(m.all)
	// The observer shares the kept description instead of a copy: one
	// allocation per new point, not two. With a store, it gets the
	// caller's (see Observer).
	p := Point{Coefficient: c, Count: 1, Description: e.desc, Forensic: e.forensic}
	if e.stored {
		p.Description = description
	}
	m.mu.Unlock()

	res := AddResult{New: true, Forensic: p.Forensic, Ref: e.ref1}
	if err := m.notify(seq, p); err != nil {
		return res, errors.Join(storeErr, err)
	}
	return res, storeErr
}

// record appends a new entry; m.mu must be held for writing. The caller
// sets the entry's ref before unlocking when the store keeps desc.
func (m *Model) record(c Coefficient, desc []byte, forensic bool) *entry {
	b := c.Bytes()
	e := &entry{head: [32]byte(b[:32]), desc: desc, forensic: forensic}
	if _, taken := m.index[e.head]; !taken {
		m.index[e.head] = e
	} else {
		if m.overflow == nil {
			m.overflow = make(map[Coefficient]*entry)
		}
		m.overflow[c] = e
	}
	if len(b) > 32 {
		if m.tails == nil {
			m.tails = make(map[*entry][32]byte)
		}
		m.tails[e] = tailOf(b)
	}
	if forensic {
		m.forensics = append(m.forensics, e)
	} else {
		m.points = append(m.points, e)
	}
	m.all = append(m.all, e)
	if len(m.all) <= math.MaxUint32 {
		e.ref1 = PointRef(len(m.all)) // index in all, plus one
	}
	m.measurement = extend(m.hash, &m.measurement, &m.base, &c)
	return e
}

// lookup finds the entry of c; m.mu must be held.
func (m *Model) lookup(c *Coefficient) (*entry, bool) {
	b := c.Bytes()
	if len(b) < 32 {
		return nil, false
	}
	e, ok := m.index[[32]byte(b[:32])]
	if !ok || len(b) == 32 {
		return e, ok
	}
	if m.tails[e] == tailOf(b) {
		return e, true
	}
	e, ok = m.overflow[*c]
	return e, ok
}

func tailOf(b []byte) (t [32]byte) {
	copy(t[:], b[32:])
	return t
}

// coefficientOf returns e's coefficient; m.mu must be held.
func (m *Model) coefficientOf(e *entry) Coefficient {
	if m.hash == SHA256 {
		return events.Digest32(e.head)
	}
	var b [events.MaxDigestSize]byte
	copy(b[:32], e.head[:])
	t := m.tails[e]
	copy(b[32:], t[:])
	c, _ := events.MakeDigest(b[:m.hash.Size()])
	return c
}

// coefficientsOf returns the coefficients of es; m.mu must be held.
func (m *Model) coefficientsOf(es []*entry) []Coefficient {
	cs := make([]Coefficient, len(es))
	for i, e := range es {
		cs[i] = m.coefficientOf(e)
	}
	return cs
}

// notify delivers entry number seq (1-based, in all) to the observer after
// every earlier entry was delivered.
func (m *Model) notify(seq int, p Point) (err error) {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	for m.notified != seq-1 {
		m.obsCond.Wait()
	}
	defer func() {
		m.notified = seq
		m.obsCond.Broadcast()
	}()
	if m.observer == nil {
		return nil
	}
	if err := m.observer.NewPoint(p); err != nil {
		return fmt.Errorf("observe point %s: %w", p.Coefficient, err)
	}
	return nil
}

// SetObserver replaces the observer. It waits until the previous observer
// was told about every coefficient recorded so far, then returns those
// coefficients (model and forensics points, arrival order): the new
// observer is told only about later ones. After Load this is how the
// measurement stage learns the loaded points without missing or repeating
// any. In a model with a Store, a description that cannot be read back is
// nil; set the observer before the first Add (as the agent does) or check
// ReadPoints.
func (m *Model) SetObserver(o Observer) []Point {
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	for {
		m.mu.RLock()
		if len(m.all) == m.notified {
			break
		}
		m.mu.RUnlock()
		m.obsCond.Wait()
	}
	m.observer = o
	all := slices.Clone(m.all)
	cs := m.coefficientsOf(all)
	m.mu.RUnlock()
	ps, _ := m.readPoints(all, cs)
	return ps
}

// Seal freezes the model: from now on coefficients outside it are
// forensics. Sealing a sealed model does nothing.
func (m *Model) Seal() {
	m.mu.Lock()
	m.sealed = true
	m.mu.Unlock()
}

// Sealed reports whether the model is sealed.
func (m *Model) Sealed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sealed
}

// Contains reports whether c is a point of the model (not a forensics
// point).
func (m *Model) Contains(c Coefficient) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.lookup(&c)
	return ok && !e.forensic
}

// AddRepeats counts n more occurrences of c, which must already be
// recorded (a point or forensics point): repeats that the kernel counted
// instead of reporting one by one. It reports whether c was recorded
// (nothing is counted otherwise) and whether it is a forensics point.
func (m *Model) AddRepeats(c Coefficient, n uint64) (recorded, forensic bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.lookup(&c)
	if !ok {
		return false, false
	}
	e.count.Add(n)
	return true, e.forensic
}

// AddRepeatsRef is AddRepeats for the point ref names (from an AddResult
// of this model): no coefficient to keep or look up.
func (m *Model) AddRepeatsRef(ref PointRef, n uint64) (recorded, forensic bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if ref == 0 || int(ref) > len(m.all) {
		return false, false
	}
	e := m.all[ref-1]
	e.count.Add(n)
	return true, e.forensic
}

// CoefficientOf returns the coefficient of the point ref names (false
// when it names none).
func (m *Model) CoefficientOf(ref PointRef) (Coefficient, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if ref == 0 || int(ref) > len(m.all) {
		return Coefficient{}, false
	}
	return m.coefficientOf(m.all[ref-1]), true
}

// Len returns the number of model points.
func (m *Model) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.points)
}

// NumForensics returns the number of forensics points.
func (m *Model) NumForensics() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.forensics)
}

// Points returns copies of the model points in arrival order. In a model
// with a Store, a description that cannot be read back is left nil: use
// ReadPoints there.
func (m *Model) Points() []Point {
	ps, _ := m.ReadPoints()
	return ps
}

// Forensics returns copies of the forensics points in arrival order. In a
// model with a Store, use ReadForensics (see Points).
func (m *Model) Forensics() []Point {
	ps, _ := m.ReadForensics()
	return ps
}

// ReadPoints is Points reporting descriptions the Store cannot read back:
// every point is returned, and the error joins one error per such point
// (whose Description is nil).
func (m *Model) ReadPoints() ([]Point, error) {
	m.mu.RLock()
	es := slices.Clone(m.points)
	cs := m.coefficientsOf(es)
	m.mu.RUnlock()
	return m.readPoints(es, cs)
}

// ReadForensics is Forensics reporting descriptions the Store cannot read
// back, as ReadPoints does.
func (m *Model) ReadForensics() ([]Point, error) {
	m.mu.RLock()
	es := slices.Clone(m.forensics)
	cs := m.coefficientsOf(es)
	m.mu.RUnlock()
	return m.readPoints(es, cs)
}

// readPoints copies es, which were published (so all but count are fixed
// and may be read without m.mu), reading descriptions from the store; cs
// are their coefficients.
func (m *Model) readPoints(es []*entry, cs []Coefficient) ([]Point, error) {
	out := make([]Point, len(es))
	var errs []error
	for i, e := range es {
		d, err := m.description(e, cs[i])
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = Point{Coefficient: cs[i], Count: e.count.Load(), Description: d, Forensic: e.forensic}
	}
	return out, errors.Join(errs...)
}

// description returns a copy of e's description; e is published and c is
// its coefficient.
func (m *Model) description(e *entry, c Coefficient) ([]byte, error) {
	if !e.stored {
		return bytes.Clone(e.desc), nil
	}
	d, err := m.store.Get(e.ref)
	if err != nil {
		return nil, fmt.Errorf("description of point %s: %w", c, err)
	}
	return d, nil
}

// Trajectory returns the first description of each model point, in the
// order of Points; an entry is nil where the description is unknown (a
// point loaded from a model file without trajectory). In a model with a
// Store, use ReadTrajectory (see Points).
func (m *Model) Trajectory() [][]byte {
	tr, _ := m.ReadTrajectory()
	return tr
}

// ReadTrajectory is Trajectory reporting descriptions the Store cannot
// read back, as ReadPoints does.
func (m *Model) ReadTrajectory() ([][]byte, error) {
	m.mu.RLock()
	es := slices.Clone(m.points)
	cs := m.coefficientsOf(es)
	m.mu.RUnlock()
	out := make([][]byte, len(es))
	var errs []error
	for i, e := range es {
		d, err := m.description(e, cs[i])
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = d
	}
	return out, errors.Join(errs...)
}

// Close releases the model's Store when it is an io.Closer; later reads of
// stored descriptions fail. A model without one needs no Close.
func (m *Model) Close() error {
	if c, ok := m.store.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Measurement returns the time-ordered measurement: the aggregate and every
// unique coefficient (model points and forensics) in arrival order,
// extended into a zero register.
func (m *Model) Measurement() Coefficient {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.measurement
}

// State returns the order-independent state: like the measurement, over
// the same coefficients sorted bytewise. It is computed on demand and
// cached until the next new coefficient.
func (m *Model) State() Coefficient {
	m.mu.RLock()
	n := len(m.all)
	m.stateMu.Lock()
	if m.stateN == n {
		s := m.state
		m.stateMu.Unlock()
		m.mu.RUnlock()
		return s
	}
	m.stateMu.Unlock()
	cs := m.coefficientsOf(m.all)
	m.mu.RUnlock()

	s := StateOfHash(m.hash, m.aggregate, m.base, cs)
	m.stateMu.Lock()
	if n > m.stateN {
		m.stateN, m.state = n, s
	}
	m.stateMu.Unlock()
	return s
}

// Hash returns the model's digest algorithm.
func (m *Model) Hash() Hash { return m.hash }

// Dialect returns how the model's events map to coefficients.
func (m *Model) Dialect() Dialect { return m.dialect }

// Mapping returns how events map to the model's coefficients: its hash,
// dialect and pseudonyms.
func (m *Model) Mapping() Mapping {
	return Mapping{Hash: m.hash, Dialect: m.dialect, IsPseudonym: m.IsPseudonym}
}

// Coefficient returns the coefficient of e in the model's hash and
// dialect, a file with a pseudonym of the model hashed with H("").
func (m *Model) Coefficient(e *events.Event) (Coefficient, error) {
	return m.Mapping().Coefficient(e)
}

// Aggregate returns the model's aggregate.
func (m *Model) Aggregate() Coefficient { return m.aggregate }

// Base returns the model's base.
func (m *Model) Base() Coefficient { return m.base }

// AddPseudonym adds a pseudonym (see PseudonymOfHash, with the model's
// hash) to the model.
func (m *Model) AddPseudonym(p Coefficient) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.pseudonyms[p]; ok {
		return
	}
	m.pseudonyms[p] = struct{}{}
	m.pseudoOrder = append(m.pseudoOrder, p)
	m.npseudo.Store(int64(len(m.pseudoOrder)))
}

// IsPseudonym reports whether the file at pathname has a pseudonym in the
// model. It costs nothing while the model has no pseudonyms.
func (m *Model) IsPseudonym(pathname string) bool {
	if m.npseudo.Load() == 0 {
		return false
	}
	p := PseudonymOfHash(m.hash, pathname)
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.pseudonyms[p]
	return ok
}

// Pseudonyms returns the model's pseudonyms in the order they were added.
func (m *Model) Pseudonyms() []Coefficient {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]Coefficient(nil), m.pseudoOrder...)
}
