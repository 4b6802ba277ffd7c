package agent

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
)

// orderKernel records each mode change and allow push the table makes,
// with the last record of the measured log at that moment: the order of
// the kernel's and the log's transitions.
type orderKernel struct {
	*fakeKernel
	t       *testing.T
	logPath string
	calls   []string // "kernel-op after log-record"
}

func (k *orderKernel) note(op string) {
	b, err := os.ReadFile(k.logPath)
	if err != nil {
		k.t.Fatal(err)
	}
	last := "nothing"
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if _, rest, ok := strings.Cut(l, `"record":"`); ok {
			last, _, _ = strings.Cut(rest, `"`)
		}
	}
	k.calls = append(k.calls, op+" after "+last)
}

func (k *orderKernel) SetNamespace(ns uint64, cfg bpf.NamespaceConfig) error {
	k.note("configure " + cfg.Mode.String())
	return k.fakeKernel.SetNamespace(ns, cfg)
}

func (k *orderKernel) SetMode(ns uint64, m bpf.Mode) error {
	k.note("mode " + m.String())
	return k.fakeKernel.SetMode(ns, m)
}

func (k *orderKernel) Allow(ns uint64, keys ...uint64) error {
	k.note("allow")
	return k.fakeKernel.Allow(ns, keys...)
}

// TestRunTransitionOrder: a run sealed to a model and enforcing goes
// through the log and the kernel in the same order whether the namespace
// is created with its model (standalone `vigil run --model M --enforce`)
// or given it later (the same through an agent: Create, then Load): the
// log says "sealed" before the kernel seals or enforces, the allow set is
// in the kernel before it enforces, and the log says "enforcing" only once
// the kernel does.
func TestRunTransitionOrder(t *testing.T) {
	file := filepath.Join(tsemDir, "process.model")
	settings := control.Settings{HashAlgorithm: "sha256", Dialect: "tsem", Enforce: true}
	tests := []struct {
		name   string
		create func(t *testing.T, tab *table) *nsState
		want   []string
	}{
		{"standalone, created with its model", func(t *testing.T, tab *table) *nsState {
			m, err := model.LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m.Seal()
			st, err := tab.createRun("", 0, m, settings)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}, []string{"configure seal after sealed", "allow after sealed", "mode enforce after sealed"}},
		{"through an agent, loaded after", func(t *testing.T, tab *table) *nsState {
			info, err := tab.Create(control.CreateRequest{Settings: settings})
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := tab.Load(info.Name, b); err != nil {
				t.Fatal(err)
			}
			st, _ := tab.get(info.Context)
			return st
		}, []string{"configure learn after created", "allow after sealed", "mode seal after sealed", "mode enforce after sealed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true, control.Settings{HashAlgorithm: "sha256"}, "")
			k := &orderKernel{fakeKernel: f.kern, t: t, logPath: f.path}
			f.tab.kern = k
			st := tc.create(t, f.tab)
			if got := strings.Join(k.calls, "; "); got != strings.Join(tc.want, "; ") {
				t.Errorf("kernel calls: %s\nwant:         %s", got, strings.Join(tc.want, "; "))
			}
			if cfg := f.kern.config[st.ns.ID()]; cfg.Mode != bpf.ModeEnforce {
				t.Errorf("kernel mode %s; want enforce", cfg.Mode)
			}
			rep := f.verify(t)
			if len(rep.Namespaces) != 1 || !rep.Namespaces[0].Sealed || !rep.Namespaces[0].Enforcing {
				t.Fatalf("log namespaces %+v; want one, sealed and enforcing", rep.Namespaces)
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			if s, e := bytes.LastIndex(b, []byte(`"record":"sealed"`)), bytes.LastIndex(b, []byte(`"record":"enforcing"`)); s < 0 || e < s {
				t.Errorf("the log's enforcing record (at %d) does not follow its sealed record (at %d)", e, s)
			}
		})
	}
}

// lossLog records what a Standalone reports lost.
type lossLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lossLog) Lost(ns string, n uint64, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, ns+" "+reason)
}

func (l *lossLog) Unreadable(err error) { l.Lost("*", 1, err.Error()) }

// openStandalone opens a Standalone with opts, or skips the test where
// the capture programs cannot load (not root, a kernel that refuses them)
// unless VIGIL_TEST_BPF=require. A failure after the capture loaded is
// returned.
func openStandalone(t *testing.T, opts StandaloneOptions) (*Standalone, error) {
	t.Helper()
	require := os.Getenv("VIGIL_TEST_BPF") == "require"
	if os.Geteuid() != 0 && !require {
		t.Skipf("loading the capture programs needs root (euid %d)", os.Geteuid())
	}
	opts.Backend, opts.RingBufferBytes = bpf.BackendAuto, 1<<20
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := OpenStandalone(opts)
	if err != nil && !strings.HasPrefix(err.Error(), "log: ") {
		conclusive := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOENT) || errors.Is(err, bpf.ErrNoBackend)
		if !conclusive || require {
			t.Fatalf("OpenStandalone: %v", err)
		}
		t.Skipf("no capture backend here: %v", err)
	}
	return s, err
}

// TestStandalone runs a process in a standalone run namespace, as `vigil
// run` without an agent does: its open is in the model after Finish, the
// measured log verifies, and Close prints the register.
func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("standalone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s, err := openStandalone(t, StandaloneOptions{
		Log: filepath.Join(dir, "events.log"), Register: measure.NewSoftware(measure.DefaultSoftwareIndex), Why: "test",
		Stderr: &stderr, Losses: &lossLog{},
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	if err := s.Create("standalone-test", nil, control.Settings{Capable: true, RepeatCache: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create("again", nil, control.Settings{}); err == nil {
		t.Error("a second Create succeeded; want an error: a run has one namespace")
	}
	t.Setenv(helperOpenEnv, target)
	pid, stop := startHelper(t)
	if err := s.Enroll(pid); err != nil {
		t.Fatal(err)
	}
	stop() // the helper opens target, then exits
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v; want nil", err)
	}
	ns := s.Namespace()
	traj, err := ns.Model().ReadTrajectory()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.Join(traj, nil), []byte(`"pathname": "`+target+`"`)) {
		t.Errorf("the model of %d points has no open of %s", len(traj), target)
	}
	if ns.Name() != "standalone-test" || ns.Stats().Lost != 0 {
		t.Errorf("namespace %q, %d lost; want standalone-test, none lost", ns.Name(), ns.Stats().Lost)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stderr.String(), "register software 23 sha384 ") {
		t.Errorf("Close wrote %q; want the register line", stderr.String())
	}
	r, err := os.Open(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := measure.Verify(r, "events.log", measure.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Namespaces) != 1 || rep.Namespaces[0].Points != len(traj) {
		t.Errorf("log namespaces %+v; want one with the model's %d points", rep.Namespaces, len(traj))
	}
}

// TestOpenStandaloneFails: a log that cannot be opened fails OpenStandalone
// with the reason (and releases the capture it had loaded).
func TestOpenStandaloneFails(t *testing.T) {
	_, err := openStandalone(t, StandaloneOptions{
		Log: filepath.Join(t.TempDir(), "missing", "events.log"), Register: measure.NewSoftware(measure.DefaultSoftwareIndex),
	})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenStandalone with a log in a missing directory = %v; want the log's ErrNotExist", err)
	}
}
