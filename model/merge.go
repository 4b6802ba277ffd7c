package model

import (
	"errors"
	"fmt"
)

// ErrMismatch is matched (errors.Is) by Merge's errors for models that
// cannot be merged: their hashes, dialects, pseudonyms, aggregates or
// bases differ.
var ErrMismatch = errors.New("models do not agree")

// Named is a model and the name (a file name) errors give it.
type Named struct {
	Name  string
	Model *Model
}

// Merge returns the union of the points of models, learning (unsealed) and
// with counts of zero: the first model's points in its order, then each
// later model's points the earlier ones lack, in its order. A point keeps
// the first description (trajectory line) any model has for it.
//
// The models must agree on everything a point's coefficient or the
// measurement depends on: hash, dialect, pseudonyms (as a set), aggregate
// and base. Otherwise Merge fails with an error that names the first model
// and the one that differs, and wraps ErrMismatch. Forensics are not
// merged: they are not part of a model.
func Merge(models ...Named) (*Model, error) {
	if len(models) == 0 {
		return nil, errors.New("merge models: no model")
	}
	first := models[0]
	for _, o := range models[1:] {
		if err := agree(first, o); err != nil {
			return nil, err
		}
	}
	a := first.Model
	out := New(Options{Hash: a.hash, Dialect: a.dialect, Aggregate: a.aggregate, Base: a.base})
	for _, p := range a.Pseudonyms() {
		out.AddPseudonym(p)
	}
	for _, in := range models {
		pts, err := in.Model.ReadPoints()
		if err != nil {
			return nil, fmt.Errorf("merge models: %s: %w", in.Name, err)
		}
		for _, p := range pts {
			if e, ok := out.lookup(&p.Coefficient); ok {
				if e.desc == nil && p.Description != nil {
					e.desc = p.Description
				}
				continue
			}
			out.record(p.Coefficient, p.Description, false)
		}
	}
	out.notified = len(out.all) // merged points are not news to an observer
	return out, nil
}

// agree checks that b can be merged into a.
func agree(a, b Named) error {
	ma, mb := a.Model, b.Model
	mismatch := func(what string, va, vb any) error {
		return fmt.Errorf("merge models: %s is %s %v, %s is %s %v: %w", b.Name, what, vb, a.Name, what, va, ErrMismatch)
	}
	switch {
	case ma.hash != mb.hash:
		return mismatch("of hash", ma.hash, mb.hash)
	case ma.dialect != mb.dialect:
		return mismatch("of the dialect", ma.dialect, mb.dialect)
	case ma.aggregate != mb.aggregate:
		return mismatch("of aggregate", ma.aggregate, mb.aggregate)
	case ma.base != mb.base:
		return mismatch("of base", ma.base, mb.base)
	}
	pa, pb := ma.Pseudonyms(), mb.Pseudonyms()
	if p, ok := missing(pa, pb); ok {
		return fmt.Errorf("merge models: %s has pseudonym %s, %s has not (a pseudonym changes the coefficients of its file): %w", a.Name, p, b.Name, ErrMismatch)
	}
	if p, ok := missing(pb, pa); ok {
		return fmt.Errorf("merge models: %s has pseudonym %s, %s has not (a pseudonym changes the coefficients of its file): %w", b.Name, p, a.Name, ErrMismatch)
	}
	return nil
}

// missing returns the first of xs that ys lacks.
func missing(xs, ys []Coefficient) (Coefficient, bool) {
	set := make(map[Coefficient]bool, len(ys))
	for _, y := range ys {
		set[y] = true
	}
	for _, x := range xs {
		if !set[x] {
			return x, true
		}
	}
	return Coefficient{}, false
}
