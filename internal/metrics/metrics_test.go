package metrics

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/vigil-tsem/vigil/internal/httplimit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// populated returns metrics with a fixed set of observations, two
// namespaces' worth.
func populated() *Metrics {
	m := New(Options{})
	m.CountRepeatErrors(func() uint64 { return 2 })
	m.CountExport(func() ExportCounts { return ExportCounts{Written: 120, Dropped: 7, Failed: 3, WriteErrors: 1} })
	for i := 0; i < 5; i++ {
		m.Event("containerd-1a2b", "file_open")
	}
	m.EventCounter("containerd-1a2b", "bprm_committed_creds").Add(2)
	m.Event("run-7", "socket_connect")
	m.RecordsLost("containerd-1a2b", "ringbuf_full", 3)
	m.Forensics("run-7")
	m.Denial("run-7")
	m.SetPoints("containerd-1a2b", 42)
	m.SetPoints("run-7", 9)
	m.SetNamespaces(2)
	m.RegisterExtends("software", 1, 30*time.Microsecond)
	m.RegisterExtends("software", 2, 2*time.Millisecond)
	m.CountLogAppendErrors(func() uint64 { return 4 })
	m.PointsUnrecorded("containerd-1a2b", 12)
	m.SetLogWaiting(7)
	m.PipelineLatency(5 * time.Microsecond)
	m.PipelineLatency(300 * time.Microsecond)
	m.DigestCache(true)
	m.DigestCache(true)
	m.DigestCache(false)
	m.Unhashable("containerd-1a2b")
	m.Unhashable("run-7")
	m.SetRingFill(0.25)
	m.SetBackend("lsm")
	m.SetBackend("tracepoint")
	return m
}

func exposition(t *testing.T, m *Metrics) []byte {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("exposition differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestExpositionGolden(t *testing.T) {
	golden(t, "exposition.txt", exposition(t, populated()))
}

func TestRemoveNamespace(t *testing.T) {
	m := populated()
	m.RemoveNamespace("containerd-1a2b")
	got := string(exposition(t, m))
	if strings.Contains(got, "containerd-1a2b") {
		t.Errorf("exposition after RemoveNamespace(containerd-1a2b) still names it:\n%s", got)
	}
	if !strings.Contains(got, `vigil_model_points{namespace="run-7"} 9`) {
		t.Errorf("RemoveNamespace removed another namespace's series:\n%s", got)
	}
	golden(t, "exposition_removed.txt", []byte(got))
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *Metrics
	}{
		{"vigil metrics", populated()},
		{"with runtime collectors", New(Options{Runtime: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems, err := testutil.GatherAndLint(tc.m.Registry())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}

// TestPromtool runs `promtool check metrics` on the exposition. CI installs
// promtool (Debian package prometheus); elsewhere the test skips without it.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found and CI=true: %v", err)
		}
		t.Skip("skipping: promtool not installed (apt-get install prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, populated()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestServe(t *testing.T) {
	if _, err := Listen(":9476"); err == nil || !strings.Contains(err.Error(), "give a host") {
		t.Errorf("Listen(:9476) = %v; want it refused for naming no host", err)
	}
	if _, err := Listen("nonsense"); err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Errorf("Listen(nonsense) = %v; want an error naming the address", err)
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Skipf("skipping: no loopback: %v", err)
	}
	m := populated()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `vigil_events_total{namespace="containerd-1a2b",type="file_open"} 5`) {
		t.Errorf("GET /metrics = %s\n%s\nwant 200 with the event counter", resp.Status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve() = %v; want nil after cancel", err)
	}
}

// TestServeLimits: /metrics has the control socket's header and read
// timeouts and header bound.
func TestServeLimits(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Skipf("skipping: no loopback: %v", err)
	}
	m := New(Options{HTTP: httplimit.Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	tests := []struct {
		name, send, reply string
	}{
		{"nothing", "", ""},
		{"half a header", "GET /metrics HTTP/1.1\r\nHost: x\r\n", ""},
		{"declared body never sent", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", "HTTP/1.1 200"},
		{"64 KiB header", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", "HTTP/1.1 431"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go io.WriteString(c, tc.send)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept the connection open for 10s; read %q", got)
			}
			if !strings.HasPrefix(string(got), tc.reply) {
				t.Errorf("reply %.40q; want it to start %q", got, tc.reply)
			}
		})
	}
}

func BenchmarkEventCounter(b *testing.B) {
	m := New(Options{})
	c := m.EventCounter("containerd-1a2b", "file_open")
	for b.Loop() {
		c.Inc()
	}
}

func BenchmarkEventLookup(b *testing.B) {
	m := New(Options{})
	for b.Loop() {
		m.Event("containerd-1a2b", "file_open")
	}
}

// TestRepeats: the kernel's repeat counts add to the events and, for
// forensics, to the forensics counter.
func TestRepeats(t *testing.T) {
	m := New(Options{})
	m.Event("run-1", "file_open")
	m.Repeats("run-1", "file_open", 41, false)
	m.Forensics("run-1")
	m.Repeats("run-1", "file_open", 9, true)
	if got := testutil.ToFloat64(m.events.WithLabelValues("run-1", "file_open")); got != 51 {
		t.Errorf("events_total = %v; want 51", got)
	}
	if got := testutil.ToFloat64(m.forensics.WithLabelValues("run-1")); got != 10 {
		t.Errorf("forensics_events_total = %v; want 10", got)
	}
}
