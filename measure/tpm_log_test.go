package measure

import (
	"path/filepath"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vigil-tsem/vigil/measure/tpm"
)

// TestLogOnTPM measures into PCR 23 of the TPM 2.0 reference simulator; the
// PCR outlives the log, so reopening continues without repairs.
func TestLogOnTPM(t *testing.T) {
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("start TPM simulator: %v", err)
	}
	defer sim.Close()
	pcr, err := tpm.New(transport.FromReadWriter(sim), tpm.DefaultPCR)
	if err != nil {
		t.Fatal(err)
	}
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	l := openLog(t, path, pcr)
	learn(t, l, "first", events[:80], coefs[:80])
	l.Close()
	l = openLog(t, path, pcr)
	if len(l.Repairs()) != 0 {
		t.Errorf("Repairs() = %+v; want none", l.Repairs())
	}
	learn(t, l, "second", events[80:], coefs[80:])
	l.Close()
	v, err := pcr.Read()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifyFile(t, path, VerifyOptions{Register: v, Kind: KindTPM, Index: tpm.DefaultPCR})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if rep.Alg.Size() != 32 || rep.Kind != KindTPM {
		t.Errorf("Verify: register %s %v; want tpm sha256", rep.Kind, rep.Alg)
	}
}
