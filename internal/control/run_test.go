package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRun is a RunBackend over fakeBackend: run namespaces are fakeNS
// entries; it records what it was asked.
type fakeRun struct {
	*fakeBackend

	mu      sync.Mutex
	created []CreateRequest
	tasks   []TaskRequest
	exited  map[int]chan struct{} // by pid
	calls   int
}

func newFakeRun(t *testing.T) *fakeRun {
	return &fakeRun{fakeBackend: newFake(t), exited: make(map[int]chan struct{})}
}

func (f *fakeRun) count() {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
}

func (f *fakeRun) Agent() AgentInfo {
	return AgentInfo{PID: 42, Backend: "tracepoint", Defaults: Settings{HashAlgorithm: "sha256", Capable: true, FailClosed: true}}
}

func (f *fakeRun) Create(req CreateRequest) (NamespaceInfo, error) {
	f.count()
	f.mu.Lock()
	f.created = append(f.created, req)
	f.mu.Unlock()
	f.fakeBackend.mu.Lock()
	defer f.fakeBackend.mu.Unlock()
	name := req.Name
	if name == "" {
		name = fmt.Sprintf("run-%d", len(f.ns)+1)
	}
	if _, ok := f.ns[name]; ok {
		return NamespaceInfo{}, fmt.Errorf("create namespace %q: the name is in use: %w", name, ErrConflict)
	}
	info := NamespaceInfo{Name: name, Context: uint64(len(f.ns) + 1), Origin: req.Origin, Mode: ModeLearning, Settings: req.Settings}
	f.ns[name] = &fakeNS{info: info}
	return info, nil
}

func (f *fakeRun) AddTask(name string, req TaskRequest) error {
	f.count()
	if _, err := f.Namespace(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks = append(f.tasks, req)
	f.exited[req.PID] = make(chan struct{})
	return nil
}

// exit plays the reader processing pid's exit.
func (f *fakeRun) exit(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.exited[pid])
}

func (f *fakeRun) Sync(ctx context.Context, name string, pid int) (bool, error) {
	f.count()
	if _, err := f.Namespace(name); err != nil {
		return false, err
	}
	f.mu.Lock()
	ch, ok := f.exited[pid]
	f.mu.Unlock()
	if !ok {
		return false, fmt.Errorf("pid %d was not enrolled: %w", pid, ErrInvalid)
	}
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return false, nil
	}
}

func (f *fakeRun) End(name string) (NamespaceInfo, error) {
	f.count()
	f.fakeBackend.mu.Lock()
	defer f.fakeBackend.mu.Unlock()
	n, err := f.get(name)
	if err != nil {
		return NamespaceInfo{}, err
	}
	n.info.Ended = true
	return n.info, nil
}

func TestRunClientServer(t *testing.T) {
	fake := newFakeRun(t)
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet}))
	ctx := context.Background()

	agent, err := c.Agent(ctx)
	if err != nil || agent.PID != 42 || agent.Backend != "tracepoint" || !agent.Defaults.FailClosed {
		t.Fatalf("Agent() = %+v, %v; want the fake agent", agent, err)
	}
	info, err := c.Create(ctx, CreateRequest{Name: "build", Origin: OriginRun, Settings: Settings{HashAlgorithm: "sha256", Enforce: true}})
	if err != nil || info.Name != "build" || info.Origin != OriginRun || !info.Settings.Enforce || info.Settings.Capable {
		t.Fatalf("Create(build) = %+v, %v; want a run namespace with the settings sent", info, err)
	}
	if _, err := c.Create(ctx, CreateRequest{Name: "build"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Create(build) again = %v; want ErrConflict saying the name is in use", err)
	}
	if got := fake.created[0]; got.Owner.PID != int32(os.Getpid()) || got.Owner.UID != uint32(os.Geteuid()) {
		t.Errorf("owner of the namespace = %+v; want this process (pid %d), from the peer credentials", got.Owner, os.Getpid())
	}

	if err := c.AddTask(ctx, "build", 1234); err != nil {
		t.Fatalf("AddTask() = %v", err)
	}
	if got := fake.tasks[0]; got.PID != 1234 || got.Caller.PID != int32(os.Getpid()) {
		t.Errorf("task request = %+v; want pid 1234 from this process", got)
	}

	// The exit not processed yet: the sync times out, not an error.
	start := time.Now()
	reply, err := c.Sync(ctx, "build", 1234, 100*time.Millisecond)
	if err != nil || reply.Exited || time.Since(start) < 100*time.Millisecond {
		t.Errorf("Sync(before the exit) = %+v, %v after %v; want not exited after the 100ms timeout", reply, err, time.Since(start))
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fake.exit(1234)
	}()
	reply, err = c.Sync(ctx, "build", 1234, 5*time.Second)
	if err != nil || !reply.Exited || reply.Namespace.Name != "build" {
		t.Errorf("Sync() = %+v, %v; want exited with the namespace", reply, err)
	}
	if _, err := c.Sync(ctx, "build", 999, time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("Sync(pid not enrolled) = %v; want ErrInvalid", err)
	}

	end, err := c.End(ctx, "build")
	if err != nil || !end.Ended || end.Name != "build" {
		t.Errorf("End() = %+v, %v; want the namespace, ended", end, err)
	}

	missing := []struct {
		name string
		call func() error
	}{
		{"AddTask", func() error { return c.AddTask(ctx, "nope", 1) }},
		{"Sync", func() error { _, err := c.Sync(ctx, "nope", 1, time.Second); return err }},
		{"End", func() error { _, err := c.End(ctx, "nope"); return err }},
	}
	for _, tc := range missing {
		if err := tc.call(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
			t.Errorf("%s(nope) = %v; want ErrNotFound naming the namespace", tc.name, err)
		}
	}
}

// TestCreateDefaults: settings absent from the body keep the agent's
// defaults; those present win.
func TestCreateDefaults(t *testing.T) {
	fake := newFakeRun(t)
	path := serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet})
	c := NewClient(path)
	code, body := rawRequest(t, c, http.MethodPost, "/v1/namespaces", `{"settings": {"capable": false}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/namespaces = %d %s; want 201", code, body)
	}
	got := fake.created[0]
	want := Settings{HashAlgorithm: "sha256", Capable: false, FailClosed: true}
	if !reflect.DeepEqual(got.Settings, want) || got.Origin != OriginRun || got.Name != "" {
		t.Errorf("create request = %+v; want origin run, no name, settings %+v (defaults but capable off)", got, want)
	}
}

// rawRequest sends body to path over c's socket and returns the status
// and the reply body (the error message of an error reply).
func rawRequest(t *testing.T, c *Client, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://vigil"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		return resp.StatusCode, eb.Error
	}
	return resp.StatusCode, string(b)
}

func TestRunBadRequests(t *testing.T) {
	fake := newFakeRun(t)
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet}))
	const ns = "/v1/namespaces/containerd-abc"
	tests := []struct {
		name, path, body string
		want             string // in the error message
	}{
		{"name not a string", "/v1/namespaces", `{"name": 5}`, "field name: got a JSON number, want a string"},
		{"nested type", "/v1/namespaces", `{"settings": {"capable": "yes"}}`, "field settings.capable: got a JSON string, want a boolean"},
		{"unknown field", "/v1/namespaces", `{"nmae": "x"}`, `unknown field "nmae"`},
		{"unknown nested field", "/v1/namespaces", `{"settings": {"enforcing": true}}`, `unknown field "enforcing"`},
		{"bad origin", "/v1/namespaces", `{"origin": "container"}`, "field origin"},
		{"bad name", "/v1/namespaces", `{"name": "a/b"}`, "field name"},
		{"long name", "/v1/namespaces", `{"name": "` + strings.Repeat("a", 129) + `"}`, "field name"},
		{"not an object", "/v1/namespaces", `[1]`, "want an object"},
		{"truncated", "/v1/namespaces", `{"name": "x"`, "request body"},
		{"syntax", "/v1/namespaces", `{"name" "x"}`, "byte 9"},
		{"empty", "/v1/namespaces", ``, "empty"},
		{"trailing", "/v1/namespaces", `{} {}`, "trailing data"},
		{"pid a string", ns + "/tasks", `{"pid": "12"}`, "field pid: got a JSON string, want a number"},
		{"pid zero", ns + "/tasks", `{"pid": 0}`, "field pid"},
		{"pid missing", ns + "/tasks", `{}`, "field pid"},
		{"pid fraction", ns + "/tasks", `{"pid": 1.5}`, "field pid"},
		{"sync pid negative", ns + "/sync", `{"pid": -3}`, "field pid"},
		{"sync timeout", ns + "/sync", `{"pid": 3, "timeout_ms": -1}`, "field timeout_ms"},
		{"sync timeout too long", ns + "/sync", `{"pid": 3, "timeout_ms": 3600000}`, "field timeout_ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawRequest(t, c, http.MethodPost, tc.path, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("POST %s %s = %d %s; want 400 saying %q", tc.path, tc.body, code, body, tc.want)
			}
		})
	}
	if fake.calls != 0 {
		t.Errorf("the backend was called %d times for bad requests; want 0", fake.calls)
	}
}

// TestRunRoutesRefuseNonRoot checks every route `vigil run` uses refuses a
// peer that is not root before it reaches the backend.
func TestRunRoutesRefuseNonRoot(t *testing.T) {
	fake := newFakeRun(t)
	h := (&Server{Backend: fake, Log: quiet}).Handler() // RootOnly
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/v1/agent", ""},
		{http.MethodPost, "/v1/namespaces", `{"name": "x"}`},
		{http.MethodPost, "/v1/namespaces/containerd-abc/tasks", `{"pid": 1}`},
		{http.MethodPost, "/v1/namespaces/containerd-abc/sync", `{"pid": 1}`},
		{http.MethodDelete, "/v1/namespaces/containerd-abc", ""},
	}
	for _, peer := range []Peer{{PID: 10, UID: 1000}, {PID: 10, UID: 65534, GID: 0}} {
		for _, r := range routes {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
			req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "is not root") {
				t.Errorf("%s %s as uid %d = %d %s; want 403 saying the peer is not root", r.method, r.path, peer.UID, rec.Code, rec.Body)
			}
		}
	}
	// The same handler serves root.
	req := httptest.NewRequest(http.MethodPost, "/v1/namespaces", strings.NewReader(`{"name": "x"}`))
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{PID: 10, UID: 0}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Errorf("POST /v1/namespaces as root = %d %s; want 201", rec.Code, rec.Body)
	}
	if fake.calls != 1 {
		t.Errorf("backend calls = %d; want 1 (root's create only)", fake.calls)
	}
}

// TestRunUnsupported: an agent whose backend cannot create namespaces says
// so, and the client maps it to ErrUnsupported.
func TestRunUnsupported(t *testing.T) {
	c := NewClient(serve(t, &Server{Backend: newFake(t), Authorize: allowAll, Log: quiet}))
	ctx := context.Background()
	if _, err := c.Agent(ctx); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Agent() = %v; want ErrUnsupported", err)
	}
	if _, err := c.Create(ctx, CreateRequest{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "vigil run") {
		t.Errorf("Create() = %v; want ErrUnsupported naming vigil run", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"run-1", true},
		{"build.v2_x", true},
		{"A", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"-x", false},
		{".hidden", false},
		{"a b", false},
		{"a/b", false},
		{"ä", false},
		{"a\n", false},
	}
	for _, tc := range tests {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckName(%q) = %v; want ok %v (errors wrap ErrInvalid)", tc.name, err, tc.ok)
		}
	}
}

// FuzzCreateBody: whatever the body, creating answers 201 or 400, never
// 500 or a panic, and a 400 says what was wrong with the body.
func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"name": "run-x", "origin": "run", "settings": {"capable": true, "enforce": false}}`,
		`{"name": 5}`, `{"settings": {"capable": "yes"}}`, `{"x": 1}`, `[`, ``, `{} {}`, `null`, `{"name": "a\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	fake := &fakeRun{fakeBackend: &fakeBackend{ns: map[string]*fakeNS{}}, exited: map[int]chan struct{}{}}
	h := (&Server{Backend: fake, Authorize: allowAll, Log: quiet}).Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/namespaces", strings.NewReader(string(body)))
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated, http.StatusConflict:
		case http.StatusBadRequest:
			if !strings.Contains(rec.Body.String(), "request body") && !strings.Contains(rec.Body.String(), "field") {
				t.Errorf("400 without saying what: %s", rec.Body)
			}
		default:
			t.Errorf("POST /v1/namespaces %q = %d %s; want 201, 409 or 400", body, rec.Code, rec.Body)
		}
	})
}
