package measure

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
)

// ContentType is the CEL content_type of every record Vigil writes.
const ContentType = "vigil"

// Record is one line of the event log: a TCG Canonical Event Log record in its
// JSON shape. Content holds the exact bytes of the record's "content" value;
// Digest is Alg(Content), the value extended into the register.
type Record struct {
	Recnum  uint64
	Kind    string // register kind: KindTDX, KindTPM or KindSoftware
	Index   int    // register index (RTMR or PCR number)
	Alg     crypto.Hash
	Digest  []byte
	Content []byte
}

// indexKey is the JSON key that carries the register index for each kind of
// register. CEL names it "pcr" for TPM PCRs; an RTMR is "rtmr", and the
// software register "swreg" so no verifier mistakes it for hardware.
func indexKey(kind string) string {
	switch kind {
	case KindTDX:
		return "rtmr"
	case KindTPM:
		return "pcr"
	case KindSoftware:
		return "swreg"
	}
	return ""
}

func kindOfKey(key []byte) string {
	switch string(key) {
	case "rtmr":
		return KindTDX
	case "pcr":
		return KindTPM
	case "swreg":
		return KindSoftware
	}
	return ""
}

// AppendLine appends r's log line, newline included, to dst. The layout is
// fixed (key order, no spaces), so the same record always has the same line:
//
//	{"recnum":N,"<rtmr|pcr|swreg>":I,"digests":[{"hashAlg":"sha384","digest":"HEX"}],"content_type":"vigil","content":CONTENT}
func AppendLine(dst []byte, r Record) []byte {
	dst = append(dst, `{"recnum":`...)
	dst = strconv.AppendUint(dst, r.Recnum, 10)
	dst = append(dst, `,"`...)
	dst = append(dst, indexKey(r.Kind)...)
	dst = append(dst, `":`...)
	dst = strconv.AppendInt(dst, int64(r.Index), 10)
	dst = append(dst, `,"digests":[{"hashAlg":"`...)
	dst = append(dst, AlgName(r.Alg)...)
	dst = append(dst, `","digest":"`...)
	dst = hex.AppendEncode(dst, r.Digest)
	dst = append(dst, `"}],"content_type":"`+ContentType+`","content":`...)
	dst = append(dst, r.Content...)
	return append(dst, "}\n"...)
}

// ParseLine parses one log line (without its newline) in the layout
// AppendLine writes. It checks the record's syntax only: the content must
// look like an object ({...}) but is decoded and checked by ParseContent, and
// that the digest is Alg(Content) is checked by [Record.Check]. Content
// aliases line.
func ParseLine(line []byte) (Record, error) {
	var r Record
	err := parseLine(line, &r)
	return r, err
}

// parseLine parses into r, reusing r.Digest's memory: replays call it for
// every record.
func parseLine(line []byte, r *Record) error {
	digest := r.Digest[:0]
	*r = Record{}
	p := parser{b: line}
	p.lit(`{"recnum":`)
	r.Recnum = p.uint("recnum")
	p.lit(`,"`)
	key := p.until('"')
	if p.err == nil {
		if r.Kind = kindOfKey(key); r.Kind == "" {
			p.fail("register index key %q is not rtmr, pcr or swreg", key)
		}
	}
	p.lit(`":`)
	idx := p.uint("register index")
	if p.err == nil && idx > 255 {
		p.fail("register index %d is out of range", idx)
	}
	r.Index = int(idx)
	p.lit(`,"digests":[{"hashAlg":"`)
	alg := p.until('"')
	if p.err == nil {
		var err error
		if r.Alg, err = ParseAlg(string(alg)); err != nil {
			p.fail("hashAlg: %v", err)
		}
	}
	p.lit(`","digest":"`)
	dh := p.until('"')
	if p.err == nil {
		if len(dh) != 2*r.Alg.Size() {
			p.fail("digest has %d hex digits, want %d for %s", len(dh), 2*r.Alg.Size(), AlgName(r.Alg))
		} else if r.Digest = decodeLowerHex(digest, dh); r.Digest == nil {
			p.fail("digest is not lowercase hex")
		}
	}
	p.lit(`"}],"content_type":"` + ContentType + `","content":`)
	if p.err != nil {
		*r = Record{Digest: digest}
		return p.err
	}
	rest := line[p.i:]
	if len(rest) < 3 || rest[0] != '{' || rest[len(rest)-1] != '}' || rest[len(rest)-2] != '}' {
		*r = Record{Digest: digest}
		return fmt.Errorf("%w: column %d: content is not an object closing the record", ErrMalformed, p.i+1)
	}
	r.Content = rest[:len(rest)-1]
	return nil
}

// Check reports whether r.Digest is the hash of r.Content.
func (r Record) Check() error {
	h := r.Alg.New()
	h.Write(r.Content)
	if sum := h.Sum(nil); !bytes.Equal(sum, r.Digest) {
		return fmt.Errorf("record %d: digest %x is not the %s of its content (%x)", r.Recnum, r.Digest, AlgName(r.Alg), sum)
	}
	return nil
}

// decodeLowerHex appends the bytes of lowercase hex src to dst[:0]; nil if
// src is not lowercase hex.
func decodeLowerHex(dst, src []byte) []byte {
	dst = dst[:0]
	for i := 0; i+1 < len(src); i += 2 {
		hi, ok1 := nibble(src[i])
		lo, ok2 := nibble(src[i+1])
		if !ok1 || !ok2 {
			return nil
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parser walks a line in the fixed record layout; the first failure sticks.
type parser struct {
	b   []byte
	i   int
	err error
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: column %d: %s", ErrMalformed, p.i+1, fmt.Sprintf(format, args...))
	}
}

func (p *parser) lit(s string) {
	if p.err != nil {
		return
	}
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.fail("want %s", s)
		return
	}
	p.i += len(s)
}

func (p *parser) uint(what string) uint64 {
	if p.err != nil {
		return 0
	}
	j := p.i
	var v uint64
	for j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9' {
		d := uint64(p.b[j] - '0')
		if v > (math.MaxUint64-d)/10 {
			p.fail("%s is out of range", what)
			return 0
		}
		v = v*10 + d
		j++
	}
	if j == p.i || (p.b[p.i] == '0' && j-p.i > 1) {
		p.fail("%s is not a decimal number", what)
		return 0
	}
	p.i = j
	return v
}

// until returns the bytes up to (not including) c and moves past them.
func (p *parser) until(c byte) []byte {
	if p.err != nil {
		return nil
	}
	j := bytes.IndexByte(p.b[p.i:], c)
	if j < 0 {
		p.fail("unterminated string")
		return nil
	}
	s := p.b[p.i : p.i+j]
	p.i += j
	return s
}
