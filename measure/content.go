package measure

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/vigil-tsem/vigil/model"
)

// Kinds of content record (the "record" field of a record's content).
const (
	// RecordCreated opens a namespace: its id, name, hash algorithm (only
	// when not sha256, so SHA-256 logs read as they always did), aggregate
	// and base.
	RecordCreated = "created"
	// RecordPoint is a new unique coefficient of a namespace, with the event
	// description that first produced it.
	RecordPoint = "point"
	// RecordSealed: the namespace's model was sealed.
	RecordSealed = "sealed"
	// RecordEnforcing: the namespace's model is enforced.
	RecordEnforcing = "enforcing"
	// RecordGap: events of the namespace were lost ("lost", counted by
	// the kernel), or model points of it could not be written to the log
	// ("points": the log could not be written), so its model, or the log's
	// record of it, is incomplete from here on. "reason" says why.
	RecordGap = "gap"
	// RecordStart begins a run: one process appending to the log, from
	// Log.BeginRun to Log.Close. It has no namespace. "run" numbers the
	// runs from 1; "previous" (absent in an empty log) says where the log
	// stood: its records, the register value they explain, and whether the
	// last of them was a stop record (a clean end).
	RecordStart = "start"
	// RecordStop ends a run cleanly: every record of the run is written
	// before it. It has no namespace; "records" is the number of records
	// before it and "value" the register value they explain, so a log cut
	// short before a restart shows a run without its stop.
	RecordStop = "stop"
)

// Content is the decoded content of a record. Only the fields of its kind
// are set.
type Content struct {
	Record    string           `json:"record"`
	Time      string           `json:"time,omitempty"`
	Namespace ContentNamespace `json:"namespace"`
	Hash      string           `json:"hash,omitempty"`
	Aggregate string           `json:"aggregate,omitempty"`
	Base      string           `json:"base,omitempty"`
	Coef      string           `json:"coefficient,omitempty"`
	Forensic  bool             `json:"forensic,omitempty"`
	Event     json.RawMessage  `json:"event,omitempty"`
	EventB64  string           `json:"event_base64,omitempty"`
	Lost      uint64           `json:"lost,omitempty"`
	Points    uint64           `json:"points,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	Run       uint64           `json:"run,omitempty"`
	Previous  *ContentPrevious `json:"previous,omitempty"`
	Records   uint64           `json:"records,omitempty"`
	Value     string           `json:"value,omitempty"`
}

// ContentPrevious is what a start record says of the log before it.
type ContentPrevious struct {
	Records uint64 `json:"records"`
	Value   string `json:"value"`
	Clean   bool   `json:"clean"`
}

// ContentNamespace names the modeling namespace a record belongs to.
type ContentNamespace struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// ParseContent decodes a record's content and checks the fields its kind
// needs.
func ParseContent(b []byte) (Content, error) {
	var c Content
	d := gojson.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Content{}, fmt.Errorf("%w: content: %v", ErrMalformed, err)
	}
	if d.More() {
		return Content{}, fmt.Errorf("%w: content: data after the object", ErrMalformed)
	}
	need := func(field, v string) error {
		if v == "" {
			return fmt.Errorf("%w: content: %s record without %q", ErrMalformed, c.Record, field)
		}
		if _, err := model.ParseCoefficient(v); err != nil {
			return fmt.Errorf("%w: content: %s: %v", ErrMalformed, field, err)
		}
		return nil
	}
	if c.Hash != "" && c.Record != RecordCreated {
		return Content{}, fmt.Errorf("%w: content: %s record with a hash (only created records name one)", ErrMalformed, c.Record)
	}
	if err := c.checkFields(); err != nil {
		return Content{}, err
	}
	switch c.Record {
	case RecordCreated:
		h, err := model.ParseHash(c.Hash)
		if err != nil || (c.Hash == "sha256") {
			// sha256 is written as no hash at all: one spelling per log.
			return Content{}, fmt.Errorf("%w: content: hash %q (want sha384, sha512, or none for sha256)", ErrMalformed, c.Hash)
		}
		if err := need("aggregate", c.Aggregate); err != nil {
			return Content{}, err
		}
		if err := need("base", c.Base); err != nil {
			return Content{}, err
		}
		for _, f := range [...]struct{ name, v string }{{"aggregate", c.Aggregate}, {"base", c.Base}} {
			if len(f.v) != 2*h.Size() {
				return Content{}, fmt.Errorf("%w: content: %s of a %s namespace has %d hex digits, want %d", ErrMalformed, f.name, h, len(f.v), 2*h.Size())
			}
		}
	case RecordPoint:
		if err := need("coefficient", c.Coef); err != nil {
			return Content{}, err
		}
	case RecordSealed, RecordEnforcing, RecordGap:
	case RecordStart:
		if c.Previous != nil {
			if err := checkValue("previous value", c.Previous.Value); err != nil {
				return Content{}, err
			}
		}
	case RecordStop:
		if c.Records == 0 {
			return Content{}, fmt.Errorf("%w: content: stop record without \"records\" (a run has a start record)", ErrMalformed)
		}
		if err := checkValue("value", c.Value); err != nil {
			return Content{}, err
		}
	default:
		return Content{}, fmt.Errorf("%w: content: unknown record kind %q", ErrMalformed, c.Record)
	}
	return c, nil
}

// checkFields refuses the fields of one kind of record in another, so each
// kind has one spelling.
func (c *Content) checkFields() error {
	run := c.Record == RecordStart || c.Record == RecordStop
	bad := ""
	switch {
	case run && (c.Namespace != ContentNamespace{}):
		bad = "namespace"
	case run && c.Run == 0:
		return fmt.Errorf("%w: content: %s record without \"run\"", ErrMalformed, c.Record)
	case !run && c.Run != 0:
		bad = "run"
	case c.Points != 0 && c.Record != RecordGap:
		bad = "points"
	case c.Previous != nil && c.Record != RecordStart:
		bad = "previous"
	case (c.Records != 0 || c.Value != "") && c.Record != RecordStop:
		bad = "records or value"
	}
	if bad != "" {
		return fmt.Errorf("%w: content: %s record with %s", ErrMalformed, c.Record, bad)
	}
	return nil
}

// checkValue checks a register value written in a run record: lowercase
// hex of a register's size (SHA-256 or SHA-384).
func checkValue(field, v string) error {
	if len(v) != 64 && len(v) != 96 {
		return fmt.Errorf("%w: content: %s has %d hex digits, want a register value (64 or 96)", ErrMalformed, field, len(v))
	}
	if decodeLowerHex(nil, []byte(v)) == nil {
		return fmt.Errorf("%w: content: %s is not lowercase hex", ErrMalformed, field)
	}
	return nil
}

// NamespaceHash returns the hash algorithm a created record names (sha256
// when it names none).
func (c *Content) NamespaceHash() model.Hash {
	h, _ := model.ParseHash(c.Hash)
	return h
}

// Coefficient returns the point's coefficient (zero if c is no point record
// or the field is malformed; ParseContent has checked it).
func (c *Content) Coefficient() model.Coefficient {
	v, _ := model.ParseCoefficient(c.Coef)
	return v
}

// Description returns the event description line stored with a point.
func (c *Content) Description() ([]byte, error) {
	if c.EventB64 != "" {
		return base64.StdEncoding.DecodeString(c.EventB64)
	}
	return c.Event, nil
}

// contentWriter builds content objects in a fixed key order. It writes JSON
// itself (rather than through encoding/json) so that an event description is
// stored byte for byte: encoding/json would re-escape it.
type contentWriter struct{ b []byte }

func (w *contentWriter) begin(kind string, t time.Time, id uint64, name string) {
	w.b = append(w.b[:0], `{"record":"`...)
	w.b = append(w.b, kind...)
	w.b = append(w.b, `","time":"`...)
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, `","namespace":{"id":`...)
	w.b = strconv.AppendUint(w.b, id, 10)
	w.b = append(w.b, `,"name":`...)
	w.b = appendJSONString(w.b, name)
	w.b = append(w.b, '}')
}

// beginRun starts the content of a run record (start or stop), which
// belongs to no namespace.
func (w *contentWriter) beginRun(kind string, t time.Time, run uint64) {
	w.b = append(w.b[:0], `{"record":"`...)
	w.b = append(w.b, kind...)
	w.b = append(w.b, `","time":"`...)
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
	w.uint("run", run)
}

func (w *contentWriter) str(key, v string) {
	w.b = append(w.b, `,"`...)
	w.b = append(w.b, key...)
	w.b = append(w.b, `":`...)
	w.b = appendJSONString(w.b, v)
}

func (w *contentWriter) uint(key string, v uint64) {
	w.b = append(w.b, `,"`...)
	w.b = append(w.b, key...)
	w.b = append(w.b, `":`...)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *contentWriter) hexCoef(key string, c model.Coefficient) {
	w.b = append(w.b, `,"`...)
	w.b = append(w.b, key...)
	w.b = append(w.b, `":"`...)
	w.b = appendHex(w.b, c.Bytes())
	w.b = append(w.b, '"')
}

// event stores an event description: as a JSON value when it is a strict
// JSON object (the usual case), else base64 (TSEM prints raw bytes that are
// not always valid JSON or UTF-8).
func (w *contentWriter) event(desc []byte) {
	d := bytes.TrimSpace(desc)
	if len(d) == 0 {
		return
	}
	if d[0] == '{' && utf8.Valid(d) && gojson.Valid(d) {
		w.b = append(w.b, `,"event":`...)
		w.b = append(w.b, d...)
		return
	}
	w.b = append(w.b, `,"event_base64":"`...)
	w.b = base64.StdEncoding.AppendEncode(w.b, desc)
	w.b = append(w.b, '"')
}

func (w *contentWriter) end() []byte {
	w.b = append(w.b, '}')
	return w.b
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, src []byte) []byte {
	for _, b := range src {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0x0f])
	}
	return dst
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD:
// names are labels, the exact bytes of event descriptions go through event.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20:
			switch r {
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
			}
		case r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// contentNamespaceID pulls the namespace id out of content Vigil wrote,
// without decoding the rest.
func contentNamespaceID(b []byte) (uint64, bool) {
	const key = `"namespace":{"id":`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	var v uint64
	j := i + len(key)
	start := j
	for ; j < len(b) && '0' <= b[j] && b[j] <= '9' && j-start < 19; j++ {
		v = v*10 + uint64(b[j]-'0')
	}
	return v, j > start
}
