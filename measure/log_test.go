package measure

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/measure/measuretest"
	"github.com/vigil-tsem/vigil/model"
)

// fixedNow stamps records deterministically.
func fixedNow() time.Time { return time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC) }

// readLines returns the lines of a file of the repository's TSEM test data.
func readLines(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "tsem", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// trajectory returns the real TSEM trajectory process_1 with the kernel's
// coefficient of each event.
func trajectory(t testing.TB) (events [][]byte, coefs []model.Coefficient) {
	t.Helper()
	events = readLines(t, "process_1.json")
	for i, l := range readLines(t, "process_1.coefficients") {
		c, err := model.ParseCoefficient(strings.TrimSpace(string(l)))
		if err != nil {
			t.Fatalf("process_1.coefficients:%d: %v", i+1, err)
		}
		coefs = append(coefs, c)
	}
	if len(events) != len(coefs) {
		t.Fatalf("%d events, %d coefficients", len(events), len(coefs))
	}
	return events, coefs
}

func openLog(t testing.TB, path string, reg Register) *Log {
	t.Helper()
	l, err := OpenLog(path, reg, LogOptions{Now: fixedNow})
	if err != nil {
		t.Fatalf("OpenLog(%s) = %v", path, err)
	}
	return l
}

// learn models the trajectory in a new namespace of l, through the model
// package, so the log gets one point per unique coefficient.
func learn(t testing.TB, l *Log, name string, events [][]byte, coefs []model.Coefficient) *model.Model {
	t.Helper()
	ns, err := l.Namespace(l.NextNamespaceID(), name, model.Coefficient{}, model.Coefficient{})
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Observer: ns})
	for i, c := range coefs {
		if _, err := m.Add(c, events[i]); err != nil {
			t.Fatalf("Add(event %d) = %v", i+1, err)
		}
	}
	return m
}

func unique(coefs []model.Coefficient) int {
	seen := map[model.Coefficient]bool{}
	for _, c := range coefs {
		seen[c] = true
	}
	return len(seen)
}

func verifyFile(t testing.TB, path string, o VerifyOptions) (*Report, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Verify(f, path, o)
}

func TestLogLearnAndVerify(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(DefaultSoftwareIndex)
	l := openLog(t, path, reg)
	m := learn(t, l, "process_1", events, coefs)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	value, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: value})
	if err != nil {
		t.Fatalf("Verify(untouched log) = %v", err)
	}
	if want := uint64(1 + unique(coefs)); rep.Records != want {
		t.Errorf("Verify: %d records; want %d (created + one per unique coefficient)", rep.Records, want)
	}
	if len(rep.Namespaces) != 1 {
		t.Fatalf("Verify: %d namespaces; want 1", len(rep.Namespaces))
	}
	ns := rep.Namespaces[0]
	if ns.Measurement != m.Measurement() || ns.State != m.State() {
		t.Errorf("recomputed measurement %s state %s; model has %s %s", ns.Measurement, ns.State, m.Measurement(), m.State())
	}
	if ns.Points != unique(coefs) || ns.Name != "process_1" || ns.ID != 1 {
		t.Errorf("namespace report %+v", ns)
	}

	// Every stored event description is the trajectory line, byte for byte.
	var got [][]byte
	err = scanFile(t, path, func(_ int, rec Record) error {
		c, err := ParseContent(rec.Content)
		if err != nil || c.Record != RecordPoint {
			return err
		}
		d, err := c.Description()
		got = append(got, d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[model.Coefficient]bool{}
	i := 0
	for k, c := range coefs {
		if seen[c] {
			continue
		}
		seen[c] = true
		if !bytes.Equal(got[i], events[k]) {
			t.Errorf("point %d description = %q; want %q", i, got[i], events[k])
		}
		i++
	}
}

func scanFile(t testing.TB, path string, fn func(int, Record) error) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Scan(f, path, fn)
}

// TestVerifyModelVector replays the reference model through a log: the
// measurement and state must be the ones the TSEM README gives.
func TestVerifyModelVector(t *testing.T) {
	var coefs []model.Coefficient
	for _, l := range readLines(t, "process.model") {
		f := strings.Fields(string(l))
		if len(f) == 2 && f[0] == "state" {
			c, err := model.ParseCoefficient(f[1])
			if err != nil {
				t.Fatal(err)
			}
			coefs = append(coefs, c)
		}
	}
	path := filepath.Join(t.TempDir(), "events.log")
	l := openLog(t, path, NewSoftware(DefaultSoftwareIndex))
	learn(t, l, "model", make([][]byte, len(coefs)), coefs)
	l.Close()
	rep, err := verifyFile(t, path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const (
		wantMeasurement = "47490c4c05dc752e7374abc857ca5bc7329c5af1601da752b36c4ae4342187c5"
		wantState       = "17340ae343b0461d82158997d14dca359c6b9d296bd0faeb7742f1a5eb145562"
	)
	ns := rep.Namespaces[0]
	if ns.Measurement.String() != wantMeasurement || ns.State.String() != wantState {
		t.Errorf("Verify: measurement %s state %s; want %s %s", ns.Measurement, ns.State, wantMeasurement, wantState)
	}
}

func TestLogReopenContinues(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	tdx := measuretest.NewTDX()
	open := func() *Log {
		reg, _, err := OpenRegister(KindTDX, RegisterOptions{TDXFS: tdx})
		if err != nil {
			t.Fatal(err)
		}
		return openLog(t, path, reg)
	}
	l := open()
	learn(t, l, "first", events[:50], coefs[:50])
	n1 := l.Position().Records
	l.Close()

	l = open()
	if got := l.Position().Records; got != n1 {
		t.Fatalf("reopened log at %d records; want %d", got, n1)
	}
	if l.NextNamespaceID() != 2 {
		t.Errorf("NextNamespaceID() = %d; want 2", l.NextNamespaceID())
	}
	learn(t, l, "second", events[50:], coefs[50:])
	l.Close()
	rep, err := verifyFile(t, path, VerifyOptions{Register: tdx.RTMR(3), Kind: KindTDX, Index: 3})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if len(rep.Namespaces) != 2 || rep.Namespaces[1].ID != 2 {
		t.Errorf("namespaces %+v", rep.Namespaces)
	}
}

func TestLogLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	l := openLog(t, path, NewSoftware(23))
	defer l.Close()
	if _, err := OpenLog(path, NewSoftware(23), LogOptions{}); !errors.Is(err, ErrLogLocked) {
		t.Errorf("second OpenLog = %v; want ErrLogLocked", err)
	}
}

// tamperCase changes a good log (lines without their newlines) and says
// where Verify must report the damage.
type tamperCase struct {
	name     string
	tamper   func(t *testing.T, lines [][]byte) [][]byte
	register func(reg Register) // changes the register instead
	raw      func(data []byte) []byte
	wantLine int // 0: no particular line (a register mismatch)
	wantText string
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{name: "edited content", tamper: func(t *testing.T, l [][]byte) [][]byte {
			l[5] = bytes.Replace(l[5], []byte(`"forensic"`), []byte(`"forensix"`), 1)
			if !bytes.Contains(l[5], []byte(`"event":`)) {
				t.Fatal("line 6 has no event")
			}
			l[5] = bytes.Replace(l[5], []byte(`"event":{`), []byte(`"event":{"x":"1",`), 1)
			return l
		}, wantLine: 6, wantText: "digest"},
		{name: "edited content and digest", tamper: func(t *testing.T, l [][]byte) [][]byte {
			rec, _ := ParseLine(l[5])
			c := bytes.Replace(rec.Content, []byte(`"event":{`), []byte(`"event":{"x":"1",`), 1)
			rec.Content = c
			rec.Digest = sha384(c)
			l[5] = bytes.TrimSuffix(AppendLine(nil, rec), []byte("\n"))
			return l
		}, wantText: "not explained"},
		{name: "edited recnum", tamper: func(t *testing.T, l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte(`"recnum":3,`), []byte(`"recnum":4,`), 1)
			return l
		}, wantLine: 4, wantText: "record number"},
		{name: "removed line", tamper: func(t *testing.T, l [][]byte) [][]byte {
			return append(l[:7], l[8:]...)
		}, wantLine: 8, wantText: "record number is 8, want 7"},
		{name: "removed last line", tamper: func(t *testing.T, l [][]byte) [][]byte {
			return l[:len(l)-1]
		}, wantText: "not explained"},
		{name: "reordered lines", tamper: func(t *testing.T, l [][]byte) [][]byte {
			l[9], l[10] = l[10], l[9]
			return l
		}, wantLine: 10, wantText: "record number"},
		{name: "inserted line", tamper: func(t *testing.T, l [][]byte) [][]byte {
			return append(l[:4], append([][]byte{l[3]}, l[4:]...)...)
		}, wantLine: 5, wantText: "record number"},
		{name: "inserted and renumbered", tamper: func(t *testing.T, l [][]byte) [][]byte {
			var out [][]byte
			for i, line := range l {
				if i == 4 {
					out = append(out, l[3])
				}
				out = append(out, line)
			}
			for i := range out {
				rec, _ := ParseLine(out[i])
				rec.Recnum = uint64(i)
				out[i] = bytes.TrimSuffix(AppendLine(nil, rec), []byte("\n"))
			}
			return out
		}, wantLine: 5, wantText: "recorded twice"},
		{name: "appended forged record", tamper: func(t *testing.T, l [][]byte) [][]byte {
			c := []byte(`{"record":"sealed","time":"2026-11-27T01:00:00Z","namespace":{"id":1,"name":"process_1"}}`)
			return append(l, bytes.TrimSuffix(AppendLine(nil, Record{Recnum: uint64(len(l)), Kind: KindSoftware, Index: 23, Alg: crypto.SHA384, Digest: sha384(c), Content: c}), []byte("\n")))
		}, wantText: "explains only records"},
		{name: "truncated mid-line", raw: func(d []byte) []byte {
			return d[:len(d)-40]
		}, wantText: "partial line"},
		{name: "truncated at a line", raw: func(d []byte) []byte {
			cut := bytes.LastIndexByte(d[:len(d)-1], '\n')
			cut = bytes.LastIndexByte(d[:cut], '\n')
			return d[:cut+1]
		}, wantText: "not explained"},
		{name: "emptied", raw: func(d []byte) []byte { return nil }, wantText: "log is empty"},
		{name: "foreign extend", register: func(reg Register) {
			reg.Extend(sha384([]byte("someone else")))
		}, wantText: "not explained"},
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	events, coefs := trajectory(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.log")
	reg := NewSoftware(DefaultSoftwareIndex)
	l := openLog(t, good, reg)
	learn(t, l, "process_1", events, coefs)
	l.Close()
	value, _ := reg.Read()
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFile(t, good, VerifyOptions{Register: value}); err != nil {
		t.Fatalf("Verify(untouched) = %v", err)
	}
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			out := data
			switch {
			case tc.tamper != nil:
				lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
				for i := range lines {
					lines[i] = append([]byte(nil), lines[i]...)
				}
				lines = tc.tamper(t, lines)
				out = append(bytes.Join(lines, []byte("\n")), '\n')
			case tc.raw != nil:
				out = tc.raw(append([]byte(nil), data...))
			}
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			r := NewSoftware(DefaultSoftwareIndex)
			r.restore(value)
			if tc.register != nil {
				tc.register(r)
			}
			v, _ := r.Read()
			_, err := verifyFile(t, path, VerifyOptions{Register: v})
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("Verify = %v; want ErrVerify", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Verify = %v; want it to say %q", err, tc.wantText)
			}
			var le *LineError
			if tc.wantLine != 0 && (!errors.As(err, &le) || le.Line != tc.wantLine) {
				t.Errorf("Verify = %v; want it at line %d", err, tc.wantLine)
			}
		})
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.log")
	os.WriteFile(path, nil, 0o600)
	if _, err := verifyFile(t, path, VerifyOptions{Register: make([]byte, 48)}); err != nil {
		t.Errorf("Verify(empty log, zero register) = %v", err)
	}
	nz := make([]byte, 48)
	nz[0] = 1
	if _, err := verifyFile(t, path, VerifyOptions{Register: nz}); !errors.Is(err, ErrVerify) {
		t.Errorf("Verify(empty log, nonzero register) = %v; want ErrVerify", err)
	}
}

func TestVerifyOutsideModel(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	l := openLog(t, path, NewSoftware(23))
	learn(t, l, "p", events, coefs)
	l.Close()
	// The model of the first 100 events lacks the points of the rest.
	in := model.New(model.Options{})
	for _, c := range coefs[:100] {
		in.Add(c, nil)
	}
	rep, err := verifyFile(t, path, VerifyOptions{Model: in})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range coefs {
		if !in.Contains(c) {
			want++
			in.Add(c, nil) // count each once
		}
	}
	if len(rep.Outside) != want || want == 0 {
		t.Errorf("Verify: %d points outside the model; want %d", len(rep.Outside), want)
	}
}

func TestLifecycleRecords(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l := openLog(t, path, reg)
	ns, err := l.Namespace(9, "web", c32(1), c32(2))
	if err != nil {
		t.Fatal(err)
	}
	m := model.New(model.Options{Aggregate: c32(1), Base: c32(2), Observer: ns})
	for i := range 100 {
		m.Add(coefs[i], events[i])
	}
	m.Seal()
	if err := ns.Sealed(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Enforcing(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Gap(3, "ring buffer full"); err != nil {
		t.Fatal(err)
	}
	for i := 100; i < len(coefs); i++ {
		m.Add(coefs[i], events[i])
	}
	l.Close()
	v, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Namespaces[0]
	if !r.Sealed || !r.Enforcing || r.Gaps != 1 || r.Lost != 3 || r.ID != 9 || r.Aggregate != (c32(1)) || r.Base != (c32(2)) {
		t.Errorf("namespace report %+v", r)
	}
	if r.Measurement != m.Measurement() || r.State != m.State() {
		t.Errorf("recomputed %s %s; model %s %s", r.Measurement, r.State, m.Measurement(), m.State())
	}
	if r.Forensics == 0 {
		t.Errorf("no forensics recorded after the seal")
	}
}

// Namespaces of one log append concurrently (run with -race).
func TestLogConcurrentNamespaces(t *testing.T) {
	events, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(23)
	l := openLog(t, path, reg)
	const workers = 4
	models := make([]*model.Model, workers)
	done := make(chan error, workers)
	for w := range workers {
		ns, err := l.Namespace(uint64(w+1), "w", model.Coefficient{}, model.Coefficient{})
		if err != nil {
			t.Fatal(err)
		}
		models[w] = model.New(model.Options{Observer: ns})
		go func() {
			for i := range coefs {
				if _, err := models[w].Add(coefs[i], events[i]); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	v, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: v})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	for w, ns := range rep.Namespaces {
		if ns.Measurement != models[w].Measurement() {
			t.Errorf("namespace %d: measurement %s; model %s", ns.ID, ns.Measurement, models[w].Measurement())
		}
	}
}
