package tdx_test

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/measure/tdx"
)

func TestRTMRExtend(t *testing.T) {
	fake := measuretest.NewTDX()
	r, err := tdx.OpenFS(fake, 3)
	if err != nil {
		t.Fatal(err)
	}
	d := sha512.Sum384([]byte("event"))
	if err := r.Extend(d[:]); err != nil {
		t.Fatal(err)
	}
	var zero [48]byte
	want := sha512.Sum384(append(zero[:], d[:]...))
	got, err := r.Read()
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Errorf("Read() = %x, %v; want %x", got, err, want)
	}
	if err := r.Extend(d[:20]); err == nil {
		t.Errorf("Extend(20 bytes) = nil; want an error")
	}
	if fake.Writes() != 1 {
		t.Errorf("%d writes reached the device; want 1", fake.Writes())
	}
}

func TestOpenRTMR(t *testing.T) {
	tests := []struct {
		name  string
		fs    tdx.FS
		index int
		want  error
	}{
		{"rtmr3", measuretest.NewTDX(), 3, nil},
		{"rtmr2", measuretest.NewTDX(), 2, nil},
		{"rtmr0 is the firmware's", measuretest.NewTDX(), 0, tdx.ErrIndex},
		{"rtmr4", measuretest.NewTDX(), 4, tdx.ErrIndex},
		{"no device", tdx.DirFS(t.TempDir()), 3, tdx.ErrNoDevice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tdx.OpenFS(tc.fs, tc.index)
			if !errors.Is(err, tc.want) {
				t.Errorf("OpenFS(%d) = %v; want %v", tc.index, err, tc.want)
			}
		})
	}
}

// The fake refuses what the kernel refuses.
func TestFakeRefuses(t *testing.T) {
	fake := measuretest.NewTDX()
	if err := fake.WriteFile("rtmr1:sha384", make([]byte, 48)); !errors.Is(err, syscall.EPERM) {
		t.Errorf("write rtmr1 = %v; want EPERM", err)
	}
	if err := fake.WriteFile("rtmr3:sha384", make([]byte, 32)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("write 32 bytes = %v; want EINVAL", err)
	}
}

// DirFS reads and writes the files of a real directory tree, one write each.
func TestDirFS(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, tdx.FileName(3))
	if err := os.WriteFile(name, make([]byte, 48), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := tdx.Open(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	d := bytes.Repeat([]byte{0xab}, 48)
	if err := r.Extend(d); err != nil {
		t.Fatal(err)
	}
	// A plain file just holds what was written; the kernel would hash it.
	if got, _ := os.ReadFile(name); !bytes.Equal(got, d) {
		t.Errorf("file holds %x; want the one 48-byte write %x", got, d)
	}
}

func sampleQuote(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quoteTime is when the sample quote's certificates are valid.
var quoteTime = time.Date(2024, time.July, 1, 0, 0, 0, 0, time.UTC)

func TestVerifySampleQuote(t *testing.T) {
	raw := sampleQuote(t)
	q, err := tdx.VerifyQuote(raw, tdx.VerifyOptions{Now: quoteTime})
	if err != nil {
		t.Fatalf("VerifyQuote(sample) = %v", err)
	}
	parsed, err := tdx.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if *parsed != *q {
		t.Errorf("VerifyQuote and ParseQuote disagree")
	}
	if q.MRTD == ([48]byte{}) {
		t.Errorf("sample quote has a zero MRTD")
	}
}

func TestVerifyCorruptedQuote(t *testing.T) {
	raw := sampleQuote(t)
	tests := []struct {
		name   string
		offset int
	}{
		{"report data", 48 + 520},       // in the TD quote body (signed)
		{"rtmr3", 48 + 472},             // RTMR 3
		{"signature", len(raw) - 4000},  // inside the signature data
		{"certificate", len(raw) - 200}, // inside the PCK certificate chain
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := append([]byte(nil), raw...)
			bad[tc.offset] ^= 0x01
			if _, err := tdx.VerifyQuote(bad, tdx.VerifyOptions{Now: quoteTime}); err == nil {
				t.Errorf("VerifyQuote(byte %d flipped) = nil; want an error", tc.offset)
			}
		})
	}
	if _, err := tdx.VerifyQuote(raw, tdx.VerifyOptions{Now: time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Errorf("VerifyQuote(expired certificates) = nil; want an error")
	}
}

func TestGetQuote(t *testing.T) {
	raw := sampleQuote(t)
	tsm := &measuretest.TSM{Quote: func([]byte) ([]byte, error) { return raw, nil }}
	var rd [64]byte
	copy(rd[:], "report data")
	out, err := tdx.GetQuote(tsm, rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, raw) {
		t.Errorf("GetQuote returned %d bytes; want the device's quote", len(out))
	}
	if len(tsm.InBlobs) != 1 || !bytes.Equal(tsm.InBlobs[0], rd[:]) {
		t.Errorf("GetQuote wrote report data %x; want %x", tsm.InBlobs, rd)
	}
}
