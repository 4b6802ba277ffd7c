// Package agenttest holds the helpers the agent's end-to-end tests share, on
// the host (test/e2e) and in the BPF LSM VM (test/vmagent): polling for a
// condition, reading pathnames out of TSEM description lines, scraping a
// metric, and container cgroups. Every function is safe for concurrent use.
package agenttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/namespace"
)

// WaitFor polls cond every 50ms until it holds, failing t after wait.
func WaitFor(t testing.TB, wait time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitEnrolled waits until the agent behind client has namespace name with
// at least one task enrolled, and returns its description.
func WaitEnrolled(t testing.TB, wait time.Duration, ctx context.Context, client *control.Client, name string) control.NamespaceInfo {
	t.Helper()
	var info control.NamespaceInfo
	WaitFor(t, wait, "namespace "+name+" with its task enrolled", func() (bool, error) {
		var err error
		info, err = client.Namespace(ctx, name)
		return err == nil && info.Tasks >= 1, err
	})
	return info
}

// Pathnames returns the file pathnames of TSEM event description lines.
func Pathnames(t testing.TB, lines []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(lines))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		e, err := events.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("parse event description: %v\n%s", err, sc.Bytes())
		}
		if p, ok := e.Payload.(*events.FileEvent); ok {
			out = append(out, p.File.Path.Pathname)
		}
	}
	return out
}

// Scrape sums the samples of a metric family at http://addr/metrics whose
// labels include every label given (name="value" pairs).
func Scrape(t testing.TB, addr, family string, labels ...string) (sum float64, found bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape metrics: %s, %v", resp.Status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// RemoveCgroupAtCleanup removes the container cgroup dir and then its slice
// when t ends, retrying for up to wait while the workload's tasks exit.
func RemoveCgroupAtCleanup(t testing.TB, dir, slice string, wait time.Duration) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				break
			}
			time.Sleep(100 * time.Millisecond) // tasks still exiting
		}
		os.Remove(slice)
	})
}

// Container is the container the agent will see in cgroup dir under the
// cgroup v2 root.
func Container(t testing.TB, root, dir string) namespace.Container {
	t.Helper()
	rel := strings.TrimPrefix(dir, root)
	c, ok := namespace.ParseCgroupPath(rel)
	if !ok {
		t.Fatalf("ParseCgroupPath(%q) found no container", rel)
	}
	return c
}
