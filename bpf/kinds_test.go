package bpf_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
)

// The record types of the kernel ABI (bpf/vigil.h) against the catalogue of
// event kinds (events.Kinds): the catalogue says which backends capture a
// kind, the record types say how.

// execScript is the tracepoint backend's record of the script of an
// interpreter exec: a file_open no LSM program writes (the LSM backend sees
// the script's open through its file_open hook).
const execScript = bpf.RecExecScript

// lifecycle records carry task identity only: no TSEM event.
var lifecycle = map[bpf.RecordType]bool{bpf.RecTaskFork: true, bpf.RecTaskExit: true}

// zeroRecord decodes a record of type t whose fields are all zero.
func zeroRecord(t *testing.T, typ bpf.RecordType, size int) bpf.Record {
	t.Helper()
	raw := make([]byte, size)
	binary.LittleEndian.PutUint16(raw[0:], uint16(size))
	binary.LittleEndian.PutUint16(raw[2:], uint16(typ))
	r, err := bpf.ParseRecord(raw)
	if err != nil {
		t.Fatalf("ParseRecord(zero %s) = %v", typ, err)
	}
	return r
}

// TestRecordTypesInCatalogue checks that every record type names a kind of
// the catalogue that some backend captures, that every captured kind has a
// record type, and that an enforcing namespace decides exactly the records
// of the kinds the LSM backend captures (bpf.Decides: they have an allow
// key; the tracepoint backend never enforces).
func TestRecordTypesInCatalogue(t *testing.T) {
	named := make(map[string]bool)
	for typ := bpf.RecordType(1); typ < 0x100; typ++ {
		size, ok := bpf.RecordSize(typ)
		if !ok || lifecycle[typ] {
			continue
		}
		name := typ.String()
		k, ok := events.KindOf(name)
		if !ok {
			t.Errorf("record type %d names %q, which is not a TSEM event name", uint16(typ), name)
			continue
		}
		named[name] = true
		if k.CapturedBy() == 0 {
			t.Errorf("record type %d records %s; the catalogue says no backend captures it", uint16(typ), name)
		}
		lsm := k.CapturedBy()&events.CapturedByLSM != 0 && typ != execScript
		if d := bpf.Decides(zeroRecord(t, typ, size)); (d != bpf.DecideNever) != lsm {
			t.Errorf("record type %d (%s): Decides = %s; the catalogue says it is captured by %s", uint16(typ), name, d, k.CapturedBy())
		}
	}
	for _, k := range events.Kinds() {
		if k.CapturedBy() != 0 && !named[k.Name()] {
			t.Errorf("kind %s: the catalogue says %s captures it, but no record type names it", k.Name(), k.CapturedBy())
		}
	}
	if _, ok := bpf.RecordSize(execScript); !ok || execScript.String() != "file_open" {
		t.Errorf("record type %d: RecordSize ok %v, String %s; want the script's file_open", uint16(execScript), ok, execScript)
	}
}

// TestLSMHooksInCatalogue checks the LSM backend's programs against the
// catalogue: a kind the catalogue says the LSM backend captures has a
// program on the hook of its name, and every hook named like a TSEM event
// records that event, except bprm_check_security, which only judges an exec
// for enforcement (a denied exec is reported as its bprm_committed_creds).
func TestLSMHooksInCatalogue(t *testing.T) {
	sections, err := bpf.SpecSections(bpf.BackendLSM)
	if err != nil {
		t.Fatal(err)
	}
	hooks := make(map[string]bool)
	for _, s := range sections {
		if hook, ok := strings.CutPrefix(s, "lsm/"); ok {
			hooks[hook] = true
		}
	}
	for _, k := range events.Kinds() {
		captured := k.CapturedBy()&events.CapturedByLSM != 0
		if captured && !hooks[k.Name()] {
			t.Errorf("kind %s: the catalogue says the LSM backend captures it, but it has no program lsm/%s", k.Name(), k.Name())
		}
		if !captured && hooks[k.Name()] && k.Name() != "bprm_check_security" {
			t.Errorf("kind %s: the LSM backend has a program lsm/%s, but the catalogue does not list it as captured", k.Name(), k.Name())
		}
	}
	if !hooks["bprm_check_security"] {
		t.Error("no lsm/bprm_check_security program: update this test's exception")
	}
}

// TestCapturedRecordsInCatalogue checks the records a kernel really wrote
// (testdata/records/BACKEND-NAME.bin, saved by the kernel tests) against
// the catalogue: each is of a kind the catalogue says its backend captures.
func TestCapturedRecordsInCatalogue(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured records in testdata/records: %v", err)
	}
	backends := map[string]events.Backends{
		string(bpf.BackendLSM):        events.CapturedByLSM,
		string(bpf.BackendTracepoint): events.CapturedByTracepoint,
	}
	for _, f := range files {
		backend, _, _ := strings.Cut(filepath.Base(f), "-")
		want, ok := backends[backend]
		if !ok {
			t.Errorf("%s: unknown backend %q", f, backend)
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := bpf.ParseRecord(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		typ := r.Head().Type
		if lifecycle[typ] {
			continue
		}
		k, ok := events.KindOf(typ.String())
		if !ok || k.CapturedBy()&want == 0 {
			t.Errorf("%s: the %s backend wrote a %s record; the catalogue does not list it as captured by %s", f, backend, typ, backend)
		}
	}
}
