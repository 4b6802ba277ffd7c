package measure

import (
	"bytes"
	"crypto"
	"fmt"
	"io"

	"github.com/google/go-eventlog/cel"
)

// CELContentType is the CEL content type of Vigil records in a TLV export
// (from the range the CEL specification leaves to vendors); the TLV value is
// the record's content, byte for byte, so the digest still verifies.
const CELContentType uint8 = 0xe0

// CELIndex returns the CEL register index type and number for a register:
// a TDX RTMR is a confidential-computing MR whose CC index is the RTMR
// number plus one (CCMR 0 is MRTD); TPM and software registers are PCRs.
func CELIndex(kind string, index int) (indexType uint8, celIndex uint8) {
	if kind == KindTDX {
		return uint8(cel.CCMRType), uint8(index + 1)
	}
	return uint8(cel.PCRType), uint8(index)
}

// ExportCEL converts the JSON log read from r to CEL TLV on w, record by
// record. It checks each record as Verify does (numbering, register, digest)
// but not the register value.
func ExportCEL(w io.Writer, r io.Reader, file string) (records uint64, err error) {
	rp := NewReplayer("", 0, 0)
	var buf bytes.Buffer
	tail, _, err := eachLine(r, file, func(line []byte, n int, _ int64) error {
		rec, err := ParseLine(line)
		if err != nil {
			return &LineError{File: file, Line: n, Err: err}
		}
		if err := rp.Add(rec); err != nil {
			return &LineError{File: file, Line: n, Err: err}
		}
		typ, idx := CELIndex(rec.Kind, rec.Index)
		cr := cel.Record{
			RecNum:    rec.Recnum,
			Index:     idx,
			IndexType: typ,
			Digests:   map[crypto.Hash][]byte{rec.Alg: rec.Digest},
			Content:   cel.TLV{Type: CELContentType, Value: rec.Content},
		}
		buf.Reset()
		if err := cr.EncodeCELR(&buf); err != nil {
			return &LineError{File: file, Line: n, Err: fmt.Errorf("encode CEL record %d: %w", rec.Recnum, err)}
		}
		_, err = w.Write(buf.Bytes())
		return err
	})
	if err != nil {
		return rp.Records(), fmt.Errorf("export %s: %w", file, err)
	}
	if len(tail) > 0 {
		return rp.Records(), fmt.Errorf("export %s: %w", file, ErrTornLine)
	}
	return rp.Records(), nil
}
