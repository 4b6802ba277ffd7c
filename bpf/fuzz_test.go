package bpf

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRecord feeds ParseRecord arbitrary bytes seeded with real
// captured records: it must never panic, and a record it accepts must have
// the size of its type and a key that is stable.
func FuzzParseRecord(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "records", "*.bin"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseRecord(raw)
		if err != nil {
			if r != nil {
				t.Fatalf("ParseRecord returned a record with error %v", err)
			}
			return
		}
		h := r.Head()
		size, ok := RecordSize(h.Type)
		if !ok || int(h.Size) != size || len(raw) < size {
			t.Fatalf("accepted %s: size field %d, RecordSize %d, %d bytes", h.Type, h.Size, size, len(raw))
		}
		k1, ok1 := Key(r)
		k2, ok2 := Key(r)
		if k1 != k2 || ok1 != ok2 {
			t.Fatalf("Key not stable: %#x %v, %#x %v", k1, ok1, k2, ok2)
		}
	})
}
