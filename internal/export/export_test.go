package export

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end in a newline: %q", path, data)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// rotatedFiles returns path's rotated files, oldest first.
func rotatedFiles(t *testing.T, path string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		name string
		seq  uint64
	}
	var out []named
	for _, e := range ents {
		if seq, ok := parseRotated(filepath.Base(path), e.Name()); ok {
			out = append(out, named{filepath.Join(filepath.Dir(path), e.Name()), seq})
		}
	}
	slices.SortFunc(out, func(a, b named) int { return cmpUint(a.seq, b.seq) })
	names := make([]string, len(out))
	for i, n := range out {
		names[i] = n.name
	}
	return names
}

func TestRotating(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
		lines    int
		current  []string
		rotated  [][]string // oldest first
	}{
		{"no rotation needed", 2, 2, []string{"line-0", "line-1"}, nil},
		// Each line is 7 bytes; 20 bytes hold two lines.
		{"rotates and keeps two", 2, 7, []string{"line-6"}, [][]string{{"line-2", "line-3"}, {"line-4", "line-5"}}},
		{"keep none truncates", 0, 5, []string{"line-4"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.json")
			r, err := OpenRotating(path, 20, tc.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.lines {
				if _, err := fmt.Fprintf(r, "line-%d\n", i); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readLines(t, path); !slices.Equal(got, tc.current) {
				t.Errorf("events.json = %q; want %q", got, tc.current)
			}
			files := rotatedFiles(t, path)
			if len(files) != len(tc.rotated) {
				t.Fatalf("rotated files %q; want %d", files, len(tc.rotated))
			}
			for i, f := range files {
				if got := readLines(t, f); !slices.Equal(got, tc.rotated[i]) {
					t.Errorf("%s = %q; want %q", filepath.Base(f), got, tc.rotated[i])
				}
			}
		})
	}
}

// TestRotatingNeverShifts rotates many times keeping a few files: the
// newest are kept, and a rotated file keeps its name and content until it
// is removed (no file is ever renamed twice).
func TestRotatingNeverShifts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	r, err := OpenRotating(path, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	r.now = func() time.Time { clock = clock.Add(-time.Second); return clock } // a clock going back
	content := make(map[string][]string)
	for i := range 40 {
		if _, err := fmt.Fprintf(r, "rotation-%03d\n", i); err != nil { // 13 bytes: one per file
			t.Fatal(err)
		}
		for _, f := range rotatedFiles(t, path) {
			got := readLines(t, f)
			if old, ok := content[f]; ok && !slices.Equal(old, got) {
				t.Fatalf("after write %d, %s holds %q; it held %q", i, filepath.Base(f), got, old)
			}
			content[f] = got
		}
	}
	r.Close()
	files := rotatedFiles(t, path)
	var got []string
	for _, f := range files {
		got = append(got, readLines(t, f)...)
		if !strings.HasPrefix(filepath.Base(f), "events.json.2026120") {
			t.Errorf("rotated file %s; want events.json.<UTC time>.<sequence>", filepath.Base(f))
		}
	}
	if want := []string{"rotation-036", "rotation-037", "rotation-038"}; !slices.Equal(got, want) {
		t.Errorf("rotated files %q hold %q; want the newest three, %q", files, got, want)
	}
	if len(content) != 39 {
		t.Errorf("%d distinct rotated names over 39 rotations; want 39", len(content))
	}
}

func TestRotatingOpenKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	for i := 1; i <= 50; i++ {
		name := fmt.Sprintf("%s.20261206T1030%02d.%06d", path, i%60, i*10)
		if err := os.WriteFile(name, fmt.Appendf(nil, "old-%d\n", i), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	others := []string{path + ".1", path + ".20261206T103000.x", path + ".20261306T103000.000001", filepath.Join(dir, "other.json.20261206T103000.000001")}
	for _, o := range others {
		os.WriteFile(o, []byte("keep\n"), 0o600)
	}
	r, err := OpenRotating(path, 8, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rotatedFiles(t, path)); got != 5 {
		t.Errorf("%d rotated files after open; want the newest 5", got)
	}
	r.Write([]byte("new-1\n"))
	r.Write([]byte("new-2\n")) // rotates
	r.Close()
	files := rotatedFiles(t, path)
	var got []string
	for _, f := range files {
		got = append(got, readLines(t, f)...)
	}
	if want := []string{"old-47", "old-48", "old-49", "old-50", "new-1"}; !slices.Equal(got, want) {
		t.Errorf("rotated files hold %q; want %q", got, want)
	}
	if !strings.HasSuffix(files[4], ".000501") {
		t.Errorf("new rotated file %s; want sequence 000501, after the largest found", files[4])
	}
	for _, o := range others {
		if _, err := os.Stat(o); err != nil {
			t.Errorf("%s: %v; files of other names must be left alone", o, err)
		}
	}
}

func TestRotatingAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	os.WriteFile(path, []byte("old-1\n"), 0o600)
	r, err := OpenRotating(path, 12, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("new-1\n"))
	r.Write([]byte("new-2\n"))
	r.Close()
	files := rotatedFiles(t, path)
	if len(files) != 1 {
		t.Fatalf("rotated files %q; want one", files)
	}
	if got := readLines(t, files[0]); strings.Join(got, ",") != "old-1,new-1" {
		t.Errorf("%s = %q; want the existing line kept and counted", filepath.Base(files[0]), got)
	}
	if _, err := r.Write([]byte("x\n")); err == nil {
		t.Error("Write after Close = nil; want an error")
	}
}

// TestRotatingSplitsAtLines writes batches of several lines: each file is
// filled up to the maximum size with whole lines.
func TestRotatingSplitsAtLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	r, err := OpenRotating(path, 20, 100)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("a-1\na-2\na-3\n"))                   // 12 bytes
	r.Write([]byte("b-1\nb-2\nb-3\n"))                   // 8 fit, then rotate
	r.Write([]byte(strings.Repeat("L", 30) + "\nc-1\n")) // longer than the maximum: alone
	r.Close()
	var got []string
	for _, f := range append(rotatedFiles(t, path), path) {
		got = append(got, strings.Join(readLines(t, f), ","))
	}
	want := []string{"a-1,a-2,a-3,b-1,b-2", "b-3", strings.Repeat("L", 30), "c-1"}
	if !slices.Equal(got, want) {
		t.Errorf("files hold %q; want %q", got, want)
	}
}

// BenchmarkRotate measures one rotation with many rotated files kept: the
// time must not grow with their number.
func BenchmarkRotate(b *testing.B) {
	for _, existing := range []int{10, 10000} {
		b.Run(fmt.Sprintf("files=%d", existing), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "events.json")
			line := []byte(strings.Repeat("x", 63) + "\n") // a file each
			for i := range existing {
				// Like the files a rotation makes: the one each
				// rotation removes holds a line too.
				os.WriteFile(fmt.Sprintf("%s.20261206T103000.%06d", path, i+1), line, 0o600)
			}
			r, err := OpenRotating(path, 64, existing)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := r.Write(line); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			r.Close()
		})
	}
}

func FuzzParseRotated(f *testing.F) {
	f.Add("events.json.20261206T103000.000001")
	f.Add("events.json.20261206T103000.18446744073709551615")
	f.Add("events.json.20261206T103000.+1")
	f.Add("events.json.1")
	f.Fuzz(func(t *testing.T, name string) {
		seq, ok := parseRotated("events.json", name)
		if !ok {
			return
		}
		rest := strings.TrimPrefix(name, "events.json.")
		if _, err := time.Parse(rotatedTime, rest[:len(rotatedTime)]); err != nil {
			t.Fatalf("parseRotated(%q) accepted a bad time: %v", name, err)
		}
		if got := fmt.Sprint(seq); strings.TrimLeft(rest[len(rotatedTime)+1:], "0") != strings.TrimLeft(got, "0") {
			t.Fatalf("parseRotated(%q) = %d; the name's sequence differs", name, seq)
		}
	})
}

func TestSinkLinesStayWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s, err := Open(path, nil, Options{MaxSize: 100 << 10, MaxFiles: 1000, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	total := 0
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				line := fmt.Sprintf(`{"g": %d, "i": %d, "pad": %q}`, g, i, strings.Repeat("x", (i*7919)%(90<<10)))
				s.Export([]byte(line), false)
				if i%10 == 0 {
					s.Flush() // let the writer keep up: this test is about whole lines
				}
			}
		}()
		total += 60
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	n := 0
	for _, f := range files {
		for _, l := range readLines(t, f) {
			if !strings.HasPrefix(l, `{"g": `) || !strings.HasSuffix(l, `"}`) {
				t.Fatalf("%s holds a broken line of %d bytes", filepath.Base(f), len(l))
			}
			n++
		}
	}
	st := s.Stats()
	if uint64(n) != st.Written || st.Written+st.Dropped != uint64(total) || st.Failed != 0 {
		t.Errorf("%d lines in %d files, stats %+v; want written + dropped = %d, written = lines in files", n, len(files), st, total)
	}
}

// BenchmarkSinkExport is the caller's cost of Export (the ring-buffer
// reader's). It exports faster than any destination takes lines, so most
// are dropped: dropped/op says how many.
func BenchmarkSinkExport(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "events.json"), nil, Options{MaxSize: 100 << 20, MaxFiles: 2, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 600) // a typical file_open description
	b.SetBytes(int64(len(line) + 1))
	for b.Loop() {
		s.Export(line, false)
	}
	b.StopTimer()
	s.Close()
	b.ReportMetric(float64(s.Stats().Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkSinkWrite is the sustained rate of lines reaching a file: the
// producer waits for the writer every 512 lines, so nothing is dropped.
func BenchmarkSinkWrite(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "events.json"), nil, Options{MaxSize: 100 << 20, MaxFiles: 2, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 600)
	b.SetBytes(int64(len(line) + 1))
	i := 0
	for b.Loop() {
		s.Export(line, false)
		if i++; i%512 == 0 {
			s.Flush()
		}
	}
	s.Close()
	if st := s.Stats(); st.Dropped != 0 {
		b.Fatalf("Stats() = %+v; want nothing dropped", st)
	}
}
