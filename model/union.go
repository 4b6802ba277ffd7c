package model

import "fmt"

// Union returns a new learning model holding every point of models: each
// coefficient once, with the description of its first appearance (models
// in order, points in arrival order) and the sum of its counts, and every
// pseudonym. The models must share hash h, aggregate and base; their
// forensics are not points and are left out. The agent builds the model of
// an image from the models its first instances learned with it.
func Union(h Hash, models ...*Model) (*Model, error) {
	if len(models) == 0 {
		return New(Options{Hash: h}), nil
	}
	first := models[0]
	u := New(Options{Hash: h, Aggregate: first.Aggregate(), Base: first.Base()})
	for i, m := range models {
		if m.Hash() != h {
			return nil, fmt.Errorf("union of models: model %d is %s, not %s: %w", i+1, m.Hash(), h, ErrHashMismatch)
		}
		if m.Aggregate() != first.Aggregate() || m.Base() != first.Base() {
			return nil, fmt.Errorf("union of models: model %d has another aggregate or base than model 1", i+1)
		}
		for _, p := range m.Pseudonyms() {
			u.AddPseudonym(p)
		}
		points, err := m.ReadPoints()
		if err != nil {
			return nil, fmt.Errorf("union of models: model %d: %w", i+1, err)
		}
		for _, p := range points {
			if _, err := u.Add(p.Coefficient, p.Description); err != nil {
				return nil, fmt.Errorf("union of models: %w", err)
			}
			if p.Count > 1 {
				u.AddRepeats(p.Coefficient, p.Count-1)
			}
		}
	}
	return u, nil
}
