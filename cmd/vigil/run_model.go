package main

import (
	"errors"
	"fmt"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
)

// checkModelFlags checks --dialect and --pseudonym, and that they agree
// with --model.
func (f *runFlags) checkModelFlags() error {
	if f.dialect != "" {
		if _, err := model.ParseDialect(f.dialect); err != nil {
			return badInput(fmt.Errorf("--dialect: %w", err))
		}
	}
	for _, p := range f.pseudonyms {
		if err := control.CheckPseudonym(p); err != nil {
			return badInput(fmt.Errorf("--pseudonym: %w", err))
		}
	}
	if len(f.pseudonyms) > 0 && f.modelIn != "" {
		return badInput(errors.New("--pseudonym with --model: a sealed model's coefficients were computed with the pseudonyms it was learned with, which are its 'pseudonym' lines; give --pseudonym when learning it"))
	}
	return nil
}

// loadModel loads and seals --model (nil without one); with --hash or
// --dialect, the model must have that hash and dialect.
func (f *runFlags) loadModel() (*model.Model, error) {
	if f.modelIn == "" {
		return nil, nil
	}
	var m *model.Model
	var err error
	if f.hash != "" {
		h, herr := model.ParseHash(f.hash)
		if herr != nil {
			return nil, badInput(fmt.Errorf("--hash: %w", herr))
		}
		m, err = model.LoadFileHash(f.modelIn, h)
	} else {
		m, err = model.LoadFile(f.modelIn)
	}
	if err != nil {
		return nil, badInput(fmt.Errorf("--model: %w", err))
	}
	if f.dialect != "" && f.dialect != m.Dialect().String() {
		return nil, badInput(fmt.Errorf("--dialect %s: the model %s is of the %s dialect", f.dialect, f.modelIn, m.Dialect()))
	}
	m.Seal()
	return m, nil
}

// newModel returns the standalone namespace's model: --model sealed, or a
// learning model of hash h in --dialect (invariant by default) with the
// --pseudonym pseudonyms. The flags were checked (checkModelFlags).
func (f *runFlags) newModel(h model.Hash) (*model.Model, error) {
	m, err := f.loadModel()
	if err != nil || m != nil {
		return m, err
	}
	d := model.DialectInvariant
	if f.dialect != "" {
		d, _ = model.ParseDialect(f.dialect)
	}
	m = model.New(model.Options{Hash: h, Dialect: d})
	for _, p := range f.pseudonyms {
		m.AddPseudonym(model.PseudonymOfHash(h, p))
	}
	return m, nil
}
