package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/namespace"
)

// writeModel puts the TSEM reference model at dir/name.
func writeModel(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(tsemDir, "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHostNamespace(t *testing.T) {
	tests := []struct {
		name        string
		lsm         bool
		hostEnforce bool
		modelFile   bool
		wantMode    control.Mode
		enforceErr  error // of Enforce("host"); nil: succeeds
	}{
		{"learns; enforcing refused without host_enforce", true, false, false, control.ModeLearning, errHostEnforce},
		{"host.model seals it; enforce: true does not reach it", true, false, true, control.ModeSealed, errHostEnforce},
		{"host_enforce lets it enforce", true, true, false, control.ModeLearning, nil},
		{"host_enforce on an observe-only backend", false, true, false, control.ModeLearning, bpf.ErrObserveOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.modelFile {
				writeModel(t, dir, "host.model")
			}
			f := newFixture(t, tc.lsm, control.Settings{HashAlgorithm: "sha256", Capable: true, Enforce: true}, dir)
			f.tab.hostEnforce = tc.hostEnforce
			st, err := f.tab.startHost()
			if err != nil {
				t.Fatal(err)
			}
			if st.ns.ID() != 0 {
				t.Fatalf("host namespace id %d; want 0", st.ns.ID())
			}
			cfg, ok := f.kern.config[0]
			if !ok || !cfg.Model {
				t.Errorf("kernel config of namespace 0 = %+v (set %v); want Model", cfg, ok)
			}
			info, err := f.tab.Namespace("host")
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != "host" || info.Origin != "host" || info.Context != 0 || info.Mode != tc.wantMode || info.Container != nil {
				t.Errorf("host info = %+v; want host, origin host, context 0, mode %s", info, tc.wantMode)
			}
			if info.Settings.Enforce != tc.hostEnforce {
				t.Errorf("host settings enforce = %v; want %v (enforce: true applies only with host_enforce)", info.Settings.Enforce, tc.hostEnforce)
			}
			if _, err := f.tab.startHost(); !errors.Is(err, namespace.ErrExists) {
				t.Errorf("second startHost = %v; want ErrExists", err)
			}
			// A container still gets ids from 1 on.
			c, err := f.tab.startContainer(testContainer(1), "/nonexistent")
			if err != nil || c.ns.ID() == 0 {
				t.Fatalf("container beside the host: %v, id %v", err, c)
			}

			err = f.tab.Enforce("host")
			if tc.enforceErr == nil {
				if err != nil {
					t.Fatalf("Enforce(host) = %v; want success", err)
				}
				if f.kern.config[0].Mode != bpf.ModeEnforce || !f.kern.config[0].Model {
					t.Errorf("kernel config after enforce = %+v; want enforce, still modeled", f.kern.config[0])
				}
				return
			}
			if !errors.Is(err, tc.enforceErr) || !errors.Is(err, control.ErrConflict) {
				t.Fatalf("Enforce(host) = %v; want %v and ErrConflict", err, tc.enforceErr)
			}
			if f.kern.config[0].Mode == bpf.ModeEnforce {
				t.Error("kernel mode of the host is enforce after a refusal")
			}
			if tc.wantMode == control.ModeLearning {
				if err := f.tab.Seal("host"); err != nil {
					t.Fatalf("Seal(host) = %v", err)
				}
				if m := f.kern.config[0]; m.Mode != bpf.ModeSeal || !m.Model {
					t.Errorf("kernel config after seal = %+v; want seal, still modeled", m)
				}
			}
		})
	}
}

// ignoringKernel is a fake kernel that can leave a process out of the
// host; it records Ignore and SetNamespace calls in order.
type ignoringKernel struct {
	*fakeKernel
	err   error // of Ignore
	calls []string
}

func (k *ignoringKernel) Ignore(tgid int) error {
	k.calls = append(k.calls, fmt.Sprintf("ignore %d", tgid))
	return k.err
}

func (k *ignoringKernel) SetNamespace(ns uint64, cfg bpf.NamespaceConfig) error {
	k.calls = append(k.calls, fmt.Sprintf("set %d model=%v", ns, cfg.Model))
	return k.fakeKernel.SetNamespace(ns, cfg)
}

// TestHostIgnoresAgent: startHost leaves the agent's process out of the
// host in the kernel before the kernel models the host, and models it
// even when the kernel cannot (selfFilter is the backstop).
func TestHostIgnoresAgent(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"kernel leaves the agent out", nil},
		{"kernel cannot", errors.New("ignore table full")},
	}
	want := []string{fmt.Sprintf("ignore %d", os.Getpid()), "set 0 model=true"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
			k := &ignoringKernel{fakeKernel: f.kern, err: tc.err}
			f.tab.kern = k
			if _, err := f.tab.startHost(); err != nil {
				t.Fatalf("startHost = %v", err)
			}
			if !slices.Equal(k.calls, want) {
				t.Errorf("kernel calls %q; want %q", k.calls, want)
			}
			if cfg := f.kern.config[0]; !cfg.Model {
				t.Errorf("kernel config of namespace 0 = %+v; want Model", cfg)
			}
		})
	}
}

func TestSelfFilter(t *testing.T) {
	const agent = 1000
	hdr := func(ns uint64, pid, tgid uint32) bpf.Header { return bpf.Header{NS: ns, PID: pid, TGID: tgid} }
	f := newSelfFilter(agent)
	steps := []struct {
		name string
		r    bpf.Record
		drop bool
	}{
		{"the agent's main thread", &bpf.FileOpen{Header: hdr(0, agent, agent)}, true},
		{"another thread of the agent", &bpf.FileOpen{Header: hdr(0, agent+1, agent)}, true},
		{"another host process", &bpf.FileOpen{Header: hdr(0, 2000, 2000)}, false},
		{"a container's record with the agent's pid (cannot happen, but not the host)", &bpf.FileOpen{Header: hdr(5, agent, agent)}, false},
		{"the agent forks a child", &bpf.TaskFork{Header: hdr(0, agent+1, agent), ChildPID: 3000}, true},
		{"the child", &bpf.FileOpen{Header: hdr(0, 3000, 3000)}, true},
		{"the child's thread", &bpf.FileOpen{Header: hdr(0, 3001, 3000)}, true},
		{"the child forks a grandchild", &bpf.TaskFork{Header: hdr(0, 3000, 3000), ChildPID: 3500}, true},
		{"the grandchild", &bpf.FileOpen{Header: hdr(0, 3500, 3500)}, true},
		{"the child exits", &bpf.TaskExit{Header: hdr(0, 3000, 3000)}, true},
		{"its pid recycled by another process", &bpf.FileOpen{Header: hdr(0, 3000, 3000)}, false},
		{"the agent's main thread still", &bpf.FileOpen{Header: hdr(0, agent, agent)}, true},
	}
	dropped := uint64(0)
	for _, s := range steps {
		if got := f.drop(s.r); got != s.drop {
			t.Errorf("%s: drop = %v; want %v", s.name, got, s.drop)
		}
		if s.drop {
			dropped++
		}
	}
	if f.Dropped() != dropped {
		t.Errorf("Dropped() = %d; want %d", f.Dropped(), dropped)
	}
}

// TestEnrolHostTask: a task the host namespace picked up before its
// container was found moves to the container's namespace.
func TestEnrolHostTask(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte("10\n11\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, "")
	if _, err := f.tab.startHost(); err != nil {
		t.Fatal(err)
	}
	st, err := f.tab.startContainer(testContainer(2), root)
	if err != nil {
		t.Fatal(err)
	}
	f.kern.tasks[10] = 0 // picked up by the host
	e := newEnroller(f.kern, f.tab.log, 1)
	defer func() {
		if e.in != nil {
			e.in.Close()
		}
	}()
	e.add(st)
	for _, pid := range []int{10, 11} {
		if got := f.kern.tasks[pid]; got != st.ns.ID() {
			t.Errorf("pid %d in namespace %d; want the container's %d", pid, got, st.ns.ID())
		}
	}
}

// runtimeState writes a containerd task bundle naming image for container
// c under root.
func runtimeState(t *testing.T, root string, c namespace.Container, config string) {
	t.Helper()
	dir := filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/k8s.io", c.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestModelKeyImage(t *testing.T) {
	const image = "registry.example/team/app:1.2"
	spec := `{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.image-name":"` + image + `"}}`
	tests := []struct {
		name       string
		keyByImage bool
		config     string // the container's config.json; "" for none
		files      []string
		wantModel  string // model file the namespace seals to; "" learning
		wantImage  string
	}{
		{"image model", true, spec, []string{"registry.example_team_app_1.2.model"}, "registry.example_team_app_1.2.model", image},
		{"image model wins over the name's", true, spec, []string{"registry.example_team_app_1.2.model", "NAME.model"}, "registry.example_team_app_1.2.model", image},
		{"no image model: the name's", true, spec, []string{"NAME.model"}, "NAME.model", image},
		{"no model at all", true, spec, nil, "", image},
		{"keyed by name ignores the image model", false, spec, []string{"registry.example_team_app_1.2.model"}, "", image},
		{"no runtime state: by name", true, "", []string{"NAME.model"}, "NAME.model", ""},
		{"broken runtime state: by name", true, `{"annotations": {`, []string{"registry.example_team_app_1.2.model", "NAME.model"}, "NAME.model", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			models, state := t.TempDir(), t.TempDir()
			c := testContainer(byte(i))
			c.Runtime = namespace.RuntimeContainerd
			for _, f := range tc.files {
				writeModel(t, models, strings.Replace(f, "NAME", c.NamespaceName(), 1))
			}
			if tc.config != "" {
				runtimeState(t, state, c, tc.config)
			}
			f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256"}, models)
			f.tab.images = &namespace.ImageResolver{Root: state}
			f.tab.keyByImage = tc.keyByImage
			st, err := f.tab.startContainer(c, "/nonexistent")
			if err != nil {
				t.Fatal(err)
			}
			info, _ := f.tab.Namespace(st.ns.Name())
			want := ""
			if tc.wantModel != "" {
				want = filepath.Join(models, strings.Replace(tc.wantModel, "NAME", c.NamespaceName(), 1))
			}
			if info.Settings.Model != want {
				t.Errorf("sealed to %q; want %q", info.Settings.Model, want)
			}
			if wantMode := map[bool]control.Mode{true: control.ModeSealed, false: control.ModeLearning}[want != ""]; info.Mode != wantMode {
				t.Errorf("mode %s; want %s", info.Mode, wantMode)
			}
			if info.Container == nil || info.Container.Image != tc.wantImage {
				t.Errorf("container info %+v; want image %q", info.Container, tc.wantImage)
			}
		})
	}
}
