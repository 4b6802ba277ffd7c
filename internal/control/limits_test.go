package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/httplimit"
)

// dial opens a raw connection to the control socket.
func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClosed reads c until the server closes it; it fails the test
// when that takes longer than 10 s (the timeouts under test are ~200 ms).
func readUntilClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for 10s; read so far: %q", b)
	}
	return b
}

// TestStalledClientsClosed: a client that sends part of a request and then
// nothing is closed by the server's timeouts, not kept for ever.
func TestStalledClientsClosed(t *testing.T) {
	limits := httplimit.Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}
	path := serve(t, &Server{Backend: newFakeRun(t), Authorize: allowAll, Log: quiet, Limits: limits})
	tests := []struct {
		name, send string
		reply      string // the reply before the close starts with it; empty: none
	}{
		{"nothing", "", ""},
		{"half a header", "GET /v1/namespaces HTTP/1.1\r\nHost: vigil\r\n", ""},
		{"declared body never sent", "POST /v1/namespaces HTTP/1.1\r\nHost: vigil\r\nContent-Length: 100\r\n\r\n{", "HTTP/1.1 400"},
		{"declared body on a GET", "GET /v1/namespaces HTTP/1.1\r\nHost: vigil\r\nContent-Length: 100\r\n\r\n", "HTTP/1.1 200"},
		{"idle after a request", "GET /v1/agent HTTP/1.1\r\nHost: vigil\r\n\r\n", "HTTP/1.1 200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, path)
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			got := readUntilClosed(t, c)
			if !strings.HasPrefix(string(got), tc.reply) {
				t.Errorf("reply %q; want it to start %q", got, tc.reply)
			}
		})
	}
}

// TestLargeHeader431: headers past MaxHeaderBytes (16 KiB by default) are
// refused with 431 before anything is read into a handler.
func TestLargeHeader431(t *testing.T) {
	path := serve(t, &Server{Backend: newFake(t), Authorize: allowAll, Log: quiet})
	for _, size := range []int{64 << 10, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := dial(t, path)
			go func() {
				// The server may answer and close before all is sent.
				fmt.Fprintf(c, "GET /v1/namespaces HTTP/1.1\r\nHost: vigil\r\nX-Pad: %s\r\n\r\n", strings.Repeat("a", size))
			}()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("read reply to a %d-byte header: %v", size, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a %d-byte header = %s; want 431", size, resp.Status)
			}
		})
	}
}

// TestBodyTooLarge413: a body over the bound, declared or sent, is a 413
// that says so; the Client maps it to ErrTooLarge.
func TestBodyTooLarge413(t *testing.T) {
	fake := newFakeRun(t)
	path := serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet, modelLimit: 2 << 20})
	c := NewClient(path)
	big := `{"name": "` + strings.Repeat("a", 2<<20) + `"}`
	tests := []struct {
		name, method, path string
		body               io.Reader
		length             int64 // -1: chunked, not declared
	}{
		{"declared", http.MethodPost, "/v1/namespaces", strings.NewReader(big), int64(len(big))},
		{"chunked", http.MethodPost, "/v1/namespaces", strings.NewReader(big), -1},
		{"task", http.MethodPost, "/v1/namespaces/containerd-abc/tasks", strings.NewReader(big), -1},
		{"model chunked", http.MethodPut, "/v1/namespaces/containerd-abc/model", io.MultiReader(strings.NewReader("aggregate "), io.LimitReader(zeros{}, 3<<20)), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://vigil"+tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "allowed") {
				t.Errorf("%s %s (%d bytes) = %s %s; want 413 saying what is allowed", tc.method, tc.path, tc.length, resp.Status, b)
			}
		})
	}
	// Declared and never sent: refused at once, without waiting for it.
	raw := dial(t, path)
	fmt.Fprintf(raw, "PUT /v1/namespaces/containerd-abc/model HTTP/1.1\r\nHost: vigil\r\nContent-Length: %d\r\n\r\n", 3<<20)
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(raw), nil); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT model declaring 3 MiB (2 MiB allowed) = %v, %v; want 413", resp, err)
	}
	if _, err := c.Create(context.Background(), CreateRequest{Name: strings.Repeat("a", 2<<20)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Create(2 MiB name) = %v; want ErrTooLarge", err)
	}
	for i := range 20 { // the reply may race the upload: it must win every time
		if err := c.Load(context.Background(), "containerd-abc", io.MultiReader(strings.NewReader("aggregate "), io.LimitReader(zeros{}, 3<<20))); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Load(3 MiB model, 2 MiB allowed) #%d = %v; want ErrTooLarge", i, err)
		}
		big := bytes.Repeat([]byte("aggregate 00\n"), 300000) // 3.9 MB, length declared
		if err := c.Load(context.Background(), "containerd-abc", bytes.NewReader(big)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Load(3.9 MB model, length declared) #%d = %v; want ErrTooLarge", i, err)
		}
	}
	if fake.calls != 0 || fake.loaded != nil {
		t.Errorf("the backend was called %d times, loaded %d models; want none", fake.calls, len(fake.loaded))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestConnectionCap: past MaxConns open connections, a request waits until
// one closes.
func TestConnectionCap(t *testing.T) {
	path := serve(t, &Server{Backend: newFake(t), Authorize: allowAll, Log: quiet, Limits: httplimit.Limits{MaxConns: 2}})
	c := NewClient(path)
	idle := []net.Conn{dial(t, path), dial(t, path)} // say nothing: each holds a slot
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.Namespaces(ctx); err == nil {
		t.Fatal("Namespaces() served while MaxConns (2) connections were open")
	}
	idle[0].Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Namespaces(ctx); err != nil {
		t.Fatalf("Namespaces() after a connection closed = %v", err)
	}
}

// TestSyncOutlastsTimeouts: the sync route waits longer than the read and
// write timeouts (a command's exit can take up to its timeout_ms).
func TestSyncOutlastsTimeouts(t *testing.T) {
	fake := newFakeRun(t)
	limits := httplimit.Limits{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet, Limits: limits}))
	ctx := context.Background()
	if err := c.AddTask(ctx, "containerd-abc", 77); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(700 * time.Millisecond)
		fake.exit(77)
	}()
	reply, err := c.Sync(ctx, "containerd-abc", 77, 30*time.Second)
	if err != nil || !reply.Exited {
		t.Errorf("Sync() waiting 700ms with 200ms timeouts = %+v, %v; want exited", reply, err)
	}
}

// TestStreamOutlastsWriteTimeout: a long trajectory or model reaches a
// client that reads slower than the write timeout, as long as it reads.
func TestStreamOutlastsWriteTimeout(t *testing.T) {
	fake := newFake(t)
	n := fake.ns["containerd-abc"]
	event := []byte(`{"event": {"type": "file_open"}, "pad": "` + strings.Repeat("x", 1000) + `"}`)
	n.trajectory = nil
	for range 4000 { // 4 MB: far more than the socket buffers
		n.trajectory = append(n.trajectory, Point{Coefficient: coef(t, "a1"), Count: 1, Event: event})
	}
	n.model = bytes.Repeat([]byte("state "+strings.Repeat("a", 64)+"\n"), 60000)
	limits := httplimit.Limits{WriteTimeout: 200 * time.Millisecond}
	c := NewClient(serve(t, &Server{Backend: fake, Authorize: allowAll, Log: quiet, Limits: limits}))
	tests := []struct {
		name string
		get  func(io.Writer) error
		want int
	}{
		{"trajectory", func(w io.Writer) error { return c.Trajectory(context.Background(), "containerd-abc", w) }, len(n.trajectory) * (len(event) + 1)},
		{"model", func(w io.Writer) error { return c.Model(context.Background(), "containerd-abc", w) }, len(n.model)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &slowWriter{pause: 300 * time.Millisecond}
			if err := tc.get(w); err != nil || w.n != tc.want {
				t.Errorf("%s read slowly = %d bytes, %v; want %d bytes", tc.name, w.n, err, tc.want)
			}
		})
	}
}

// slowWriter pauses before its first write and at every 2 MB.
type slowWriter struct {
	pause time.Duration
	n     int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.n == 0 || w.n/(2<<20) != (w.n+len(p))/(2<<20) {
		time.Sleep(w.pause)
	}
	w.n += len(p)
	return len(p), nil
}

// slowBackend seals and loads slowly, as a large model's allow set takes.
type slowBackend struct {
	*fakeBackend
	delay time.Duration
}

func (b slowBackend) Seal(name string) error {
	time.Sleep(b.delay)
	return b.fakeBackend.Seal(name)
}

func (b slowBackend) Load(name string, m []byte) error {
	time.Sleep(b.delay)
	return b.fakeBackend.Load(name, m)
}

// TestSlowChangesOutlastTimeouts: sealing and loading get their own
// allowance beyond the write timeout.
func TestSlowChangesOutlastTimeouts(t *testing.T) {
	b := slowBackend{fakeBackend: newFake(t), delay: 600 * time.Millisecond}
	limits := httplimit.Limits{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	c := NewClient(serve(t, &Server{Backend: b, Authorize: allowAll, Log: quiet, Limits: limits}))
	ctx := context.Background()
	if err := c.Load(ctx, "containerd-abc", strings.NewReader("aggregate 00\nend\n")); err != nil {
		t.Errorf("Load() taking 600ms with 200ms timeouts = %v", err)
	}
	if info, err := c.Seal(ctx, "containerd-abc"); err != nil || info.Mode != ModeSealed {
		t.Errorf("Seal() taking 600ms with 200ms timeouts = %+v, %v; want sealed", info.Mode, err)
	}
}
