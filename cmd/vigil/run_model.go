package main

import (
	"errors"
	"fmt"
	"path/filepath"

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

// settings are the run namespace's settings: base (an agent's defaults;
// none standalone) with the flags' and those of m, the loaded --model (nil
// without one), whose hash and dialect its coefficients were computed in.
func (f *runFlags) settings(base control.Settings, m *model.Model) control.Settings {
	s := base
	s.Capable, s.RepeatCache, s.Enforce = !f.noCapable, !f.noRepeats, f.enforce
	if f.hash != "" {
		s.HashAlgorithm = f.hash
	}
	if f.dialect != "" {
		s.Dialect = f.dialect
	}
	s.Pseudonyms = f.pseudonyms
	if m != nil {
		s.HashAlgorithm, s.Dialect = m.Hash().String(), m.Dialect().String()
		s.Model = f.modelIn
		if abs, err := filepath.Abs(f.modelIn); err == nil {
			s.Model = abs
		}
	}
	return s
}
