package model_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// Reference values from testdata/tsem/README.md, checked there with the
// Quixote C code.
const (
	processModelMeasurement = "47490c4c05dc752e7374abc857ca5bc7329c5af1601da752b36c4ae4342187c5"
	processModelState       = "17340ae343b0461d82158997d14dca359c6b9d296bd0faeb7742f1a5eb145562"
)

func engineTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "tsem", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// engineLines returns the non-empty lines of a testdata file.
func engineLines(t testing.TB, name string) [][]byte {
	t.Helper()
	var out [][]byte
	for l := range bytes.SplitSeq(engineTestdata(t, name), []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

func engineCoefficients(t testing.TB, name string) []model.Coefficient {
	t.Helper()
	var out []model.Coefficient
	for _, l := range engineLines(t, name) {
		c, err := model.ParseCoefficient(string(l))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, c)
	}
	return out
}

// engineStates returns the state lines of process.model, in file order.
func engineStates(t testing.TB) []model.Coefficient {
	t.Helper()
	var out []model.Coefficient
	for _, l := range engineLines(t, "process.model") {
		if h, ok := strings.CutPrefix(string(l), "state "); ok {
			c, err := model.ParseCoefficient(h)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	return out
}

func loadProcessModel(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.LoadFile(filepath.Join("..", "testdata", "tsem", "process.model"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func coefficientsOf(ps []model.Point) []model.Coefficient {
	out := make([]model.Coefficient, len(ps))
	for i, p := range ps {
		out[i] = p.Coefficient
	}
	return out
}

func TestLoadProcessModel(t *testing.T) {
	m := loadProcessModel(t)
	if got := m.Measurement().String(); got != processModelMeasurement {
		t.Errorf("Measurement() = %s; want %s", got, processModelMeasurement)
	}
	if got := m.State().String(); got != processModelState {
		t.Errorf("State() = %s; want %s", got, processModelState)
	}
	if got, want := m.Len(), 196; got != want {
		t.Errorf("Len() = %d; want %d", got, want)
	}
	if !m.Sealed() {
		t.Error("Sealed() = false; want true (the file says seal)")
	}
	if m.Aggregate() != model.SHA256.Zero() || m.Base() != model.SHA256.Zero() {
		t.Errorf("Aggregate(), Base() = %s, %s; want zero", m.Aggregate(), m.Base())
	}
	if got, want := coefficientsOf(m.Points()), engineStates(t); !slices.Equal(got, want) {
		t.Error("Points() differ from the state lines of process.model")
	}
	for i, p := range m.Points() {
		if p.Count != 0 || p.Description != nil || p.Forensic {
			t.Fatalf("Points()[%d] = %+v; want count 0, no description, not forensic", i, p)
		}
	}
	if len(m.Forensics()) != 0 {
		t.Errorf("Forensics() = %d points; want none", len(m.Forensics()))
	}
	// The free functions a verifier uses agree with the model.
	states := engineStates(t)
	if got := model.MeasurementOf(model.Coefficient{}, model.Coefficient{}, states); got.String() != processModelMeasurement {
		t.Errorf("MeasurementOf(process.model) = %s; want %s", got, processModelMeasurement)
	}
	if got := model.StateOf(model.Coefficient{}, model.Coefficient{}, states); got.String() != processModelState {
		t.Errorf("StateOf(process.model) = %s; want %s", got, processModelState)
	}
}

// process.model was written by the kernel at the end of a run whose first
// 155 unique events are process_1: its first 155 state lines are
// process_1.coefficients in order (all distinct), the other 41 come from
// later events of the run.
func TestBuildFromProcess1(t *testing.T) {
	coefficients := engineCoefficients(t, "process_1.coefficients")
	descriptions := engineLines(t, "process_1.json")
	if len(coefficients) != len(descriptions) {
		t.Fatalf("process_1: %d coefficients, %d descriptions", len(coefficients), len(descriptions))
	}
	m := model.New(model.Options{})
	for i, c := range coefficients {
		res, err := m.Add(c, descriptions[i])
		if err != nil {
			t.Fatal(err)
		}
		if !res.New || res.Forensic {
			t.Fatalf("Add(line %d) = %+v; want New", i+1, res)
		}
	}
	states := engineStates(t)
	if got, want := coefficientsOf(m.Points()), states[:len(coefficients)]; !slices.Equal(got, want) {
		t.Fatal("points built from process_1.coefficients are not the first state lines of process.model")
	}
	if !slices.EqualFunc(m.Trajectory(), descriptions, bytes.Equal) {
		t.Error("Trajectory() is not process_1.json")
	}
	if got, want := m.Measurement(), model.MeasurementOf(model.Coefficient{}, model.Coefficient{}, states[:len(coefficients)]); got != want {
		t.Errorf("Measurement() = %s; want %s", got, want)
	}

	// Learning the rest of the model's points reproduces its values.
	for _, c := range states[len(coefficients):] {
		if _, err := m.Add(c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Measurement().String(); got != processModelMeasurement {
		t.Errorf("Measurement() after all points = %s; want %s", got, processModelMeasurement)
	}
	if got := m.State().String(); got != processModelState {
		t.Errorf("State() after all points = %s; want %s", got, processModelState)
	}

	// Replaying process_1 against the sealed model finds nothing new.
	sealed := loadProcessModel(t)
	for i, c := range coefficients {
		res, err := sealed.Add(c, descriptions[i])
		if err != nil || res.New || res.Forensic {
			t.Fatalf("sealed Add(process_1 line %d) = %+v, %v; want a counted model point", i+1, res, err)
		}
	}
	if n := len(sealed.Forensics()); n != 0 {
		t.Errorf("Forensics() = %d after replaying process_1; want 0", n)
	}
	if got := sealed.Measurement().String(); got != processModelMeasurement {
		t.Errorf("Measurement() changed by in-model events: %s", got)
	}
}

func TestForensics(t *testing.T) {
	for _, name := range []string{"process_3", "process_4", "process_6"} {
		t.Run(name, func(t *testing.T) {
			coefficients := engineCoefficients(t, name+".coefficients")
			descriptions := engineLines(t, name+".json")
			m := loadProcessModel(t)
			var seen []model.Coefficient
			for i, c := range coefficients {
				res, err := m.Add(c, descriptions[i])
				if err != nil {
					t.Fatal(err)
				}
				isNew := !slices.Contains(seen, c)
				if res.New != isNew || !res.Forensic {
					t.Errorf("Add(line %d) = %+v; want New=%v Forensic=true", i+1, res, isNew)
				}
				if isNew {
					seen = append(seen, c)
				}
				if m.Contains(c) {
					t.Errorf("Contains(forensics point %s) = true", c)
				}
			}
			f := m.Forensics()
			if got := coefficientsOf(f); !slices.Equal(got, seen) {
				t.Fatalf("Forensics() = %v; want %v", got, seen)
			}
			for i, p := range f {
				if !p.Forensic || p.Count != 1 || !bytes.Equal(p.Description, descriptions[i]) {
					t.Errorf("Forensics()[%d] = {Forensic %v, Count %d, %.40q}; want forensic, count 1, line %d", i, p.Forensic, p.Count, p.Description, i+1)
				}
			}
			if m.Len() != 196 {
				t.Errorf("Len() = %d; forensics must not join the model", m.Len())
			}
			// Like TSEM, new forensics points extend the measurement and
			// enter the state.
			all := append(engineStates(t), seen...)
			if got, want := m.Measurement(), model.MeasurementOf(model.Coefficient{}, model.Coefficient{}, all); got != want {
				t.Errorf("Measurement() = %s; want %s", got, want)
			}
			if got, want := m.State(), model.StateOf(model.Coefficient{}, model.Coefficient{}, all); got != want {
				t.Errorf("State() = %s; want %s", got, want)
			}
			// A repeat counts and is still forensic.
			before := m.Measurement()
			res, err := m.Add(coefficients[0], []byte("other"))
			if err != nil || res.New || !res.Forensic {
				t.Errorf("repeat Add = %+v, %v; want forensic, not new", res, err)
			}
			if p := m.Forensics()[0]; p.Count != 2 || !bytes.Equal(p.Description, descriptions[0]) {
				t.Errorf("after repeat: count %d, description %.40q; want 2 and the first description", p.Count, p.Description)
			}
			if m.Measurement() != before {
				t.Error("a repeated forensics event changed the measurement")
			}
		})
	}
}

// TestAddRepeatsRef: a PointRef from Add counts repeats on its own point
// (model or forensics) and gives its coefficient back; refs the model did
// not hand out count nothing.
func TestAddRepeatsRef(t *testing.T) {
	for _, h := range []model.Hash{model.SHA256, model.SHA384} {
		m := model.New(model.Options{Hash: h})
		mk := func(b byte) model.Coefficient {
			c, err := model.ParseCoefficientHash(h, strings.Repeat(fmt.Sprintf("%02x", b), h.Size()))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a, b := mk(1), mk(2)
		ra, _ := m.Add(a, nil)
		m.Seal()
		rb, _ := m.Add(b, nil)
		if ra.Ref == 0 || rb.Ref == 0 || ra.Ref == rb.Ref {
			t.Fatalf("%s: refs %d and %d", h, ra.Ref, rb.Ref)
		}
		if rec, forensic := m.AddRepeatsRef(ra.Ref, 5); !rec || forensic {
			t.Errorf("%s: AddRepeatsRef(a) = %v, %v; want true, false", h, rec, forensic)
		}
		if rec, forensic := m.AddRepeatsRef(rb.Ref, 2); !rec || !forensic {
			t.Errorf("%s: AddRepeatsRef(b) = %v, %v; want true, true", h, rec, forensic)
		}
		for _, bad := range []model.PointRef{0, rb.Ref + 1} {
			if rec, _ := m.AddRepeatsRef(bad, 1); rec {
				t.Errorf("%s: AddRepeatsRef(%d) recorded", h, bad)
			}
		}
		if c, ok := m.CoefficientOf(rb.Ref); !ok || c != b {
			t.Errorf("%s: CoefficientOf(b) = %s, %v; want %s", h, c, ok, b)
		}
		if p := m.Points(); len(p) != 1 || p[0].Count != 6 {
			t.Errorf("%s: points %+v; want a with count 6", h, p)
		}
		if f := m.Forensics(); len(f) != 1 || f[0].Count != 3 {
			t.Errorf("%s: forensics %+v; want b with count 3", h, f)
		}
	}
}

func TestLearnThenSeal(t *testing.T) {
	a, b, c := c32(1), c32(2), c32(3)
	m := model.New(model.Options{Aggregate: c32(9), Base: c32(8)})
	steps := []struct {
		name    string
		seal    bool
		add     model.Coefficient
		want    model.AddResult
		wantLen int
	}{
		{name: "new learns", add: a, want: model.AddResult{New: true, Ref: 1}, wantLen: 1},
		{name: "repeat counts", add: a, want: model.AddResult{Ref: 1}, wantLen: 1},
		{name: "second point", add: b, want: model.AddResult{New: true, Ref: 2}, wantLen: 2},
		{name: "in model after seal", seal: true, add: a, want: model.AddResult{Ref: 1}, wantLen: 2},
		{name: "out of model", add: c, want: model.AddResult{New: true, Forensic: true, Ref: 3}, wantLen: 2},
		{name: "forensic repeat", add: c, want: model.AddResult{Forensic: true, Ref: 3}, wantLen: 2},
	}
	for _, st := range steps {
		if st.seal {
			m.Seal()
		}
		got, err := m.Add(st.add, []byte(st.name))
		if err != nil || got != st.want || m.Len() != st.wantLen {
			t.Errorf("%s: Add = %+v, %v, Len %d; want %+v, nil, Len %d", st.name, got, err, m.Len(), st.want, st.wantLen)
		}
	}
	pts := m.Points()
	if len(pts) != 2 || pts[0].Count != 3 || pts[1].Count != 1 || string(pts[0].Description) != "new learns" {
		t.Errorf("Points() = %+v", pts)
	}
	if !m.Contains(a) || !m.Contains(b) || m.Contains(c) {
		t.Error("Contains() wrong")
	}
	want := model.MeasurementOf(c32(9), c32(8), []model.Coefficient{a, b, c})
	if m.Measurement() != want {
		t.Errorf("Measurement() = %s; want %s", m.Measurement(), want)
	}
	if got, want := m.State(), model.StateOf(c32(9), c32(8), []model.Coefficient{c, b, a}); got != want {
		t.Errorf("State() = %s; want %s", got, want)
	}
	// Copies: changing what Points returned changes nothing.
	pts[0].Description[0] = 'X'
	if string(m.Points()[0].Description) != "new learns" {
		t.Error("Points() shares description memory with the model")
	}
}

func TestExtendDefinition(t *testing.T) {
	// extend(m, x) = H(m ‖ H(base ‖ x)) with the aggregate first: the
	// README vector pins the zero-base case; this pins where base goes.
	base, agg, x := c32(0xb), c32(0xa), c32(0x1)
	got := model.MeasurementOf(agg, base, []model.Coefficient{x})
	want := model.Extend(model.Extend(model.Coefficient{}, base, agg), base, x)
	if got != want {
		t.Errorf("MeasurementOf = %s; want %s", got, want)
	}
	if model.Extend(model.Coefficient{}, base, x) == model.Extend(model.Coefficient{}, model.Coefficient{}, x) {
		t.Error("Extend ignores base")
	}
}

func TestPseudonyms(t *testing.T) {
	// Computed with Python: sha256(struct.pack('<I', len(p)) + p).
	vectors := []struct{ path, want string }{
		{"/etc/passwd", "3d740109cfd68ae4ada5e5d3fce9c4129f250ed7990abea2bfa59f3c6a0acc9c"},
		{"", "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119"},
	}
	for _, v := range vectors {
		if got := model.PseudonymOf(v.path).String(); got != v.want {
			t.Errorf("PseudonymOf(%q) = %s; want %s", v.path, got, v.want)
		}
	}
	m := model.New(model.Options{})
	if m.IsPseudonym("/etc/passwd") {
		t.Error("IsPseudonym on an empty model = true")
	}
	m.AddPseudonym(model.PseudonymOf("/var/log/messages"))
	m.AddPseudonym(model.PseudonymOf("/etc/passwd"))
	m.AddPseudonym(model.PseudonymOf("/etc/passwd"))
	if !m.IsPseudonym("/etc/passwd") || m.IsPseudonym("/etc/shadow") {
		t.Error("IsPseudonym wrong after AddPseudonym")
	}
	want := []model.Coefficient{model.PseudonymOf("/var/log/messages"), model.PseudonymOf("/etc/passwd")}
	if got := m.Pseudonyms(); !slices.Equal(got, want) {
		t.Errorf("Pseudonyms() = %v; want %v", got, want)
	}
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	points []model.Point
	fail   map[model.Coefficient]bool
}

func (r *recorder) NewPoint(p model.Point) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.points = append(r.points, p)
	if r.fail[p.Coefficient] {
		return errors.New("register refused")
	}
	return nil
}

func TestObserver(t *testing.T) {
	r := &recorder{fail: map[model.Coefficient]bool{c32(2): true}}
	m := model.New(model.Options{Observer: r})
	adds := []model.Coefficient{c32(1), c32(1), c32(2), c32(3), c32(2)}
	var errs []error
	for i, c := range adds {
		if i == 4 {
			m.Seal()
			c = c32(4)
		}
		_, err := m.Add(c, []byte{byte('a' + i)})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || errs[3] != nil || errs[4] != nil {
		t.Errorf("Add errors = %v; want only the third to fail", errs)
	}
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "register refused") {
		t.Errorf("Add({2}) error = %v; want the observer's error", errs[2])
	}
	if !m.Contains(c32(2)) {
		t.Error("a point whose observer failed was not kept")
	}
	want := []model.Point{
		{Coefficient: c32(1), Count: 1, Description: []byte("a")},
		{Coefficient: c32(2), Count: 1, Description: []byte("c")},
		{Coefficient: c32(3), Count: 1, Description: []byte("d")},
		{Coefficient: c32(4), Count: 1, Description: []byte("e"), Forensic: true},
	}
	if !slices.EqualFunc(r.points, want, pointEqual) {
		t.Errorf("observer saw %+v; want %+v", r.points, want)
	}
}

type nopObserver struct{}

func (nopObserver) NewPoint(model.Point) error { return nil }

func pointEqual(a, b model.Point) bool {
	return a.Coefficient == b.Coefficient && a.Count == b.Count && a.Forensic == b.Forensic && bytes.Equal(a.Description, b.Description)
}

func TestSetObserverAfterLoad(t *testing.T) {
	m := loadProcessModel(t)
	r := &recorder{}
	recorded := m.SetObserver(r)
	if got, want := coefficientsOf(recorded), engineStates(t); !slices.Equal(got, want) {
		t.Fatal("SetObserver did not return the loaded points")
	}
	forensic := engineCoefficients(t, "process_6.coefficients")[0]
	if _, err := m.Add(forensic, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Add(recorded[0].Coefficient, nil); err != nil {
		t.Fatal(err)
	}
	if len(r.points) != 1 || r.points[0].Coefficient != forensic || !r.points[0].Forensic {
		t.Errorf("observer saw %+v; want just the forensics point", r.points)
	}
}

// TestConcurrentAdd checks, under -race, that concurrent Adds, a Seal in
// the middle and readers keep the invariants: each unique coefficient is
// recorded and observed once, the observer's order is the measurement's,
// counts add up.
func TestConcurrentAdd(t *testing.T) {
	const (
		workers   = 8
		perWorker = 4000
		unique    = 500
	)
	r := &recorder{}
	m := model.New(model.Options{Aggregate: c32(0xaa), Observer: r})
	m.AddPseudonym(model.PseudonymOf("/tmp/x"))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				c := c32(byte((i*(w+1))%unique), byte((i*(w+1))%unique>>8))
				if _, err := m.Add(c, fmt.Appendf(nil, "w%d i%d", w, i)); err != nil {
					t.Error(err)
					return
				}
				if w == 0 && i == perWorker/2 {
					m.Seal()
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Points()
			m.Forensics()
			m.State()
			m.Measurement()
			m.IsPseudonym("/tmp/x")
			m.WriteTo(&bytes.Buffer{})
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()

	pts, fs := m.Points(), m.Forensics()
	var total uint64
	seen := map[model.Coefficient]bool{}
	for _, p := range append(slices.Clone(pts), fs...) {
		if seen[p.Coefficient] {
			t.Fatalf("%s recorded twice", p.Coefficient)
		}
		seen[p.Coefficient] = true
		total += p.Count
	}
	if total != workers*perWorker {
		t.Errorf("counts add up to %d; want %d", total, workers*perWorker)
	}
	if len(r.points) != len(seen) {
		t.Fatalf("observer saw %d points; want %d", len(r.points), len(seen))
	}
	observed := coefficientsOf(r.points)
	if got, want := m.Measurement(), model.MeasurementOf(m.Aggregate(), m.Base(), observed); got != want {
		t.Error("observer order differs from the measurement's order")
	}
	if got, want := m.State(), model.StateOf(m.Aggregate(), m.Base(), observed); got != want {
		t.Errorf("State() = %s; want %s", got, want)
	}
	for _, p := range r.points {
		if p.Forensic == m.Contains(p.Coefficient) {
			t.Fatalf("observer was told Forensic=%v for %s, Contains=%v", p.Forensic, p.Coefficient, m.Contains(p.Coefficient))
		}
	}
}

func BenchmarkAddRepeated(b *testing.B) {
	m := model.New(model.Options{})
	cs := make([]model.Coefficient, 1024)
	for i := range cs {
		cs[i] = c32(byte(i), byte(i>>8), 0x5a)
		m.Add(cs[i], []byte(`{"event":{}}`))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := m.Add(cs[i&1023], nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddRepeatedParallel(b *testing.B) {
	m := model.New(model.Options{})
	cs := make([]model.Coefficient, 1024)
	for i := range cs {
		cs[i] = c32(byte(i), byte(i>>8), 0x5a)
		m.Add(cs[i], nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			m.Add(cs[i&1023], nil)
		}
	})
}

// BenchmarkAddNew adds a new coefficient every time, with an observer,
// without a description and with one of the size of a typical TSEM
// file_open line (which the model keeps: memory grows by it per point).
func BenchmarkAddNew(b *testing.B) {
	for _, size := range []int{0, 800} {
		b.Run(fmt.Sprintf("desc=%d", size), func(b *testing.B) {
			var desc []byte
			if size > 0 {
				desc = bytes.Repeat([]byte("x"), size)
			}
			m := model.New(model.Options{Observer: nopObserver{}})
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

func BenchmarkState(b *testing.B) {
	states := engineStates(b)
	b.ReportAllocs()
	for b.Loop() {
		model.StateOf(model.Coefficient{}, model.Coefficient{}, states)
	}
}

// TestSetObserverConcurrent swaps the observer while Adds run: every unique
// coefficient must reach exactly one of the old observer, the swap's
// return value and the new observer, and the old observer's points must be
// what the swap returned.
func TestSetObserverConcurrent(t *testing.T) {
	old, next := &recorder{}, &recorder{}
	m := model.New(model.Options{Observer: old})
	var recorded []model.Point
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.Add(c32(byte(w), byte(i), byte(i>>8)), nil)
				if w == 0 && i == 1000 {
					recorded = m.SetObserver(next)
				}
			}
		})
	}
	wg.Wait()
	if !slices.Equal(coefficientsOf(old.points), coefficientsOf(recorded)) {
		t.Errorf("old observer saw %d points, SetObserver returned %d; want the same", len(old.points), len(recorded))
	}
	all := append(coefficientsOf(recorded), coefficientsOf(next.points)...)
	if got, want := len(all), m.Len(); got != want {
		t.Fatalf("observed %d points; the model has %d", got, want)
	}
	if got, want := model.MeasurementOf(m.Aggregate(), m.Base(), all), m.Measurement(); got != want {
		t.Error("recorded + new observer's points are not the measurement's order")
	}
}

// Memory grows with unique points, not with events: a repeated event
// allocates nothing, whatever its description.
func TestRepeatedAddAllocatesNothing(t *testing.T) {
	m := model.New(model.Options{})
	c := c32(7)
	desc := bytes.Repeat([]byte("d"), 1000)
	m.Add(c, desc)
	m.Seal()
	m.Add(c32(8), desc) // a forensics point repeats the same way
	if n := testing.AllocsPerRun(1000, func() {
		m.Add(c, desc)
		m.Add(c32(8), desc)
	}); n != 0 {
		t.Errorf("repeated Add allocates %v times; want 0", n)
	}
}
