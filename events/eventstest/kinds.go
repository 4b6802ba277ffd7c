package eventstest

import (
	"bufio"
	"bytes"
	_ "embed"
	"testing"

	"github.com/vigil-tsem/vigil/events"
)

//go:embed kinds.jsonl
var kindsJSONL []byte

// KindSamples returns the sample description of every kind of the events
// catalogue, parsed, by event name. It fails tb on a line that does not
// parse and on a kind described twice; a kind without a sample is absent.
func KindSamples(tb testing.TB) map[string]*events.Event {
	tb.Helper()
	out := make(map[string]*events.Event)
	sc := bufio.NewScanner(bytes.NewReader(kindsJSONL))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Bytes()
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		e, err := events.Parse(l)
		if err != nil {
			tb.Fatalf("eventstest/kinds.jsonl:%d: %v", n, err)
		}
		if _, dup := out[e.Header.Type]; dup {
			tb.Fatalf("eventstest/kinds.jsonl:%d: a second %s", n, e.Header.Type)
		}
		out[e.Header.Type] = e
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read eventstest/kinds.jsonl: %v", err)
	}
	return out
}
