package agent

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/events/eventstest"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/namespace"
)

// TestKindsCountedAsUnmodeled passes the sample description of every kind
// of the events catalogue (package eventstest) through a
// namespace and the agent's event hook: an unmodeled kind is counted as
// such by the namespace and never as a modeled event
// (vigil_events_total), a modeled one the other way round.
func TestKindsCountedAsUnmodeled(t *testing.T) {
	samples := eventstest.KindSamples(t)
	n, err := namespace.NewRegistry(namespace.RegistryOptions{}).Create(namespace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{pipeline: &pipeline{met: metrics.New(metrics.Options{})}}
	for _, k := range events.Kinds() {
		e, ok := samples[k.Name()]
		if !ok {
			t.Errorf("kind %s has no sample description", k.Name())
			continue
		}
		res, err := n.Add(e)
		if err != nil {
			t.Fatalf("kind %s: Add = %v", k.Name(), err)
		}
		a.onEvent(n, e, res)
		counted, wantEvents := uint64(0), 1.0
		if k.Unmodeled() != "" {
			counted, wantEvents = 1, 0
		}
		if res.Unmodeled != (k.Unmodeled() != "") || n.Stats().UnmodeledTypes[k.Name()] != counted {
			t.Errorf("kind %s: unmodeled %v, counted %d; the catalogue says %q", k.Name(), res.Unmodeled, n.Stats().UnmodeledTypes[k.Name()], k.Unmodeled())
		}
		if got := testutil.ToFloat64(a.met.EventCounter(n.Name(), k.Name())); got != wantEvents {
			t.Errorf("kind %s: vigil_events_total = %v; want %v (unmodeled: %q)", k.Name(), got, wantEvents, k.Unmodeled())
		}
	}
}
