package measure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/measure/tdx"
)

func TestQuoteReportData(t *testing.T) {
	nonce := []byte("verifier nonce")
	rd := QuoteReportData(42, nonce)
	if got := binary.LittleEndian.Uint64(rd[:8]); got != 42 {
		t.Errorf("report data position = %d; want 42", got)
	}
	n, err := CheckReportData(rd, nonce)
	if err != nil || n != 42 {
		t.Errorf("CheckReportData = %d, %v; want 42, nil", n, err)
	}
	tests := []struct {
		name  string
		rd    func() [64]byte
		nonce []byte
	}{
		{"other nonce", func() [64]byte { return rd }, []byte("other")},
		{"no nonce", func() [64]byte { return rd }, nil},
		{"position changed", func() [64]byte { r := rd; r[0] = 41; return r }, nonce},
		{"reserved bytes", func() [64]byte { r := rd; r[9] = 1; return r }, nonce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CheckReportData(tc.rd(), tc.nonce); !errors.Is(err, ErrVerify) {
				t.Errorf("CheckReportData = %v; want ErrVerify", err)
			}
		})
	}
}

// TestQuoteOptions checks a log against a quote taken at a log position,
// with the quote made by a fake TDX module (its signature is tdx's concern).
func TestQuoteOptions(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	fake := measuretest.NewTDX()
	l := openLog(t, path, tdxReg(t, fake))
	learn(t, l, "p", events[:60], coefs[:60])
	nonce := []byte{1, 2, 3, 4}
	var q tdx.Quote
	err := l.AtPosition(func(p Position) error {
		q.ReportData = QuoteReportData(p.Records, nonce)
		copy(q.RTMR[3][:], fake.RTMR(3))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	covered := l.Position().Records
	learn(t, l, "later", events[60:], coefs[60:]) // after the quote
	l.Close()

	o, err := QuoteOptions(&q, nonce, 3)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifyFile(t, path, o)
	if err != nil {
		t.Fatalf("Verify(quote) = %v", err)
	}
	if rep.Covered != covered || rep.Records <= covered {
		t.Errorf("Verify: covered %d of %d records; want %d of more", rep.Covered, rep.Records, covered)
	}

	if _, err := QuoteOptions(&q, []byte{9}, 3); !errors.Is(err, ErrVerify) {
		t.Errorf("QuoteOptions(wrong nonce) = %v; want ErrVerify", err)
	}
	// The log lost its records after the first 10: the quote covers more.
	short := filepath.Join(t.TempDir(), "short.log")
	data, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(data, []byte("\n"))
	os.WriteFile(short, bytes.Join(lines[:10], nil), 0o600)
	if _, err := verifyFile(t, short, o); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "removed") {
		t.Errorf("Verify(short log, quote) = %v; want records removed", err)
	}
	// Another RTMR value (something else extended RTMR 3 before the quote).
	bad := q
	bad.RTMR[3][0] ^= 1
	o, _ = QuoteOptions(&bad, nonce, 3)
	if _, err := verifyFile(t, path, o); !errors.Is(err, ErrVerify) {
		t.Errorf("Verify(quote with another RTMR 3) = %v; want ErrVerify", err)
	}
}

func TestLogQuote(t *testing.T) {
	events, coefs := trajectory(t)
	fake := measuretest.NewTDX()
	l := openLog(t, filepath.Join(t.TempDir(), "events.log"), tdxReg(t, fake))
	defer l.Close()
	learn(t, l, "p", events[:30], coefs[:30])
	var quotedRTMR []byte
	tsm := &measuretest.TSM{Quote: func(inblob []byte) ([]byte, error) {
		quotedRTMR = fake.RTMR(3) // what the TDX module would sign
		return []byte("quote"), nil
	}}
	nonce := []byte("fresh")
	raw, pos, err := l.Quote(tsm, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != "quote" || !bytes.Equal(pos.Value, quotedRTMR) || pos.Records != l.Position().Records {
		t.Errorf("Quote = %q at %d records %x; want the device's quote of RTMR 3 %x", raw, pos.Records, pos.Value, quotedRTMR)
	}
	var rd [64]byte
	copy(rd[:], tsm.InBlobs[0])
	if n, err := CheckReportData(rd, nonce); err != nil || n != pos.Records {
		t.Errorf("report data binds %d records, %v; want %d", n, err, pos.Records)
	}

	sw := openLog(t, filepath.Join(t.TempDir(), "sw.log"), NewSoftware(23))
	defer sw.Close()
	if _, _, err := sw.Quote(tsm, nonce); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Quote(software log) = %v; want ErrNoDevice", err)
	}
}
