package measure

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-configfs-tsm/configfs/configfsi"

	"github.com/vigil-tsem/vigil/measure/tdx"
)

// A TDX quote's 64 bytes of report data bind the verifier's nonce and the log
// position the quote was taken at:
//
//	bytes  0..7   records N, u64 little-endian: the quote covers records 0..N-1
//	bytes  8..15  zero
//	bytes 16..63  SHA-384("vigil-quote-v1" ‖ u64le(N) ‖ nonce)
//
// N is in the clear so a verifier knows how much of a growing log to replay;
// the hash makes the report data fresh (nonce) and ties N to it.
const quoteDomain = "vigil-quote-v1"

// QuoteReportData returns the report data binding nonce and a position of
// records records.
func QuoteReportData(records uint64, nonce []byte) [64]byte {
	var rd [64]byte
	binary.LittleEndian.PutUint64(rd[0:8], records)
	h := sha512.New384()
	h.Write([]byte(quoteDomain))
	h.Write(rd[0:8])
	h.Write(nonce)
	h.Sum(rd[16:16])
	return rd
}

// CheckReportData checks that rd binds nonce and returns the number of
// records it covers.
func CheckReportData(rd [64]byte, nonce []byte) (uint64, error) {
	n := binary.LittleEndian.Uint64(rd[0:8])
	if want := QuoteReportData(n, nonce); !bytes.Equal(rd[:], want[:]) {
		return 0, fmt.Errorf("%w: quote report data %x does not bind nonce %x and %d records", ErrVerify, rd, nonce, n)
	}
	return n, nil
}

// QuoteOptions returns the options that check a log measured into RTMR index
// against a TDX quote: the quote's report data must bind nonce, and the log's
// first N records (N from the report data) must explain the quote's RTMR.
// The quote's signature must have been checked (tdx.VerifyQuote).
func QuoteOptions(q *tdx.Quote, nonce []byte, index int) (VerifyOptions, error) {
	if index < 0 || index >= len(q.RTMR) {
		return VerifyOptions{}, fmt.Errorf("%w: RTMR %d is not in a quote", ErrVerify, index)
	}
	n, err := CheckReportData(q.ReportData, nonce)
	if err != nil {
		return VerifyOptions{}, err
	}
	return VerifyOptions{
		Register: append([]byte(nil), q.RTMR[index][:]...),
		Position: &n,
		Kind:     KindTDX,
		Index:    index,
	}, nil
}

// FirstRecord returns the first record of a log (for its register), or
// ok false for an empty log.
func FirstRecord(r io.Reader, file string) (rec Record, ok bool, err error) {
	errStop := errors.New("stop")
	err = Scan(r, file, func(_ int, first Record) error {
		rec = first
		rec.Digest = append([]byte(nil), first.Digest...)
		rec.Content = append([]byte(nil), first.Content...)
		ok = true
		return errStop
	})
	if errors.Is(err, errStop) || errors.Is(err, ErrTornLine) && !ok {
		err = nil
	}
	return rec, ok, err
}

// Quote asks the TDX module for a quote binding nonce and the log's current
// position, with appends held off so the quoted RTMR is the one the position
// explains. client is nil for the kernel's configfs-tsm. The log must be
// measured into a TDX RTMR.
func (l *Log) Quote(client configfsi.Client, nonce []byte) (raw []byte, pos Position, err error) {
	if l.kind != KindTDX {
		return nil, Position{}, fmt.Errorf("quote log %s: %w: it is measured into the %s register", l.path, ErrNoDevice, l.kind)
	}
	err = l.AtPosition(func(p Position) error {
		pos = p
		raw, err = tdx.GetQuote(client, QuoteReportData(p.Records, nonce))
		return err
	})
	if err != nil {
		return nil, Position{}, fmt.Errorf("quote log %s: %w", l.path, err)
	}
	return raw, pos, nil
}
