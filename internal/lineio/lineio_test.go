package lineio

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEach(t *testing.T) {
	long := strings.Repeat("x", 700<<10)
	tests := []struct {
		name  string
		input string
		want  []string
		nums  []int
	}{
		{"plain", "a\nb\n", []string{"a", "b"}, []int{1, 2}},
		{"no final newline", "a\nb", []string{"a", "b"}, []int{1, 2}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}, []int{1, 2}},
		{"blank lines keep numbering", "a\n\n\nb\n", []string{"a", "b"}, []int{1, 4}},
		{"longer than the buffer", "a\n" + long + "\nb\n", []string{"a", long, "b"}, []int{1, 2, 3}},
		{"empty", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var nums []int
			err := Each(nil, strings.NewReader(tc.input), nil, func(l Line) error {
				if l.Name != StdinName {
					t.Errorf("Name = %q; want %q", l.Name, StdinName)
				}
				got = append(got, string(l.Bytes))
				nums = append(nums, l.Number)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("lines = %.40q; want %.40q", got, tc.want)
			}
			for i := range nums {
				if nums[i] != tc.nums[i] {
					t.Errorf("line %d number = %d; want %d", i, nums[i], tc.nums[i])
				}
			}
		})
	}
}

func TestEachFilesAndErrors(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	os.WriteFile(a, []byte("1\n2\n"), 0o644)
	var got []string
	stop := errors.New("stop")
	err := Each([]string{a, "-"}, strings.NewReader("3\n4\n"), nil, func(l Line) error {
		got = append(got, l.Name+":"+string(l.Bytes))
		if string(l.Bytes) == "4" {
			return l.At(stop)
		}
		return nil
	})
	if !errors.Is(err, stop) || err.Error() != "<stdin>:2: stop" {
		t.Errorf("err = %v; want <stdin>:2: stop", err)
	}
	if want := a + ":1 " + a + ":2 <stdin>:3 <stdin>:4"; strings.Join(got, " ") != want {
		t.Errorf("got %q; want %q", strings.Join(got, " "), want)
	}
	err = Each([]string{filepath.Join(dir, "missing")}, nil, nil, func(Line) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: err = %v; want one naming the file", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomic(path, 0o644, func(w *bufio.Writer) error {
		w.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v; want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("after failed write: %q; want old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left behind: %v", ents)
	}
	if err := WriteFileAtomic(path, 0o600, func(w *bufio.Writer) error {
		_, err := w.WriteString("new")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("after write: %q; want new", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", st.Mode().Perm())
	}
}

func TestEachLineCap(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		max         int
		want        []string
		wantErr     string
	}{
		{"at the cap", "abcd\nefgh\n", 4, []string{"abcd", "efgh"}, ""},
		{"at the cap, crlf", "abcd\r\n", 4, []string{"abcd"}, ""},
		{"at the cap, no final newline", "ab\nabcd", 4, []string{"ab", "abcd"}, ""},
		{"one over", "ab\nabcde\nab\n", 4, []string{"ab"}, "<stdin>:2: line too long: more than 4 bytes"},
		{"one over, no final newline", "abcde", 4, nil, "<stdin>:1: line too long"},
		{"one over, crlf", "abcde\r\n", 4, nil, "<stdin>:1: line too long"},
		{"longer than the reader's buffer", "a\n" + strings.Repeat("x", 600<<10) + "\n", 300 << 10, []string{"a"}, "<stdin>:2: line too long: more than 307200 bytes"},
		{"longer than the buffer, under the cap", strings.Repeat("x", 600<<10) + "\n", 700 << 10, []string{strings.Repeat("x", 600<<10)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := EachMax(nil, strings.NewReader(tc.input), nil, tc.max, func(l Line) error {
				got = append(got, string(l.Bytes))
				return nil
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrLineTooLong)) {
				t.Errorf("EachMax(max %d) error = %v; want %q", tc.max, err, tc.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("lines = %.40q; want %.40q", got, tc.want)
			}
		})
	}
}

// TestEachMaxLine checks the real cap with a line one byte over it, in a
// file, so the error names the file.
func TestEachMaxLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	big := make([]byte, MaxLine+1)
	for i := range big {
		big[i] = 'x'
	}
	if err := os.WriteFile(path, append([]byte("{}\n"), append(big, '\n')...), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := Each([]string{path}, nil, nil, func(Line) error { n++; return nil })
	if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), path+":2: line too long: more than 16777216 bytes") || n != 1 {
		t.Errorf("Each(a line of MaxLine+1 bytes) = %v after %d lines; want line 2 refused, naming the file", err, n)
	}
}
