package measuretest

import (
	"crypto"
	"errors"
	"sync"
)

// ErrInjected is the error a Faulty register returns when told to fail.
var ErrInjected = errors.New("injected register failure")

// Reg is the register interface the fakes wrap (measure.Register, restated
// so measuretest does not import measure).
type Reg interface {
	Name() string
	Index() int
	Alg() crypto.Hash
	Extend(digest []byte) error
	Read() ([]byte, error)
}

// Faulty wraps a register and fails extends on demand: FailBefore fails
// without extending (the device refused), FailAfter extends and then reports
// failure (a timeout after the device acted). It is a Reg itself.
type Faulty struct {
	Reg
	mu         sync.Mutex
	failBefore bool
	failAfter  bool
}

// FailBefore makes the next extends fail without extending, until cleared.
func (f *Faulty) FailBefore(on bool) { f.mu.Lock(); f.failBefore = on; f.mu.Unlock() }

// FailAfter makes the next extends extend and then fail, until cleared.
func (f *Faulty) FailAfter(on bool) { f.mu.Lock(); f.failAfter = on; f.mu.Unlock() }

// Extend extends the wrapped register unless told to fail.
func (f *Faulty) Extend(digest []byte) error {
	f.mu.Lock()
	before, after := f.failBefore, f.failAfter
	f.mu.Unlock()
	if before {
		return ErrInjected
	}
	if err := f.Reg.Extend(digest); err != nil {
		return err
	}
	if after {
		return ErrInjected
	}
	return nil
}
