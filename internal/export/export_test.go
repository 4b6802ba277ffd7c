package export

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end in a newline: %q", path, data)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestRotating(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
		lines    int
		want     map[string][]string // file suffix -> lines
	}{
		{"no rotation needed", 2, 2, map[string][]string{"": {"line-0", "line-1"}, ".1": nil}},
		// Each line is 7 bytes; 20 bytes hold two lines.
		{"rotates and keeps two", 2, 7, map[string][]string{
			"": {"line-6"}, ".1": {"line-4", "line-5"}, ".2": {"line-2", "line-3"}, ".3": nil}},
		{"keep none truncates", 0, 5, map[string][]string{"": {"line-4"}, ".1": nil}},
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
			for suffix, want := range tc.want {
				got := readLines(t, path+suffix)
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("%s = %q; want %q", filepath.Base(path+suffix), got, want)
				}
			}
		})
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
	if got := readLines(t, path+".1"); strings.Join(got, ",") != "old-1,new-1" {
		t.Errorf("events.json.1 = %q; want the existing line kept and counted", got)
	}
	if _, err := r.Write([]byte("x\n")); err == nil {
		t.Error("Write after Close = nil; want an error")
	}
}

func TestSink(t *testing.T) {
	var stdout bytes.Buffer
	s, err := Open("-", &stdout, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Export([]byte(`{"event": {"number": "1"}}`), false)
	s.Export([]byte(`{"event": {"number": "2"}}`), true)
	if stdout.Len() != 0 {
		t.Errorf("Export wrote before Flush: %q", stdout.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "{\"event\": {\"number\": \"2\"}}\n"; got != want {
		t.Errorf("forensics-only sink wrote %q; want %q", got, want)
	}
	if _, err := Open("", &stdout, 0, 0, false); err == nil {
		t.Error("Open(\"\") = nil error; want one")
	}
}

// TestSinkLinesStayWhole writes lines of many sizes, some longer than the
// buffer, from several goroutines into a small rotating file: every file
// must hold only whole lines.
func TestSinkLinesStayWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s, err := Open(path, nil, 100<<10, 1000, false)
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
				if err := s.Export([]byte(line), false); err != nil {
					t.Error(err)
					return
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
	if n != total {
		t.Errorf("%d lines in %d files; want %d", n, len(files), total)
	}
}

func BenchmarkSinkExport(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "events.json"), nil, 100<<20, 2, false)
	if err != nil {
		b.Fatal(err)
	}
	line := bytes.Repeat([]byte("x"), 600) // a typical file_open description
	b.SetBytes(int64(len(line) + 1))
	for b.Loop() {
		s.Export(line, false)
	}
	s.Close()
}
