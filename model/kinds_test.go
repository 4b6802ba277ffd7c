package model_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/events/eventstest"
	"github.com/vigil-tsem/vigil/model"
)

// TestKindCoefficients computes the coefficient of every kind's sample
// description: a kind the catalogue models must have one, an unmodeled
// kind must be refused with ErrNoCellLayout, and a kind modeled without
// parameters gets the generic cell. A failure names the kind.
func TestKindCoefficients(t *testing.T) {
	samples := eventstest.KindSamples(t)
	empty := sha256.Sum256(nil)
	for _, k := range events.Kinds() {
		t.Run(k.Name(), func(t *testing.T) {
			e, ok := samples[k.Name()]
			if !ok {
				t.Fatalf("kind %s has no sample description", k.Name())
			}
			_, err := model.EventCoefficient(e, nil)
			switch {
			case k.Unmodeled() != "" && !errors.Is(err, model.ErrNoCellLayout):
				t.Errorf("kind %s is listed unmodeled (%s), but EventCoefficient = %v; take it off the list", k.Name(), k.Unmodeled(), err)
			case k.Unmodeled() == "" && err != nil:
				t.Errorf("kind %s: EventCoefficient = %v; give it a cell layout or list it unmodeled with a reason", k.Name(), err)
			}
			if k.Cell() == events.CellGeneric {
				cell, err := model.AppendCell(nil, e, nil)
				if want := append([]byte(k.Name()), empty[:]...); err != nil || !bytes.Equal(cell, want) {
					t.Errorf("kind %s: AppendCell = %x, %v; want the generic cell %x", k.Name(), cell, err, want)
				}
			}
		})
	}
}

// TestKindGenericRule checks that only kinds the catalogue models without
// parameters get the generic cell from an empty *Generic payload: a kind
// with a layout of its own (or without a known one) described generically
// has no coefficient.
func TestKindGenericRule(t *testing.T) {
	for _, k := range events.Kinds() {
		e := &events.Event{Header: events.Header{Type: k.Name()}, Payload: &events.Generic{}}
		_, err := model.EventCoefficient(e, nil)
		if generic := k.Cell() == events.CellGeneric; generic != (err == nil) {
			t.Errorf("kind %s (cell %s) with an empty generic payload: EventCoefficient error = %v", k.Name(), k.Cell(), err)
		}
	}
}
