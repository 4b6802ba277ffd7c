package tpm

import (
	"crypto"
	_ "crypto/sha256" // the SHA-256 bank
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DefaultPCR is the PCR Vigil extends.
const DefaultPCR = 23

// DefaultDevices returns the devices tried in order when none is named: the
// kernel's resource manager first, so other TPM users are not disturbed.
func DefaultDevices() []string { return []string{"/dev/tpmrm0", "/dev/tpm0"} }

// ErrNoDevice: no TPM device node exists.
var ErrNoDevice = errors.New("no TPM device")

// PCR is one PCR of the SHA-256 bank.
type PCR struct {
	mu     sync.Mutex
	tpm    transport.TPM
	closer func() error
	index  int
}

// Open opens device (DefaultDevices when empty) and PCR index.
func Open(device string, index int) (*PCR, error) {
	devices := DefaultDevices()
	if device != "" {
		devices = []string{device}
	}
	for _, d := range devices {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		t, err := linuxtpm.Open(d)
		if err != nil {
			return nil, fmt.Errorf("open TPM %s: %w", d, err)
		}
		p, err := New(t, index)
		if err != nil {
			t.Close()
			return nil, err
		}
		p.closer = t.Close
		return p, nil
	}
	return nil, fmt.Errorf("open TPM %v: %w", devices, ErrNoDevice)
}

// New uses PCR index of the TPM behind t (a simulator in tests). It reads
// the PCR once to check it exists in the SHA-256 bank. Closing the PCR does
// not close t.
func New(t transport.TPM, index int) (*PCR, error) {
	if index < 0 || index > 23 {
		return nil, fmt.Errorf("open PCR %d: index out of range 0..23", index)
	}
	p := &PCR{tpm: t, index: index}
	if _, err := p.Read(); err != nil {
		return nil, fmt.Errorf("open PCR %d: %w", index, err)
	}
	return p, nil
}

// Name returns "tpm".
func (p *PCR) Name() string { return "tpm" }

// Index returns the PCR number.
func (p *PCR) Index() int { return p.index }

// Alg returns SHA-256.
func (p *PCR) Alg() crypto.Hash { return crypto.SHA256 }

// Extend extends the PCR's SHA-256 bank with a 32-byte digest.
func (p *PCR) Extend(digest []byte) error {
	if len(digest) != crypto.SHA256.Size() {
		return fmt.Errorf("extend PCR %d: digest is %d bytes, want %d", p.index, len(digest), crypto.SHA256.Size())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(p.index), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA256, Digest: digest},
		}},
	}.Execute(p.tpm)
	if err != nil {
		return fmt.Errorf("extend PCR %d: %w", p.index, err)
	}
	return nil
}

// Read returns the PCR's SHA-256 value.
func (p *PCR) Read() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rsp, err := tpm2.PCRRead{
		PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(p.index))},
		}},
	}.Execute(p.tpm)
	if err != nil {
		return nil, fmt.Errorf("read PCR %d: %w", p.index, err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		return nil, fmt.Errorf("read PCR %d: the TPM returned %d values (no SHA-256 bank?)", p.index, len(rsp.PCRValues.Digests))
	}
	return rsp.PCRValues.Digests[0].Buffer, nil
}

// Close closes the device if Open opened it.
func (p *PCR) Close() error {
	if p.closer == nil {
		return nil
	}
	err := p.closer()
	p.closer = nil
	return err
}
