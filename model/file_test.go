package model_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
)

// A model Vigil loads from a Quixote file and writes back is the same
// bytes: nothing Quixote wrote is lost or reordered.
func TestWriteToReproducesProcessModel(t *testing.T) {
	m := loadProcessModel(t)
	var buf bytes.Buffer
	n, err := m.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo returned %d; wrote %d bytes", n, buf.Len())
	}
	if want := engineTestdata(t, "process.model"); !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteTo(Load(process.model)) differs from process.model:\n%s", buf.Bytes())
	}
}

// modelsEqual compares everything a model file carries.
func modelsEqual(t *testing.T, got, want *model.Model) {
	t.Helper()
	if got.Aggregate() != want.Aggregate() || got.Base() != want.Base() {
		t.Errorf("aggregate, base = %s, %s; want %s, %s", got.Aggregate(), got.Base(), want.Aggregate(), want.Base())
	}
	if got.Sealed() != want.Sealed() {
		t.Errorf("Sealed() = %v; want %v", got.Sealed(), want.Sealed())
	}
	if g, w := coefficientsOf(got.Points()), coefficientsOf(want.Points()); !slices.Equal(g, w) {
		t.Errorf("points = %v; want %v", g, w)
	}
	if g, w := got.Trajectory(), want.Trajectory(); !slices.EqualFunc(g, w, bytes.Equal) {
		t.Errorf("trajectory = %q; want %q", g, w)
	}
	if g, w := got.Pseudonyms(), want.Pseudonyms(); !slices.Equal(g, w) {
		t.Errorf("pseudonyms = %v; want %v", g, w)
	}
	if got.Measurement() != want.Measurement() || got.State() != want.State() {
		t.Errorf("measurement, state = %s, %s; want %s, %s", got.Measurement(), got.State(), want.Measurement(), want.State())
	}
}

// fileOpenLine is the first file_open description of the reference
// trajectory.
func fileOpenLine(t testing.TB) []byte {
	t.Helper()
	for _, l := range engineLines(t, "process_1.json") {
		if bytes.Contains(l, []byte(`"type": "file_open"`)) {
			return l
		}
	}
	t.Fatal("no file_open in process_1.json")
	return nil
}

// withPathname is line with its pathname replaced by p, raw: bytes a JSON
// encoder would escape stay as they are, as TSEM prints them.
func withPathname(t testing.TB, line []byte, p string) []byte {
	t.Helper()
	re := regexp.MustCompile(`"pathname": "[^"]*"`)
	if !re.Match(line) {
		t.Fatalf("no pathname in %s", line)
	}
	return re.ReplaceAllLiteral(line, []byte(`"pathname": "`+p+`"`))
}

func TestSaveLoadRoundTrip(t *testing.T) {
	descriptions := engineLines(t, "process_1.json")
	coefficients := engineCoefficients(t, "process_1.coefficients")
	tests := []struct {
		name  string
		build func() *model.Model
	}{
		{"process.model", func() *model.Model { return loadProcessModel(t) }},
		{"empty learning model", func() *model.Model { return model.New(model.Options{}) }},
		{"process_1 with trajectory, base, pseudonyms, sealed", func() *model.Model {
			m := model.New(model.Options{Aggregate: c32(1, 2, 3), Base: c32(0xbb)})
			m.AddPseudonym(model.PseudonymOf("/var/log/wtmp"))
			m.AddPseudonym(model.PseudonymOf("/tmp/cache"))
			for i, c := range coefficients {
				m.Add(c, descriptions[i])
			}
			m.Seal()
			return m
		}},
		{"descriptions that are not plain lines", func() *model.Model {
			open := fileOpenLine(t)
			m := model.New(model.Options{})
			m.Add(c32(1), withPathname(t, open, "a\tb"))     // raw tab, as TSEM prints it
			m.Add(c32(2), withPathname(t, open, "\xff\xfe")) // not UTF-8
			m.Add(c32(3), append(bytes.Replace(open, []byte(`, "COE"`), []byte(",\n\"COE\""), 1), "\r\n"...))
			m.Add(c32(4), nil)
			m.Add(c32(5), []byte(" "+string(open)+" "))
			m.Add(c32(6), withPathname(t, open, "#trajectory 00 nested"))
			return m
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.build()
			path := filepath.Join(t.TempDir(), "m.model")
			if err := want.SaveFile(path); err != nil {
				t.Fatal(err)
			}
			got, err := model.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			modelsEqual(t, got, want)
			// Saving what was loaded gives the same file again.
			path2 := path + "2"
			if err := got.SaveFile(path2); err != nil {
				t.Fatal(err)
			}
			b1, _ := os.ReadFile(path)
			b2, _ := os.ReadFile(path2)
			if !bytes.Equal(b1, b2) {
				t.Errorf("save(load(save(m))) != save(m)")
			}
		})
	}
}

// Vigil's trajectory lines are comments to Quixote's loader, which takes
// every line starting with '#' as one: a file with them keeps the same
// Quixote commands.
func TestTrajectoryLinesAreComments(t *testing.T) {
	m := model.New(model.Options{})
	m.Add(c32(1), []byte(`{"event":{"type":"file_open"}}`))
	m.Add(c32(2), []byte("a\nb"))
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	var quixote []string
	for l := range strings.Lines(buf.String()) {
		if !strings.HasPrefix(l, "#") {
			quixote = append(quixote, strings.Fields(l)[0])
		}
	}
	if want := []string{"aggregate", "state", "state", "end"}; !slices.Equal(quixote, want) {
		t.Errorf("non-comment keywords = %v; want %v\n%s", quixote, want, buf.String())
	}
}

func TestSaveFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.model")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := loadProcessModel(t)
	if err := m.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, engineTestdata(t, "process.model")) {
		t.Error("SaveFile did not replace the file with the model")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after SaveFile; want 1 (no temporary files left)", len(entries))
	}
	// A path that cannot be written fails and creates nothing.
	bad := filepath.Join(dir, "missing", "m.model")
	if err := m.SaveFile(bad); err == nil {
		t.Error("SaveFile into a missing directory succeeded")
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s: %v; want not exist", bad, err)
	}
}

func TestLoadErrors(t *testing.T) {
	const (
		zero = "0000000000000000000000000000000000000000000000000000000000000000"
		c1   = "fdd9c9694d01c1efaf1882c5ee9ad64042239457e1a9a75785b424a3af0dc94d"
	)
	valid := string(engineTestdata(t, "process.model"))
	desc := string(fileOpenLine(t))
	tests := []struct {
		name     string
		in       string
		wantLine int // 0: the error names no line
		want     string
	}{
		{"empty", "", 0, "bad.model: empty model file"},
		{"truncated: no end", "aggregate " + zero + "\nstate " + c1 + "\n", 2, "missing end"},
		{"truncated: half a file", valid[:len(valid)/2], 99, "state: parse coefficient"},
		{"truncated: cut before end", strings.TrimSuffix(valid, "end\n"), 198, "missing end"},
		{"bad keyword", "aggregate " + zero + "\nstat " + c1 + "\nend\n", 2, `unknown keyword "stat"`},
		{"bad hex", "state " + strings.Replace(c1, "f", "g", 1) + "\nend\n", 1, "state: parse coefficient"},
		{"short hex", "state abcd\nend\n", 1, "want 64, 96 or 128 hex digits (sha256, sha384, sha512), got 4"},
		{"missing coefficient", "state\nend\n", 1, "state: missing coefficient"},
		{"duplicate aggregate", "aggregate " + zero + "\naggregate " + zero + "\nend\n", 2, "duplicate aggregate (first at line 1)"},
		{"duplicate base", "base " + zero + "\nbase " + c1 + "\nend\n", 2, "duplicate base (first at line 1)"},
		{"base after state", "state " + c1 + "\nbase " + zero + "\nend\n", 2, "base after the first state line (line 1)"},
		{"seal with argument", "seal now\nend\n", 1, `seal takes no argument, got "now"`},
		{"content after end", "end\nstate " + c1 + "\n", 2, `"state ` + c1[:34] + `"... after end (line 1)`},
		{"signed", "key abc\nend\n", 1, "signed model files (key) are not supported"},
		{"trajectory without state", "#trajectory " + c1 + " {}\nend\n", 1, "no state line for it"},
		{"trajectory without description", "state " + c1 + "\n#trajectory " + c1 + "\nend\n", 2, "missing description"},
		{"duplicate trajectory", "state " + c1 + "\n#trajectory " + c1 + " " + desc + "\n#trajectory " + c1 + " " + desc + "\nend\n", 3, "duplicate (first at line 2)"},
		{"trajectory of broken JSON", "state " + c1 + "\n#trajectory " + c1 + " " + desc[:40] + "\nend\n", 2,
			"trajectory " + c1 + ": description (from byte 77 of the line): offset 40: malformed JSON"},
		{"trajectory of an empty object", "state " + c1 + "\n#trajectory " + c1 + " {}\nend\n", 2, "description (from byte 77 of the line): offset 0, field event: missing field"},
		{"trajectory with a bad field", "state " + c1 + "\n#trajectory " + c1 + " " + strings.Replace(desc, `"mode": "0100`, `"mode": "zz0100`, 1) + "\nend\n", 2,
			"field file_open.file.inode.mode: bad number"},
		{"trajectory of broken JSON in base64", "state " + c1 + "\n#trajectory-base64 " + c1 + " " + base64.StdEncoding.EncodeToString([]byte(desc[:40])) + "\nend\n", 2,
			"description (decoded from base64): offset 40: malformed JSON"},
		{"bad base64", "state " + c1 + "\n#trajectory-base64 " + c1 + " !!\nend\n", 2, "bad base64"},
		{"line too long", "state " + strings.Repeat("0", model.MaxModelLine) + "\nend\n", 1, "line too long: more than 33554432 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.Load(strings.NewReader(tc.in), "bad.model")
			if err == nil {
				t.Fatal("Load succeeded; want an error")
			}
			if !errors.Is(err, model.ErrInvalidModel) {
				t.Errorf("Load error %v does not match ErrInvalidModel", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %q; want it to contain %q", err, tc.want)
			}
			var pe *lineio.PlaceError
			switch {
			case tc.wantLine == 0 && errors.As(err, &pe):
				t.Errorf("Load error names line %d; want none", pe.Number)
			case tc.wantLine != 0 && (!errors.As(err, &pe) || pe.Name != "bad.model" || pe.Number != tc.wantLine):
				t.Errorf("Load error = %q; want it at bad.model:%d", err, tc.wantLine)
			}
		})
	}
}

// TestLoadTrajectoryParseError checks that a trajectory line whose
// description does not parse is refused with the parser's error, so that
// its offset, field and reason are there for errors.As and errors.Is.
func TestLoadTrajectoryParseError(t *testing.T) {
	const c1 = "fdd9c9694d01c1efaf1882c5ee9ad64042239457e1a9a75785b424a3af0dc94d"
	desc := fileOpenLine(t)
	in := "state " + c1 + "\n#trajectory " + c1 + " " + string(desc[:100]) + "\nend\n"
	_, err := model.Load(strings.NewReader(in), "bad.model")
	var pe *events.ParseError
	if !errors.Is(err, model.ErrInvalidModel) || !errors.Is(err, events.ErrSyntax) || !errors.As(err, &pe) || pe.Offset != 100 {
		t.Errorf("Load(trajectory cut at byte 100) = %v; want an invalid model wrapping the parser's syntax error at offset 100", err)
	}
}

func TestLoadAccepts(t *testing.T) {
	const c1 = "fdd9c9694d01c1efaf1882c5ee9ad64042239457e1a9a75785b424a3af0dc94d"
	tests := []struct {
		name       string
		in         string
		wantPoints int
		wantSealed bool
	}{
		{"comments and blank lines", "# a model\n\nstate " + c1 + "\n# note\nend\n", 1, false},
		{"CRLF", "state " + c1 + "\r\nseal\r\nend\r\n", 1, true},
		{"no newline after end", "state " + c1 + "\nend", 1, false},
		{"blank lines after end", "end\n\n  \n", 0, false},
		{"repeated state is one point", "state " + c1 + "\nstate " + c1 + "\nend\n", 1, false},
		{"uppercase hex", "state " + strings.ToUpper(c1) + "\nend\n", 1, false},
		{"pseudonym only", "pseudonym " + c1 + "\nend\n", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Load(strings.NewReader(tc.in), "ok.model")
			if err != nil {
				t.Fatal(err)
			}
			if m.Len() != tc.wantPoints || m.Sealed() != tc.wantSealed {
				t.Errorf("Len(), Sealed() = %d, %v; want %d, %v", m.Len(), m.Sealed(), tc.wantPoints, tc.wantSealed)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := model.LoadFile(filepath.Join(t.TempDir(), "none.model"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || errors.Is(err, model.ErrInvalidModel) {
		t.Errorf("LoadFile(missing) = %v; want a not-exist error that is not ErrInvalidModel", err)
	}
}

func BenchmarkLoadProcessModel(b *testing.B) {
	data := engineTestdata(b, "process.model")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := model.Load(bytes.NewReader(data), "process.model"); err != nil {
			b.Fatal(err)
		}
	}
}
