package namespace

import (
	"bytes"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

// TestRepeatCounts: the kernel's repeat counts (bpf.RepeatCount) land on
// the coefficient of the record with the same RepeatID, whether they come
// after it or, when the reader lagged, before it; a count for an entry
// with no record yet is not lost; counts of other ids stay apart.
func TestRepeatCounts(t *testing.T) {
	open := func(id uint64, ttd uint64, name string) *bpf.FileOpen {
		h := hdr(bpf.RecFileOpen, 0, ttd, 0, "cat")
		h.RepeatID = id
		return &bpf.FileOpen{Header: h, File: binary(name)}
	}
	repeats := func(id, n uint64) *bpf.RepeatCount {
		return &bpf.RepeatCount{Header: bpf.Header{Type: bpf.RecRepeatCount, RepeatID: id}, Count: n}
	}
	tests := []struct {
		name string
		recs func(ns uint64) []bpf.Record
		// want: per pathname, the model count; events: the total.
		want   map[string]uint64
		events uint64
	}{
		{"count after record", func(ns uint64) []bpf.Record {
			return []bpf.Record{open(1, 2, "/etc/a"), repeats(1, 41)}
		}, map[string]uint64{"/etc/a": 42}, 42},
		{"count before record", func(ns uint64) []bpf.Record {
			return []bpf.Record{repeats(1, 9), open(1, 2, "/etc/a")}
		}, map[string]uint64{"/etc/a": 10}, 10},
		{"two keys, same file, other task", func(ns uint64) []bpf.Record {
			return []bpf.Record{open(1, 2, "/etc/a"), open(2, 3, "/etc/a"), repeats(2, 5), repeats(1, 0), open(3, 2, "/etc/a"), repeats(3, 1)}
		}, nil, 1 + 6 + 2},
		{"uncached records count one each", func(ns uint64) []bpf.Record {
			return []bpf.Record{open(0, 2, "/etc/b"), open(0, 2, "/etc/b"), open(0, 2, "/etc/b")}
		}, map[string]uint64{"/etc/b": 3}, 3},
		{"an id's count is taken once", func(ns uint64) []bpf.Record {
			return []bpf.Record{open(1, 2, "/etc/c"), repeats(1, 4), repeats(1, 4), open(2, 2, "/etc/c")}
		}, map[string]uint64{"/etc/c": 6}, 6},
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
			for _, r := range tc.recs(n.ID()) {
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
			if seen == 0 && tc.events > uint64(len(tc.recs(n.ID()))) {
				t.Error("OnRepeats never called")
			}
		})
	}
}
