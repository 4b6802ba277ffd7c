package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// tsemLine is one event description of the shared TSEM reference data.
type tsemLine struct {
	name string // file:line
	line []byte
}

// referenceLines returns every event description in ../testdata/tsem: the
// trajectories line by line and the events of vectors.jsonl.
func referenceLines(tb testing.TB) []tsemLine {
	tb.Helper()
	dir := filepath.Join("..", "testdata", "tsem")
	files, err := filepath.Glob(filepath.Join(dir, "process_*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no trajectories in %s: %v", dir, err)
	}
	var out []tsemLine
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for i, l := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
			out = append(out, tsemLine{name: filepath.Base(f) + ":" + itoa(i+1), line: l})
		}
	}
	vf, err := os.Open(filepath.Join(dir, "vectors.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	defer vf.Close()
	sc := bufio.NewScanner(vf)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var v struct{ Name, Event string }
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatalf("vectors.jsonl:%d: %v", n, err)
		}
		out = append(out, tsemLine{name: "vectors.jsonl:" + itoa(n) + " (" + v.Name + ")", line: []byte(v.Event)})
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestReferenceRoundTrip parses every reference line, re-encodes it
// byte-exact and parses the encoding back to the same Event.
func TestReferenceRoundTrip(t *testing.T) {
	for _, tc := range referenceLines(t) {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.line)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if _, generic := e.Payload.(*Generic); generic {
				t.Errorf("type %s parsed as a generic payload", e.Header.Type)
			}
			enc := e.AppendTSEM(nil)
			if !bytes.Equal(enc, tc.line) {
				t.Errorf("AppendTSEM =\n%s\nwant\n%s", enc, tc.line)
			}
			e2, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(AppendTSEM) = %v", err)
			}
			if !reflect.DeepEqual(e, e2) {
				t.Errorf("Parse(AppendTSEM(e)) = %+v; want %+v", e2, e)
			}
		})
	}
}

// TestParseConcurrent parses the reference lines from several goroutines
// (run with -race) and compares with a sequential parse.
func TestParseConcurrent(t *testing.T) {
	lines := referenceLines(t)
	want := make([][]byte, len(lines))
	for i, l := range lines {
		e, err := Parse(l.line)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = e.AppendTSEM(nil)
	}
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := range lines {
				e, err := Parse(lines[(i+g*37)%len(lines)].line)
				if err == nil && !bytes.Equal(e.AppendTSEM(nil), want[(i+g*37)%len(lines)]) {
					err = errors.New("concurrent parse differs for " + lines[(i+g*37)%len(lines)].name)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
