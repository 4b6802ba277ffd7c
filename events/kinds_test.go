package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// kindSamples reads eventstest/kinds.jsonl, one description per kind of
// the catalogue ('#' lines are comments), by event name. (Package
// eventstest parses the same file for other packages' tests; the tests
// here cannot import it.)
func kindSamples(tb testing.TB) map[string][]byte {
	tb.Helper()
	name := filepath.Join("eventstest", "kinds.jsonl")
	f, err := os.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := make(map[string][]byte)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Bytes()
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		e, err := Parse(l)
		if err != nil {
			tb.Fatalf("%s:%d: %v", name, n, err)
		}
		if _, dup := out[e.Header.Type]; dup {
			tb.Fatalf("%s:%d: a second %s", name, n, e.Header.Type)
		}
		out[e.Header.Type] = bytes.Clone(l)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestKindsTable checks the catalogue for itself: unique names, lookups,
// and entries that agree with themselves (a cell layout or a reason, a
// payload type where the layout is typed).
func TestKindsTable(t *testing.T) {
	ks := Kinds()
	if len(ks) != 97 {
		t.Errorf("the catalogue has %d kinds; the TSEM kernel prints 97 event names", len(ks))
	}
	seen := make(map[string]bool)
	for i, k := range ks {
		n := k.Name()
		if seen[n] {
			t.Errorf("kind %s listed twice", n)
		}
		seen[n] = true
		if got, ok := KindOf(n); !ok || got != k {
			t.Errorf("KindOf(%s) = %v, %v; want the catalogue's entry", n, got, ok)
		}
		if !Known(n) || Names()[i] != n {
			t.Errorf("kind %s: Known = %v, Names()[%d] = %s", n, Known(n), i, Names()[i])
		}
		_, generic := k.NewPayload().(*Generic)
		switch c := k.Cell(); {
		case c == CellNone && k.Unmodeled() == "":
			t.Errorf("kind %s has no cell layout and no reason (set one of them)", n)
		case c != CellNone && k.Unmodeled() != "":
			t.Errorf("kind %s has cell layout %s and is unmodeled (%s)", n, c, k.Unmodeled())
		case c == CellTyped && generic:
			t.Errorf("kind %s: a typed cell layout needs a typed payload", n)
		case (c == CellMembers || c == CellGeneric) && !generic:
			t.Errorf("kind %s: cell layout %s reads a *Generic payload, but the kind has %T", n, c, k.NewPayload())
		}
		if k.CapturedBy()&^(CapturedByLSM|CapturedByTracepoint) != 0 {
			t.Errorf("kind %s: unknown backends %s", n, k.CapturedBy())
		}
		cat, types := k.ECS()
		if len(cat) == 0 || len(types) == 0 {
			t.Errorf("kind %s has no ECS categorisation", n)
		}
	}
	for _, n := range []string{"", "no_such_event", "bprm_committing_creds", "File_open"} {
		if _, ok := KindOf(n); ok || Known(n) {
			t.Errorf("KindOf(%q) found a kind", n)
		}
	}
	// The catalogue's values cannot be changed through its accessors.
	k, _ := KindOf("socket_connect")
	_, types := k.ECS()
	types[0] = "changed"
	if _, again := k.ECS(); again[0] != "connection" {
		t.Errorf("ECS types of socket_connect changed to %v through a returned slice", again)
	}
}

// TestKindSamples feeds the sample description of every kind through the
// parser and the encoders: each must parse into the catalogue's payload
// type, encode back byte for byte, and map to an ECS document whose fields
// exist in ECS and whose categorisation is the catalogue's. A failure names
// the kind.
func TestKindSamples(t *testing.T) {
	samples := kindSamples(t)
	if len(samples) != len(Kinds()) {
		t.Errorf("eventstest/kinds.jsonl has %d descriptions; the catalogue %d kinds", len(samples), len(Kinds()))
	}
	fields := ecsFields(t)
	boot := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, k := range Kinds() {
		t.Run(k.Name(), func(t *testing.T) {
			line, ok := samples[k.Name()]
			if !ok {
				t.Fatalf("kind %s has no sample description in eventstest/kinds.jsonl", k.Name())
			}
			e, err := Parse(line)
			if err != nil {
				t.Fatalf("kind %s: Parse(sample) = %v", k.Name(), err)
			}
			if got, want := reflect.TypeOf(e.Payload), reflect.TypeOf(k.NewPayload()); got != want {
				t.Errorf("kind %s parses into %v; the catalogue says %v", k.Name(), got, want)
			}
			if g, ok := e.Payload.(*Generic); ok && k.Cell() == CellGeneric && len(g.Fields) != 0 {
				t.Errorf("kind %s is modeled without parameters, but its sample has members %v", k.Name(), g.Fields)
			}
			if enc := e.AppendTSEM(nil); !bytes.Equal(enc, line) {
				t.Errorf("kind %s: AppendTSEM =\n%s\nwant\n%s", k.Name(), enc, line)
			}
			checkKindECS(t, k, e, fields, boot)
		})
	}
}

// checkKindECS encodes e as ECS and checks the document against the ECS
// field list and the catalogue's categorisation of k.
func checkKindECS(t *testing.T, k *Kind, e *Event, fields map[string]bool, boot time.Time) {
	t.Helper()
	var c [32]byte
	c[0] = 1
	doc := ECS{Boot: boot}.Encode(nil, e, Digest32(c))
	for _, leaf := range ecsLeaves(t, doc) {
		if !fields[leaf] && !strings.HasPrefix(leaf, "vigil.") {
			t.Errorf("kind %s: ECS output has %s, which is not a field of ECS %s", k.Name(), leaf, ECSVersion)
		}
	}
	var d struct {
		Event struct {
			Category, Type []string
			Action         string
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("kind %s: ECS output is not JSON: %v", k.Name(), err)
	}
	cat, types := k.ECS()
	if !slices.Equal(d.Event.Category, cat) || !slices.Equal(d.Event.Type, types) || d.Event.Action != k.Name() {
		t.Errorf("kind %s: ECS event.category %v, type %v, action %s; the catalogue says %v, %v", k.Name(), d.Event.Category, d.Event.Type, d.Event.Action, cat, types)
	}
	for _, ca := range cat {
		allowed, ok := ecsAllowed[ca]
		if !ok {
			t.Errorf("kind %s: ECS category %q is not an allowed value", k.Name(), ca)
		}
		for _, ty := range types {
			if !slices.Contains(allowed, ty) {
				t.Errorf("kind %s: ECS type %q is not expected with category %q", k.Name(), ty, ca)
			}
		}
	}
}

func TestBackendsString(t *testing.T) {
	for b, want := range map[Backends]string{
		0:                                    "none",
		CapturedByLSM:                        "lsm",
		CapturedByTracepoint:                 "tracepoint",
		CapturedByLSM | CapturedByTracepoint: "lsm,tracepoint",
		CapturedByTracepoint | 8:             "tracepoint,backends(8)",
	} {
		if got := b.String(); got != want {
			t.Errorf("Backends(%d).String() = %q; want %q", uint8(b), got, want)
		}
	}
}
