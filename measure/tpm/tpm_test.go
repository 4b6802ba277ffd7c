package tpm_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vigil-tsem/vigil/measure/tpm"
)

// simulated returns PCR index of a fresh TPM 2.0 simulator (the reference
// implementation, through cgo).
func simulated(t *testing.T, index int) (*tpm.PCR, *simulator.Simulator) {
	t.Helper()
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("start TPM simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	p, err := tpm.New(transport.FromReadWriter(sim), index)
	if err != nil {
		t.Fatal(err)
	}
	return p, sim
}

func TestPCRExtend(t *testing.T) {
	tests := []struct {
		name    string
		index   int
		digests [][]byte
	}{
		{"pcr23 one", 23, [][]byte{bytes.Repeat([]byte{1}, 32)}},
		{"pcr23 three", 23, [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)}},
		{"pcr16", 16, [][]byte{bytes.Repeat([]byte{9}, 32)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := simulated(t, tc.index)
			want := make([]byte, 32)
			for _, d := range tc.digests {
				if err := p.Extend(d); err != nil {
					t.Fatal(err)
				}
				s := sha256.Sum256(append(want, d...))
				want = s[:]
			}
			got, err := p.Read()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Read() = %x, %v; want %x", got, err, want)
			}
			if p.Name() != "tpm" || p.Index() != tc.index || p.Alg().Size() != 32 {
				t.Errorf("register %s %d %v", p.Name(), p.Index(), p.Alg())
			}
		})
	}
}

func TestPCRRejects(t *testing.T) {
	// One simulator at a time: the package holds a global lock while one runs.
	p, sim := simulated(t, 23)
	if err := p.Extend(make([]byte, 48)); err == nil {
		t.Errorf("Extend(48 bytes) = nil; want an error")
	}
	if _, err := tpm.New(transport.FromReadWriter(sim), 24); err == nil {
		t.Errorf("New(PCR 24) = nil error; want out of range")
	}
}

func TestOpenNoDevice(t *testing.T) {
	_, err := tpm.Open(filepath.Join(t.TempDir(), "tpmrm0"), 23)
	if !errors.Is(err, tpm.ErrNoDevice) {
		t.Errorf("Open(missing device) = %v; want ErrNoDevice", err)
	}
}
