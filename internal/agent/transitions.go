package agent

import (
	"errors"
	"fmt"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// The transitions of a namespace, in one place for every origin
// (container, host, run through an agent, standalone run). Each goes
// through the namespace (userspace model), the measured log and the
// kernel in a fixed order, under the namespace's nsState.mu so that two
// requests cannot interleave; the package documentation says which order
// and why.

// create makes a namespace and everything the agent keeps for it; its hash
// is settings.HashAlgorithm, its dialect settings.Dialect unless
// opts.Model (loaded from a file) says another, and a learning model gets
// pseudonyms for settings.Pseudonyms. A container's namespace has the
// container, its cgroup and its held file system (may be nil), which the
// namespace owns from then on.
func (t *table) create(opts namespace.Options, c *namespace.Container, cgroupDir string, fs *namespace.ContainerFS, settings control.Settings) (*nsState, error) {
	h, err := model.ParseHash(settings.HashAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("start namespace %s: settings.hash_algorithm: %w", opts.Name, err)
	}
	d := model.DialectInvariant // the default of live namespaces
	if settings.Dialect != "" {
		if d, err = model.ParseDialect(settings.Dialect); err != nil {
			return nil, fmt.Errorf("start namespace %s: settings.dialect: %w", opts.Name, err)
		}
	}
	if opts.Model != nil {
		// The model's coefficients were computed in its dialect.
		d = opts.Model.Dialect()
	}
	opts.Hash, opts.Dialect = h, d
	settings.HashAlgorithm, settings.Dialect = h.String(), d.String()
	releaseModel, err := t.withModel(&opts) // descriptions.go
	if err != nil {
		return nil, err
	}
	n, err := t.reg.Create(opts)
	if err != nil {
		releaseModel()
		return nil, err
	}
	st := &nsState{ns: n, container: c, cgroupDir: cgroupDir, settings: settings}
	st.fs.Store(fs)
	if !n.Model().Sealed() {
		st.addPseudonyms(settings.Pseudonyms)
	}
	fail := func(err error) (*nsState, error) {
		t.reg.Remove(n.ID())
		if derr := t.kern.DropNamespace(n.ID()); derr != nil {
			t.log.Warn("drop namespace from the kernel", "namespace", n.Name(), "err", derr)
		}
		releaseModel()
		return nil, fmt.Errorf("start namespace %s: %w", n.Name(), err)
	}
	m := n.Model()
	if t.mlog != nil {
		// A log that cannot be written holds the records (or counts
		// the points in a gap record): the namespace starts anyway.
		logNS, err := t.mlog.Namespace(n.ID(), n.Name(), m.Aggregate(), m.Base())
		if logFailed(err) {
			return fail(err)
		}
		st.logNS = logNS
		for _, p := range m.SetObserver(logNS) {
			if err := logNS.NewPoint(p); logFailed(err) {
				return fail(err)
			}
		}
		if m.Sealed() {
			if err := logNS.Sealed(); logFailed(err) {
				return fail(err)
			}
		}
	}
	mode := bpf.ModeLearn
	if m.Sealed() {
		mode = bpf.ModeSeal
	}
	// Model: namespace 0, the host, takes every task outside the other
	// namespaces at its first event (host.go).
	if err := t.kern.SetNamespace(n.ID(), bpf.NamespaceConfig{Mode: mode, Model: n.ID() == 0, NoCapable: !settings.Capable, FailClosed: settings.FailClosed, NoRepeatCache: !settings.RepeatCache}); err != nil {
		return fail(err)
	}
	t.watchCgroup(st)
	t.mu.Lock()
	t.byID[n.ID()] = st
	count := len(t.byID)
	t.mu.Unlock()
	t.met.SetNamespaces(count)
	t.met.SetPoints(n.Name(), m.Len())
	if m.Sealed() && settings.Enforce && t.kern.CanEnforce() {
		if err := t.enforce(st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// remove forgets a namespace: registry, kernel configuration, metrics.
// Records of it still in flight are dropped as foreign, so callers wait
// for the reader to catch up first.
func (t *table) remove(st *nsState) {
	id := st.ns.ID()
	t.mu.Lock()
	delete(t.byID, id)
	count := len(t.byID)
	t.mu.Unlock()
	t.reg.Remove(id)
	t.unwatchCgroup(st)
	if err := t.kern.DropNamespace(id); err != nil {
		t.log.Warn("drop namespace from the kernel", "namespace", st.ns.Name(), "err", err)
	}
	t.met.RemoveNamespace(st.ns.Name())
	t.met.SetNamespaces(count)
	t.closeModel(st.ns)
	st.fs.Swap(nil).Close()
	st.logStop.mu.Lock()
	if st.logStop.stopped.Swap(false) {
		t.stopped.Add(-1)
	}
	st.logStop.mu.Unlock()
}

// seal seals st's namespace: the model, the log, the kernel mode, and the
// kernel allow set when the backend can enforce (so enforcing later, or
// now when the settings say so, needs nothing more).
func (t *table) seal(st *nsState) error {
	st.mu.Lock()
	err := t.sealLocked(st)
	st.mu.Unlock()
	if err != nil {
		return err
	}
	if st.settings.Enforce && t.kern.CanEnforce() {
		return t.enforce(st)
	}
	return nil
}

func (t *table) sealLocked(st *nsState) error {
	n := st.ns
	if err := n.Seal(); err != nil {
		return conflict(err)
	}
	if st.logNS != nil {
		if err := st.logNS.Sealed(); logFailed(err) {
			return fmt.Errorf("seal namespace %s: log: %w", n.Name(), err)
		}
	}
	if t.kern.CanEnforce() {
		if err := t.pushAllowLocked(st); err != nil {
			return err
		}
	}
	if err := t.kern.SetMode(n.ID(), bpf.ModeSeal); err != nil {
		return fmt.Errorf("seal namespace %s: %w", n.Name(), err)
	}
	t.met.SetPoints(n.Name(), n.Model().Len())
	return nil
}

// pushAllowLocked gives the kernel the allow set of st's sealed model.
func (t *table) pushAllowLocked(st *nsState) error {
	if st.allowPushed {
		return nil
	}
	trajectory, err := st.ns.Model().ReadTrajectory()
	if err != nil {
		return fmt.Errorf("push allow set of namespace %s: %w", st.ns.Name(), err)
	}
	keys, skipped := events.KernelKeys(trajectory)
	if skipped > 0 {
		t.log.Warn("model points without a kernel allow key: the kernel will deny those events when enforcing",
			"namespace", st.ns.Name(), "points", skipped)
	}
	if err := t.kern.Allow(st.ns.ID(), keys...); err != nil {
		return fmt.Errorf("push allow set of namespace %s: %w", st.ns.Name(), err)
	}
	st.allowPushed = true
	return nil
}

// enforce makes st's namespace enforce (sealing it first if needed).
func (t *table) enforce(st *nsState) error {
	n := st.ns
	if n.ID() == 0 && !t.hostEnforce {
		return fmt.Errorf("enforce namespace %s: %w", n.Name(), errHostEnforce)
	}
	if !t.kern.CanEnforce() {
		return fmt.Errorf("enforce namespace %s: %w: %w", n.Name(), bpf.ErrObserveOnly, control.ErrConflict)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	switch n.Mode() {
	case namespace.Enforcing:
		return fmt.Errorf("enforce namespace %s: enforcing already: %w", n.Name(), control.ErrConflict)
	case namespace.Learning:
		if err := t.sealLocked(st); err != nil {
			return err
		}
	}
	if err := t.pushAllowLocked(st); err != nil {
		return err
	}
	if err := n.Enforce(); err != nil {
		return conflict(err)
	}
	if err := t.kern.SetMode(n.ID(), bpf.ModeEnforce); err != nil {
		return fmt.Errorf("enforce namespace %s: %w", n.Name(), err)
	}
	if st.logNS != nil {
		if err := st.logNS.Enforcing(); logFailed(err) {
			return fmt.Errorf("enforce namespace %s: log: %w", n.Name(), err)
		}
	}
	return nil
}

// conflict marks a namespace mode error as the control API's conflict.
func conflict(err error) error {
	if errors.Is(err, namespace.ErrMode) {
		return fmt.Errorf("%w: %w", err, control.ErrConflict)
	}
	return err
}

// load joins the points (and pseudonyms) of loaded to st's learning
// model, measured like learned points, then seals the namespace.
func (t *table) load(st *nsState, loaded *model.Model) error {
	name := st.ns.Name()
	st.mu.Lock()
	if st.ns.Mode() != namespace.Learning {
		st.mu.Unlock()
		return fmt.Errorf("load model into namespace %s: %s: %w", name, st.ns.Mode(), control.ErrConflict)
	}
	m := st.ns.Model()
	for _, p := range loaded.Pseudonyms() {
		m.AddPseudonym(p)
	}
	var obsErr error
	for _, p := range loaded.Points() {
		if _, err := m.Add(p.Coefficient, p.Description); logFailed(err) && obsErr == nil {
			obsErr = err
		}
	}
	st.mu.Unlock()
	if obsErr != nil {
		return fmt.Errorf("load model into namespace %s: log: %w", name, obsErr)
	}
	return t.seal(st)
}
