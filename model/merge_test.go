package model_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// learn builds a model of lines (reference event descriptions).
func learn(t *testing.T, opts model.Options, lines [][]byte) *model.Model {
	t.Helper()
	m := model.New(opts)
	for _, l := range lines {
		e, err := events.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.Coefficient(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Add(c, l); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestMerge merges two overlapping halves of process_1: the union is the
// model of the whole run, in its order, with every trajectory line, even
// for points one input has without its line.
func TestMerge(t *testing.T) {
	lines := readLines(t, "../testdata/tsem/process_1.json")
	whole := learn(t, model.Options{}, lines)
	a := learn(t, model.Options{}, lines[:100])
	a.Seal()
	b := learn(t, model.Options{}, lines[60:])

	// a without its trajectory lines, as a kernel-written model file.
	var buf bytes.Buffer
	a.WriteTo(&buf)
	var bare bytes.Buffer
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if !strings.HasPrefix(l, "#trajectory") {
			bare.WriteString(l)
		}
	}
	aBare, err := model.Load(&bare, "a.model")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		a      *model.Model
		wantTr int // points with a trajectory line
	}{
		{"with trajectories", a, 155},
		{"first without trajectory lines", aBare, 155 - 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Merge(model.Named{Name: "a.model", Model: tc.a}, model.Named{Name: "b.model", Model: b})
			if err != nil {
				t.Fatal(err)
			}
			if m.Sealed() {
				t.Error("merged model is sealed; want it learning")
			}
			if m.Len() != whole.Len() || m.Measurement() != whole.Measurement() || m.State() != whole.State() {
				t.Errorf("merge: %d points, measurement %s; want the whole run's %d, %s", m.Len(), m.Measurement(), whole.Len(), whole.Measurement())
			}
			tr := 0
			for i, p := range m.Points() {
				if p.Count != 0 {
					t.Errorf("point %d count %d; want 0 (a model file's)", i+1, p.Count)
				}
				if p.Description != nil {
					tr++
				}
			}
			if tr != tc.wantTr {
				t.Errorf("%d points with a trajectory line; want %d", tr, tc.wantTr)
			}
		})
	}
}

func TestMergeMismatch(t *testing.T) {
	lines := readLines(t, "../testdata/tsem/process_1.json")
	base := func() *model.Model { return learn(t, model.Options{}, lines[:5]) }
	withPseudonym := base()
	withPseudonym.AddPseudonym(model.PseudonymOf("/etc/hostname"))
	tests := []struct {
		name  string
		other *model.Model
		want  string
	}{
		{"hash", model.New(model.Options{Hash: model.SHA384}), "b.model is of hash sha384, a.model is of hash sha256"},
		{"dialect", model.New(model.Options{Dialect: model.DialectInvariant}), "b.model is of the dialect invariant, a.model is of the dialect tsem"},
		{"aggregate", model.New(model.Options{Aggregate: c32(1)}), "b.model is of aggregate 01000000"},
		{"base", model.New(model.Options{Base: c32(2)}), "b.model is of base 02000000"},
		{"pseudonyms", withPseudonym, "b.model has pseudonym " + model.PseudonymOf("/etc/hostname").String() + ", a.model has not"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.Merge(model.Named{Name: "a.model", Model: base()}, model.Named{Name: "b.model", Model: tc.other})
			if !errors.Is(err, model.ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Merge error = %v; want ErrMismatch containing %q", err, tc.want)
			}
		})
	}
	// The other way round, the first model's extra pseudonym is named.
	_, err := model.Merge(model.Named{Name: "a.model", Model: withPseudonym}, model.Named{Name: "b.model", Model: base()})
	if !errors.Is(err, model.ErrMismatch) || !strings.Contains(err.Error(), "a.model has pseudonym") {
		t.Errorf("Merge error = %v; want a.model's pseudonym named", err)
	}
	if _, err := model.Merge(); err == nil {
		t.Error("Merge() = nil error; want one")
	}
}
