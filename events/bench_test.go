package events

import (
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
)

// BenchmarkParse measures Parse over the reference lines in turn, and in
// the same run github.com/goccy/go-json decoding the same lines into a
// generic map (no field checks, no binary values) for comparison.
func BenchmarkParse(b *testing.B) {
	lines := referenceLines(b)
	var n int
	for _, l := range lines {
		n += len(l.line)
	}
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(n / len(lines)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := Parse(lines[i%len(lines)].line); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("goccy-map", func(b *testing.B) {
		b.SetBytes(int64(n / len(lines)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var m map[string]any
			if err := gojson.Unmarshal(lines[i%len(lines)].line, &m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
}

func BenchmarkAppendTSEM(b *testing.B) {
	var evs []*Event
	for _, l := range referenceLines(b) {
		e, err := Parse(l.line)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, e)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = evs[i%len(evs)].AppendTSEM(buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkAppendECS(b *testing.B) {
	var evs []*Event
	for _, l := range referenceLines(b) {
		e, err := Parse(l.line)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, e)
	}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendECS(buf[:0], evs[i%len(evs)], Digest32([32]byte{1}), time.Time{})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
