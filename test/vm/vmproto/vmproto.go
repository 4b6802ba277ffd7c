package vmproto

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	// ConfigPath is where the harness puts the JSON Config in the initramfs.
	ConfigPath = "/vigil-vm.json"
	// AppletDir holds the init's applets (cat, true, ...) as symlinks to /init; it is
	// also the guest's PATH and is exported to tests as VIGIL_VM_BIN.
	AppletDir = "/bin"
	// RepoDir is where the repository's packages are laid out in the guest: a test
	// binary of package ./x/y runs in RepoDir/x/y, next to a copy of its testdata.
	RepoDir = "/repo"
	// Prefix starts every marker line on the console.
	Prefix = "VIGIL-VM "
)

// Applets are the names under AppletDir that run the init as a small program: cat
// FILE..., echo ARGS..., false, id, sleep SECONDS, touch FILE..., true.
var Applets = []string{"cat", "echo", "false", "id", "sleep", "touch", "true"}

// Marker kinds, the word after Prefix.
const (
	KindInit  = "INIT"
	KindBegin = "BEGIN"
	KindEnd   = "END"
	KindDone  = "DONE"
	KindWarn  = "WARN"
)

// Config is what the init runs.
type Config struct {
	// Env is added to the environment of every test binary (KEY=VALUE).
	Env []string `json:"env"`
	// Tests run in order, one at a time.
	Tests []Test `json:"tests"`
}

// Test is one test binary in the guest.
type Test struct {
	Name string   `json:"name"` // package as the user named it, e.g. ./bpf; no spaces
	Path string   `json:"path"` // binary in the guest
	Dir  string   `json:"dir"`  // working directory, holds the package's testdata
	Args []string `json:"args"` // -test.v and the flags passed through
}

// Verdict is the outcome of one test binary.
type Verdict string

const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
	// NoTests: the binary exited 0 but no test ran (a wrong -run, or no tests built
	// in): a failure, since a green run must show that tests ran.
	NoTests Verdict = "NO-TESTS"
	// AllSkipped: every test that ran skipped: a failure for the same reason.
	AllSkipped Verdict = "ALL-SKIPPED"
)

// Result is one END marker.
type Result struct {
	Name             string
	Verdict          Verdict
	Exit             int // -1 when the binary did not exit normally
	Pass, Fail, Skip int
	Elapsed          time.Duration
}

// Line formats r as an END marker line, without the newline.
func (r Result) Line() string {
	return fmt.Sprintf("%s%s %s verdict=%s exit=%d pass=%d fail=%d skip=%d time=%s",
		Prefix, KindEnd, r.Name, r.Verdict, r.Exit, r.Pass, r.Fail, r.Skip, r.Elapsed.Round(time.Millisecond))
}

// Marker finds a marker in a console line and returns its kind and the rest of the line.
// The marker may follow other text on the line (a kernel message printed mid-line).
func Marker(line string) (kind, rest string, ok bool) {
	i := strings.Index(line, Prefix)
	if i < 0 {
		return "", "", false
	}
	kind, rest, _ = strings.Cut(strings.TrimRight(line[i+len(Prefix):], "\r\n"), " ")
	return kind, rest, kind != ""
}

// ParseEnd parses the part of an END marker after the kind (see Marker).
func ParseEnd(rest string) (Result, error) {
	fields := strings.Fields(rest)
	if len(fields) != 7 {
		return Result{}, fmt.Errorf("parse end marker %q: %d fields, want 7", rest, len(fields))
	}
	r := Result{Name: fields[0]}
	want := []string{"verdict", "exit", "pass", "fail", "skip", "time"}
	for i, f := range fields[1:] {
		key, val, ok := strings.Cut(f, "=")
		if !ok || key != want[i] {
			return Result{}, fmt.Errorf("parse end marker %q: field %d is %q, want %s=...", rest, i+2, f, want[i])
		}
		var err error
		switch key {
		case "verdict":
			r.Verdict = Verdict(val)
			switch r.Verdict {
			case Pass, Fail, NoTests, AllSkipped:
			default:
				err = fmt.Errorf("unknown verdict")
			}
		case "exit":
			r.Exit, err = strconv.Atoi(val)
		case "pass":
			r.Pass, err = atoiNonNeg(val)
		case "fail":
			r.Fail, err = atoiNonNeg(val)
		case "skip":
			r.Skip, err = atoiNonNeg(val)
		case "time":
			r.Elapsed, err = time.ParseDuration(val)
		}
		if err != nil {
			return Result{}, fmt.Errorf("parse end marker %q: field %s=%q: %w", rest, key, val, err)
		}
	}
	return r, nil
}

func atoiNonNeg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n < 0 {
		err = fmt.Errorf("negative count")
	}
	return n, err
}

// testLine matches the result lines of `-test.v` output, top-level and subtests.
var testLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): `)

// Counter counts the results in a test binary's `-test.v` output.
type Counter struct {
	Pass, Fail, Skip int
	// NoTestsWarning: the testing package said it had no tests to run.
	NoTestsWarning bool
}

// Observe counts one output line.
func (c *Counter) Observe(line string) {
	if strings.HasPrefix(line, "testing: warning: no tests to run") {
		c.NoTestsWarning = true
		return
	}
	m := testLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	switch m[1] {
	case "PASS":
		c.Pass++
	case "FAIL":
		c.Fail++
	case "SKIP":
		c.Skip++
	}
}

// Judge gives the verdict of a binary that exited with status exit (-1: killed or
// not started) after printing what c counted.
func Judge(exit int, c Counter) Verdict {
	switch {
	case exit != 0 || c.Fail > 0:
		return Fail
	case c.NoTestsWarning || c.Pass+c.Skip == 0:
		return NoTests
	case c.Pass == 0:
		return AllSkipped
	}
	return Pass
}
