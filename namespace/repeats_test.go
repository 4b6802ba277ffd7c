package namespace

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

func repeatOpen(id, ttd uint64, name string) *bpf.FileOpen {
	h := hdr(bpf.RecFileOpen, 0, ttd, 0, "cat")
	h.RepeatID = id
	return &bpf.FileOpen{Header: h, File: binary(name)}
}

func repeatCount(id, n uint64) *bpf.RepeatCount {
	return &bpf.RepeatCount{Header: bpf.Header{Type: bpf.RecRepeatCount, RepeatID: id}, Count: n}
}

func repeatsFinished(below uint64) *bpf.RepeatCount {
	return &bpf.RepeatCount{Header: bpf.Header{Type: bpf.RecRepeatCount}, Below: below}
}

// TestRepeatCounts: the kernel's repeat counts (bpf.RepeatCount) land on
// the coefficient of the record with the same RepeatID; a finish marker
// ends the entries below it, so that a count or a record after it is
// counted as an error and not added; counts of other ids stay apart.
func TestRepeatCounts(t *testing.T) {
	tests := []struct {
		name string
		recs []bpf.Record
		// want: per pathname, the model count; events: the total.
		want   map[string]uint64
		events uint64
		// errs: RepeatErrors; pending: entries still waiting.
		errs    uint64
		pending int
	}{
		{"count after record", []bpf.Record{repeatOpen(1, 2, "/etc/a"), repeatCount(1, 41)},
			map[string]uint64{"/etc/a": 42}, 42, 0, 0},
		{"count before record is an error", []bpf.Record{repeatCount(1, 9), repeatOpen(1, 2, "/etc/a")},
			map[string]uint64{"/etc/a": 1}, 1, 1, 1},
		{"two keys, same file, other task", []bpf.Record{repeatOpen(1, 2, "/etc/a"), repeatOpen(2, 3, "/etc/a"), repeatCount(2, 5), repeatsFinished(3), repeatOpen(3, 2, "/etc/a"), repeatCount(3, 1)},
			nil, 1 + 6 + 2, 0, 0},
		{"uncached records count one each", []bpf.Record{repeatOpen(0, 2, "/etc/b"), repeatOpen(0, 2, "/etc/b"), repeatOpen(0, 2, "/etc/b")},
			map[string]uint64{"/etc/b": 3}, 3, 0, 0},
		{"an id's count is taken once", []bpf.Record{repeatOpen(1, 2, "/etc/c"), repeatCount(1, 4), repeatCount(1, 4), repeatOpen(2, 2, "/etc/c")},
			map[string]uint64{"/etc/c": 6}, 6, 1, 1},
		{"count after the marker is an error", []bpf.Record{repeatOpen(5, 2, "/etc/d"), repeatsFinished(6), repeatCount(5, 7)},
			map[string]uint64{"/etc/d": 1}, 1, 1, 0},
		{"record after the marker is an error", []bpf.Record{repeatOpen(5, 2, "/etc/d"), repeatsFinished(8), repeatOpen(7, 2, "/etc/e"), repeatCount(7, 2)},
			map[string]uint64{"/etc/d": 1, "/etc/e": 1}, 2, 2, 0},
		{"marker keeps the ids from Below on", []bpf.Record{repeatOpen(4, 2, "/etc/f"), repeatOpen(6, 3, "/etc/f"), repeatsFinished(5), repeatCount(6, 3)},
			nil, 2 + 3, 0, 0},
		{"ids out of order", []bpf.Record{repeatOpen(9, 2, "/etc/g"), repeatOpen(7, 3, "/etc/h"), repeatOpen(8, 4, "/etc/i"), repeatCount(7, 1), repeatCount(9, 2), repeatCount(8, 3), repeatsFinished(10)},
			map[string]uint64{"/etc/g": 3, "/etc/h": 2, "/etc/i": 4}, 9, 0, 0},
		{"a record made twice keeps one entry", []bpf.Record{repeatOpen(3, 2, "/etc/j"), repeatOpen(3, 2, "/etc/j"), repeatCount(3, 2)},
			map[string]uint64{"/etc/j": 4}, 4, 0, 0},
		{"count 0 ends an entry", []bpf.Record{repeatOpen(3, 2, "/etc/k"), repeatCount(3, 0)},
			map[string]uint64{"/etc/k": 1}, 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry(RegistryOptions{})
			n, err := reg.Create(Options{Origin: OriginRun})
			if err != nil {
				t.Fatal(err)
			}
			d := NewDispatcher(reg, nil)
			var seen uint64
			d.OnRepeats = func(got *Namespace, r Repeats) {
				if got != n {
					t.Errorf("OnRepeats namespace %d; want %d", got.ID(), n.ID())
				}
				if r.Type != "file_open" || r.Forensic {
					t.Errorf("OnRepeats %+v; want a file_open in the model", r)
				}
				seen += r.Count
			}
			for _, r := range tc.recs {
				h := r.Head()
				h.NS = n.ID()
				if err := d.Dispatch(r); err != nil {
					t.Fatal(err)
				}
			}
			if got := n.Stats().Events; got != tc.events {
				t.Errorf("Stats().Events = %d; want %d", got, tc.events)
			}
			var total uint64
			for _, p := range n.Model().Points() {
				total += p.Count
			}
			if total != tc.events {
				t.Errorf("model counts sum to %d; want %d", total, tc.events)
			}
			if tc.want != nil && len(n.Model().Points()) != len(tc.want) {
				t.Errorf("%d points; want %d", len(n.Model().Points()), len(tc.want))
			}
			for name, want := range tc.want {
				found := false
				for _, p := range n.Model().Points() {
					if bytes.Contains(p.Description, []byte(`"pathname": "`+name+`"`)) {
						found = true
						if p.Count != want {
							t.Errorf("count of %s = %d; want %d", name, p.Count, want)
						}
					}
				}
				if !found {
					t.Errorf("no point of %s", name)
				}
			}
			records := uint64(0)
			for _, r := range tc.recs {
				if _, ok := r.(*bpf.FileOpen); ok {
					records++
				}
			}
			if seen != tc.events-records {
				t.Errorf("OnRepeats counted %d; want %d", seen, tc.events-records)
			}
			if got := d.RepeatErrors(); got != tc.errs {
				t.Errorf("RepeatErrors() = %d; want %d", got, tc.errs)
			}
			if got := d.repeats.pending(); got != tc.pending {
				t.Errorf("pending entries = %d; want %d", got, tc.pending)
			}
		})
	}
}

// TestRepeatSkip: the count of a record dropped before dispatch (Skip) is
// dropped too, not counted as an error.
func TestRepeatSkip(t *testing.T) {
	reg := NewRegistry(RegistryOptions{})
	n, err := reg.Create(Options{Origin: OriginRun})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(reg, nil)
	r := repeatOpen(12, 2, "/etc/skipped")
	r.NS = n.ID()
	d.Skip(r)
	c := repeatCount(12, 5)
	c.NS = n.ID()
	if err := d.Dispatch(c); err != nil {
		t.Fatal(err)
	}
	if got := n.Stats().Events; got != 0 {
		t.Errorf("Stats().Events = %d; want 0 (the record and its count were dropped)", got)
	}
	if got := d.RepeatErrors(); got != 0 {
		t.Errorf("RepeatErrors() = %d; want 0", got)
	}
}

// TestRepeatTableMemory: a marker empties the table and gives its memory
// back after a burst of new entries, and a table fed ids out of order or
// spanning more than repeatSpan stays bounded.
func TestRepeatTableMemory(t *testing.T) {
	var tab repeatTable
	const burst = 50000
	for id := uint64(1); id <= burst; id++ {
		tab.record(id, repeatTarget{rt: bpf.RecFileOpen})
	}
	if tab.live != burst || len(tab.slots) != burst {
		t.Fatalf("after %d records: live %d, %d slots; want %d", burst, tab.live, len(tab.slots), burst)
	}
	tab.record(burst+2, repeatTarget{rt: bpf.RecFileOpen}) // taken during the swap: stays
	tab.finish(burst + 1)
	if tab.live != 1 || len(tab.slots) != 2 {
		t.Errorf("after the marker: live %d, %d slots; want the 1 entry above it", tab.live, len(tab.slots))
	}
	if _, ok := tab.count(burst + 2); !ok {
		t.Errorf("count(%d) after the marker below it: no entry; want its entry", burst+2)
	}
	// A quiet window after the burst: the array goes.
	tab.finish(burst + 3)
	if tab.live != 0 || len(tab.slots) != 0 || cap(tab.slots) != 0 {
		t.Errorf("after a quiet window: live %d, %d slots (cap %d); want none", tab.live, len(tab.slots), cap(tab.slots))
	}

	var far repeatTable
	far.record(1, repeatTarget{})
	far.record(1+repeatSpan+10, repeatTarget{})
	if len(far.slots) > repeatSpan || far.live != 1 || far.errs.Load() != 1 {
		t.Errorf("ids %d apart: %d slots, live %d, errors %d; want at most %d slots, the old entry dropped as an error", repeatSpan+10, len(far.slots), far.live, far.errs.Load(), repeatSpan)
	}
}

// BenchmarkRepeatTable: recording, counting and finishing one window of
// entries, as the dispatcher does for a burst of new points.
func BenchmarkRepeatTable(b *testing.B) {
	for _, window := range []int{1000, 50000} {
		b.Run(fmt.Sprint(window), func(b *testing.B) {
			var tab repeatTable
			id := uint64(1)
			b.ReportAllocs()
			for b.Loop() {
				first := id
				for range window {
					tab.record(id, repeatTarget{rt: bpf.RecFileOpen})
					id++
				}
				for i := first; i < id; i += 10 { // one in ten repeated
					tab.count(i)
				}
				tab.finish(id)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*window), "ns/entry")
		})
	}
}
