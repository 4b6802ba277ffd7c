package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
)

func refPath(name string) string { return filepath.Join("..", "..", "testdata", "tsem", name) }

func TestModelPointsReproducesKernel(t *testing.T) {
	for _, name := range []string{"process_1", "process_3", "process_4", "process_6"} {
		t.Run(name, func(t *testing.T) {
			out, msg, code := vigilCLI(t, "model", "points", refPath(name+".json"))
			if code != 0 {
				t.Fatalf("vigil model points: exit %d: %s", code, msg)
			}
			want := strings.Join(testLines(t, name+".coefficients"), "\n") + "\n"
			if out != want {
				t.Errorf("vigil model points %s.json differs from the kernel's %s.coefficients", name, name)
			}
		})
	}
}

func TestModelBuildCheckShow(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.model")
	if _, msg, code := vigilCLI(t, "model", "build", "-o", m, refPath("process_1.json")); code != 0 {
		t.Fatalf("build: exit %d: %s", code, msg)
	}
	loaded, err := model.LoadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loaded.Len(), 155; got != want {
		t.Errorf("built model has %d points; want %d", got, want)
	}
	if !loaded.Sealed() {
		t.Errorf("built model does not load sealed")
	}

	// The run it was learned from has no forensics.
	out, msg, code := vigilCLI(t, "model", "check", "--model", m, refPath("process_1.json"))
	if code != 0 || out != "" {
		t.Errorf("check of the learned run: exit %d, output %q, %s; want exit 0, no output", code, out, msg)
	}
	// The kernel's forensics runs are outside the reference model.
	out, msg, code = vigilCLI(t, "model", "check", "--model", refPath("process.model"), refPath("process_4.json"))
	if code != 1 {
		t.Errorf("check of forensics: exit %d (%s); want 1", code, msg)
	}
	if want := strings.Join(testLines(t, "process_4.json"), "\n") + "\n"; out != want {
		t.Errorf("check printed:\n%s\nwant every line of process_4.json", out)
	}

	out, msg, code = vigilCLI(t, "model", "show", refPath("process.model"))
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, msg)
	}
	for _, want := range []string{
		"points:      196",
		"measurement: 47490c4c05dc752e7374abc857ca5bc7329c5af1601da752b36c4ae4342187c5",
		"state:       17340ae343b0461d82158997d14dca359c6b9d296bd0faeb7742f1a5eb145562",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("vigil model show process.model lacks %q:\n%s", want, out)
		}
	}
}

func TestModelBadInput(t *testing.T) {
	dir := t.TempDir()
	good := testLines(t, "process_1.json")
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		lines []string
		want  string // in the error message
	}{
		{"malformed JSON", []string{good[0], `{"event": {`}, ":2: offset"},
		{"unknown type", []string{strings.Replace(good[0], `"type": "capable"`, `"type": "no_such_event"`, 1)}, `no_such_event`},
		{"bad hex", []string{strings.Replace(good[0], `"task_id": "8b`, `"task_id": "zz`, 1)}, "event.task_id"},
		{"missing field", []string{strings.Replace(good[0], `"cap": "8", `, ``, 1)}, "capable.cap"},
		{"non-numeric number", []string{good[0], strings.Replace(good[1], `"number": "2"`, `"number": "two"`, 1)}, ":2: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := write(strings.ReplaceAll(tc.name, " ", "_")+".json", tc.lines...)
			for _, args := range [][]string{
				{"model", "points", in},
				{"events", "convert", "--to", "ecs", in},
			} {
				_, msg, code := vigilCLI(t, args...)
				if code != 2 {
					t.Errorf("%v: exit %d; want 2", args[:2], code)
				}
				if !strings.Contains(msg, in) || !strings.Contains(msg, tc.want) {
					t.Errorf("%v: error %q; want it to name %s and %q", args[:2], msg, in, tc.want)
				}
			}
			// An existing output file is left as it was.
			out := filepath.Join(dir, "keep.model")
			os.WriteFile(out, []byte("old"), 0o644)
			if _, _, code := vigilCLI(t, "model", "build", "-o", out, in); code != 2 {
				t.Errorf("build: exit %d; want 2", code)
			}
			if b, _ := os.ReadFile(out); string(b) != "old" {
				t.Errorf("build over bad input replaced the output: %q", b)
			}
		})
	}
	if _, msg, code := vigilCLI(t, "model", "show", write("bad.model", "aggregate 00")); code != 2 || !strings.Contains(msg, "bad.model:1") {
		t.Errorf("show of a corrupt model: exit %d, %q; want 2 naming bad.model:1", code, msg)
	}
	if _, _, code := vigilCLI(t, "model", "check", refPath("process_1.json")); code != 2 {
		t.Errorf("check without --model: exit %d; want 2", code)
	}
}

func TestEventsConvert(t *testing.T) {
	out, msg, code := vigilCLI(t, "events", "convert", "--to", "tsem", refPath("process_1.json"))
	if code != 0 {
		t.Fatalf("convert: exit %d: %s", code, msg)
	}
	conv := filepath.Join(t.TempDir(), "conv.json")
	os.WriteFile(conv, []byte(out), 0o644)
	// Vigil's own encoding maps to the same coefficients.
	pts, msg, code := vigilCLI(t, "model", "points", conv)
	if code != 0 {
		t.Fatalf("points of converted: exit %d: %s", code, msg)
	}
	if want := strings.Join(testLines(t, "process_1.coefficients"), "\n") + "\n"; pts != want {
		t.Errorf("coefficients of re-encoded trajectory differ from the kernel's")
	}
	ecs, msg, code := vigilCLI(t, "events", "convert", "--to", "ecs", "--boot-time", "2026-01-02T03:04:05Z", refPath("process_3.json"))
	if code != 0 {
		t.Fatalf("convert ecs: exit %d: %s", code, msg)
	}
	if n := strings.Count(ecs, "\n"); n != 2 {
		t.Errorf("ecs output has %d lines; want 2", n)
	}
	if !strings.Contains(ecs, `"@timestamp": "2026-01-02T03:04:`) || !strings.Contains(ecs, `"path": "/root/.bash_history"`) {
		t.Errorf("ecs output lacks the timestamp or path:\n%s", ecs)
	}
	if _, _, code := vigilCLI(t, "events", "convert", "--to", "xml", refPath("process_3.json")); code != 2 {
		t.Errorf("--to xml: exit %d; want 2", code)
	}
}

// TestLineCap checks that every command reading event descriptions refuses
// a line one byte over lineio.MaxLine with exit status 2 and the file and
// line, instead of reading it whole (a 1 GB line once took 1.9 GB).
func TestLineCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	first := testLines(t, "process_1.json")[0]
	big := strings.Repeat("x", lineio.MaxLine+1)
	if err := os.WriteFile(path, []byte(first+"\n"+big+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + ":2: line too long: more than 16777216 bytes"
	m := filepath.Join(t.TempDir(), "m.model")
	for _, args := range [][]string{
		{"model", "points", path},
		{"model", "build", "-o", m, path},
		{"model", "check", "--model", refPath("process.model"), path},
		{"events", "convert", "--to", "ecs", "--boot-time", "2024-03-01T12:00:00Z", path},
	} {
		_, msg, code := vigilCLI(t, args...)
		if code != 2 || !strings.Contains(msg, want) {
			t.Errorf("vigil %s: exit %d, %q; want 2 and %q", strings.Join(args, " "), code, msg, want)
		}
	}
	if _, err := os.Stat(m); !os.IsNotExist(err) {
		t.Errorf("model build of a bad input left %s: %v", m, err)
	}
}

// TestBrokenTrajectoryRefused checks that the commands reading model files
// refuse one whose trajectory line is not a description, with the file,
// line, and the parser's offset and reason.
func TestBrokenTrajectoryRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.model")
	c := strings.Repeat("ab", 32)
	if err := os.WriteFile(path, []byte("state "+c+"\n#trajectory "+c+" {\"event\": {\"type\": 1}}\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + ":2: trajectory " + c + ": description (from byte 77 of the line): offset "
	for _, args := range [][]string{
		{"model", "show", path},
		{"model", "check", "--model", path, refPath("process_1.json")},
	} {
		_, msg, code := vigilCLI(t, args...)
		if code != 2 || !strings.Contains(msg, want) || !strings.Contains(msg, "malformed JSON") {
			t.Errorf("vigil %s: exit %d, %q; want 2 and %q ... malformed JSON", strings.Join(args, " "), code, msg, want)
		}
	}
}

// TestModelUnhashable: a description whose file carries the unhashable
// digest is never learned by model build, and model check reports it
// even against a model that holds its coefficient.
func TestModelUnhashable(t *testing.T) {
	lines := testLines(t, "process_1.json")
	var i int
	for i = range lines {
		if strings.Contains(lines[i], `"type": "file_open"`) {
			break
		}
	}
	d := strings.Index(lines[i], `"digest": "`) + len(`"digest": "`)
	bad := lines[i][:d] + strings.Repeat("f", 64) + lines[i][d+64:]
	dir := t.TempDir()
	traj := filepath.Join(dir, "t.json")
	if err := os.WriteFile(traj, []byte(lines[0]+"\n"+bad+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "m.model")
	_, msg, code := vigilCLI(t, "model", "build", "-o", m, traj)
	if code != 0 || !strings.Contains(msg, "1 events were not learned") {
		t.Fatalf("build: exit %d, %q; want 0 and one event not learned", code, msg)
	}
	if loaded, err := model.LoadFile(m); err != nil || loaded.Len() != 1 {
		t.Fatalf("built model: %v points, %v; want 1", loaded, err)
	}
	// Even a model holding the coefficient (built by hand from the
	// points) does not vouch for it.
	pts, _, _ := vigilCLI(t, "model", "points", traj)
	hand := filepath.Join(dir, "hand.model")
	var b strings.Builder
	for _, c := range strings.Fields(pts) {
		b.WriteString("state " + c + "\n")
	}
	b.WriteString("seal\nend\n")
	if err := os.WriteFile(hand, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, msg, code := vigilCLI(t, "model", "check", "--model", hand, traj)
	if code != 1 || out != bad+"\n" {
		t.Errorf("check: exit %d, output %q (%s); want 1 and the unhashable line", code, out, msg)
	}
}
