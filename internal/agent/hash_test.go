package agent

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// serveTable serves the table's control API on a socket in a temporary
// directory, to any peer.
func serveTable(t *testing.T, tab *table) *control.Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.sock")
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &control.Server{Backend: tab, Authorize: func(control.Peer) error { return nil }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return control.NewClient(path)
}

// TestHashNamespace creates a SHA-384 run namespace through the control
// API of a SHA-256 agent and checks that it models with SHA-384: 96-digit
// task ids in its descriptions, coefficients, measurement and state, a
// model file that says so, and a log the verifier replays with SHA-384.
func TestHashNamespace(t *testing.T) {
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha256", Capable: true}, "")
	c := serveTable(t, f.tab)
	ctx := context.Background()

	info, err := c.Create(ctx, control.CreateRequest{Name: "wide", Origin: control.OriginRun, Settings: control.Settings{HashAlgorithm: "sha384", Capable: true}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Settings.HashAlgorithm != "sha384" || len(info.Measurement) != 96 || len(info.State) != 96 {
		t.Fatalf("Create(sha384) = %+v; want hash sha384 and 96-digit measurement and state", info)
	}
	if _, err := c.Create(ctx, control.CreateRequest{Name: "bad", Settings: control.Settings{HashAlgorithm: "sha1"}}); !errors.Is(err, control.ErrInvalid) {
		t.Errorf("Create(sha1) = %v; want ErrInvalid", err)
	}
	id := info.Context

	// An exec of the namespace's root, then a capable event of the
	// exec'd task.
	disp := namespace.NewDispatcher(f.tab.reg, nil)
	exe := &bpf.Exec{Header: bpf.Header{Type: bpf.RecExec, Flags: bpf.FlagObserved, NS: id, PID: 1, TGID: 1, TTD: 11, PTTD: 0}, PrevTTD: 10}
	copy(exe.Comm[:], "sh")
	capable := &bpf.Capable{Header: bpf.Header{Type: bpf.RecCapable, NS: id, PID: 1, TGID: 1, TTD: 11, PTTD: 0}, Cap: 21}
	copy(capable.Comm[:], "sh")
	for _, r := range []bpf.Record{exe, capable} {
		if err := disp.Dispatch(r); err != nil {
			t.Fatal(err)
		}
	}

	pts, err := c.TrajectoryPoints(ctx, "wide")
	if err != nil || len(pts) != 2 {
		t.Fatalf("TrajectoryPoints = %d points, %v; want 2", len(pts), err)
	}
	for _, p := range pts {
		if s := p.Coefficient.String(); len(s) != 96 {
			t.Errorf("coefficient %s has %d hex digits; want 96", s, len(s))
		}
	}
	var traj bytes.Buffer
	if err := c.Trajectory(ctx, "wide", &traj); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(traj.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"task_id": "`+strings.Repeat("0", 96)+`"`) {
		t.Fatalf("trajectory:\n%s\nwant the exec's open by the root task (96 zero digits)", traj.String())
	}
	// The capable event's task id is the SHA-384 task id of the exec:
	// task ids are computed with the namespace's hash.
	n, _ := f.tab.reg.Lookup("wide")
	wantTask := f.tab.reg.Tasks().TaskID(11)
	if wantTask.Len() != 48 || !strings.Contains(lines[1], `"task_id": "`+wantTask.String()+`"`) {
		t.Errorf("capable event %s; want task id %s (48 bytes)", lines[1], wantTask)
	}
	// The capable coefficient, independently: H("capable" ‖ p_task_id ‖
	// task_id ‖ H(COE) ‖ H(u32 cap ‖ u32 opts)) with SHA-384.
	h := func(parts ...[]byte) []byte {
		w := sha512.New384()
		for _, p := range parts {
			w.Write(p)
		}
		return w.Sum(nil)
	}
	coe := make([]byte, 40)
	cell := []byte{21, 0, 0, 0, 0, 0, 0, 0}
	want := h([]byte("capable"), make([]byte, 48), wantTask.Bytes(), h(coe), h(cell))
	if got := pts[1].Coefficient; got.String() != hex.EncodeToString(want) {
		t.Errorf("capable coefficient = %s; want %x", got, want)
	}

	var mf bytes.Buffer
	if err := c.Model(ctx, "wide", &mf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mf.String(), "#hash sha384\n#dialect invariant\naggregate "+strings.Repeat("0", 96)+"\n") {
		t.Errorf("model file starts %q; want the hash and dialect lines and a 96-digit aggregate", mf.String()[:60])
	}
	// A SHA-256 model does not load into it.
	sha256Model := "aggregate " + strings.Repeat("0", 64) + "\nstate " + strings.Repeat("ab", 32) + "\nend\n"
	if err := c.Load(ctx, "wide", strings.NewReader(sha256Model)); !errors.Is(err, control.ErrInvalid) || !strings.Contains(err.Error(), "sha384") {
		t.Errorf("Load(sha256 model into sha384 namespace) = %v; want ErrInvalid naming sha384", err)
	}
	if n.Hash() != model.SHA384 {
		t.Errorf("namespace hash = %s; want sha384", n.Hash())
	}

	rep := f.verify(t)
	if len(rep.Namespaces) != 1 || rep.Namespaces[0].Hash != model.SHA384 || rep.Namespaces[0].Points != 2 ||
		rep.Namespaces[0].Measurement != n.Model().Measurement() {
		t.Errorf("verified log: %+v; want one sha384 namespace of 2 points with the model's measurement", rep.Namespaces)
	}
}

// TestHashContainerDefault: the config's hash is the default of container
// namespaces, and a model file of another hash is refused naming the file
// and line.
func TestHashContainerDefault(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, false, control.Settings{HashAlgorithm: "sha512", Capable: true}, dir)
	st, err := f.tab.startContainer(testContainer(1), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if st.ns.Hash() != model.SHA512 || st.settings.HashAlgorithm != "sha512" {
		t.Errorf("container namespace hash %s, settings %q; want sha512", st.ns.Hash(), st.settings.HashAlgorithm)
	}
	if m := st.ns.Model().Measurement(); m.Len() != 64 {
		t.Errorf("measurement %s; want 64 bytes", m)
	}

	c := testContainer(2)
	path := filepath.Join(dir, c.NamespaceName()+".model")
	if err := os.WriteFile(path, []byte("state "+strings.Repeat("ab", 32)+"\nseal\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = f.tab.startContainer(c, "/nonexistent")
	if !errors.Is(err, model.ErrHashMismatch) || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("startContainer(sha256 model, sha512 default) = %v; want ErrHashMismatch at %s:1", err, path)
	}
}
