package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/model"
)

// mountOverlay mounts an overlayfs of lower (with a fresh upper layer) on
// dir, over whatever is mounted there, and unmounts it at cleanup.
func mountOverlay(t *testing.T, lower, dir string) {
	t.Helper()
	upper, work := t.TempDir(), t.TempDir()
	if err := unix.Mount("overlay", dir, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("mount overlayfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// TestRunModelHoldsAcrossMounts runs a program from an overlayfs root, as
// a container does, learns its model, then runs it again from a new
// overlayfs mount of the same layer, as the next instance of the container
// does: new s_uuid (Linux 6.6 and later), new anonymous device minor. In
// the invariant dialect (the default) the model holds; in the TSEM
// dialect every event of the program is forensics, since even its task id
// hashes the mount.
func TestRunModelHoldsAcrossMounts(t *testing.T) {
	bin := mustHaveCapture(t)
	catPath, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat:", err)
	}
	lower := filepath.Dir(worldReadable(t, "data", []byte("data\n")))
	cat, err := os.ReadFile(catPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "cat"), cat, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(worldReadable(t, "mnt", nil))
	mnt := filepath.Join(root, "instance")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run := []string{filepath.Join(mnt, "cat"), filepath.Join(mnt, "data")}

	for _, tc := range []struct {
		dialect   string
		forensics bool
	}{{"invariant", false}, {"tsem", true}} {
		t.Run(tc.dialect, func(t *testing.T) {
			dir := t.TempDir()
			m := filepath.Join(dir, "m.model")
			mountOverlay(t, lower, mnt)
			if r := vigilRun(t, bin, append([]string{"--dialect", tc.dialect, "-o", m, "--"}, run...)...); r.status != 0 {
				t.Fatalf("learn: exit %d\n%s", r.status, r.stderr)
			}
			mountOverlay(t, lower, mnt) // the next instance
			forensics := filepath.Join(dir, "forensics.json")
			r := vigilRun(t, bin, append([]string{"--model", m, "--forensics", forensics, "--"}, run...)...)
			if r.status != 0 {
				t.Fatalf("sealed rerun: exit %d\n%s", r.status, r.stderr)
			}
			fb, _ := os.ReadFile(forensics)
			if got := len(fb) != 0; got != tc.forensics {
				t.Errorf("%s dialect: forensics on a new mount = %v; want %v:\n%s", tc.dialect, got, tc.forensics, fb)
			}
		})
	}
}

// TestRunPseudonym learns a model with a pseudonym for a file, changes the
// file's content, and checks the model still holds its open; without the
// pseudonym it does not.
func TestRunPseudonym(t *testing.T) {
	bin := mustHaveCapture(t)
	target := worldReadable(t, "hostname", []byte("instance-1\n"))
	for _, tc := range []struct {
		name      string
		args      []string
		forensics bool
	}{{"with a pseudonym", []string{"--pseudonym", target}, false}, {"without", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(target, []byte("instance-1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			m := filepath.Join(dir, "m.model")
			if r := vigilRun(t, bin, append(tc.args, "-o", m, "--", "cat", target)...); r.status != 0 {
				t.Fatalf("learn: exit %d\n%s", r.status, r.stderr)
			}
			text, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			line := "pseudonym " + model.PseudonymOf(target).String() + "\n"
			if got := bytes.Contains(text, []byte(line)); got != (len(tc.args) > 0) {
				t.Errorf("model file has %q: %v; want %v", strings.TrimSpace(line), got, len(tc.args) > 0)
			}
			if !bytes.HasPrefix(text, []byte("#dialect invariant\n")) {
				t.Errorf("model file starts %q; want the invariant dialect, vigil run's default", text[:min(len(text), 30)])
			}
			if err := os.WriteFile(target, []byte("instance-2\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			forensics := filepath.Join(dir, "forensics.json")
			if r := vigilRun(t, bin, "--model", m, "--forensics", forensics, "--", "cat", target); r.status != 0 {
				t.Fatalf("sealed rerun: exit %d\n%s", r.status, r.stderr)
			}
			fb, _ := os.ReadFile(forensics)
			if got := bytes.Contains(fb, []byte(`"pathname": "`+target+`"`)); got != tc.forensics {
				t.Errorf("forensics hold the open of the changed %s: %v; want %v:\n%s", target, got, tc.forensics, fb)
			}
		})
	}
}
