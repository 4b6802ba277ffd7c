package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
)

// nsBackend is a one-namespace control.Backend for the CLI tests.
type nsBackend struct {
	info   control.NamespaceInfo
	points []control.Point
	loaded []byte
}

func (b *nsBackend) find(name string) error {
	if name != b.info.Name {
		return fmt.Errorf("namespace %q: %w", name, control.ErrNotFound)
	}
	return nil
}
func (b *nsBackend) Namespaces() []control.NamespaceInfo { return []control.NamespaceInfo{b.info} }
func (b *nsBackend) Namespace(n string) (control.NamespaceInfo, error) {
	return b.info, b.find(n)
}
func (b *nsBackend) Seal(n string) error {
	b.info.Mode = control.ModeSealed
	return b.find(n)
}
func (b *nsBackend) Enforce(n string) error {
	b.info.Mode = control.ModeEnforcing
	return b.find(n)
}
func (b *nsBackend) Trajectory(n string) ([]control.Point, error) { return b.points, b.find(n) }
func (b *nsBackend) Forensics(n string) ([]control.Point, error)  { return b.points[1:], b.find(n) }
func (b *nsBackend) Model(n string) ([]byte, error) {
	return []byte("aggregate " + strings.Repeat("0", 64) + "\nstate " + b.points[0].Coefficient.String() + "\nend\n"), b.find(n)
}
func (b *nsBackend) Load(n string, m []byte) error {
	if !bytes.HasPrefix(m, []byte("aggregate")) {
		return fmt.Errorf("line 1: want aggregate: %w", control.ErrInvalid)
	}
	b.loaded = m
	return b.find(n)
}

func (b *nsBackend) AddPseudonyms(n string, pathnames []string) error {
	if err := b.find(n); err != nil {
		return err
	}
	if b.info.Mode != control.ModeLearning {
		return fmt.Errorf("namespace %s is %s: %w", n, b.info.Mode, control.ErrConflict)
	}
	b.info.Settings.Pseudonyms = append(b.info.Settings.Pseudonyms, pathnames...)
	b.info.Pseudonyms += len(pathnames)
	return nil
}

func runNs(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, msg, code := vigilCLI(t, args...)
	if code != 0 {
		out += "error: " + msg
	}
	return out, code
}

func TestNsCommands(t *testing.T) {
	c1, _ := model.ParseCoefficient(strings.Repeat("ab", 32))
	c2, _ := model.ParseCoefficient(strings.Repeat("cd", 32))
	b := &nsBackend{
		info: control.NamespaceInfo{Name: "docker-abc", Context: 3, Origin: "container", Mode: control.ModeLearning,
			Container: &control.Container{Runtime: "docker", ID: "abc", PodUID: "2a4c6e8f-1b3d-4f5a-9c7e-0d2f4b6a8c1e"},
			Points:    2, Events: 9, Settings: control.Settings{HashAlgorithm: "sha256"}, State: strings.Repeat("5", 64),
			Log: &control.LogState{Status: control.LogIncomplete, Unrecorded: 12, Waiting: 3, Error: "log cannot be written: write /var/lib/vigil/measurements.log: no space left on device"}},
		points: []control.Point{{Coefficient: c1, Count: 7, Event: []byte(`{"event": {"type": "file_open"}}`)},
			{Coefficient: c2, Count: 2, Event: []byte(`{"event": {"type": "capable"}}`)}},
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "vigil.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := &control.Server{Backend: b, Authorize: func(control.Peer) error { return nil }, Log: slog.New(slog.DiscardHandler)}
	go srv.Serve(ctx, l)
	modelFile := filepath.Join(dir, "in.model")
	os.WriteFile(modelFile, []byte("aggregate "+strings.Repeat("0", 64)+"\nend\n"), 0o600)
	badModel := filepath.Join(dir, "bad.model")
	os.WriteFile(badModel, []byte("nonsense\n"), 0o600)
	// A model whose trajectory line is broken JSON: refused before it
	// reaches the agent, which would otherwise serve the broken line.
	badTrajectory := filepath.Join(dir, "bad-trajectory.model")
	open := testLines(t, "process_1.json")[2]
	c := strings.Repeat("ab", 32)
	os.WriteFile(badTrajectory, []byte("aggregate "+strings.Repeat("0", 64)+"\nstate "+c+"\n#trajectory "+c+" "+open[:50]+"\nend\n"), 0o600)

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"list", []string{"ns", "list"}, 0, []string{"NAMESPACE", "ORIGIN", "LOG", "docker-abc", "container", "learning", "incomplete", "2a4c6e8f-1b3d-4f5a-9c7e-0d2f4b6a8c1e"}},
		{"list json", []string{"ns", "list", "--json"}, 0, []string{`"name": "docker-abc"`, `"pod_uid"`, `"unrecorded": 12`}},
		{"show", []string{"ns", "show", "docker-abc"}, 0, []string{"namespace:", "runtime:", "docker", "trajectory size:", "state:", strings.Repeat("5", 64),
			"log:", "incomplete: 12 model points not recorded (gap records count them), 3 records waiting in memory; log cannot be written: write /var/lib/vigil/measurements.log: no space left on device"}},
		{"show missing", []string{"ns", "show", "nope"}, 2, []string{"no such modeling namespace"}},
		{"trajectory", []string{"ns", "trajectory", "docker-abc"}, 0, []string{"{\"event\": {\"type\": \"file_open\"}}\n{\"event\": {\"type\": \"capable\"}}\n"}},
		{"coefficients", []string{"ns", "trajectory", "--coefficients", "docker-abc"}, 0, []string{c1.String() + "\n" + c2.String() + "\n"}},
		{"counts", []string{"ns", "trajectory", "--counts", "docker-abc"}, 0, []string{"7\n2\n"}},
		{"both", []string{"ns", "trajectory", "--counts", "--coefficients", "docker-abc"}, 2, []string{"choose one"}},
		{"forensics", []string{"ns", "forensics", "docker-abc"}, 0, []string{"{\"event\": {\"type\": \"capable\"}}\n"}},
		{"forensics counts", []string{"ns", "forensics", "--counts", "docker-abc"}, 0, []string{"2\n"}},
		{"pseudonym", []string{"ns", "pseudonym", "docker-a", "/etc/hostname", "/etc/hosts"}, 0, []string{"docker-abc: learning, 2 pseudonyms: /etc/hostname, /etc/hosts\n"}},
		{"pseudonym relative", []string{"ns", "pseudonym", "docker-abc", "etc/x"}, 2, []string{`pseudonym "etc/x": want an absolute path`}},
		{"pseudonym no path", []string{"ns", "pseudonym", "docker-abc"}, 2, []string{"requires at least 2 arg(s)"}},
		{"show pseudonyms", []string{"ns", "show", "docker-abc"}, 0, []string{"pseudonyms:", "2 (/etc/hostname, /etc/hosts)"}},
		{"seal", []string{"ns", "seal", "docker-abc"}, 0, []string{"docker-abc: sealed"}},
		{"pseudonym sealed", []string{"ns", "pseudonym", "docker-abc", "/etc/x"}, 1, []string{"not possible in this mode"}},
		{"enforce", []string{"ns", "enforce", "docker-abc"}, 0, []string{"docker-abc: enforcing"}},
		{"model", []string{"ns", "model", "docker-abc"}, 0, []string{"aggregate ", "state " + c1.String(), "end\n"}},
		{"load", []string{"ns", "load", "docker-abc", modelFile}, 0, []string{"docker-abc:"}},
		{"load bad", []string{"ns", "load", "docker-abc", badModel}, 2, []string{"bad.model:1: unknown keyword"}},
		{"load broken trajectory", []string{"ns", "load", "docker-abc", badTrajectory}, 2, []string{"bad-trajectory.model:3: trajectory " + c + ": description (from byte 77 of the line): offset 42: malformed JSON: unterminated string"}},
		{"load missing file", []string{"ns", "load", "docker-abc", filepath.Join(dir, "absent")}, 2, []string{"absent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runNs(t, append(tc.args, "--socket", sock)...)
			if code != tc.code {
				t.Errorf("vigil %s: exit %d; want %d\n%s", strings.Join(tc.args, " "), code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("vigil %s output:\n%s\nwant it to contain %q", strings.Join(tc.args, " "), out, w)
				}
			}
		})
	}

	outFile := filepath.Join(dir, "out.model")
	if _, code := runNs(t, "ns", "model", "docker-abc", "-o", outFile, "--socket", sock); code != 0 {
		t.Fatalf("vigil ns model -o: exit %d", code)
	}
	if got, _ := os.ReadFile(outFile); !strings.HasPrefix(string(got), "aggregate ") {
		t.Errorf("model file = %q; want a TSEM model", got)
	}
	if out, code := runNs(t, "ns", "list", "--socket", filepath.Join(dir, "none.sock")); code != 1 || !strings.Contains(out, "is 'vigil agent' running?") {
		t.Errorf("vigil ns list (no agent) = %d, %q; want exit 1 asking whether the agent runs", code, out)
	}
}
