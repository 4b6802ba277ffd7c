package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Ways a sealed workload could once do something outside its model with
// no forensics; each must now show in the forensics of a sealed run.

// TestRunReadThenDelete: a file read and deleted at once (within
// microseconds, by this test binary) cannot be hashed after the fact. A
// model learned on it must not accept another payload under the same
// name.
func TestRunReadThenDelete(t *testing.T) {
	bin := mustHaveCapture(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	payload := worldReadable(t, "payload", []byte("learned payload\n"))
	workload := []string{"--", "env", envReadDelete + "=" + payload, self, "-test.run=^$"}
	m := filepath.Join(dir, "m.model")
	r := vigilRun(t, bin, append([]string{"-o", m}, workload...)...)
	if r.status != 0 {
		t.Fatalf("learn: exit %d\n%s", r.status, r.stderr)
	}
	if mb, _ := os.ReadFile(m); bytes.Contains(mb, []byte(`"digest": "`+strings.Repeat("0", 64))) {
		t.Errorf("the learned model holds a zero digest")
	}
	if err := os.WriteFile(payload, []byte("another payload, never learned\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forensics := filepath.Join(dir, "forensics.json")
	r = vigilRun(t, bin, append([]string{"--model", m, "--forensics", forensics}, workload...)...)
	if r.status != 0 {
		t.Fatalf("sealed run: exit %d\n%s", r.status, r.stderr)
	}
	fb, err := os.ReadFile(forensics)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(fb, []byte(`"pathname": "`+payload+`"`)) {
		t.Errorf("no forensics for the other payload read and deleted at %s:\n%s\n%s", payload, fb, r.stderr)
	}
}

// TestRunScript: a "#!" script runs as its interpreter (the task id is
// the interpreter's), so the script itself must be an event: another
// script, or the same script with other content, is forensics naming it.
// The interpreter here never opens the script (echo), so only the exec's
// own open of the script can tell.
func TestRunScript(t *testing.T) {
	bin := mustHaveCapture(t)
	echo, err := exec.LookPath("echo")
	if err != nil {
		t.Skip("no echo:", err)
	}
	echo, _ = filepath.EvalSymlinks(echo)
	dir := t.TempDir()
	write := func(name, shebang string) string {
		p := worldReadable(t, name, []byte("#!"+echo+" "+shebang+"\n"))
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.sh", "learned")
	m := filepath.Join(dir, "m.model")
	if r := vigilRun(t, bin, "-o", m, "--", a); r.status != 0 {
		t.Fatalf("learn: exit %d\n%s", r.status, r.stderr)
	} else if len(r.fileOpens(a)) == 0 {
		t.Errorf("the learning run has no open of the script %s:\n%s", a, bytes.Join(r.lines, []byte("\n")))
	}
	tests := []struct {
		name   string
		script func() string
	}{
		{"same script", func() string { return a }},
		{"another script, same interpreter", func() string { return write("b.sh", "learned") }},
		{"the script rewritten", func() string { return write("a.sh", "rewritten") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.script()
			forensics := filepath.Join(t.TempDir(), "forensics.json")
			r := vigilRun(t, bin, "--model", m, "--forensics", forensics, "--", s)
			if r.status != 0 {
				t.Fatalf("sealed run: exit %d\n%s", r.status, r.stderr)
			}
			fb, _ := os.ReadFile(forensics)
			named := bytes.Contains(fb, []byte(`"pathname": "`+s+`"`))
			if want := tc.name != "same script"; named != want {
				t.Errorf("forensics name the script %s: %v; want %v\n%s", s, named, want, fb)
			}
		})
	}
}
