package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/config"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

const tsemDir = "../../testdata/tsem"

// fakeKernel records what the agent asks of the capture programs.
type fakeKernel struct {
	mu      sync.Mutex // the agent calls it from its goroutines
	enforce bool
	config  map[uint64]bpf.NamespaceConfig
	allow   map[uint64][]uint64
	tasks   map[int]uint64    // pid -> namespace
	dormant map[int]bool      // pids enrolled dormant until exec
	cgroups map[uint64]uint64 // watched cgroup id -> namespace
	gone    map[int]bool      // pids that exited
	dropped []uint64
}

func newFakeKernel(enforce bool) *fakeKernel {
	return &fakeKernel{enforce: enforce, config: map[uint64]bpf.NamespaceConfig{}, allow: map[uint64][]uint64{}, tasks: map[int]uint64{}, gone: map[int]bool{}, dormant: map[int]bool{}, cgroups: map[uint64]uint64{}}
}

func (k *fakeKernel) CanEnforce() bool { return k.enforce }
func (k *fakeKernel) SetNamespace(ns uint64, cfg bpf.NamespaceConfig) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cfg.Mode == bpf.ModeEnforce && !k.enforce {
		return bpf.ErrObserveOnly
	}
	k.config[ns] = cfg
	return nil
}
func (k *fakeKernel) SetMode(ns uint64, m bpf.Mode) error {
	k.mu.Lock()
	cfg := k.config[ns]
	k.mu.Unlock()
	cfg.Mode = m
	return k.SetNamespace(ns, cfg)
}
func (k *fakeKernel) Allow(ns uint64, keys ...uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.allow[ns] = append(k.allow[ns], keys...)
	return nil
}
func (k *fakeKernel) DropNamespace(ns uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dropped = append(k.dropped, ns)
	delete(k.config, ns)
	return nil
}
func (k *fakeKernel) Enroll(pid int, ns uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone[pid] {
		return errors.New("no such process")
	}
	k.tasks[pid] = ns
	return nil
}
func (k *fakeKernel) EnrollDormant(pid int, ns uint64) error {
	if err := k.Enroll(pid, ns); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dormant[pid] = true
	return nil
}
func (k *fakeKernel) WatchCgroup(id, ns uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cgroups[id] = ns
	return nil
}
func (k *fakeKernel) UnwatchCgroup(id uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cgroups, id)
	return nil
}
func (k *fakeKernel) TaskState(pid int) (ns, ttd, pttd uint64, untrusted, ok bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone[pid] {
		return 0, 0, 0, false, false, errors.New("no such process")
	}
	ns, ok = k.tasks[pid]
	return ns, 0, 0, false, ok, nil
}
func (k *fakeKernel) MarkUntrusted(int) error { return nil }

// readEvents parses the TSEM lines of a testdata file.
func readEvents(t *testing.T, name string) []*events.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tsemDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		e, err := events.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("%s:%d: %v", name, n, err)
		}
		out = append(out, e)
	}
	return out
}

// readCoefficients reads a file of one coefficient a line.
func readCoefficients(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tsemDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

type fixture struct {
	tab  *table
	kern *fakeKernel
	log  *measure.Log
	path string
}

func newFixture(t *testing.T, enforce bool, defaults control.Settings, modelDir string) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "measurements.log")
	l, err := measure.OpenLog(path, measure.NewSoftware(measure.DefaultSoftwareIndex), measure.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	kern := newFakeKernel(enforce)
	reg := namespace.NewRegistry(namespace.RegistryOptions{FirstID: l.NextNamespaceID()})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tab := newTable(reg, kern, l, metrics.New(metrics.Options{}), defaults, modelDir, logger)
	tab.ktime = func() uint64 { return 0 }
	return &fixture{tab: tab, kern: kern, log: l, path: path}
}

func testContainer(id byte) namespace.Container {
	return namespace.Container{Runtime: namespace.RuntimeDocker, ID: strings.Repeat(string(rune('a'+id)), 64), Cgroup: "/system.slice/docker-x.scope"}
}

// verify closes the log and replays it.
func (f *fixture) verify(t *testing.T) *measure.Report {
	t.Helper()
	if err := f.log.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := measure.Verify(r, f.path, measure.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify log: %v", err)
	}
	return rep
}

func TestContainerLearnSeal(t *testing.T) {
	learn := readEvents(t, "process_1.json")
	want := readCoefficients(t, "process_1.coefficients")
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256", Capable: false}, "")
	st, err := f.tab.startContainer(testContainer(0), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	if cfg := f.kern.config[st.ns.ID()]; cfg.Mode != bpf.ModeLearn || !cfg.NoCapable {
		t.Errorf("kernel config %+v; want learning without capable events (capable off)", cfg)
	}
	for _, e := range learn {
		if _, err := st.ns.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	traj, err := f.tab.Trajectory(name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range traj {
		if !slices.Contains(got, p.Coefficient.String()) {
			got = append(got, p.Coefficient.String())
		}
	}
	// The kernel's trajectory lists each coefficient once, in order.
	var uniq []string
	for _, c := range want {
		if !slices.Contains(uniq, c) {
			uniq = append(uniq, c)
		}
	}
	if !slices.Equal(got, uniq) {
		t.Fatalf("trajectory coefficients = %d %v...; want the kernel's %d %v...", len(got), got[:2], len(uniq), uniq[:2])
	}

	if err := f.tab.Seal(name); err != nil {
		t.Fatal(err)
	}
	if err := f.tab.Seal(name); !errors.Is(err, control.ErrConflict) {
		t.Errorf("second Seal = %v; want ErrConflict", err)
	}
	if m := f.kern.config[st.ns.ID()].Mode; m != bpf.ModeSeal {
		t.Errorf("kernel mode after seal = %s; want seal", m)
	}
	if len(f.kern.allow[st.ns.ID()]) != 0 {
		t.Errorf("allow set pushed to an observe-only backend")
	}
	if err := f.tab.Enforce(name); !errors.Is(err, control.ErrConflict) || !errors.Is(err, bpf.ErrObserveOnly) {
		t.Errorf("Enforce on the tracepoint backend = %v; want ErrConflict and ErrObserveOnly", err)
	}

	// Another process's events: those outside the model are forensics.
	for _, e := range readEvents(t, "process_3.json") {
		if _, err := st.ns.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	info, err := f.tab.Namespace(name)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.tab.Forensics(name)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != control.ModeSealed || info.Points != len(uniq) || info.ForensicsPoints != len(fs) || len(fs) == 0 {
		t.Errorf("info: mode %s, %d points, %d forensics points (%d from Forensics); want sealed, %d points, some forensics", info.Mode, info.Points, info.ForensicsPoints, len(fs), len(uniq))
	}
	for _, p := range fs {
		if slices.Contains(uniq, p.Coefficient.String()) {
			t.Errorf("forensics point %s is in the model", p.Coefficient)
		}
	}

	// The model file round-trips.
	file, err := f.tab.Model(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(bytes.NewReader(file), "model")
	if err != nil || m.Len() != len(uniq) {
		t.Fatalf("model file: %v, %d points; want %d", err, m.Len(), len(uniq))
	}

	rep := f.verify(t)
	if len(rep.Namespaces) != 1 {
		t.Fatalf("log has %d namespaces; want 1", len(rep.Namespaces))
	}
	ln := rep.Namespaces[0]
	if ln.Name != name || !ln.Sealed || ln.Points != len(uniq) || ln.Forensics != len(fs) || ln.Measurement.String() != info.Measurement {
		t.Errorf("log namespace %s sealed %v, %d points, %d forensics, measurement %s; want %s sealed, %d, %d, %s",
			ln.Name, ln.Sealed, ln.Points, ln.Forensics, ln.Measurement, name, len(uniq), len(fs), info.Measurement)
	}
}

func TestSealEnforceLSM(t *testing.T) {
	tests := []struct {
		name     string
		enforce  bool // the enforce setting
		op       func(*table, string) error
		wantMode control.Mode
	}{
		{"seal", false, (*table).Seal, control.ModeSealed},
		{"seal with enforce set", true, (*table).Seal, control.ModeEnforcing},
		{"enforce from learning", false, (*table).Enforce, control.ModeEnforcing},
	}
	learn := readEvents(t, "process_1.json")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true, control.Settings{HashAlgorithm: "sha256", Capable: true, Enforce: tc.enforce}, "")
			st, err := f.tab.startContainer(testContainer(1), "/nonexistent")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range learn {
				st.ns.Add(e)
			}
			if err := tc.op(f.tab, st.ns.Name()); err != nil {
				t.Fatal(err)
			}
			info, _ := f.tab.Namespace(st.ns.Name())
			if info.Mode != tc.wantMode {
				t.Errorf("mode %s; want %s", info.Mode, tc.wantMode)
			}
			wantKernel := map[control.Mode]bpf.Mode{control.ModeSealed: bpf.ModeSeal, control.ModeEnforcing: bpf.ModeEnforce}[tc.wantMode]
			if m := f.kern.config[st.ns.ID()].Mode; m != wantKernel {
				t.Errorf("kernel mode %s; want %s", m, wantKernel)
			}
			if len(f.kern.allow[st.ns.ID()]) == 0 {
				t.Errorf("no allow set pushed to the LSM backend at seal")
			}
			rep := f.verify(t)
			if ln := rep.Namespaces[0]; !ln.Sealed || ln.Enforcing != (tc.wantMode == control.ModeEnforcing) {
				t.Errorf("log: sealed %v enforcing %v; want mode %s", ln.Sealed, ln.Enforcing, tc.wantMode)
			}
		})
	}
}

func TestLoadModel(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(tsemDir, "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.Load(bytes.NewReader(good), "process.model")
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's model file is of the TSEM dialect: a namespace of the
	// invariant one (the default) refuses it, naming both.
	inv := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := inv.tab.startContainer(testContainer(2), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.tab.Load(st.ns.Name(), good); !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "tsem dialect, the namespace's of the invariant dialect") {
		t.Errorf("Load(a tsem model) into an invariant namespace = %v; want ErrInvalid naming both dialects", err)
	}
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256", Dialect: "tsem"}, "")
	st, err = f.tab.startContainer(testContainer(2), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	name := st.ns.Name()
	if err := f.tab.Load(name, []byte("not a model\n")); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("Load(garbage) = %v; want ErrInvalid", err)
	}
	// A trajectory line of broken JSON: the namespace would serve it and
	// build its kernel allow set from it.
	c := strings.Repeat("ab", 32)
	broken := []byte("state " + c + "\n#trajectory " + c + " {\"event\": {\"type\": \"file_open\"\nend\n")
	if err := f.tab.Load(name, broken); !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "model:2: trajectory "+c+": description") {
		t.Errorf("Load(broken trajectory) = %v; want ErrInvalid naming line 2", err)
	}
	if info, _ := f.tab.Namespace(name); info.Points != 0 || info.Mode != control.ModeLearning {
		t.Errorf("after a refused load: %d points, %s; want the namespace untouched", info.Points, info.Mode)
	}
	if err := f.tab.Load("docker-nope", good); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Load(unknown namespace) = %v; want ErrNotFound", err)
	}
	if err := f.tab.Load(name, good); err != nil {
		t.Fatalf("Load: %v", err)
	}
	info, _ := f.tab.Namespace(name)
	if info.Mode != control.ModeSealed || info.Points != want.Len() {
		t.Errorf("after Load: mode %s, %d points; want sealed, %d", info.Mode, info.Points, want.Len())
	}
	if err := f.tab.Load(name, good); !errors.Is(err, control.ErrConflict) {
		t.Errorf("Load into a sealed namespace = %v; want ErrConflict", err)
	}
}

func TestModelDirSealsNewContainer(t *testing.T) {
	dir := t.TempDir()
	c := testContainer(3)
	src, err := os.ReadFile(filepath.Join(tsemDir, "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, c.NamespaceName()+".model"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, dir)
	st, err := f.tab.startContainer(c, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.tab.startContainer(testContainer(4), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.tab.Namespace(st.ns.Name())
	if info.Mode != control.ModeSealed || info.Settings.Model == "" || info.Points == 0 {
		t.Errorf("container with a model file: mode %s, model %q, %d points; want sealed to it", info.Mode, info.Settings.Model, info.Points)
	}
	if info, _ := f.tab.Namespace(other.ns.Name()); info.Mode != control.ModeLearning {
		t.Errorf("container without a model file: mode %s; want learning", info.Mode)
	}
	if _, err := f.tab.Namespace("docker-none"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Namespace(unknown) = %v; want ErrNotFound", err)
	}
	f.tab.remove(st)
	if len(f.tab.Namespaces()) != 1 || f.kern.dropped[0] != st.ns.ID() {
		t.Errorf("after remove: %d namespaces, kernel dropped %v; want 1 left and %d dropped", len(f.tab.Namespaces()), f.kern.dropped, st.ns.ID())
	}
}

func TestEnrolCgroupTree(t *testing.T) {
	root := t.TempDir()
	write := func(rel string, pids ...int) {
		t.Helper()
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, p := range pids {
			b.WriteString(strconv.Itoa(p) + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("", 10, 11, 12)
	write("container", 20) // runc's nested leaf
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	st, err := f.tab.startContainer(testContainer(5), root)
	if err != nil {
		t.Fatal(err)
	}
	id := st.ns.ID()
	f.kern.tasks[11] = id + 100 // already in another namespace: sticky
	f.kern.tasks[12] = id       // enrolled before
	e := newEnroller(f.kern, f.tab.log, 1)
	defer func() {
		if e.in != nil {
			e.in.Close()
		}
	}()
	e.add(st)
	for pid, want := range map[int]uint64{10: id, 11: id + 100, 12: id, 20: id} {
		if got := f.kern.tasks[pid]; got != want {
			t.Errorf("pid %d in namespace %d; want %d", pid, got, want)
		}
	}
	if n := st.tasks.Load(); n != 3 {
		t.Errorf("tasks = %d; want 3 (10, 12, 20)", n)
	}
	f.kern.gone[20] = true
	e.enrolAll()
	if n := st.tasks.Load(); n != 2 {
		t.Errorf("tasks after pid 20 exited = %d; want 2", n)
	}
}

func TestContainerStopRestartRemove(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	root := t.TempDir()
	a := &Agent{
		opts:       Options{StopGrace: 50 * time.Millisecond},
		pipeline:   &pipeline{log: f.tab.log, table: f.tab},
		enroller:   newEnroller(f.kern, f.tab.log, time.Second),
		watcher:    &namespace.ContainerWatcher{Root: root},
		containers: make(map[string]*container),
	}
	defer func() {
		if a.enroller.in != nil {
			a.enroller.in.Close()
		}
	}()
	c := testContainer(6)
	name := c.NamespaceName()
	started := namespace.ContainerEvent{Kind: namespace.ContainerStarted, Container: c}
	stopped := namespace.ContainerEvent{Kind: namespace.ContainerStopped, Container: c}

	a.onContainer(started)
	info, err := f.tab.Namespace(name)
	if err != nil {
		t.Fatalf("after start: %v", err)
	}
	// Stopped and restarted within the grace period: the same namespace.
	a.onContainer(stopped)
	a.onContainer(started)
	time.Sleep(150 * time.Millisecond)
	again, err := f.tab.Namespace(name)
	if err != nil || again.Context != info.Context {
		t.Fatalf("after a restart within the grace period: %+v, %v; want namespace context %d kept", again, err, info.Context)
	}
	// Stopped for longer: removed.
	a.onContainer(stopped)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := f.tab.Namespace(name); errors.Is(err, control.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("namespace of a stopped container not removed after the grace period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.kern.mu.Lock()
	defer f.kern.mu.Unlock()
	if !slices.Contains(f.kern.dropped, info.Context) {
		t.Errorf("kernel dropped %v; want %d", f.kern.dropped, info.Context)
	}
}

func TestOwnContainerNotModeled(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	root := t.TempDir()
	a := &Agent{
		opts: Options{StopGrace: time.Minute}, pipeline: &pipeline{log: f.tab.log, table: f.tab},
		enroller:   newEnroller(f.kern, f.tab.log, time.Second),
		watcher:    &namespace.ContainerWatcher{Root: root},
		containers: make(map[string]*container),
	}
	defer func() {
		if a.enroller.in != nil {
			a.enroller.in.Close()
		}
	}()
	tests := []struct {
		name    string
		pids    []int
		modeled bool
	}{
		{"another container", []int{os.Getpid() + 1}, true},
		{"the agent's own", []int{1, os.Getpid()}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testContainer(byte(7 + i))
			c.Cgroup = "/" + c.NamespaceName()
			if err := os.MkdirAll(filepath.Join(root, c.Cgroup), 0o755); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, p := range tc.pids {
				b.WriteString(strconv.Itoa(p) + "\n")
			}
			if err := os.WriteFile(filepath.Join(root, c.Cgroup, "cgroup.procs"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			a.onContainer(namespace.ContainerEvent{Kind: namespace.ContainerStarted, Container: c})
			_, err := f.tab.Namespace(c.NamespaceName())
			if modeled := err == nil; modeled != tc.modeled {
				t.Errorf("container with pids %v modeled = %v; want %v", tc.pids, modeled, tc.modeled)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		_, err := New(config.Default(), Options{})
		if !errors.Is(err, ErrNotRoot) {
			t.Fatalf("New as uid %d = %v; want ErrNotRoot", os.Geteuid(), err)
		}
		return
	}
	tests := []struct {
		name string
		edit func(*config.Config)
		want error // nil: any error
	}{
		{"hash md5", func(c *config.Config) { c.Hash = "md5" }, model.ErrUnknownHash},
		{"no cgroup v2", func(c *config.Config) { c.CgroupRoot = t.TempDir() }, namespace.ErrNoCgroup2Mount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			dir := t.TempDir()
			cfg.Socket, cfg.Log, cfg.MetricsAddr = filepath.Join(dir, "s.sock"), filepath.Join(dir, "m.log"), ""
			tc.edit(&cfg)
			a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				a.Close()
				t.Fatal("New succeeded; want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("New = %v; want %v", err, tc.want)
			}
		})
	}
}
