package namespace

import (
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/events/eventstest"
)

// TestKindsModeledOrCounted adds the sample description of every kind to a
// learning namespace: a kind the catalogue models becomes a model point, an
// unmodeled one is counted by type (Stats.Unmodeled, UnmodeledTypes: what
// `vigil run` reports) and stays out of the model.
func TestKindsModeledOrCounted(t *testing.T) {
	samples := eventstest.KindSamples(t)
	n, err := NewRegistry(RegistryOptions{}).Create(Options{})
	if err != nil {
		t.Fatal(err)
	}
	unmodeled, points := 0, 0
	for _, k := range events.Kinds() {
		e, ok := samples[k.Name()]
		if !ok {
			t.Errorf("kind %s has no sample description", k.Name())
			continue
		}
		res, err := n.Add(e)
		if err != nil {
			t.Errorf("kind %s: Add = %v", k.Name(), err)
		}
		if want := k.Unmodeled() != ""; res.Unmodeled != want {
			t.Errorf("kind %s: Add reports unmodeled %v; the catalogue says %q", k.Name(), res.Unmodeled, k.Unmodeled())
		}
		if want := k.Unmodeled() == ""; res.New != want {
			t.Errorf("kind %s: Add reports a new model point %v; want %v", k.Name(), res.New, want)
		}
		if k.Unmodeled() != "" {
			unmodeled++
		} else {
			points++
		}
	}
	st := n.Stats()
	if st.Unmodeled != uint64(unmodeled) || len(st.UnmodeledTypes) != unmodeled || n.Model().Len() != points {
		t.Errorf("stats: %d unmodeled (%d types), %d points; want %d unmodeled kinds, %d points", st.Unmodeled, len(st.UnmodeledTypes), n.Model().Len(), unmodeled, points)
	}
	for typ, c := range st.UnmodeledTypes {
		if k, ok := events.KindOf(typ); !ok || k.Unmodeled() == "" || c != 1 {
			t.Errorf("UnmodeledTypes[%s] = %d; the catalogue does not list it unmodeled", typ, c)
		}
	}
	if unmodeled == 0 || points == 0 {
		t.Errorf("%d unmodeled kinds, %d modeled: the test checks nothing on one side", unmodeled, points)
	}
}
