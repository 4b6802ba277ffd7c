package bpf

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	updateRecords = flag.Bool("update-records", false, "save real captured records to testdata/records (kernel tests)")
	// In the VM the repository is a throwaway copy: -dump-records prints
	// the records as "RECORD NAME HEX" lines for the host to save.
	dumpRecords = flag.Bool("dump-records", false, "print real captured records as RECORD lines (kernel tests)")
)

// rawRecords keeps copies of the raw records a Capture reads.
type rawRecords struct {
	mu   sync.Mutex
	recs [][]byte
}

func keepRaw(c *Capture) *rawRecords {
	r := &rawRecords{}
	c.onRaw = func(b []byte) {
		r.mu.Lock()
		r.recs = append(r.recs, append([]byte(nil), b...))
		r.mu.Unlock()
	}
	return r
}

// save writes, with -update-records, the first record of each type of
// namespace ns to testdata/records/BACKEND-TYPE.bin: the seed corpus of
// FuzzParseRecord and the input of TestParseCaptured.
func (r *rawRecords) save(t *testing.T, ns uint64, b Backend) {
	t.Helper()
	if !*updateRecords && !*dumpRecords {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[RecordType]bool{}
	for _, raw := range r.recs {
		if len(raw) < HeaderSize || binary.LittleEndian.Uint64(raw[8:]) != ns {
			continue
		}
		typ := RecordType(binary.LittleEndian.Uint16(raw[2:]))
		if seen[typ] {
			continue
		}
		seen[typ] = true
		name := filepath.Join("testdata", "records", fmt.Sprintf("%s-%s.bin", b, seedName(typ)))
		if *dumpRecords {
			t.Logf("RECORD %s %x", filepath.Base(name), raw)
			continue
		}
		if err := os.WriteFile(name, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", name, len(raw))
	}
}

// seedName names a record type in seed file names: its String, but for
// the tracepoint backend's script record, whose TSEM name (file_open) is
// taken.
func seedName(t RecordType) string {
	if t == RecExecScript {
		return "exec_script"
	}
	return t.String()
}
