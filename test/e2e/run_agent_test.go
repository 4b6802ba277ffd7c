package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
)

// runNamespaceRE finds the namespace `vigil run` says it used.
var runNamespaceRE = regexp.MustCompile(`using the vigil agent at \S+ \(pid \d+, \w+ backend\): namespace "([^"]+)" \(context (\d+)\)`)

// summaryRE reads the counts of the summary `vigil run` prints.
var summaryRE = regexp.MustCompile(`: (\d+) events, (\d+) model points`)

// modelPoints returns the sorted coefficients of a model file.
func modelPoints(t *testing.T, path string) []string {
	t.Helper()
	m, err := model.LoadFile(path)
	if err != nil {
		t.Fatalf("load the model -o wrote: %v", err)
	}
	var out []string
	for _, p := range m.Points() {
		out = append(out, p.Coefficient.String())
	}
	slices.Sort(out)
	return out
}

// bpfFDs lists the eBPF programs and maps process pid holds open.
func bpfFDs(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list the fds of vigil run: %v", err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "anon_inode:bpf") {
			out = append(out, l)
		}
	}
	return out
}

// TestRunWithAgent: with an agent running, `vigil run` loads no programs of
// its own; its namespace is one of the agent's (listed while the command
// runs, measured in the agent's log), the outputs come from the agent and
// equal what a standalone run of the same command writes, and the exit
// status is the command's.
func TestRunWithAgent(t *testing.T) {
	bin := mustHaveCapture(t)
	ag := startAgent(t, bin)
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var runs []control.NamespaceInfo // the agent's view of each run, at its end

	// The example, in agent mode.
	agentModel := filepath.Join(dir, "agent.model")
	r := vigilRun(t, bin, "--agent", "always", "--socket", ag.socket, "-o", agentModel, "--", "cat", "/etc/hostname")
	if r.status != 0 {
		t.Fatalf("vigil run --agent always: exit %d\n%s", r.status, r.stderr)
	}
	m := runNamespaceRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("vigil run --agent always does not say it uses the agent:\n%s", r.stderr)
	}
	if opens := r.fileOpens("/etc/hostname"); len(opens) != 1 {
		t.Errorf("%d file_open events of /etc/hostname in the trajectory; want 1\n%s", len(opens), r.stderr)
	}
	agentPoints := modelPoints(t, agentModel)
	info, err := client.Namespace(ctx, m[1])
	if err != nil {
		t.Fatalf("the run's namespace %s in the agent: %v", m[1], err)
	}
	if info.Origin != "run" || !info.Ended || info.Points != len(agentPoints) || info.Points != len(r.lines) || fmt.Sprint(info.Context) != m[2] {
		t.Errorf("agent's namespace %+v; want origin run, ended, context %s, %d points (the model's) = %d trajectory lines", info, m[2], len(agentPoints), len(r.lines))
	}
	runs = append(runs, info)

	// Standalone, the same command gives the same model.
	standaloneModel := filepath.Join(dir, "standalone.model")
	s := vigilRun(t, bin, "--agent", "never", "--socket", ag.socket, "-o", standaloneModel, "--", "cat", "/etc/hostname")
	if s.status != 0 || !strings.Contains(s.stderr, "standalone (--agent never)") {
		t.Fatalf("vigil run --agent never: exit %d; want 0 and saying it runs standalone\n%s", s.status, s.stderr)
	}
	if len(s.fileOpens("/etc/hostname")) != 1 {
		t.Errorf("standalone trajectory has no open of /etc/hostname\n%s", s.stderr)
	}
	if sp := modelPoints(t, standaloneModel); !slices.Equal(sp, agentPoints) {
		t.Errorf("standalone model has %d points, the agent's %d, and they differ:\nstandalone %v\nagent      %v", len(sp), len(agentPoints), sp, agentPoints)
	}

	// Repeated events count the same: the agent delivers the counts the
	// kernel's repeat cache held at the exit before `vigil run` reads
	// them.
	target := worldReadable(t, "repeated", []byte("r"))
	repeat := "i=0; while [ $i -lt 50 ]; do : < " + target + "; i=$((i+1)); done"
	var counts []string
	for _, mode := range []string{"always", "never"} {
		r := vigilRun(t, bin, "--agent", mode, "--socket", ag.socket, "--", "sh", "-c", repeat)
		c := summaryRE.FindStringSubmatch(r.stderr)
		if r.status != 0 || c == nil {
			t.Fatalf("vigil run --agent %s (repeats): exit %d; want 0 and a summary\n%s", mode, r.status, r.stderr)
		}
		counts = append(counts, c[1])
	}
	if counts[0] != counts[1] {
		t.Errorf("50 opens of one file in one task: %s events with the agent, %s standalone; want the same", counts[0], counts[1])
	}

	// While it runs, the namespace is listed by `vigil ns list`, and
	// `vigil run` holds no eBPF program or map.
	live := fmt.Sprintf("e2e-live-%d", os.Getpid())
	cmd := exec.Command(bin, "run", "--socket", ag.socket, "--name", live, "--", "sh", "-c", "cat /etc/hostname; read _")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the live run in vigil ns list", func() (bool, error) {
		b, err := exec.Command(bin, "ns", "list", "--json", "--socket", ag.socket).Output()
		if err != nil {
			return false, err
		}
		var list []control.NamespaceInfo
		if err := json.Unmarshal(b, &list); err != nil {
			return false, fmt.Errorf("ns list --json: %v\n%s", err, b)
		}
		for _, n := range list {
			if n.Name == live {
				if n.Origin != "run" || n.Ended {
					return false, fmt.Errorf("%s listed as %+v; want origin run, not ended", live, n)
				}
				return n.Tasks == 1 && n.Points > 0, nil
			}
		}
		return false, nil
	})
	if fds := bpfFDs(t, cmd.Process.Pid); len(fds) != 0 {
		t.Errorf("vigil run with an agent holds eBPF objects %v; want none (the agent captures)", fds)
	}
	if _, err := stdin.Write([]byte("\n")); err != nil {
		t.Fatalf("release the live run: %v", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("live run: %v\n%s", err, out.String())
	}
	info, err = client.Namespace(ctx, live)
	if err != nil || !info.Ended {
		t.Fatalf("live run's namespace after it: %+v, %v; want it kept, ended", info, err)
	}
	runs = append(runs, info)

	// The exit status is the command's.
	for _, tc := range []struct {
		args   []string
		status int
	}{
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 7"}, 7},
	} {
		r := vigilRun(t, bin, append([]string{"--agent", "always", "--socket", ag.socket, "--"}, tc.args...)...)
		m := runNamespaceRE.FindStringSubmatch(r.stderr)
		if r.status != tc.status || m == nil {
			t.Errorf("vigil run --agent always -- %s: exit %d; want %d, run by the agent\n%s", strings.Join(tc.args, " "), r.status, tc.status, r.stderr)
			continue
		}
		info, err := client.Namespace(ctx, m[1])
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, info)
	}

	// The agent's log holds every run's points and verifies.
	stderr := ag.stop(t)
	rep, reg := verifyAgentLog(t, ag, stderr)
	if out, err := exec.Command(bin, "verify", "--log", ag.log, "--register", reg[0]).CombinedOutput(); err != nil {
		t.Fatalf("vigil verify of the agent's log: %v\n%s", err, out)
	}
	for _, want := range runs {
		var got *measure.NamespaceReport
		for _, n := range rep.Namespaces {
			if n.Name == want.Name {
				got = n
			}
		}
		if got == nil || got.Points != want.Points || got.Measurement.String() != want.Measurement {
			t.Errorf("log namespace %s = %+v; want %d points, measurement %s", want.Name, got, want.Points, want.Measurement)
		}
	}
}
