package measure

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/model"
)

// BenchmarkAppend measures one append + extend with fdatasync on the software
// register, with real event descriptions; p50-ns and p99-ns are the latency
// percentiles of single appends.
func BenchmarkAppend(b *testing.B) {
	events, _ := trajectory(b)
	l := openLog(b, filepath.Join(b.TempDir(), "events.log"), NewSoftware(DefaultSoftwareIndex))
	defer l.Close()
	ns, err := l.Namespace(1, "bench", model.Coefficient{}, model.Coefficient{})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	var raw [32]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(raw[:], uint64(i))
		c := digest32(raw)
		start := time.Now()
		if err := ns.NewPoint(model.Point{Coefficient: c, Count: 1, Description: events[i%len(events)]}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// benchLog returns a log of n point records with real event descriptions,
// built in memory.
func benchLog(b *testing.B, n int) []byte {
	events, _ := trajectory(b)
	var buf []byte
	var w contentWriter
	now := fixedNow()
	for i := 0; i < n; i++ {
		var content []byte
		if i == 0 {
			w.begin(RecordCreated, now, 1, "bench")
			w.hexCoef("aggregate", model.Coefficient{})
			w.hexCoef("base", model.Coefficient{})
		} else {
			c := digest32(sha256.Sum256(binary.LittleEndian.AppendUint64(nil, uint64(i))))
			w.begin(RecordPoint, now, 1, "bench")
			w.hexCoef("coefficient", c)
			w.event(events[i%len(events)])
		}
		content = w.end()
		buf = AppendLine(buf, Record{Recnum: uint64(i), Kind: KindSoftware, Index: 23, Alg: crypto.SHA384, Digest: sha384(content), Content: content})
	}
	return buf
}

const benchRecords = 20000

// BenchmarkReplay measures the replay a verifier does to check a register:
// parse each line, check its digest, extend.
func BenchmarkReplay(b *testing.B) {
	data := benchLog(b, benchRecords)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Scan(bytes.NewReader(data), "bench", func(int, Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkVerify is the whole of Verify: replay, register check, content
// decoding and the recomputation of the namespace's model.
func BenchmarkVerify(b *testing.B) {
	data := benchLog(b, benchRecords)
	var value []byte
	Scan(bytes.NewReader(data), "bench", func(int, Record) error { return nil })
	rp := NewReplayer("", 0, 0)
	Scan(bytes.NewReader(data), "bench", func(_ int, r Record) error { return rp.Add(r) })
	value = rp.Value()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(bytes.NewReader(data), "bench", VerifyOptions{Register: value}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
