package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTestLines writes lines as a file in dir.
func writeTestLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestModelPointsDialect: --dialect tsem gives the kernel's coefficients of
// the reference events with an anonymous device (a container's tmpfs,
// dev 0:81); the default, invariant, others.
func TestModelPointsDialect(t *testing.T) {
	var lines, want []string
	for _, l := range testLines(t, "vectors.jsonl") {
		var v struct{ Coefficient, Event string }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v.Event, `"dev": {"major": "0", "minor": "81"}`) {
			lines, want = append(lines, v.Event), append(want, v.Coefficient)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d reference events with dev 0:81; want 3", len(lines))
	}
	in := writeTestLines(t, t.TempDir(), "anon.json", lines)
	out, msg, code := vigilCLI(t, "model", "points", "--dialect", "tsem", in)
	if code != 0 || out != strings.Join(want, "\n")+"\n" {
		t.Errorf("model points --dialect tsem: exit %d %s\n%s\nwant the kernel's\n%s", code, msg, out, strings.Join(want, "\n"))
	}
	out, msg, code = vigilCLI(t, "model", "points", in)
	if code != 0 || len(strings.Fields(out)) != 3 {
		t.Fatalf("model points: exit %d %s: %q", code, msg, out)
	}
	for i, c := range strings.Fields(out) {
		if c == want[i] {
			t.Errorf("model points (invariant) line %d = the kernel's %s; the anonymous device should not count", i+1, c)
		}
	}
	if _, msg, code := vigilCLI(t, "model", "points", "--dialect", "exact", in); code != 2 || !strings.Contains(msg, "--dialect") {
		t.Errorf("model points --dialect exact: exit %d %q; want 2 naming --dialect", code, msg)
	}
}

func TestModelMerge(t *testing.T) {
	dir := t.TempDir()
	lines := testLines(t, "process_1.json")
	build := func(name string, args ...string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		if _, msg, code := vigilCLI(t, append([]string{"model", "build", "-o", out}, args...)...); code != 0 {
			t.Fatalf("build %s: exit %d: %s", name, code, msg)
		}
		return out
	}
	whole := build("whole.model", refPath("process_1.json"))
	a := build("a.model", writeTestLines(t, dir, "a.json", lines[:100]))
	b := build("b.model", writeTestLines(t, dir, "b.json", lines[60:]))
	show := func(path string) string {
		t.Helper()
		out, msg, code := vigilCLI(t, "model", "show", path)
		if code != 0 {
			t.Fatalf("show %s: exit %d: %s", path, code, msg)
		}
		return out
	}
	measurement := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "measurement:") || strings.HasPrefix(l, "state:") {
				return l
			}
		}
		return ""
	}

	merged := filepath.Join(dir, "merged.model")
	if _, msg, code := vigilCLI(t, "model", "merge", "-o", merged, a, b); code != 0 {
		t.Fatalf("merge: exit %d: %s", code, msg)
	}
	got := show(merged)
	if !strings.Contains(got, "(learning)") || !strings.Contains(got, "points:      155") || measurement(got) != measurement(show(whole)) {
		t.Errorf("merged model:\n%s\nwant learning, the 155 points and the measurement of the whole run:\n%s", got, show(whole))
	}
	data1, _ := os.ReadFile(merged)
	if strings.Count(string(data1), "#trajectory ") != 155 {
		t.Errorf("merged model has %d trajectory lines; want 155", strings.Count(string(data1), "#trajectory "))
	}
	// Deterministic, and --seal seals.
	again := filepath.Join(dir, "again.model")
	if _, msg, code := vigilCLI(t, "model", "merge", "--seal", "-o", again, a, b); code != 0 {
		t.Fatalf("merge --seal: exit %d: %s", code, msg)
	}
	data2, _ := os.ReadFile(again)
	if string(data2) != strings.Replace(string(data1), "end\n", "seal\nend\n", 1) {
		t.Errorf("merge --seal differs from merge by more than the seal line")
	}
	if out, _, code := vigilCLI(t, "model", "merge", b, a); code != 0 || !strings.HasPrefix(out, "#dialect invariant\naggregate ") {
		t.Errorf("merge to standard output: exit %d, %q", code, out[:min(len(out), 60)])
	}

	// Mismatches: nothing written, the files named.
	tsem := build("tsem.model", "--dialect", "tsem", writeTestLines(t, dir, "c.json", lines[:10]))
	pseudo := filepath.Join(dir, "pseudo.model")
	os.WriteFile(pseudo, []byte(strings.Replace(string(data1), "aggregate ", "pseudonym "+strings.Repeat("ab", 32)+"\naggregate ", 1)), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"dialect", []string{a, tsem}, tsem + " is of the dialect tsem, " + a + " is of the dialect invariant"},
		{"pseudonyms", []string{a, b, pseudo}, pseudo + " has pseudonym " + strings.Repeat("ab", 32) + ", " + a + " has not"},
		{"bad file", []string{a, filepath.Join(dir, "a.json")}, "a.json:1"},
		{"no file", nil, "requires at least 1 arg"},
	} {
		_, msg, code := vigilCLI(t, append([]string{"model", "merge", "-o", merged}, tc.args...)...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: merge exit %d %q; want 2 and %q", tc.name, code, msg, tc.want)
		}
		if now, _ := os.ReadFile(merged); string(now) != string(data1) {
			t.Errorf("%s: a failed merge changed -o", tc.name)
		}
	}
}
