package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that whatever Parse accepts re-encodes to a line Parse
// reads back to the same Event, that the encoding is a fixed point, and
// that the ECS encoding is valid JSON. The seed corpus in
// testdata/fuzz/FuzzParse holds the TSEM reference lines; the sample
// description of every kind of the catalogue (eventstest/kinds.jsonl) is
// added to it.
func FuzzParse(f *testing.F) {
	for _, l := range kindSamples(f) {
		f.Add(l)
	}
	f.Add([]byte(fileOpen("/tmp/a\tb\xff")))
	f.Add([]byte(line("settime", `"ts": {"seconds": "1", "nsecs": "2"}`)))
	// A SHA-384 namespace's description: 96-digit task ids and digest.
	f.Add([]byte(strings.ReplaceAll(fileOpen("/etc/hosts"), testTask, testTask+testTask[:32])))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse(in)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		enc := e.AppendTSEM(nil)
		e2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(AppendTSEM(e)) = %v\nin:  %q\nenc: %q", err, in, enc)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("Parse(AppendTSEM(e)) = %+v; want %+v", e2, e)
		}
		if enc2 := e2.AppendTSEM(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("AppendTSEM not a fixed point:\n%q\n%q", enc, enc2)
		}
		if doc := AppendECS(nil, e, Digest32([32]byte{1}), time.Time{}); !json.Valid(doc) {
			t.Fatalf("AppendECS wrote invalid JSON: %q", doc)
		}
	})
}
