// Package agenttest holds the helpers the agent's end-to-end tests share, on
// the host (test/e2e) and in the BPF LSM VM (test/vmagent): polling for a
// condition, reading pathnames out of TSEM description lines, and scraping a
// metric. Every function is safe for concurrent use.
package agenttest

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/events"
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
