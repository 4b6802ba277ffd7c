package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// wideTrajectory writes the reference trajectory's first lines as a
// SHA-384 namespace would print them: every 64-digit task id, owner and
// digest made 96 digits long.
func wideTrajectory(t *testing.T, n int) string {
	t.Helper()
	b, err := os.ReadFile(refPath("process_1.json"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")[:n]
	hex64 := regexp.MustCompile(`"([0-9a-f]{64})"`)
	wide := hex64.ReplaceAllString(strings.Join(lines, ""), `"${1}00000000000000000000000000000000"`)
	path := filepath.Join(t.TempDir(), "wide.json")
	if err := os.WriteFile(path, []byte(wide), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestModelCommandsSHA384(t *testing.T) {
	traj := wideTrajectory(t, 20)
	out, msg, code := vigilCLI(t, "model", "points", traj)
	if code != 0 {
		t.Fatalf("model points: exit %d: %s", code, msg)
	}
	pts := strings.Fields(out)
	if len(pts) != 20 || len(pts[0]) != 96 {
		t.Fatalf("model points printed %d coefficients of %d digits; want 20 of 96", len(pts), len(pts[0]))
	}

	// A sha256 model cannot hold them: an error naming the line.
	if _, msg, code := vigilCLI(t, "model", "build", "-o", filepath.Join(t.TempDir(), "x.model"), traj); code != 2 || !strings.Contains(msg, traj+":1:") {
		t.Errorf("model build (sha256) of sha384 descriptions: exit %d, %q; want 2 naming %s:1", code, msg, traj)
	}
	m := filepath.Join(t.TempDir(), "wide.model")
	if _, msg, code := vigilCLI(t, "model", "build", "--hash", "sha384", "-o", m, traj); code != 0 {
		t.Fatalf("model build --hash sha384: exit %d: %s", code, msg)
	}
	text, _ := os.ReadFile(m)
	if !strings.HasPrefix(string(text), "#hash sha384\n") {
		t.Errorf("model file starts %q; want the hash line", string(text)[:20])
	}
	out, msg, code = vigilCLI(t, "model", "show", m)
	if code != 0 || !regexp.MustCompile(`measurement: [0-9a-f]{96}\n`).MatchString(out) {
		t.Errorf("model show: exit %d %s\n%s\nwant a 96-digit measurement", code, msg, out)
	}
	if out, msg, code := vigilCLI(t, "model", "check", "--model", m, traj); code != 0 || out != "" {
		t.Errorf("model check of its own trajectory: exit %d, %q, %s; want 0 and no forensics", code, out, msg)
	}
	if _, msg, code := vigilCLI(t, "model", "build", "--hash", "md5", traj); code != 2 || !strings.Contains(msg, "--hash") {
		t.Errorf("model build --hash md5: exit %d, %q; want 2 naming --hash", code, msg)
	}
	if _, msg, code := vigilCLI(t, "run", "--hash", "sha1", "--", "true"); code != 2 || !strings.Contains(msg, "--hash") {
		t.Errorf("run --hash sha1: exit %d, %q; want 2 naming --hash", code, msg)
	}
}
