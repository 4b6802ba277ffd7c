package model_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/model"
)

// FuzzLoad feeds arbitrary bytes to Load. Whatever Load accepts must write
// back to a file that loads to the same model and writes the same bytes;
// whatever it refuses must be refused as an invalid model. The seed corpus
// is testdata/fuzz/FuzzLoad plus process.model.
func FuzzLoad(f *testing.F) {
	f.Add(engineTestdata(f, "process.model"))
	f.Add([]byte("#hash sha384\naggregate " + strings.Repeat("00", 48) + "\nstate " + strings.Repeat("1a", 48) +
		"\n#trajectory " + strings.Repeat("1a", 48) + " " + string(fileOpenLine(f)) + "\nseal\nend\n"))
	f.Add([]byte("#dialect invariant\npseudonym " + strings.Repeat("2b", 32) + "\nstate " + strings.Repeat("1a", 32) + "\nend\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := model.Load(bytes.NewReader(data), "fuzz.model")
		if err != nil {
			if !errors.Is(err, model.ErrInvalidModel) {
				t.Fatalf("Load error %v is not ErrInvalidModel", err)
			}
			return
		}
		var first bytes.Buffer
		if _, err := m.WriteTo(&first); err != nil {
			t.Fatal(err)
		}
		again, err := model.Load(bytes.NewReader(first.Bytes()), "rewritten.model")
		if err != nil {
			t.Fatalf("Load(WriteTo(m)) = %v\n%q", err, first.Bytes())
		}
		if again.Measurement() != m.Measurement() || again.State() != m.State() ||
			again.Sealed() != m.Sealed() || again.Base() != m.Base() || again.Aggregate() != m.Aggregate() ||
			again.Hash() != m.Hash() || again.Dialect() != m.Dialect() {
			t.Fatal("model changed by a write and load")
		}
		if !slices.Equal(again.Pseudonyms(), m.Pseudonyms()) ||
			!slices.EqualFunc(again.Trajectory(), m.Trajectory(), bytes.Equal) ||
			!slices.Equal(coefficientsOf(again.Points()), coefficientsOf(m.Points())) {
			t.Fatal("points, trajectory or pseudonyms changed by a write and load")
		}
		var second bytes.Buffer
		again.WriteTo(&second)
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("WriteTo not stable:\n%q\n%q", first.Bytes(), second.Bytes())
		}
	})
}
