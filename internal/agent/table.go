package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// kernel is what the agent asks of the capture programs about namespaces
// and tasks; *bpf.Capture implements it, tests use a fake.
type kernel interface {
	CanEnforce() bool
	SetNamespace(ns uint64, cfg bpf.NamespaceConfig) error
	SetMode(ns uint64, m bpf.Mode) error
	Allow(ns uint64, keys ...uint64) error
	DropNamespace(ns uint64) error
	Enroll(pid int, ns uint64) error
	EnrollDormant(pid int, ns uint64) error
	WatchCgroup(cgroupID, ns uint64) error
	UnwatchCgroup(cgroupID uint64) error
	TaskState(pid int) (ns, ttd, pttd uint64, untrusted, ok bool, err error)
	MarkUntrusted(pid int) error
}

var _ kernel = (*bpf.Capture)(nil)

// nsState is the agent's view of one modeling namespace: the namespace, its
// part of the measured log, the container it models and its settings.
type nsState struct {
	ns        *namespace.Namespace
	logNS     *measure.Namespace // nil without a measured log
	container *namespace.Container
	cgroupDir string // absolute path of the container's cgroup
	cgroupID  uint64 // its id, watched in the kernel (0: none)
	settings  control.Settings
	// fs is the container's file system held open from the host, through
	// which its files are hashed (containerfs.go); nil when none.
	fs atomic.Pointer[namespace.ContainerFS]

	denials atomic.Uint64
	tasks   atomic.Int64 // member processes found in the cgroup at the last enrolment pass

	// pseudoMu guards pseudonyms, the pathnames the namespace was given
	// pseudonyms for (settings.Pseudonyms as info reports it).
	pseudoMu   sync.Mutex
	pseudonyms []string

	// mu serialises mode transitions, so that the log, the kernel and the
	// namespace go through them in the same order.
	mu          sync.Mutex
	allowPushed bool
	modelErr    atomic.Pointer[error] // the first error adding a new point, other than the log being unwritable

	logStop logStop // modeling stopped while the log cannot be written (logfull.go)
}

// table holds the agent's namespaces and implements control.Backend.
type table struct {
	reg      *namespace.Registry
	kern     kernel
	mlog     *measure.Log // nil: no measured log
	regName  string       // the register's kind, for the control API
	met      *metrics.Metrics
	defaults control.Settings
	modelDir string
	log      *slog.Logger

	ktime func() uint64

	// images finds containers' images (nil: not looked up); with
	// keyByImage a container's model is <model_dir>/<image>.model first
	// (image.go). hostEnforce lets the host namespace enforce (host.go).
	images      *namespace.ImageResolver
	keyByImage  bool
	hostEnforce bool
	// containerPseudonyms are the pathnames a new learning container
	// namespace gets pseudonyms for (config container_pseudonyms).
	containerPseudonyms []string
	// learner learns the model of an image without one from its first
	// instances (learn.go); nil when off.
	learner *imageLearner

	// logFull is what a namespace does when the log cannot be written
	// (logfull.go); stopped counts the namespaces stopped for it, so the
	// reader looks only when there are some. logFailing is the poller's.
	logFull    string
	stopped    atomic.Int64
	logFailing bool

	mu   sync.RWMutex
	byID map[uint64]*nsState

	runs runs // namespaces of `vigil run` (runns.go)
}

var _ control.PseudonymBackend = (*table)(nil)

func newTable(reg *namespace.Registry, kern kernel, mlog *measure.Log, met *metrics.Metrics, defaults control.Settings, modelDir string, log *slog.Logger) *table {
	t := &table{
		reg: reg, kern: kern, mlog: mlog, met: met, defaults: defaults, modelDir: modelDir, log: log,
		ktime: monotonicNow, byID: make(map[uint64]*nsState),
	}
	if mlog != nil {
		t.regName = mlog.Register().Name()
	}
	return t
}

// get returns the state of namespace id.
func (t *table) get(id uint64) (*nsState, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st, ok := t.byID[id]
	return st, ok
}

// lookup returns the state of a namespace by name, or an error wrapping
// control.ErrNotFound.
func (t *table) lookup(name string) (*nsState, error) {
	n, ok := t.reg.Lookup(name)
	if ok {
		if st, ok := t.get(n.ID()); ok {
			return st, nil
		}
	}
	return nil, fmt.Errorf("namespace %q: %w", name, control.ErrNotFound)
}

// modelFile is where a sealed model for a container namespace is kept:
// a container that appears with a model file of its namespace's name
// starts sealed to it.
func (t *table) modelFile(name string) string {
	if t.modelDir == "" {
		return ""
	}
	return filepath.Join(t.modelDir, name+".model")
}

// startContainer creates the namespace of a container whose cgroup is at
// cgroupDir, configures it in the kernel and in the log. The namespace
// starts sealed (and enforcing, when so configured and possible) when the
// model directory holds a model for it: of its image (model_key image,
// see containerModelFiles) or of its name.
func (t *table) startContainer(c namespace.Container, cgroupDir string) (*nsState, error) {
	name := c.NamespaceName()
	settings := t.defaults
	// A container learning from nothing gets pseudonyms for the files
	// its runtime writes; a model file has the pseudonyms it was
	// learned with.
	settings.Pseudonyms = t.containerPseudonyms
	c.Image = t.containerImage(c)
	var m *model.Model
	for _, path := range t.containerModelFiles(name, c.Image) {
		if _, err := os.Stat(path); err == nil {
			loaded, err := model.LoadFileHash(path, settingsHash(settings))
			if err != nil {
				return nil, fmt.Errorf("start namespace %s: %w", name, err)
			}
			loaded.Seal()
			m, settings.Model, settings.Pseudonyms = loaded, path, nil
			break
		}
	}
	// Held before any task of the container can be a member.
	fs := t.openContainerFS(c) // containerfs.go
	st, err := t.create(namespace.Options{Name: name, Origin: namespace.OriginContainer, Model: m, KTime: t.ktime()}, &c, cgroupDir, fs, settings)
	if st == nil {
		fs.Close()
	}
	if err == nil && m == nil && t.learner != nil && t.keyByImage && c.Image != "" {
		t.learner.join(c.Image, st)
	}
	return st, err
}

// list returns the namespaces' states ordered by id.
func (t *table) list() []*nsState {
	ns := t.reg.List()
	out := make([]*nsState, 0, len(ns))
	for _, n := range ns {
		if st, ok := t.get(n.ID()); ok {
			out = append(out, st)
		}
	}
	return out
}

// info describes st for the control API.
func (t *table) info(st *nsState) control.NamespaceInfo {
	n := st.ns
	m := n.Model()
	stats := n.Stats()
	info := control.NamespaceInfo{
		Name: n.Name(), Context: n.ID(), Origin: string(n.Origin()),
		Mode: controlMode(n.Mode()), Settings: st.settings, Created: n.Created(),
		Points: m.Len(), Events: stats.Events, ForensicsEvents: stats.ForensicEvents,
		Denials: st.denials.Load(), Lost: stats.Lost,
		Tasks: int(st.tasks.Load()), UntrustedTasks: stats.UntrustedTasks,
		Aggregate:   hexOf(m.Aggregate()),
		State:       hexOf(m.State()),
		Measurement: hexOf(m.Measurement()),
	}
	info.ForensicsPoints = m.NumForensics()
	info.Pseudonyms = len(m.Pseudonyms())
	st.pseudoMu.Lock()
	info.Settings.Pseudonyms = slices.Clone(st.pseudonyms)
	st.pseudoMu.Unlock()
	info.Log = t.logState(st)
	info.Ended = t.runs.isEnded(n.ID())
	if c := st.container; c != nil {
		info.Container = &control.Container{Runtime: string(c.Runtime), ID: c.ID, PodUID: c.PodUID, Cgroup: c.Cgroup, Image: c.Image}
	}
	return info
}

func hexOf(c model.Coefficient) string { return c.String() }

func controlMode(m namespace.Mode) control.Mode {
	switch m {
	case namespace.Sealed:
		return control.ModeSealed
	case namespace.Enforcing:
		return control.ModeEnforcing
	}
	return control.ModeLearning
}

// Namespaces implements control.Backend.
func (t *table) Namespaces() []control.NamespaceInfo {
	sts := t.list()
	out := make([]control.NamespaceInfo, len(sts))
	for i, st := range sts {
		out[i] = t.info(st)
	}
	return out
}

// Namespace implements control.Backend.
func (t *table) Namespace(name string) (control.NamespaceInfo, error) {
	st, err := t.lookup(name)
	if err != nil {
		return control.NamespaceInfo{}, err
	}
	return t.info(st), nil
}

// Seal implements control.Backend.
func (t *table) Seal(name string) error {
	st, err := t.lookup(name)
	if err != nil {
		return err
	}
	return t.seal(st)
}

// Enforce implements control.Backend.
func (t *table) Enforce(name string) error {
	st, err := t.lookup(name)
	if err != nil {
		return err
	}
	return t.enforce(st)
}

// Trajectory implements control.Backend.
func (t *table) Trajectory(name string) ([]control.Point, error) {
	st, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	ps, err := st.ns.Model().ReadPoints()
	if err != nil {
		return nil, fmt.Errorf("trajectory of namespace %s: %w", name, err)
	}
	return controlPoints(ps), nil
}

// Forensics implements control.Backend.
func (t *table) Forensics(name string) ([]control.Point, error) {
	st, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	ps, err := st.ns.Model().ReadForensics()
	if err != nil {
		return nil, fmt.Errorf("forensics of namespace %s: %w", name, err)
	}
	return controlPoints(ps), nil
}

func controlPoints(ps []model.Point) []control.Point {
	out := make([]control.Point, len(ps))
	for i, p := range ps {
		out[i] = control.Point{Coefficient: p.Coefficient, Count: p.Count, Event: p.Description}
	}
	return out
}

// Model implements control.Backend.
func (t *table) Model(name string) ([]byte, error) {
	st, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := st.ns.Model().WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("write model of namespace %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Load implements control.Backend: the points of the model file join the
// namespace's model (measured like learned points) and the namespace is
// sealed to the union. Only a learning namespace takes a model.
func (t *table) Load(name string, file []byte) error {
	st, err := t.lookup(name)
	if err != nil {
		return err
	}
	loaded, err := model.LoadHash(bytes.NewReader(file), "model", st.ns.Hash())
	if err != nil {
		return fmt.Errorf("load model into namespace %s: %w: %w", name, err, control.ErrInvalid)
	}
	if loaded.Dialect() != st.ns.Dialect() {
		return fmt.Errorf("load model into namespace %s: the model's coefficients are of the %s dialect, the namespace's of the %s dialect: %w", name, loaded.Dialect(), st.ns.Dialect(), control.ErrInvalid)
	}
	return t.load(st, loaded)
}

// AddPseudonyms implements control.PseudonymBackend: a learning
// namespace's model gets a pseudonym for each pathname.
func (t *table) AddPseudonyms(name string, pathnames []string) error {
	if err := control.CheckPseudonyms(pathnames); err != nil {
		return fmt.Errorf("add pseudonyms to namespace %s: %w", name, err)
	}
	st, err := t.lookup(name)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if mode := st.ns.Mode(); mode != namespace.Learning {
		return fmt.Errorf("add pseudonyms to namespace %s: %s: a pseudonym changes the coefficients of the file's later events, which the sealed model holds without it (give pseudonyms while learning, or in the model file): %w", name, mode, control.ErrConflict)
	}
	st.addPseudonyms(pathnames)
	return nil
}

// addPseudonyms gives st's model a pseudonym for each pathname it has none
// for yet, and remembers the pathname.
func (st *nsState) addPseudonyms(pathnames []string) {
	m := st.ns.Model()
	st.pseudoMu.Lock()
	defer st.pseudoMu.Unlock()
	for _, p := range pathnames {
		if slices.Contains(st.pseudonyms, p) {
			continue
		}
		m.AddPseudonym(model.PseudonymOfHash(m.Hash(), p))
		st.pseudonyms = append(st.pseudonyms, p)
	}
}

// logFailed says whether err, from the measured log, is a failure: a
// record the log holds because it cannot be written now
// (measure.ErrLogUnwritable) is not; the poller reports that state.
func logFailed(err error) bool {
	return err != nil && !errors.Is(err, measure.ErrLogUnwritable)
}

// settingsHash is the hash algorithm settings name (SHA-256 when they name
// none or one New and Create have already refused).
func settingsHash(s control.Settings) model.Hash {
	h, _ := model.ParseHash(s.HashAlgorithm)
	return h
}

// watchCgroup has the kernel give st's namespace the children forked in
// its container cgroup (bpf Capture.WatchCgroup), replacing the cgroup
// watched before (a container restarted in a new cgroup directory).
func (t *table) watchCgroup(st *nsState) {
	if st.cgroupDir == "" {
		return
	}
	var fi unix.Stat_t
	if err := unix.Stat(st.cgroupDir, &fi); err != nil {
		t.log.Debug("container cgroup not watched in the kernel", "namespace", st.ns.Name(), "err", err)
		return
	}
	if fi.Ino == st.cgroupID {
		return
	}
	t.unwatchCgroup(st)
	if err := t.kern.WatchCgroup(fi.Ino, st.ns.ID()); err != nil {
		t.log.Warn("container cgroup not watched in the kernel: its processes are enrolled by the resync only", "namespace", st.ns.Name(), "err", err)
		return
	}
	st.cgroupID = fi.Ino
}

func (t *table) unwatchCgroup(st *nsState) {
	if st.cgroupID == 0 {
		return
	}
	if err := t.kern.UnwatchCgroup(st.cgroupID); err != nil {
		t.log.Warn("unwatch a container cgroup", "namespace", st.ns.Name(), "err", err)
	}
	st.cgroupID = 0
}
