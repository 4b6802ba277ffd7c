package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
)

// TestRunFlags checks the refusals 'vigil run' makes before it needs root
// or a kernel; the runs themselves are tested in test/e2e.
func TestRunFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", []string{"run"}, 2, "requires at least 1 arg"},
		{"enforce without model", []string{"run", "--enforce", "--", "true"}, 2, "--enforce needs --model"},
		{"forensics without model", []string{"run", "--forensics", "f", "--", "true"}, 2, "--forensics needs --model"},
		{"enforce on tracepoints", []string{"run", "--backend", "tracepoint", "--model", "m", "--enforce", "--", "true"}, 2, "observes only"},
		{"bad backend", []string{"run", "--backend", "kprobe", "--", "true"}, 2, "--backend"},
		{"command not found", []string{"run", "--", filepath.Join(t.TempDir(), "missing")}, 127, ""},
		{"bad agent mode", []string{"run", "--agent", "sometimes", "--", "true"}, 2, "--agent"},
		{"standalone flag with --agent always", []string{"run", "--agent", "always", "--ring-buffer", "4096", "--", "true"}, 2, "--ring-buffer is a standalone flag"},
		{"ring buffer not a power of two", []string{"run", "--agent", "never", "--ring-buffer", "12288", "--", "true"}, 2, "--ring-buffer: 12288 is not a power of two"},
		{"ring buffer above 1 GiB", []string{"run", "--agent", "never", "--ring-buffer", "2147483648", "--", "true"}, 2, "--ring-buffer: 2147483648 is more than"},
		{"ring buffer above 32 bits", []string{"run", "--ring-buffer", "4294967296", "--", "true"}, 2, "--ring-buffer"},
		{"bad dialect", []string{"run", "--dialect", "vigil", "--", "true"}, 2, `--dialect: unknown coefficient dialect "vigil"`},
		{"relative pseudonym", []string{"run", "--pseudonym", "etc/hostname", "--", "true"}, 2, `--pseudonym: pseudonym "etc/hostname": want an absolute path`},
		{"pseudonym with a model", []string{"run", "--model", "m.model", "--pseudonym", "/etc/hostname", "--", "true"}, 2, "--pseudonym with --model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, msg, code := vigilCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("vigil %s: exit %d %q; want %d and %q", strings.Join(tc.args, " "), code, msg, tc.code, tc.msg)
			}
		})
	}
	t.Run("needs root", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root; test/e2e checks the message as uid 65534")
		}
		_, msg, code := vigilCLI(t, "run", "--", "true")
		if code != 1 || !strings.Contains(msg, "needs root") {
			t.Errorf("exit %d %q; want 1 saying it needs root", code, msg)
		}
	})
}

// runBackend is an agent for 'vigil run' in agent mode: one namespace,
// created on request, with what it was asked recorded.
type runBackend struct {
	nsBackend
	mu       sync.Mutex
	enforce  bool
	created  []control.CreateRequest
	enrolled []int
	synced   []int
	ended    []string
}

func (b *runBackend) Agent() control.AgentInfo {
	return control.AgentInfo{PID: 4242, Backend: "tracepoint", CanEnforce: b.enforce, Defaults: control.Settings{HashAlgorithm: "sha256", Capable: true, FailClosed: true}}
}
func (b *runBackend) Create(req control.CreateRequest) (control.NamespaceInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.created = append(b.created, req)
	name := req.Name
	if name == "" {
		name = "run-7"
	}
	b.info = control.NamespaceInfo{Name: name, Context: 7, Origin: "run", Mode: control.ModeLearning, Settings: req.Settings, Points: 2, Events: 9, ForensicsPoints: 1, ForensicsEvents: 2}
	return b.info, nil
}
func (b *runBackend) AddTask(name string, req control.TaskRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enrolled = append(b.enrolled, req.PID)
	return b.find(name)
}
func (b *runBackend) Sync(_ context.Context, name string, pid int) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.synced = append(b.synced, pid)
	return true, b.find(name)
}
func (b *runBackend) End(name string) (control.NamespaceInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, name)
	b.info.Ended = true
	return b.info, b.find(name)
}

// serveAgent serves b on a socket in a temporary directory.
func serveAgent(t *testing.T, b control.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vigil.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := &control.Server{Backend: b, Authorize: func(control.Peer) error { return nil }, Log: slog.New(slog.DiscardHandler)}
	go srv.Serve(ctx, l)
	return sock
}

// TestRunAgentMode runs 'vigil run' against a fake agent: the stub is this
// test binary (its init runs the stub), so no kernel is needed, but the
// socket is root's: the test needs root like 'vigil run' itself.
func TestRunAgentMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("vigil run needs root before it talks to an agent")
	}
	c1, _ := model.ParseCoefficient(strings.Repeat("ab", 32))
	c2, _ := model.ParseCoefficient(strings.Repeat("cd", 32))
	newBackend := func() *runBackend {
		return &runBackend{nsBackend: nsBackend{points: []control.Point{
			{Coefficient: c1, Count: 7, Event: []byte(`{"event": {"type": "file_open", "process": "cat"}}`)},
			{Coefficient: c2, Count: 2, Event: []byte(`{"event": {"type": "capable", "process": "cat"}}`)}}}}
	}
	dir := t.TempDir()
	modelFile := filepath.Join(dir, "in.model")
	os.WriteFile(modelFile, []byte("aggregate "+strings.Repeat("0", 64)+"\nstate "+c1.String()+"\nend\n"), 0o600)

	t.Run("learn", func(t *testing.T) {
		b := newBackend()
		sock := serveAgent(t, b)
		out, traj := filepath.Join(dir, "out.model"), filepath.Join(dir, "t.json")
		_, msg, code := vigilCLI(t, "run", "--socket", sock, "--no-capable", "--dialect", "tsem", "--pseudonym", "/etc/hostname", "--pseudonym", "/run/app.pid", "-o", out, "--trajectory", traj, "--", "true")
		if code != 0 || !strings.Contains(msg, `using the vigil agent at `+sock+` (pid 4242, tracepoint backend): namespace "run-7"`) {
			t.Fatalf("exit %d, stderr %q; want 0 and saying it uses the agent", code, msg)
		}
		if len(b.created) != 1 || b.created[0].Origin != "run" || b.created[0].Settings.Capable || !b.created[0].Settings.FailClosed {
			t.Errorf("create requests %+v; want one run namespace, capable off (--no-capable), the agent's fail_closed", b.created)
		}
		if s := b.created[0].Settings; s.Dialect != "tsem" || strings.Join(s.Pseudonyms, " ") != "/etc/hostname /run/app.pid" {
			t.Errorf("create request settings %+v; want dialect tsem and the two pseudonyms", s)
		}
		if len(b.enrolled) != 1 || len(b.synced) != 1 || b.synced[0] != b.enrolled[0] || len(b.ended) != 1 {
			t.Errorf("enrolled %v, synced %v, ended %v; want the stub enrolled, its exit synced, the namespace ended", b.enrolled, b.synced, b.ended)
		}
		if got, _ := os.ReadFile(out); !strings.Contains(string(got), "state "+c1.String()) {
			t.Errorf("-o wrote %q; want the agent's model", got)
		}
		if got, _ := os.ReadFile(traj); string(got) != string(b.points[0].Event)+"\n"+string(b.points[1].Event)+"\n" {
			t.Errorf("--trajectory wrote %q; want the agent's trajectory", got)
		}
	})
	t.Run("status and sealed summary", func(t *testing.T) {
		b := newBackend()
		sock := serveAgent(t, b)
		_, msg, code := vigilCLI(t, "run", "--agent", "always", "--socket", sock, "--name", "build", "--model", modelFile, "--", "false")
		if code != 1 || b.loaded == nil || len(b.ended) != 1 || b.created[0].Name != "build" {
			t.Errorf("exit %d (loaded %q, ended %v); want false's 1, the model loaded, the namespace ended\n%s", code, b.loaded, b.ended, msg)
		}
		if !strings.Contains(msg, "1 events outside the model") || !strings.Contains(msg, c2.String()+" x2") {
			t.Errorf("stderr %q; want the forensics summarised", msg)
		}
		if s := b.created[0].Settings; s.Dialect != "tsem" || len(s.Pseudonyms) != 0 {
			t.Errorf("create request settings %+v; want the model file's dialect (tsem: it has no #dialect line), no pseudonyms", s)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		b := newBackend()
		sock := serveAgent(t, b)
		plain := serveAgent(t, &nsBackend{})
		tests := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{"standalone flag with an agent", []string{"--socket", sock, "--log", filepath.Join(dir, "x.log")}, 2, "--log is a standalone flag"},
			{"enforce on an observe-only agent", []string{"--socket", sock, "--model", modelFile, "--enforce"}, 1, "observes only"},
			{"agent without run support", []string{"--agent", "always", "--socket", plain}, 1, "not supported"},
			{"auto, agent without run support", []string{"--socket", plain}, 1, "not supported"},
			{"no agent", []string{"--agent", "always", "--socket", filepath.Join(dir, "none.sock")}, 1, "no vigil agent"},
			{"dialect other than the model's", []string{"--socket", sock, "--model", modelFile, "--dialect", "invariant"}, 2, "--dialect invariant: the model " + modelFile + " is of the tsem dialect"},
		}
		for _, tc := range tests {
			_, msg, code := vigilCLI(t, append(append([]string{"run"}, tc.args...), "--", "true")...)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("%s: exit %d %q; want %d and %q", tc.name, code, msg, tc.code, tc.msg)
			}
		}
		if len(b.created) != 0 {
			t.Errorf("refused runs created namespaces: %+v", b.created)
		}
	})
}
