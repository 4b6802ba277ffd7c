package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-tsem/vigil/events"
)

func newTestSpool(t testing.TB) *Spool {
	t.Helper()
	s, err := CreateSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t testing.TB, s *Spool, desc []byte) DescriptionRef {
	t.Helper()
	ref, err := s.Put(desc)
	if err != nil {
		t.Fatalf("Put(%d bytes) = %v", len(desc), err)
	}
	return ref
}

func TestSpoolRoundTrip(t *testing.T) {
	s := newTestSpool(t)
	if _, err := os.Stat(s.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spool file %s still has a name (Stat = %v); want it unlinked at once", s.Name(), err)
	}
	// Enough records to cross several buffer flushes, of sizes around
	// the buffer's (a record bigger than the buffer is written alone).
	var descs [][]byte
	for i := range 300 {
		size := (i * 97) % 1500
		switch i {
		case 7:
			size = spoolBuffer - spoolHeader
		case 8:
			size = 3 * spoolBuffer
		case 9:
			size = 0
		}
		descs = append(descs, bytes.Repeat([]byte{byte('a' + i%26)}, size))
	}
	refs := make([]DescriptionRef, len(descs))
	for i, d := range descs {
		refs[i] = mustPut(t, s, d)
		// Readable at once, from the buffer or the file.
		if got, err := s.Get(refs[i]); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Get(record %d) right after Put = %d bytes, %v; want %d bytes", i, len(got), err, len(d))
		}
	}
	if s.size == 0 || len(s.buf) == 0 {
		t.Fatalf("file %d bytes, buffer %d bytes: want records in both", s.size, len(s.buf))
	}
	for i, d := range descs {
		got, err := s.Get(refs[i])
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Get(record %d) = %d bytes, %v; want %d bytes", i, len(got), err, len(d))
		}
	}
	var total int64
	for _, d := range descs {
		total += int64(spoolHeader + len(d))
	}
	if s.Size() != total {
		t.Errorf("Size() = %d; want %d", s.Size(), total)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(refs[0]); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Get after Close = %v; want os.ErrClosed", err)
	}
	if _, err := s.Put([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Put after Close = %v; want os.ErrClosed", err)
	}
}

func TestSpoolTooLong(t *testing.T) {
	s := newTestSpool(t)
	if _, err := s.Put(make([]byte, MaxSpooled+1)); err == nil {
		t.Fatalf("Put(%d bytes) = nil; want an error", MaxSpooled+1)
	}
}

// TestSpoolCorrupt damages a written spool in each way a disk or a person
// could and checks that Get says so, naming the file and the record's
// offset, and never returns other bytes.
func TestSpoolCorrupt(t *testing.T) {
	first, second := []byte(`{"event":{"type":"file_open"}}`), []byte(`{"event":{"type":"mmap_file"}}`)
	secondOff := int64(spoolHeader + len(first))
	tests := []struct {
		name   string
		damage func(t *testing.T, f *os.File)
		ref    func(ref DescriptionRef) DescriptionRef
		want   string
	}{
		{"truncated body", func(t *testing.T, f *os.File) { truncate(t, f, secondOff+spoolHeader+3) }, nil, "truncated: 11 of the record's"},
		{"truncated header", func(t *testing.T, f *os.File) { truncate(t, f, secondOff+2) }, nil, "truncated: 2 of the record's"},
		{"empty file", func(t *testing.T, f *os.File) { truncate(t, f, 0) }, nil, "truncated: 0 of the record's"},
		{"flipped body byte", func(t *testing.T, f *os.File) { writeAt(t, f, secondOff+spoolHeader+5, 'X') }, nil, "checksum"},
		{"flipped checksum", func(t *testing.T, f *os.File) { writeAt(t, f, secondOff+4, 0) }, nil, "checksum"},
		{"changed length", func(t *testing.T, f *os.File) { writeAt(t, f, secondOff, 1) }, nil, "record length 1, want"},
		{"wrong ref length", nil, func(ref DescriptionRef) DescriptionRef { return ref - 1 }, "record length 30, want 29"},
		{"ref past the end", nil, func(ref DescriptionRef) DescriptionRef { return ref + 1000<<refLenBits }, "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSpool(t)
			mustPut(t, s, first)
			ref := mustPut(t, s, second)
			s.mu.Lock()
			if err := s.flushLocked(); err != nil {
				t.Fatal(err)
			}
			s.mu.Unlock()
			if tc.damage != nil {
				tc.damage(t, s.f)
			}
			off := secondOff
			if tc.ref != nil {
				ref = tc.ref(ref)
				off = int64(uint64(ref) >> refLenBits)
			}
			got, err := s.Get(ref)
			if err == nil {
				t.Fatalf("Get = %q, nil; want an error", got)
			}
			var se *SpoolError
			if !errors.As(err, &se) || se.File != s.Name() || se.Offset != off {
				t.Errorf("Get error %#v; want a *SpoolError for %s offset %d", err, s.Name(), off)
			}
			msg := err.Error()
			if !errors.Is(err, ErrCorruptSpool) || !strings.Contains(msg, tc.want) ||
				!strings.Contains(msg, s.Name()) || !strings.Contains(msg, fmt.Sprintf("offset %d ", off)) {
				t.Errorf("Get error %q; want ErrCorruptSpool naming %s, offset %d and %q", msg, s.Name(), off, tc.want)
			}
		})
	}
}

func truncate(t *testing.T, f *os.File, size int64) {
	t.Helper()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, f *os.File, off int64, b byte) {
	t.Helper()
	if _, err := f.WriteAt([]byte{b}, off); err != nil {
		t.Fatal(err)
	}
}

// FuzzSpool writes two descriptions, then overwrites one byte of the file
// and cuts it. Get must return each description exactly or fail with a
// *SpoolError matching ErrCorruptSpool: CRC-32C detects every change of
// up to 32 bits, so no damage goes unnoticed. The seed corpus is the
// f.Add calls plus testdata/fuzz/FuzzSpool (a TSEM line, damaged).
func FuzzSpool(f *testing.F) {
	f.Add([]byte(`{"event":{"type":"file_open"}}`), []byte(`{}`), uint16(0), byte(0), uint16(0))
	f.Add([]byte("x"), []byte(""), uint16(9), byte('y'), uint16(100))
	f.Add(bytes.Repeat([]byte("ab"), 300), []byte("\r\n"), uint16(612), byte(1), uint16(609))
	dir := f.TempDir() // one directory: the spools are unlinked anyway
	f.Fuzz(func(t *testing.T, a, b []byte, pos uint16, val byte, cut uint16) {
		s, err := CreateSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		refs := []DescriptionRef{mustPut(t, s, a), mustPut(t, s, b)}
		s.mu.Lock()
		if err := s.flushLocked(); err != nil {
			t.Fatal(err)
		}
		s.mu.Unlock()
		size := s.Size()
		if p := int64(pos); p < size {
			writeAt(t, s.f, p, val)
		}
		if c := int64(cut); c > 0 && c < size {
			truncate(t, s.f, size-c)
		}
		for i, want := range [][]byte{a, b} {
			got, err := s.Get(refs[i])
			if err != nil {
				var se *SpoolError
				if !errors.As(err, &se) || !errors.Is(err, ErrCorruptSpool) || se.File != s.Name() {
					t.Fatalf("Get(%d) error %v; want a *SpoolError matching ErrCorruptSpool", i, err)
				}
				continue
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Get(%d) = %q; want %q or an error", i, got, want)
			}
		}
	})
}

// failingStore fails every Put or Get when told to.
type failingStore struct {
	mu       sync.Mutex
	spool    *Spool
	failPut  bool
	failGets bool
}

func (s *failingStore) Put(d []byte) (DescriptionRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut {
		return 0, errors.New("disk full")
	}
	return s.spool.Put(d)
}

func (s *failingStore) Get(ref DescriptionRef) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGets {
		return nil, errors.New("I/O error")
	}
	return s.spool.Get(ref)
}

// TestModelWithStore checks that a model keeping its descriptions in a
// store reads back what one keeping them in memory has, writes the same
// model file, and reports a store that fails instead of dropping
// descriptions.
func TestModelWithStore(t *testing.T) {
	fs := &failingStore{spool: newTestSpool(t)}
	stored := New(Options{Store: fs})
	mem := New(Options{})
	var seen []Point
	stored.SetObserver(observerFunc(func(p Point) error {
		seen = append(seen, Point{Coefficient: p.Coefficient, Description: bytes.Clone(p.Description)})
		return nil
	}))
	add := func(c Coefficient, desc string) {
		t.Helper()
		buf := []byte(desc)
		if _, err := stored.Add(c, buf); err != nil {
			t.Fatal(err)
		}
		copy(buf, bytes.Repeat([]byte("#"), len(buf))) // the caller reuses its buffer
		if _, err := mem.Add(c, []byte(desc)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		add(c32(byte(i), 1), fmt.Sprintf(`{"event":{"number":"%d"}}`, i))
	}
	add(c32(1, 1), "repeat")
	add(c32(99), "") // no description
	add(c32(98), "line with\nnewline")
	stored.Seal()
	mem.Seal()
	add(c32(200), `{"forensic":"1"}`)

	if len(seen) != 53 || string(seen[0].Description) != `{"event":{"number":"0"}}` {
		t.Fatalf("observer saw %d points, first %q", len(seen), seen[0].Description)
	}
	compare := func(t *testing.T) {
		t.Helper()
		for _, k := range []struct {
			name      string
			got, want func() ([]Point, error)
		}{{"ReadPoints", stored.ReadPoints, mem.ReadPoints}, {"ReadForensics", stored.ReadForensics, mem.ReadForensics}} {
			got, err := k.got()
			want, _ := k.want()
			if err != nil || len(got) != len(want) {
				t.Fatalf("%s = %d points, %v; want %d, nil", k.name, len(got), err, len(want))
			}
			for i := range got {
				if !pointsEqual(got[i], want[i]) {
					t.Fatalf("%s[%d] = %+v; want %+v", k.name, i, got[i], want[i])
				}
			}
		}
		tr, err := stored.ReadTrajectory()
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range mem.Trajectory() {
			if !bytes.Equal(tr[i], d) {
				t.Fatalf("ReadTrajectory()[%d] = %q; want %q", i, tr[i], d)
			}
		}
		var a, b bytes.Buffer
		if _, err := stored.WriteTo(&a); err != nil {
			t.Fatal(err)
		}
		mem.WriteTo(&b)
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("WriteTo with a store:\n%s\nwant:\n%s", a.Bytes(), b.Bytes())
		}
	}
	compare(t)
	if stored.Measurement() != mem.Measurement() || stored.State() != mem.State() {
		t.Error("a store changed the measurement or the state")
	}

	// A store that refuses a description: Add says so, the model keeps
	// it in memory, nothing is lost.
	fs.mu.Lock()
	fs.failPut = true
	fs.mu.Unlock()
	res, err := stored.Add(c32(201), []byte("kept"))
	if err == nil || !strings.Contains(err.Error(), "disk full") || !res.New {
		t.Errorf("Add with a failing Put = %+v, %v; want New and the store's error", res, err)
	}
	mem.Add(c32(201), []byte("kept"))
	compare(t)

	// A store that cannot read back: every read that needs it fails,
	// naming the point.
	fs.mu.Lock()
	fs.failGets = true
	fs.mu.Unlock()
	ps, err := stored.ReadPoints()
	if err == nil || !strings.Contains(err.Error(), "I/O error") || !strings.Contains(err.Error(), c32(0, 1).String()) || len(ps) != 52 {
		t.Errorf("ReadPoints with failing reads = %d points, %v; want 52 and errors naming the points", len(ps), err)
	}
	if _, err := stored.ReadForensics(); err == nil {
		t.Error("ReadForensics with failing reads = nil error")
	}
	if _, err := stored.ReadTrajectory(); err == nil {
		t.Error("ReadTrajectory with failing reads = nil error")
	}
	if _, err := stored.WriteTo(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "I/O error") {
		t.Errorf("WriteTo with failing reads = %v; want the store's error", err)
	}
	if err := stored.Close(); err != nil {
		t.Errorf("Close = %v (the store is no io.Closer)", err)
	}
}

func TestModelCloseClosesSpool(t *testing.T) {
	s := newTestSpool(t)
	m := New(Options{Store: s})
	m.Add(c32(1), []byte("a"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadPoints(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadPoints after Close = %v; want os.ErrClosed", err)
	}
}

func pointsEqual(a, b Point) bool {
	return a.Coefficient == b.Coefficient && a.Count == b.Count && a.Forensic == b.Forensic && bytes.Equal(a.Description, b.Description)
}

type observerFunc func(Point) error

func (f observerFunc) NewPoint(p Point) error { return f(p) }

// TestSpoolConcurrent runs Puts and Gets of both the buffer and the file at
// once, for the race detector.
func TestSpoolConcurrent(t *testing.T) {
	s := newTestSpool(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				d := binary.LittleEndian.AppendUint64(bytes.Repeat([]byte{byte(w)}, 200), uint64(i))
				ref, err := s.Put(d)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Get(ref); err != nil || !bytes.Equal(got, d) {
					t.Errorf("Get = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkSpoolPut is the cost a new point adds in a model with a spool.
func BenchmarkSpoolPut(b *testing.B) {
	s := newTestSpool(b)
	desc := bytes.Repeat([]byte("x"), 800)
	b.SetBytes(int64(len(desc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(desc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSpoolGet(b *testing.B) {
	s := newTestSpool(b)
	desc := bytes.Repeat([]byte("x"), 800)
	var refs []DescriptionRef
	for range 1000 {
		refs = append(refs, mustPut(b, s, desc))
	}
	b.SetBytes(int64(len(desc)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddNewStore is BenchmarkAddNew's 800-byte case with the
// descriptions in memory and in a spool: the heap a point keeps shows in
// B/op.
func BenchmarkAddNewStore(b *testing.B) {
	desc := bytes.Repeat([]byte("x"), 800)
	for _, store := range []string{"memory", "spool"} {
		b.Run(store, func(b *testing.B) {
			opts := Options{}
			if store == "spool" {
				opts.Store = newTestSpool(b)
			}
			m := New(opts)
			b.ReportAllocs()
			var raw [32]byte
			for i := uint64(0); b.Loop(); i++ {
				binary.LittleEndian.PutUint64(raw[:], i)
				if _, err := m.Add(events.Digest32(raw), desc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// c32 returns a SHA-256-sized coefficient starting with b.
func c32(b ...byte) Coefficient {
	var a [32]byte
	copy(a[:], b)
	return events.Digest32(a)
}
