package namespace

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// Errors of the registry.
var (
	// ErrExists: a namespace of that name exists already.
	ErrExists = errors.New("modeling namespace exists")
	// ErrNotFound: no namespace of that id or name.
	ErrNotFound = errors.New("no such modeling namespace")
	// ErrMode: the transition is not possible from the namespace's mode.
	ErrMode = errors.New("not possible in this mode")
	// ErrDialect: a model whose coefficients were computed in another
	// dialect than the namespace's.
	ErrDialect = errors.New("coefficient dialects differ")
)

// Origin says what created a namespace.
type Origin string

// The origins of namespaces.
const (
	OriginRun       Origin = "run"
	OriginContainer Origin = "container"
	OriginHost      Origin = "host"
)

// Mode is where a namespace's model is in its life.
type Mode uint32

// The modes, in the only order a namespace goes through them.
const (
	Learning Mode = iota
	Sealed
	Enforcing
)

func (m Mode) String() string {
	switch m {
	case Learning:
		return "learning"
	case Sealed:
		return "sealed"
	case Enforcing:
		return "enforcing"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// Namespace is one security modeling namespace: an id (the TSEM context),
// a name, the model its events map into, and counters. Its methods are safe
// for concurrent use.
type Namespace struct {
	id      uint64
	name    string
	origin  Origin
	created time.Time
	// ktime is the kernel clock (ns since boot) at creation: TSEM's ts
	// counts from the namespace's start.
	ktime uint64
	model *model.Model

	number atomic.Uint64
	mode   atomic.Uint32

	events, forensicEvents, unmodeled, unlearned, lost atomic.Uint64

	mu             sync.Mutex
	untrusted      map[uint64]struct{} // TTDs that caused forensics
	gaps           []Gap
	unmodeledTypes map[string]uint64
}

// Gap records that the kernel lost records of a namespace.
type Gap struct {
	Time   time.Time
	Lost   uint64
	Reason string
}

// ID is the namespace id, printed as event.context.
func (n *Namespace) ID() uint64 { return n.id }

// Name is the namespace's name.
func (n *Namespace) Name() string { return n.name }

// Origin says what created the namespace.
func (n *Namespace) Origin() Origin { return n.origin }

// Created is when the namespace was created.
func (n *Namespace) Created() time.Time { return n.created }

// Model is the namespace's model.
func (n *Namespace) Model() *model.Model { return n.model }

// Hash is the namespace's digest algorithm (its model's): coefficients,
// task ids, file digests, state and measurement are computed with it.
func (n *Namespace) Hash() model.Hash { return n.model.Hash() }

// Dialect is how the namespace's events map to coefficients and task ids
// (its model's).
func (n *Namespace) Dialect() model.Dialect { return n.model.Dialect() }

// Mode returns the namespace's mode.
func (n *Namespace) Mode() Mode { return Mode(n.mode.Load()) }

// Seal freezes the model: later events outside it are forensics.
func (n *Namespace) Seal() error {
	if !n.mode.CompareAndSwap(uint32(Learning), uint32(Sealed)) {
		return fmt.Errorf("seal namespace %q: %s: %w", n.name, n.Mode(), ErrMode)
	}
	n.model.Seal()
	return nil
}

// Enforce makes a sealed (or learning, which it seals) namespace enforce.
func (n *Namespace) Enforce() error {
	if n.Mode() == Learning {
		if err := n.Seal(); err != nil && !errors.Is(err, ErrMode) {
			return err
		}
	}
	if !n.mode.CompareAndSwap(uint32(Sealed), uint32(Enforcing)) {
		return fmt.Errorf("enforce namespace %q: %s: %w", n.name, n.Mode(), ErrMode)
	}
	return nil
}

// Result is what adding one event to a namespace did.
type Result struct {
	model.AddResult
	Coefficient model.Coefficient
	// Unmodeled is set for an event whose type has no coefficient layout;
	// it is counted but not part of the model.
	Unmodeled bool
	// Unlearned is set for an event a learning namespace did not learn:
	// a file of it has the unhashable digest (events.Hash.Unhashable),
	// so nothing vouches for its content. It is counted (Stats.Unlearned)
	// but is no model point; once sealed, the same event is forensics.
	Unlearned bool
}

// Add numbers e in the namespace (event.context, event.number, ts from the
// namespace's start), maps it to its coefficient and adds it to the model
// with its TSEM description. An event outside a sealed model marks its TTD
// untrusted. A file whose pathname is a pseudonym of the model gets the
// zero digest, H(""), as in TSEM. An event with an unhashable file (its
// content could not be read as the event saw it) is never learned: while learning it is only
// counted (Result.Unlearned); once sealed it is outside the model, as no
// model Vigil builds holds it. The error, if any, comes from the model's
// observer (the measurement); the event is recorded anyway.
func (n *Namespace) Add(e *events.Event) (Result, error) {
	e.Header.Context = n.id
	e.Header.Number = n.number.Add(1)
	if e.Header.TS >= n.ktime {
		e.Header.TS -= n.ktime
	}
	if f := e.File(); f != nil && n.model.IsPseudonym(f.Path.Pathname) {
		// As TSEM describes a pseudonym's file: with the zero digest,
		// its content not read. The content is not modeled, so a
		// file that could not be hashed (the runtime's per-instance
		// file, removed with the container) holds as well.
		f.Digest = n.model.Hash().Empty()
	}
	c, err := n.model.Coefficient(e)
	if err != nil {
		n.unmodeled.Add(1)
		n.mu.Lock()
		n.unmodeledTypes[e.Header.Type]++
		n.mu.Unlock()
		return Result{Unmodeled: true}, nil
	}
	if e.HasUnhashableFile() && !n.model.Sealed() {
		n.unlearned.Add(1)
		return Result{Unlearned: true, Coefficient: c}, nil
	}
	var res model.AddResult
	if n.model.Contains(c) {
		// A repeat of a model point only counts: the model keeps the
		// description of the first event, so skip writing this one
		// (half the cost of a repeated event).
		res, err = n.model.Add(c, nil)
	} else {
		bp := descPool.Get().(*[]byte)
		desc := e.AppendTSEM((*bp)[:0])
		res, err = n.model.Add(c, desc)
		*bp = desc
		descPool.Put(bp)
	}
	n.events.Add(1)
	if res.Forensic {
		n.forensicEvents.Add(1)
		n.mu.Lock()
		n.untrusted[e.Header.TTD] = struct{}{}
		n.mu.Unlock()
	}
	return Result{AddResult: res, Coefficient: c}, err
}

var descPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Untrusted reports whether tasks of ttd caused an event outside the
// sealed model.
func (n *Namespace) Untrusted(ttd uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.untrusted[ttd]
	return ok
}

// RecordGap notes that lost records of this namespace never arrived.
func (n *Namespace) RecordGap(lost uint64, reason string) {
	if lost == 0 {
		return
	}
	n.lost.Add(lost)
	n.mu.Lock()
	n.gaps = append(n.gaps, Gap{Time: time.Now(), Lost: lost, Reason: reason})
	n.mu.Unlock()
}

// Gaps returns the gaps recorded so far.
func (n *Namespace) Gaps() []Gap {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Gap(nil), n.gaps...)
}

// Stats are a namespace's counters.
type Stats struct {
	// Events counts the events mapped into the model (points and
	// forensics, repeats included); ForensicEvents those outside the
	// sealed model.
	Events, ForensicEvents uint64
	// Unmodeled counts events whose type has no coefficient layout, by
	// type in UnmodeledTypes.
	Unmodeled      uint64
	UnmodeledTypes map[string]uint64
	// Unlearned counts events not learned because a file of theirs had
	// the unhashable digest (Result.Unlearned).
	Unlearned uint64
	// Lost counts records the kernel could not deliver.
	Lost uint64
	// UntrustedTasks counts the trust domains marked untrusted.
	UntrustedTasks int
}

// Stats returns the namespace's counters.
func (n *Namespace) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	types := make(map[string]uint64, len(n.unmodeledTypes))
	for k, v := range n.unmodeledTypes {
		types[k] = v
	}
	return Stats{
		Events: n.events.Load(), ForensicEvents: n.forensicEvents.Load(),
		Unmodeled: n.unmodeled.Load(), UnmodeledTypes: types, Unlearned: n.unlearned.Load(),
		Lost: n.lost.Load(), UntrustedTasks: len(n.untrusted),
	}
}

// Options configures a new namespace.
type Options struct {
	// Name names the namespace; empty gives "run-<id>" (OriginRun),
	// "ns-<id>" otherwise.
	Name   string
	Origin Origin
	// Model is the model to start from (for example one loaded from a
	// file and sealed); nil starts an empty learning model of Hash.
	Model *model.Model
	// Hash is the namespace's digest algorithm (default SHA-256); a Model
	// given must have it.
	Hash model.Hash
	// Dialect is how the namespace's events map to coefficients (default
	// model.DialectTSEM); a Model given must have it.
	Dialect model.Dialect
	// KTime is the kernel clock (bpf_ktime_get_ns, CLOCK_MONOTONIC) at
	// creation; events' ts count from it.
	KTime uint64
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// FirstID is the id of the first namespace created, default 1 (0 is
	// the host). Ids are never reused.
	FirstID uint64
	// Now returns the wall clock; default time.Now.
	Now func() time.Time
}

// Registry holds the modeling namespaces of a capture and the task table
// they share (TTDs are unique across namespaces). It is safe for concurrent
// use.
type Registry struct {
	tasks *Tasks
	now   func() time.Time

	mu     sync.RWMutex
	next   uint64
	byID   map[uint64]*Namespace
	byName map[string]*Namespace
}

// NewRegistry returns an empty registry.
func NewRegistry(opts RegistryOptions) *Registry {
	if opts.FirstID == 0 {
		opts.FirstID = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Registry{
		tasks: NewTasks(0), now: opts.Now, next: opts.FirstID,
		byID: make(map[uint64]*Namespace), byName: make(map[string]*Namespace),
	}
}

// Tasks returns the task table.
func (r *Registry) Tasks() *Tasks { return r.tasks }

// hashOf returns the hash of namespace id (SHA-256 when it is unknown).
func (r *Registry) hashOf(id uint64) events.Hash {
	if n, ok := r.Get(id); ok {
		return n.Hash()
	}
	return events.SHA256
}

// isPseudonym reports whether pathname is a pseudonym of namespace id's
// model.
func (r *Registry) isPseudonym(id uint64, pathname string) bool {
	n, ok := r.Get(id)
	return ok && n.model.IsPseudonym(pathname)
}

// Create makes a new namespace with the next id; a namespace of
// OriginHost is namespace 0, the host, which the registry holds at most
// once.
func (r *Registry) Create(opts Options) (*Namespace, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.next
	if opts.Origin == OriginHost {
		id = 0
		if _, ok := r.byID[0]; ok {
			return nil, fmt.Errorf("create the host namespace: %w", ErrExists)
		}
	}
	name := opts.Name
	if name == "" {
		prefix := "ns-"
		if opts.Origin == OriginRun {
			prefix = "run-"
		}
		name = fmt.Sprintf("%s%d", prefix, id)
	}
	if _, ok := r.byName[name]; ok {
		return nil, fmt.Errorf("create namespace %q: %w", name, ErrExists)
	}
	m := opts.Model
	if m == nil {
		m = model.New(model.Options{Hash: opts.Hash, Dialect: opts.Dialect})
	}
	if m.Hash() != opts.Hash {
		return nil, fmt.Errorf("create namespace %q: a %s model for a %s namespace: %w", name, m.Hash(), opts.Hash, model.ErrHashMismatch)
	}
	if m.Dialect() != opts.Dialect {
		return nil, fmt.Errorf("create namespace %q: a model of the %s dialect for a namespace of the %s dialect: %w", name, m.Dialect(), opts.Dialect, ErrDialect)
	}
	n := &Namespace{
		id: id, name: name, origin: opts.Origin, created: r.now(), ktime: opts.KTime, model: m,
		untrusted: make(map[uint64]struct{}), unmodeledTypes: make(map[string]uint64),
	}
	if m.Sealed() {
		n.mode.Store(uint32(Sealed))
	}
	if id != 0 {
		r.next++
	}
	r.byID[id] = n
	r.byName[name] = n
	return n, nil
}

// Get returns the namespace of an id.
func (r *Registry) Get(id uint64) (*Namespace, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.byID[id]
	return n, ok
}

// Lookup returns the namespace of a name.
func (r *Registry) Lookup(name string) (*Namespace, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.byName[name]
	return n, ok
}

// Remove forgets a namespace; its id is not reused.
func (r *Registry) Remove(id uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.byID[id]
	if !ok {
		return fmt.Errorf("remove namespace %d: %w", id, ErrNotFound)
	}
	delete(r.byID, id)
	delete(r.byName, n.name)
	return nil
}

// List returns the namespaces ordered by id.
func (r *Registry) List() []*Namespace {
	r.mu.RLock()
	list := make([]*Namespace, 0, len(r.byID))
	for _, n := range r.byID {
		list = append(list, n)
	}
	r.mu.RUnlock()
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	return list
}
