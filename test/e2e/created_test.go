package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Models that hold across runs: real tools make temporary files with
// random names (gcc's /tmp/ccXXXXXX.s, git's tmp_obj_XXXXXX, Python's
// __pycache__/*.pyc.NNN) and files whose content differs from run to run.
// A file the namespace created is named by its created tag and has the
// zero digest, so a model learned from two runs holds in every later run.

// toolWorkload is a command run in a fixed directory that setup rebuilds
// (outside any namespace) before each run.
type toolWorkload struct {
	name  string
	tools []string
	setup func(t *testing.T, dir string)
	cmd   func(dir string) string // for sh -c
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// python3 prefers the system interpreter: a version manager's shim runs
// its own scripts first.
func python3() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

func toolWorkloads() []toolWorkload {
	const gitEnv = "export HOME=$PWD/.. GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null " +
		"GIT_AUTHOR_NAME=vigil GIT_AUTHOR_EMAIL=vigil@example.org GIT_COMMITTER_NAME=vigil " +
		"GIT_COMMITTER_EMAIL=vigil@example.org GIT_AUTHOR_DATE=2020-01-01T00:00:00Z " +
		"GIT_COMMITTER_DATE=2020-01-01T00:00:00Z; "
	return []toolWorkload{
		{"gcc", []string{"gcc"}, func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"add.c": "int add(int a, int b) { return a + b; }\n"})
		}, func(dir string) string { return "cd " + dir + " && gcc -c add.c -o add.o" }},
		{"make", []string{"make", "gcc"}, func(t *testing.T, dir string) {
			files := map[string]string{}
			var objs []string
			for i := range 10 {
				files[fmt.Sprintf("f%d.c", i)] = fmt.Sprintf("int f%d(int a) { return a + %d; }\n", i, i)
				objs = append(objs, fmt.Sprintf("f%d.o", i))
			}
			files["Makefile"] = "all: " + strings.Join(objs, " ") + "\n%.o: %.c\n\tgcc -c $< -o $@\n"
			writeFiles(t, dir, files)
		}, func(dir string) string { return "cd " + dir + " && make -s -j2" }},
		{"tar", []string{"tar"}, func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"src/a": "a\n", "src/sub/b": "b\n"})
		}, func(dir string) string {
			return "cd " + dir + " && tar cf out.tar --mtime=2020-01-01 src && mkdir x && tar xf out.tar -C x"
		}},
		{"python3", []string{python3()}, func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"mod.py": "def f():\n    return 1\n", "main.py": "import mod\nprint(mod.f())\n"})
		}, func(dir string) string {
			return "cd " + dir + " && env -u PYTHONDONTWRITEBYTECODE " + python3() + " main.py"
		}},
		{"git", []string{"git"}, func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"repo/README": "hello\n", "repo/x.txt": "x\n"})
		}, func(dir string) string {
			return "cd " + dir + "/repo && " + gitEnv + "git init -q && git add . && git commit -q -m first"
		}},
	}
}

// resetDir empties dir and lets setup fill it again.
func resetDir(t *testing.T, dir string, setup func(*testing.T, string)) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	setup(t, dir)
}

// TestRunCreatedFilesHold learns each tool workload from two runs, merges
// the two trajectories into one model (vigil model build) and runs the
// workload 8 more times sealed to it: no forensics. Before created files
// were tagged, gcc -c gave 3 forensics a run, make -j2 of ten files 30,
// git 5 or 6, python3 1.
func TestRunCreatedFilesHold(t *testing.T) {
	bin := mustHaveCapture(t)
	for _, w := range toolWorkloads() {
		t.Run(w.name, func(t *testing.T) {
			for _, tool := range w.tools {
				if _, err := exec.LookPath(tool); err != nil {
					if requireBPF() {
						t.Fatalf("%s not installed (test/deps.sh installs it): %v", tool, err)
					}
					t.Skipf("%s not installed (test/deps.sh installs it): %v", tool, err)
				}
			}
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "work")
			var trajectories []string
			for i := range 2 {
				resetDir(t, dir, w.setup)
				traj := filepath.Join(tmp, fmt.Sprintf("learn%d.json", i))
				out, err := exec.Command(bin, "run", "--agent", "never", "--trajectory", traj, "--", "sh", "-c", w.cmd(dir)).CombinedOutput()
				if err != nil {
					t.Fatalf("learning run %d: %v\n%s", i+1, err, out)
				}
				trajectories = append(trajectories, traj)
			}
			m := filepath.Join(tmp, "merged.model")
			if out, err := exec.Command(bin, append([]string{"model", "build", "-o", m}, trajectories...)...).CombinedOutput(); err != nil {
				t.Fatalf("vigil model build: %v\n%s", err, out)
			}
			var counts []int
			total := 0
			for i := range 8 {
				resetDir(t, dir, w.setup)
				f := filepath.Join(tmp, fmt.Sprintf("forensics%d.json", i))
				out, err := exec.Command(bin, "run", "--agent", "never", "--model", m, "--forensics", f, "--", "sh", "-c", w.cmd(dir)).CombinedOutput()
				if err != nil {
					t.Fatalf("sealed run %d: %v\n%s", i+1, err, out)
				}
				fb, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				n := bytes.Count(fb, []byte("\n"))
				counts = append(counts, n)
				total += n
				if n != 0 {
					t.Errorf("sealed run %d: %d forensics:\n%s", i+1, n, fb)
				}
			}
			t.Logf("%s: forensics in 8 sealed runs: %v (total %d)", w.name, counts, total)
		})
	}
}

// TestRunCreatedStepOutside: with created files modeled, stepping outside
// the model still shows, each with its pathname: reading a file never
// read in learning, writing a new file below /etc, running a new program,
// running a program from a temporary directory.
func TestRunCreatedStepOutside(t *testing.T) {
	bin := mustHaveCapture(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "work")
	setup := func(t *testing.T, dir string) {
		writeFiles(t, dir, map[string]string{"known": "k\n", "never": "n\n"})
	}
	// The learned workload makes a temporary file (mktemp: mkstemp) and
	// reads it and a known file.
	learned := "cd " + dir + " && t=$(mktemp -p " + dir + ") && echo x > $t && cat $t known >/dev/null"
	var trajectories []string
	for i := range 2 {
		resetDir(t, dir, setup)
		traj := filepath.Join(tmp, fmt.Sprintf("learn%d.json", i))
		if out, err := exec.Command(bin, "run", "--agent", "never", "--trajectory", traj, "--", "sh", "-c", learned).CombinedOutput(); err != nil {
			t.Fatalf("learning run %d: %v\n%s", i+1, err, out)
		}
		trajectories = append(trajectories, traj)
	}
	m := filepath.Join(tmp, "merged.model")
	if out, err := exec.Command(bin, append([]string{"model", "build", "-o", m}, trajectories...)...).CombinedOutput(); err != nil {
		t.Fatalf("vigil model build: %v\n%s", err, out)
	}
	etc := fmt.Sprintf("/etc/vigil-e2e-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(etc) })
	tool := filepath.Join(tmp, "tool")
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(trueBin); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(tool, data, 0o755); err != nil {
		t.Fatal(err)
	}
	idBin, err := exec.LookPath("id")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, extra, pathname string
	}{
		{"the same workload", "", ""},
		{"a file never read", " && cat never >/dev/null", dir + "/never"},
		{"a new file below /etc", " && echo x > " + etc, etc},
		{"a new program", " && " + idBin + " >/dev/null", idBin},
		{"a program from a temporary directory", " && " + tool, tool},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resetDir(t, dir, setup)
			f := filepath.Join(tmp, fmt.Sprintf("forensics%d.json", i))
			out, err := exec.Command(bin, "run", "--agent", "never", "--model", m, "--forensics", f, "--", "sh", "-c", learned+tc.extra).CombinedOutput()
			if err != nil {
				t.Fatalf("sealed run: %v\n%s", err, out)
			}
			fb, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if tc.pathname == "" {
				if len(fb) != 0 {
					t.Errorf("the learned workload strays from its model:\n%s", fb)
				}
				return
			}
			if !bytes.Contains(fb, []byte(`"pathname": "`+tc.pathname+`"`)) {
				t.Errorf("forensics lack %s:\n%s", tc.pathname, fb)
			}
		})
	}
}
