package measure

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-eventlog/cel"
	pb "github.com/google/go-eventlog/proto/state"
	"github.com/google/go-eventlog/register"

	"github.com/vigil-tsem/vigil/measure/measuretest"
)

// TestExportCEL decodes the TLV export with go-eventlog and replays it to the
// register value.
func TestExportCEL(t *testing.T) {
	events, coefs := trajectory(t)
	tests := []struct {
		name string
		reg  func(t *testing.T) (Register, func() []byte)
		bank func(value []byte) register.MRBank
	}{
		{"software", func(t *testing.T) (Register, func() []byte) {
			s := NewSoftware(DefaultSoftwareIndex)
			return s, func() []byte { v, _ := s.Read(); return v }
		}, func(v []byte) register.MRBank {
			return register.PCRBank{TCGHashAlgo: pb.HashAlgo_SHA384, PCRs: []register.PCR{{Index: DefaultSoftwareIndex, Digest: v, DigestAlg: crypto.SHA384}}}
		}},
		{"tdx", func(t *testing.T) (Register, func() []byte) {
			fake := measuretest.NewTDX()
			return tdxReg(t, fake), func() []byte { return fake.RTMR(3) }
		}, func(v []byte) register.MRBank {
			return register.RTMRBank{RTMRs: []register.RTMR{{Index: 3, Digest: v}}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			reg, value := tc.reg(t)
			l := openLog(t, path, reg)
			learn(t, l, "p", events, coefs)
			l.Close()
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var buf bytes.Buffer
			n, err := ExportCEL(&buf, f, path)
			if err != nil {
				t.Fatal(err)
			}
			log, err := cel.DecodeToCEL(&buf)
			if err != nil {
				t.Fatalf("DecodeToCEL = %v", err)
			}
			if got := len(log.Records()); uint64(got) != n || n == 0 {
				t.Fatalf("decoded %d records; exported %d", got, n)
			}
			for _, r := range log.Records() {
				h := reg.Alg().New()
				h.Write(r.Content.Value)
				if !bytes.Equal(h.Sum(nil), r.Digests[reg.Alg()]) {
					t.Fatalf("record %d: digest is not the hash of the TLV content", r.RecNum)
				}
			}
			if err := log.Replay(tc.bank(value())); err != nil {
				t.Errorf("Replay = %v", err)
			}
			wrong := append([]byte(nil), value()...)
			wrong[0] ^= 1
			if err := log.Replay(tc.bank(wrong)); err == nil {
				t.Errorf("Replay(wrong register) = nil; want an error")
			}
		})
	}
}
