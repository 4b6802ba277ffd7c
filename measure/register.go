package measure

import (
	"crypto"
	_ "crypto/sha256" // register banks: SHA-256 (TPM)
	_ "crypto/sha512" // register banks: SHA-384 (TDX RTMR, software)
	"errors"
	"fmt"
	"io"
	"sync"
)

// Register is one measurement register: it can only be extended
// (value = H(value ‖ digest)) and read. Implementations: [Software] here, the
// TDX RTMR in measure/tdx, the TPM PCR in measure/tpm.
type Register interface {
	// Name is the register's kind as the command line spells it: "tdx",
	// "tpm" or "software".
	Name() string
	// Index is the register's number: the RTMR or PCR index.
	Index() int
	// Alg is the hash algorithm of the register (and of the digests extended).
	Alg() crypto.Hash
	// Extend extends the register with digest, which must be Alg().Size() bytes.
	Extend(digest []byte) error
	// Read returns the register's current value.
	Read() ([]byte, error)
}

// Sentinel errors for conclusive states.
var (
	// ErrNoDevice: the requested register device does not exist here.
	ErrNoDevice = errors.New("no measurement register device")
	// ErrRegisterMismatch: the register's value is not explained by the log.
	ErrRegisterMismatch = errors.New("register does not match the log")
	// ErrLogLocked: another process holds the log.
	ErrLogLocked = errors.New("log is locked by another process")
	// ErrLogBroken: an earlier append failed in a way that could not be undone;
	// the log accepts no more records.
	ErrLogBroken = errors.New("log is broken by an earlier failure")
	// ErrMalformed: a log line is not a well-formed record.
	ErrMalformed = errors.New("malformed record")
	// ErrVerify: verification found a mismatch.
	ErrVerify = errors.New("verification failed")
)

// Register kinds, as Register.Name returns them.
const (
	KindTDX      = "tdx"
	KindTPM      = "tpm"
	KindSoftware = "software"
)

// Software is a SHA-384 register in process memory. It protects nothing (any
// process owner can forge it) and is gone when the process exits; it exists
// so the log and verifier work the same where no hardware register exists. A
// log opened on a Software register restores it by replaying the log.
//
// It is safe for concurrent use.
type Software struct {
	index int
	mu    sync.Mutex
	value [48]byte
}

var _ Register = (*Software)(nil)

// NewSoftware returns a zero software register with the given index (only a
// label: it is written in each log record).
func NewSoftware(index int) *Software { return &Software{index: index} }

func (s *Software) Name() string     { return KindSoftware }
func (s *Software) Index() int       { return s.index }
func (s *Software) Alg() crypto.Hash { return crypto.SHA384 }

// Extend sets the value to SHA-384(value ‖ digest).
func (s *Software) Extend(digest []byte) error {
	if len(digest) != crypto.SHA384.Size() {
		return fmt.Errorf("extend software register: digest is %d bytes, want %d", len(digest), crypto.SHA384.Size())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := crypto.SHA384.New()
	h.Write(s.value[:])
	h.Write(digest)
	h.Sum(s.value[:0])
	return nil
}

// Read returns a copy of the value.
func (s *Software) Read() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.value[:]...), nil
}

// volatile marks registers that start at zero in every process, so a log
// reopened on them is replayed into them.
func (s *Software) volatile() {}

// ExtendValue returns H(value ‖ digest), the register arithmetic.
func ExtendValue(alg crypto.Hash, value, digest []byte) []byte {
	h := alg.New()
	h.Write(value)
	h.Write(digest)
	return h.Sum(nil)
}

// AlgName returns the TCG name of a register hash algorithm ("sha256",
// "sha384"), as the log's digests use it.
func AlgName(alg crypto.Hash) string {
	switch alg {
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return fmt.Sprintf("hash(%d)", alg)
}

// ParseAlg is the inverse of AlgName.
func ParseAlg(name string) (crypto.Hash, error) {
	switch name {
	case "sha256":
		return crypto.SHA256, nil
	case "sha384":
		return crypto.SHA384, nil
	case "sha512":
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("parse hash algorithm %q: unknown", name)
}

// CloseRegister releases the device behind r, if it holds one.
func CloseRegister(r Register) error {
	if c, ok := r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// restore sets the value (tests and OpenLog's replay use it).
func (s *Software) restore(value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.value[:], value)
}
