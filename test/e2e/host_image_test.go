package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/namespace"
	"github.com/vigil-tsem/vigil/test/agenttest"
)

// TestAgentHostNamespace models the host: a process outside every
// container shows up in namespace "host" (context 0), and nothing the
// agent's own threads do does (it opens the cgroup directories and
// cgroup.procs of the containers it watches every second, and /proc).
// Other agents on the machine are ordinary host processes, so the agent's
// activity is told apart by its thread ids in the export.
func TestAgentHostNamespace(t *testing.T) {
	bin := mustHaveCapture(t)
	probe := filepath.Join(t.TempDir(), "host-probe.txt")
	if err := os.WriteFile(probe, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, bin, "--host-namespace")
	client := control.NewClient(ag.socket)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	host, err := client.Namespace(ctx, "host")
	if err != nil {
		t.Fatalf("namespace host: %v", err)
	}
	if host.Context != 0 || host.Origin != "host" || host.Mode != control.ModeLearning || host.Container != nil {
		t.Fatalf("namespace host = %+v; want context 0, origin host, learning", host)
	}
	list, err := client.Namespaces(ctx)
	if err != nil || len(list) == 0 || list[0].Name != "host" {
		t.Fatalf("ns list = %+v, %v; want host first", list, err)
	}

	// Sealed, everything new on the host is forensics: a short list to
	// search however busy the machine is.
	if _, err := client.Seal(ctx, "host"); err != nil {
		t.Fatalf("seal host: %v", err)
	}
	if _, err := client.Enforce(ctx, "host"); !errors.Is(err, control.ErrConflict) || !strings.Contains(err.Error(), "host_enforce") {
		t.Errorf("enforce host = %v; want a conflict naming host_enforce", err)
	}

	// Work for the agent: a container cgroup it scans and whose
	// cgroup.procs it reads every second.
	_, ctr := containerCgroup(t)
	waitFor(t, "the container's namespace", func() (bool, error) {
		_, err := client.Namespace(ctx, "docker-"+ctr.ID)
		return err == nil, err
	})

	// A process outside any container: this test's child.
	cat := exec.Command("cat", probe)
	if out, err := cat.CombinedOutput(); err != nil {
		t.Fatalf("cat %s: %v\n%s", probe, err, out)
	}
	waitFor(t, "the host process's open in the host's forensics", func() (bool, error) {
		var buf bytes.Buffer
		err := client.Forensics(ctx, "host", &buf)
		return contains(pathnames(t, buf.Bytes()), probe), err
	})
	time.Sleep(2500 * time.Millisecond) // two more enrolment passes and scans
	agentTasks := make(map[uint32]bool)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", ag.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			agentTasks[uint32(tid)] = true
		}
	}

	stderr := ag.stop(t)
	// The kernel leaves the agent out (bpf Capture.Ignore); the
	// userspace backstop counts whatever still arrived, normally none.
	m := regexp.MustCompile(`the agent's own host records were not modeled.* records=(\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Errorf("agent stderr does not count its own records:\n%s", stderr)
	} else {
		t.Logf("the agent's own host records that reached userspace: %s", m[1])
	}

	// The export has every event with its thread id: the probe's cat is
	// there, no thread of the agent is.
	f, err := os.Open(ag.export)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sawCat bool
	var own []string
	for sc.Scan() {
		e, err := events.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("export: %v\n%s", err, sc.Bytes())
		}
		if e.Header.Context != 0 || !e.Header.HasPid {
			continue
		}
		if e.Header.Pid == uint32(cat.Process.Pid) {
			sawCat = true
		}
		if agentTasks[e.Header.Pid] {
			own = append(own, fmt.Sprintf("%s %s (tid %d)", e.Header.Process, e.Header.Type, e.Header.Pid))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !sawCat {
		t.Errorf("export has no host event of the cat process (pid %d)", cat.Process.Pid)
	}
	if len(own) > 0 {
		t.Errorf("export has %d host events of the agent's own threads %v, e.g. %q", len(own), agentTasks, own[:min(len(own), 5)])
	}
	verifyHostLog(t, ag, stderr)
}

// verifyHostLog checks that the measured log, host namespace included,
// verifies against the register value the agent printed.
func verifyHostLog(t *testing.T, ag *agentProc, stderr string) {
	t.Helper()
	rep, _ := verifyAgentLog(t, ag, stderr)
	for _, n := range rep.Namespaces {
		if n.ID == 0 && n.Name == "host" && n.Sealed && n.Forensics > 0 {
			return
		}
	}
	t.Errorf("log has no sealed host namespace (id 0) with forensics: %+v", rep.Namespaces)
}

// runtimeCgroup makes <root>/vigil-e2e-<pid>.slice/<prefix><64 hex>.scope,
// a container's cgroup as the runtime of prefix names it under the systemd
// driver, and removes it when the test ends.
func runtimeCgroup(t *testing.T, prefix string) (dir string, c namespace.Container) {
	t.Helper()
	root, err := namespace.FindCgroup2Root("/sys/fs/cgroup")
	if err != nil {
		skipOrFail(t, "no cgroup v2 hierarchy: %v", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	slice := filepath.Join(root, fmt.Sprintf("vigil-e2e-%d.slice", os.Getpid()))
	dir = filepath.Join(slice, prefix+hex.EncodeToString(raw[:])+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		skipOrFail(t, "create a cgroup: %v", err)
	}
	agenttest.RemoveCgroupAtCleanup(t, dir, slice, 5*time.Second)
	return dir, agenttest.Container(t, root, dir)
}

// TestAgentModelKeyImage: with model_key image, a container whose runtime
// state (a fake runtime root here) names image I starts sealed to
// <model_dir>/<I as a file name>.model, and steps outside it as forensics.
func TestAgentModelKeyImage(t *testing.T) {
	bin := mustHaveCapture(t)
	const image = "registry.example:5000/vigil-e2e/app:1.2"
	const modelName = "registry.example_5000_vigil-e2e_app_1.2.model"
	model, err := os.ReadFile("../../testdata/tsem/process.model")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		runtime, prefix string
		state           func(id string) (path, content string)
	}{
		{"containerd", "cri-containerd-", func(id string) (string, string) {
			return "run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id + "/config.json",
				`{"ociVersion":"1.1.0","process":{"args":["/app"]},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.image-name":"` + image + `"}}`
		}},
		{"docker", "docker-", func(id string) (string, string) {
			return "var/lib/docker/containers/" + id + "/config.v2.json",
				`{"ID":"` + id + `","Image":"sha256:` + strings.Repeat("0", 64) + `","Config":{"Image":"` + image + `","Cmd":["/app"]}}`
		}},
	}
	for _, tc := range tests {
		t.Run(tc.runtime, func(t *testing.T) {
			cgDir, ctr := runtimeCgroup(t, tc.prefix)
			if string(ctr.Runtime) != tc.runtime {
				t.Fatalf("cgroup %s parses as runtime %s; want %s", cgDir, ctr.Runtime, tc.runtime)
			}
			nsName := ctr.NamespaceName()
			state, models := t.TempDir(), t.TempDir()
			rel, content := tc.state(ctr.ID)
			if err := os.MkdirAll(filepath.Join(state, filepath.Dir(rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(state, rel), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			modelFile := filepath.Join(models, modelName)
			if err := os.WriteFile(modelFile, model, 0o644); err != nil {
				t.Fatal(err)
			}
			extra := filepath.Join(t.TempDir(), "outside-the-model.txt")
			if err := os.WriteFile(extra, []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			ag := startAgent(t, bin, "--model-key", "image", "--runtime-root", state, "--model-dir", models)
			client := control.NewClient(ag.socket)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			w := startWorkload(t, cgDir)
			info := waitEnrolled(t, ctx, client, nsName)
			if info.Mode != control.ModeSealed || info.Settings.Model != modelFile || info.Container == nil || info.Container.Image != image {
				t.Fatalf("namespace %s: mode %s, sealed to %q, container %+v; want sealed to %s, image %s",
					nsName, info.Mode, info.Settings.Model, info.Container, modelFile, image)
			}
			w.release(t)
			w.do(t, "cat "+extra)
			waitFor(t, "the open outside the image's model in the forensics", func() (bool, error) {
				var buf bytes.Buffer
				err := client.Forensics(ctx, nsName, &buf)
				return contains(pathnames(t, buf.Bytes()), extra), err
			})
			w.stop(t)
			ag.stop(t)
		})
	}
}
