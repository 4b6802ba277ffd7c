package measure

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/measure/measuretest"
)

func TestOpenRegister(t *testing.T) {
	missing := RegisterOptions{TDXRoot: t.TempDir(), TPMDevice: filepath.Join(t.TempDir(), "tpmrm0")}
	withTDX := missing
	withTDX.TDXFS = measuretest.NewTDX()
	rtmr2 := withTDX
	rtmr2.TDXIndex = 2
	tests := []struct {
		name      string
		kind      string
		opts      RegisterOptions
		wantName  string
		wantIndex int
		wantErr   error
	}{
		{"auto finds tdx", "auto", withTDX, KindTDX, 3, nil},
		{"auto falls back to software", "auto", missing, KindSoftware, DefaultSoftwareIndex, nil},
		{"tdx rtmr 2", KindTDX, rtmr2, KindTDX, 2, nil},
		{"tdx missing", KindTDX, missing, "", 0, ErrNoDevice},
		{"tpm missing", KindTPM, missing, "", 0, ErrNoDevice},
		{"software", KindSoftware, missing, KindSoftware, DefaultSoftwareIndex, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, why, err := OpenRegister(tc.kind, tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("OpenRegister(%s) = %v; want %v", tc.kind, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if r.Name() != tc.wantName || r.Index() != tc.wantIndex {
				t.Errorf("OpenRegister(%s) = %s %d; want %s %d", tc.kind, r.Name(), r.Index(), tc.wantName, tc.wantIndex)
			}
			if !strings.Contains(why, tc.wantName) {
				t.Errorf("OpenRegister(%s) says %q", tc.kind, why)
			}
		})
	}
	if _, _, err := OpenRegister("pcr", missing); err == nil {
		t.Errorf("OpenRegister(pcr) = nil error; want unknown kind")
	}
}
