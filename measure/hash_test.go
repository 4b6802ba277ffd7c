package measure

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// independentMeasurement folds TSEM's extend over xs with zero aggregate
// and base, written out with the hash directly: H(m ‖ H(zero ‖ x)).
func independentMeasurement(newH func() hash.Hash, n int, xs [][]byte) []byte {
	h := func(parts ...[]byte) []byte {
		w := newH()
		for _, p := range parts {
			w.Write(p)
		}
		return w.Sum(nil)
	}
	zero := make([]byte, n)
	m := h(zero, h(zero, zero))
	for _, x := range xs {
		m = h(m, h(zero, x))
	}
	return m
}

// TestVerifyMixedHashes logs three namespaces, SHA-256 (the reference
// trajectory), SHA-384 and SHA-512, into one register, and verifies the
// log: each namespace's measurement is recomputed with its own hash.
func TestVerifyMixedHashes(t *testing.T) {
	evs, coefs := trajectory(t)
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(DefaultSoftwareIndex)
	l := openLog(t, path, reg)
	m256 := learn(t, l, "sha256-ns", evs, coefs)

	type wide struct {
		alg   model.Hash
		newH  func() hash.Hash
		raw   [][]byte
		model *model.Model
	}
	wides := []*wide{{alg: model.SHA384, newH: sha512.New384}, {alg: model.SHA512, newH: sha512.New}}
	for _, w := range wides {
		n := w.alg.Size()
		ns, err := l.Namespace(l.NextNamespaceID(), w.alg.String()+"-ns", w.alg.Zero(), w.alg.Zero())
		if err != nil {
			t.Fatal(err)
		}
		w.model = model.New(model.Options{Hash: w.alg, Observer: ns})
		for i := range 5 {
			raw := bytes.Repeat([]byte{byte(0xe0 + i)}, n)
			c, _ := events.MakeDigest(raw)
			w.raw = append(w.raw, raw)
			if _, err := w.model.Add(c, []byte(fmt.Sprintf(`{"event":{"number":"%d"}}`, i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := ns.Sealed(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	value, _ := reg.Read()
	rep, err := verifyFile(t, path, VerifyOptions{Register: value})
	if err != nil {
		t.Fatalf("Verify(mixed hashes) = %v", err)
	}
	if len(rep.Namespaces) != 3 {
		t.Fatalf("Verify: %d namespaces; want 3", len(rep.Namespaces))
	}
	if ns := rep.Namespaces[0]; ns.Hash != model.SHA256 || ns.Measurement != m256.Measurement() || ns.State != m256.State() {
		t.Errorf("sha256 namespace: hash %s measurement %s; want sha256 %s", ns.Hash, ns.Measurement, m256.Measurement())
	}
	for i, w := range wides {
		ns := rep.Namespaces[i+1]
		want := independentMeasurement(w.newH, w.alg.Size(), w.raw)
		if ns.Hash != w.alg || !bytes.Equal(ns.Measurement.Bytes(), want) || ns.State != w.model.State() || !ns.Sealed || ns.Points != 5 {
			t.Errorf("%s namespace: hash %s, measurement %s, %d points; want %x, 5 points, sealed", w.alg, ns.Hash, ns.Measurement, ns.Points, want)
		}
	}

	// The created records name the hash only when it is not sha256.
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(text), `"hash":`); got != 2 {
		t.Errorf("%d created records name a hash; want 2 (sha384, sha512)", got)
	}
}

func TestParseContentHash(t *testing.T) {
	z := func(n int) string { return strings.Repeat("0", 2*n) }
	created := func(hash, agg, base string) string {
		h := ""
		if hash != "" {
			h = `"hash":"` + hash + `",`
		}
		return `{"record":"created","time":"2024-01-01T00:00:00Z","namespace":{"id":1,"name":"a"},` + h + `"aggregate":"` + agg + `","base":"` + base + `"}`
	}
	tests := []struct {
		name, content string
		want          model.Hash
		ok            bool
	}{
		{"sha256 names no hash", created("", z(32), z(32)), model.SHA256, true},
		{"sha384", created("sha384", z(48), z(48)), model.SHA384, true},
		{"sha512", created("sha512", z(64), z(64)), model.SHA512, true},
		{"sha256 spelled out", created("sha256", z(32), z(32)), 0, false},
		{"aggregate of another length", created("sha384", z(32), z(48)), 0, false},
		{"base of another length", created("sha512", z(64), z(48)), 0, false},
		{"unknown hash", created("md5", z(16), z(16)), 0, false},
		{"hash on a point", `{"record":"point","time":"2024-01-01T00:00:00Z","namespace":{"id":1,"name":"a"},"hash":"sha384","coefficient":"` + z(48) + `"}`, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseContent([]byte(tc.content))
			if tc.ok != (err == nil) {
				t.Fatalf("ParseContent = %v; want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if tc.ok && c.NamespaceHash() != tc.want {
				t.Errorf("NamespaceHash = %s; want %s", c.NamespaceHash(), tc.want)
			}
		})
	}
}

// TestVerifyRefusesPointOfAnotherHash: a 32-byte point in a SHA-384
// namespace is a verification error naming the namespace.
func TestVerifyRefusesPointOfAnotherHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	reg := NewSoftware(DefaultSoftwareIndex)
	l := openLog(t, path, reg)
	ns, err := l.Namespace(l.NextNamespaceID(), "wide", model.SHA384.Zero(), model.SHA384.Zero())
	if err != nil {
		t.Fatal(err)
	}
	// Bypass the model (which refuses it) to write the bad point.
	if err := ns.NewPoint(model.Point{Coefficient: digest32(sha256.Sum256([]byte("x"))), Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	value, _ := reg.Read()
	_, err = verifyFile(t, path, VerifyOptions{Register: value})
	if err == nil || !strings.Contains(err.Error(), "sha384") {
		t.Errorf("Verify(32-byte point in a sha384 namespace) = %v; want an error naming sha384", err)
	}
}
