package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// fakeBackend is a Backend over a map, with the transitions a real one has.
type fakeBackend struct {
	mu     sync.Mutex
	ns     map[string]*fakeNS
	loaded map[string][]byte
}

type fakeNS struct {
	info       NamespaceInfo
	trajectory []Point
	forensics  []Point
	model      []byte
}

func (f *fakeBackend) get(name string) (*fakeNS, error) {
	n, ok := f.ns[name]
	if !ok {
		return nil, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	return n, nil
}

func (f *fakeBackend) Namespaces() []NamespaceInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []NamespaceInfo
	for _, n := range f.ns {
		out = append(out, n.info)
	}
	return out
}

func (f *fakeBackend) Namespace(name string) (NamespaceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return NamespaceInfo{}, err
	}
	return n.info, nil
}

func (f *fakeBackend) Seal(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return err
	}
	n.info.Mode = ModeSealed
	return nil
}

func (f *fakeBackend) Enforce(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return err
	}
	if n.info.Mode == ModeLearning {
		return fmt.Errorf("enforce %s: seal it first: %w", name, ErrConflict)
	}
	n.info.Mode = ModeEnforcing
	return nil
}

func (f *fakeBackend) Trajectory(name string) ([]Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return n.trajectory, nil
}

func (f *fakeBackend) Forensics(name string) ([]Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return n.forensics, nil
}

func (f *fakeBackend) Model(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return n.model, nil
}

func (f *fakeBackend) Load(name string, m []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(name); err != nil {
		return err
	}
	if !bytes.HasPrefix(m, []byte("aggregate ")) {
		return fmt.Errorf("load model: line 1: want aggregate: %w", ErrInvalid)
	}
	if f.loaded == nil {
		f.loaded = make(map[string][]byte)
	}
	f.loaded[name] = m
	return nil
}

func coef(t *testing.T, s string) model.Coefficient {
	t.Helper()
	c, err := model.ParseCoefficient(strings.Repeat(s, 64/len(s)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Event descriptions are passed through byte for byte, including what the
// kernel writes unescaped (a raw tab, bytes that are not UTF-8).
const (
	event1 = `{"event": {"context": "7", "number": "1", "process": "sh", "type": "file_open"}, "COE": {"uid": "0"}, "file_open": {"file": {"path": {"pathname": "/bin/a` + "\t\xff" + `"}}}}`
	event2 = `{"event": {"context": "7", "number": "2", "process": "sh", "type": "capable"}, "COE": {"uid": "0"}, "capable": {"cap": "8", "opts": "0"}}`
)

func newFake(t *testing.T) *fakeBackend {
	return &fakeBackend{ns: map[string]*fakeNS{
		"containerd-abc": {
			info: NamespaceInfo{Name: "containerd-abc", Context: 7, Origin: "container", Mode: ModeLearning,
				Container: &Container{Runtime: "containerd", ID: "abc"}, Points: 2, Events: 5,
				Settings: Settings{HashAlgorithm: "sha256", Capable: true}},
			trajectory: []Point{{coef(t, "a1"), 3, []byte(event1)}, {coef(t, "b2"), 2, []byte(event2)}},
			forensics:  []Point{{coef(t, "c3"), 1, []byte(event2)}},
			model:      []byte("aggregate " + strings.Repeat("0", 64) + "\nstate " + strings.Repeat("a1", 32) + "\nend\n"),
		},
	}}
}

// serve starts a Server on a socket in a temporary directory.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vigil.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v; want nil after cancel", err)
		}
	})
	return path
}

func allowAll(Peer) error { return nil }

var quiet = slog.New(slog.DiscardHandler)

func TestClientServer(t *testing.T) {
	fake := newFake(t)
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet}))
	ctx := context.Background()
	const ns = "containerd-abc"

	list, err := c.Namespaces(ctx)
	if err != nil || len(list) != 1 || list[0].Name != ns || list[0].Container.Runtime != "containerd" {
		t.Fatalf("Namespaces() = %+v, %v; want the one fake namespace", list, err)
	}
	info, err := c.Namespace(ctx, ns)
	if err != nil || info.Context != 7 || info.Mode != ModeLearning || info.Settings.HashAlgorithm != "sha256" {
		t.Fatalf("Namespace(%q) = %+v, %v", ns, info, err)
	}
	if _, err := c.Enforce(ctx, ns); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "seal it first") {
		t.Errorf("Enforce(learning) = %v; want ErrConflict with the backend's message", err)
	}
	if info, err := c.Seal(ctx, ns); err != nil || info.Mode != ModeSealed {
		t.Errorf("Seal() = %v, %v; want mode sealed", info.Mode, err)
	}
	if info, err := c.Enforce(ctx, ns); err != nil || info.Mode != ModeEnforcing {
		t.Errorf("Enforce() = %v, %v; want mode enforcing", info.Mode, err)
	}

	var buf bytes.Buffer
	if err := c.Trajectory(ctx, ns, &buf); err != nil || buf.String() != event1+"\n"+event2+"\n" {
		t.Errorf("Trajectory() = %q, %v; want the two event descriptions byte for byte", buf.String(), err)
	}
	buf.Reset()
	if err := c.Forensics(ctx, ns, &buf); err != nil || buf.String() != event2+"\n" {
		t.Errorf("Forensics() = %q, %v; want %q", buf.String(), err, event2+"\n")
	}
	pts, err := c.TrajectoryPoints(ctx, ns)
	if err != nil || len(pts) != 2 || pts[0].Coefficient != coef(t, "a1") || pts[0].Count != 3 || pts[1].Count != 2 || pts[0].Event != nil {
		t.Errorf("TrajectoryPoints() = %+v, %v", pts, err)
	}
	pts, err = c.ForensicsPoints(ctx, ns)
	if err != nil || len(pts) != 1 || pts[0].Coefficient != coef(t, "c3") || pts[0].Count != 1 {
		t.Errorf("ForensicsPoints() = %+v, %v", pts, err)
	}
	buf.Reset()
	if err := c.Model(ctx, ns, &buf); err != nil || buf.String() != string(fake.ns[ns].model) {
		t.Errorf("Model() = %q, %v; want %q", buf.String(), err, fake.ns[ns].model)
	}
	m := "aggregate " + strings.Repeat("0", 64) + "\nseal\nend\n"
	if err := c.Load(ctx, ns, strings.NewReader(m)); err != nil || string(fake.loaded[ns]) != m {
		t.Errorf("Load() = %v, loaded %q; want nil, %q", err, fake.loaded[ns], m)
	}
	if err := c.Load(ctx, ns, strings.NewReader("garbage\n")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Load(garbage) = %v; want ErrInvalid naming the line", err)
	}

	missing := []struct {
		name string
		call func() error
	}{
		{"Namespace", func() error { _, err := c.Namespace(ctx, "nope"); return err }},
		{"Seal", func() error { _, err := c.Seal(ctx, "nope"); return err }},
		{"Enforce", func() error { _, err := c.Enforce(ctx, "nope"); return err }},
		{"Trajectory", func() error { return c.Trajectory(ctx, "nope", &buf) }},
		{"TrajectoryPoints", func() error { _, err := c.TrajectoryPoints(ctx, "nope"); return err }},
		{"Forensics", func() error { return c.Forensics(ctx, "nope", &buf) }},
		{"ForensicsPoints", func() error { _, err := c.ForensicsPoints(ctx, "nope"); return err }},
		{"Model", func() error { return c.Model(ctx, "nope", &buf) }},
		{"Load", func() error { return c.Load(ctx, "nope", strings.NewReader(m)) }},
	}
	for _, tc := range missing {
		t.Run("missing/"+tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
				t.Errorf("%s(nope) = %v; want ErrNotFound naming the namespace", tc.name, err)
			}
		})
	}
}

func TestPeerCredentials(t *testing.T) {
	var mu sync.Mutex
	var seen []Peer
	record := func(check func(Peer) error) func(Peer) error {
		return func(p Peer) error {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
			return check(p)
		}
	}
	tests := []struct {
		name    string
		auth    func(Peer) error
		allowed bool
	}{
		// The real check on the real credentials: this test process.
		{"root only, real uid", record(RootOnly), os.Geteuid() == 0},
		// The same check made to see a non-root peer.
		{"root only, non-root peer", record(func(p Peer) error { p.UID = 1000; return RootOnly(p) }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(serve(t, &Server{Backend: newFake(t), Authorize: tc.auth, Log: quiet}))
			_, err := c.Namespaces(context.Background())
			if tc.allowed {
				if err != nil {
					t.Fatalf("Namespaces() = %v; want allowed", err)
				}
				return
			}
			if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "is not root") {
				t.Fatalf("Namespaces() = %v; want ErrPermission saying the peer is not root", err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		if p.UID != uint32(os.Geteuid()) || p.PID != int32(os.Getpid()) {
			t.Errorf("peer = %+v; want uid %d pid %d (this process)", p, os.Geteuid(), os.Getpid())
		}
	}
	if len(seen) != 2 {
		t.Errorf("Authorize called %d times; want 2", len(seen))
	}
}

func TestHandlerWithoutPeerRefuses(t *testing.T) {
	// A handler mounted somewhere without Serve's peer lookup must not
	// serve anyone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("skipping: no loopback TCP: %v", err)
	}
	s := &Server{Backend: newFake(t), Authorize: allowAll, Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, l)
	resp, err := http.Get("http://" + l.Addr().String() + "/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/namespaces over TCP = %s; want 403 (no peer credentials)", resp.Status)
	}
}

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vigil")
	path := filepath.Join(dir, "vigil.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.perm {
			t.Errorf("mode of %s = %v; want %v", f.path, fi.Mode().Perm(), f.perm)
		}
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("Listen(live socket) = %v; want an error saying another agent serves it", err)
	}
	// A socket left behind by a dead agent is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(stale socket) = %v; want it replaced", err)
	}
	l2.Close()

	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen(regular file) = %v; want an error saying it is not a socket", err)
	}
}

func TestNoAgent(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "absent.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Namespaces(ctx); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "absent.sock") {
		t.Errorf("Namespaces() = %v; want ErrNoAgent naming the socket", err)
	}
}

func TestNamePrefix(t *testing.T) {
	fake := newFake(t)
	other := *fake.ns["containerd-abc"]
	other.info.Name = "containerd-abd"
	fake.ns["containerd-abd"] = &other
	fake.ns["run-1"] = &fakeNS{info: NamespaceInfo{Name: "run-1"}}
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet}))
	ctx := context.Background()
	tests := []struct {
		arg     string
		want    string
		wantErr error
	}{
		{"containerd-abc", "containerd-abc", nil},
		{"containerd-abd", "containerd-abd", nil},
		{"run", "run-1", nil},
		{"run-1", "run-1", nil},
		{"containerd-ab", "", ErrInvalid},
		{"docker", "", ErrNotFound},
	}
	for _, tc := range tests {
		info, err := c.Namespace(ctx, tc.arg)
		if !errors.Is(err, tc.wantErr) || info.Name != tc.want {
			t.Errorf("Namespace(%q) = %q, %v; want %q, %v", tc.arg, info.Name, err, tc.want, tc.wantErr)
		}
	}
	if _, err := c.Seal(ctx, "containerd-ab"); err == nil || !strings.Contains(err.Error(), "containerd-abc, containerd-abd") {
		t.Errorf("Seal(ambiguous) = %v; want an error listing both namespaces", err)
	}
	if info, err := c.Seal(ctx, "run"); err != nil || info.Name != "run-1" || fake.ns["run-1"].info.Mode != ModeSealed {
		t.Errorf("Seal(run) = %+v, %v; want run-1 sealed", info, err)
	}
}
