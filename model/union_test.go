package model_test

import (
	"errors"
	"testing"

	"github.com/vigil-tsem/vigil/model"
)

// TestUnion merges two models that share some points: each coefficient
// once, the first description, counts summed, pseudonyms of both, and the
// state of one model that saw every coefficient.
func TestUnion(t *testing.T) {
	cs := engineCoefficients(t, "process_1.coefficients")
	if len(cs) < 20 {
		t.Fatalf("only %d coefficients", len(cs))
	}
	a, b, all := model.New(model.Options{}), model.New(model.Options{}), model.New(model.Options{})
	for i, c := range cs[:15] {
		a.Add(c, []byte("a"))
		if i == 0 {
			a.Add(c, []byte("a again"))
		}
	}
	for _, c := range cs[5:] {
		b.Add(c, []byte("b"))
	}
	for _, c := range cs {
		all.Add(c, nil)
	}
	pa, pb := cs[0], cs[1]
	a.AddPseudonym(pa)
	b.AddPseudonym(pb)
	u, err := model.Union(model.SHA256, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != all.Len() || u.State() != all.State() || u.Sealed() {
		t.Errorf("union: %d points, state %s, sealed %v; want %d points, state %s, learning", u.Len(), u.State(), u.Sealed(), all.Len(), all.State())
	}
	counts := map[model.Coefficient]uint64{}
	for _, p := range append(a.Points(), b.Points()...) {
		counts[p.Coefficient] += p.Count
	}
	for _, p := range u.Points() {
		want := "b"
		if _, inA := pointIn(a, p.Coefficient); inA {
			want = "a"
		}
		if string(p.Description) != want || p.Count != counts[p.Coefficient] {
			t.Errorf("point %s: description %q count %d; want %q and %d", p.Coefficient, p.Description, p.Count, want, counts[p.Coefficient])
		}
	}
	if got := u.Pseudonyms(); len(got) != 2 || got[0] != pa || got[1] != pb {
		t.Errorf("pseudonyms %v; want %s and %s", got, pa, pb)
	}

	wide := model.New(model.Options{Hash: model.SHA384})
	if _, err := model.Union(model.SHA256, a, wide); !errors.Is(err, model.ErrHashMismatch) {
		t.Errorf("union with a SHA-384 model: %v; want ErrHashMismatch", err)
	}
	if e, err := model.Union(model.SHA256); err != nil || e.Len() != 0 {
		t.Errorf("union of nothing: %v points, %v; want an empty model", e.Len(), err)
	}
}

func pointIn(m *model.Model, c model.Coefficient) (model.Point, bool) {
	for _, p := range m.Points() {
		if p.Coefficient == c {
			return p, true
		}
	}
	return model.Point{}, false
}
