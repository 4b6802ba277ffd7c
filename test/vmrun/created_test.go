package vmrun

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
)

// The created-files workload: this test binary run with envCreate set to
// a directory makes files there with random names, as mkstemp does, uses
// them, and runs a copy of itself it made (in mode envCreate=-). envExtra
// adds a last step outside the learned model: "read PATH" or "exec PATH".
const (
	envCreate = "VIGIL_VMRUN_CREATE"
	envExtra  = "VIGIL_VMRUN_EXTRA"
)

// createMain is the workload; it prints "ok" when every step worked.
func createMain(dir string) int {
	if dir == "-" {
		return 0 // the copy this workload made and runs
	}
	if err := createSteps(dir); err != nil {
		fmt.Fprintln(os.Stderr, "create:", err)
		return 1
	}
	if extra := os.Getenv(envExtra); extra != "" {
		verb, arg, _ := strings.Cut(extra, " ")
		var err error
		switch verb {
		case "read":
			_, err = os.ReadFile(arg)
		case "exec":
			// Standard input from /dev/null as the learned run had it,
			// the rest to ours: nothing else new before the exec.
			cmd := exec.Command(arg, "--help")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			err = cmd.Run()
		default:
			err = fmt.Errorf("unknown step %q", extra)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "create:", extra+":", err)
			return 1
		}
	}
	fmt.Println("ok")
	return 0
}

func createSteps(dir string) error {
	tmp, err := os.CreateTemp(dir, "tmp.*")
	if err != nil {
		return err
	}
	tmp.WriteString("scratch\n")
	tmp.Close()
	if _, err := os.ReadFile(tmp.Name()); err != nil {
		return err
	}
	obj, err := os.CreateTemp(dir, "obj.*")
	if err != nil {
		return err
	}
	obj.WriteString("object\n")
	obj.Close()
	final := filepath.Join(dir, "final")
	if err := os.Rename(obj.Name(), final); err != nil {
		return err
	}
	if err := os.Chmod(final, 0o640); err != nil {
		return err
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return err
	}
	if _, err := os.MkdirTemp(dir, "d.*"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	exe, err := os.CreateTemp(dir, "exe.*")
	if err != nil {
		return err
	}
	_, err = exe.Write(data)
	exe.Close()
	if err == nil {
		err = os.Chmod(exe.Name(), 0o755)
	}
	if err != nil {
		return err
	}
	cmd := exec.Command(exe.Name())
	cmd.Env = append(os.Environ(), envCreate+"=-")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("run %s: %v: %s", exe.Name(), err, out)
	}
	return nil
}

// emptyDir removes everything in dir (outside any namespace).
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunEnforceCreated learns the created-files workload from two runs,
// merges the trajectories into one model and enforces it in fresh runs
// (new namespaces, new random names): the workload works, nothing is
// denied, nothing is forensics but what TestRunEnforce tolerates. Steps
// outside the model (a file never read, a program never run) are denied
// and are forensics with their pathnames.
func TestRunEnforceCreated(t *testing.T) {
	bin := mustHaveLSM(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "work")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	never := filepath.Join(tmp, "never")
	if err := os.WriteFile(never, []byte("never read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Setenv(envCreate, dir)
	defer os.Unsetenv(envCreate)
	var trajectories []string
	var learned []*events.Event
	for i := range 2 {
		emptyDir(t, dir)
		traj := filepath.Join(tmp, fmt.Sprintf("learn%d.json", i))
		r := vigilRun(t, bin, "", "--backend", "lsm", "--trajectory", traj, "--", self)
		if r.status != 0 || r.stdout != "ok\n" {
			t.Fatalf("learning run %d: exit %d, stdout %q\n%s", i+1, r.status, r.stdout, r.stderr)
		}
		evs, _ := readEvents(t, traj)
		learned = append(learned, evs...)
		trajectories = append(trajectories, traj)
	}
	created := 0
	for _, e := range learned {
		if f, ok := e.Payload.(*events.FileEvent); ok && f.File.Path.Created {
			created++
		}
	}
	if created == 0 {
		t.Fatal("no file_open of a created file in the learned trajectories")
	}
	m := filepath.Join(tmp, "merged.model")
	if out, err := exec.Command(bin, append([]string{"model", "build", "-o", m}, trajectories...)...).CombinedOutput(); err != nil {
		t.Fatalf("vigil model build: %v\n%s", err, out)
	}
	lm, parents := sealedModel(t, m, learned)
	tests := []struct {
		name, extra, pathname string
	}{
		{"learned workload", "", ""},
		{"learned workload again", "", ""},
		{"a file never read", "read " + never, never},
		{"a program never run", "exec " + bin, bin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			emptyDir(t, dir)
			os.Setenv(envExtra, tc.extra)
			defer os.Unsetenv(envExtra)
			forensics := filepath.Join(t.TempDir(), "forensics.json")
			r := vigilRun(t, bin, "", "--backend", "lsm", "--model", m, "--enforce", "--forensics", forensics, "--", self)
			fevs, flines := readEvents(t, forensics)
			if tc.pathname == "" {
				if r.status != 0 || r.stdout != "ok\n" || strings.Contains(r.stderr, "the kernel denied") {
					t.Errorf("exit %d, stdout %q; want 0, ok and no denial\n%s", r.status, r.stdout, r.stderr)
				}
				for i, e := range fevs {
					if !byPolicy(e) && !relative(t, lm, parents, e) {
						t.Errorf("forensics of the learned workload:\n%s", flines[i])
					} else {
						t.Logf("tolerated forensics: %s", summary(e))
					}
				}
				return
			}
			if r.status == 0 || !strings.Contains(strings.ToLower(r.stderr), "operation not permitted") {
				t.Errorf("exit %d; want a failure with EPERM\n%s", r.status, r.stderr)
			}
			found := false
			for _, e := range fevs {
				if f, ok := e.Payload.(*events.FileEvent); ok && f.File.Path.Pathname == tc.pathname {
					found = true
				}
			}
			if !found {
				t.Errorf("forensics lack %s:\n%s", tc.pathname, strings.Join(flines, "\n"))
			}
		})
	}
}
