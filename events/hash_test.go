package events

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

func TestParseHash(t *testing.T) {
	tests := []struct {
		in   string
		want Hash
		size int
		err  bool
	}{
		{"", SHA256, 32, false},
		{"sha256", SHA256, 32, false},
		{"sha384", SHA384, 48, false},
		{"sha512", SHA512, 64, false},
		{"SHA384", SHA256, 0, true},
		{"md5", SHA256, 0, true},
	}
	for _, tc := range tests {
		h, err := ParseHash(tc.in)
		if (err != nil) != tc.err || (err == nil && (h != tc.want || h.Size() != tc.size || h.New().Size() != tc.size)) {
			t.Errorf("ParseHash(%q) = %s (%d bytes), %v; want %s (%d bytes), error %v", tc.in, h, h.Size(), err, tc.want, tc.size, tc.err)
		}
		if tc.err && !errors.Is(err, ErrUnknownHash) {
			t.Errorf("ParseHash(%q) error %v does not wrap ErrUnknownHash", tc.in, err)
		}
	}
}

func TestHashEmpty(t *testing.T) {
	s256, s384, s512 := sha256.Sum256(nil), sha512.Sum384(nil), sha512.Sum512(nil)
	for h, want := range map[Hash][]byte{SHA256: s256[:], SHA384: s384[:], SHA512: s512[:]} {
		e := h.Empty()
		if !bytes.Equal(e.Bytes(), want) {
			t.Errorf("%s.Empty() = %s; want %x", h, e, want)
		}
	}
	if EmptyDigest != SHA256.Empty() {
		t.Errorf("EmptyDigest = %s; want SHA-256 of nothing", EmptyDigest)
	}
}

func TestParseDigestLengths(t *testing.T) {
	for _, n := range []int{32, 48, 64} {
		s := strings.Repeat("ab", n)
		d, err := ParseDigest(s)
		if err != nil || d.Len() != n || d.String() != s {
			t.Errorf("ParseDigest(%d hex digits) = %s (%d bytes), %v", 2*n, d, d.Len(), err)
		}
	}
	for _, s := range []string{"", "ab", strings.Repeat("ab", 40), strings.Repeat("zz", 32)} {
		if d, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) = %s; want an error", s, d)
		}
	}
}

// TestDigestCachePerHash hashes one file for namespaces of each hash: one
// read per algorithm, each cached under its own key.
func TestDigestCachePerHash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	content := []byte("per-namespace hash\n")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	s256, s384, s512 := sha256.Sum256(content), sha512.Sum384(content), sha512.Sum512(content)
	want := map[Hash][]byte{SHA256: s256[:], SHA384: s384[:], SHA512: s512[:]}
	c := NewDigestCache(DigestOptions{})
	f := recFileOf(t, p)
	for round := range 2 {
		for _, h := range []Hash{SHA256, SHA384, SHA512} {
			d, err := c.DigestHash(f, 1, h)
			if err != nil || !bytes.Equal(d.Bytes(), want[h]) {
				t.Fatalf("round %d: DigestHash(%s) = %s, %v; want %x", round, h, d, err, want[h])
			}
		}
	}
	if st := c.Stats(); st.Misses != 3 || st.Hits != 3 || st.Hashed != 3*uint64(len(content)) || c.Len() != 3 {
		t.Errorf("stats = %+v, len %d; want 3 misses (one per hash), 3 hits, 3 entries", st, c.Len())
	}
	empty := recFileOf(t, filepath.Dir(p)) // a directory: the namespace's empty digest
	if d, _ := c.DigestHash(empty, 1, SHA384); d != SHA384.Empty() {
		t.Errorf("DigestHash(directory, sha384) = %s; want SHA-384 of nothing", d)
	}
}

// TestConvertHashOf converts records of a SHA-384 namespace: root task
// ids are 48 zero bytes, file digests and af_other addresses SHA-384.
func TestConvertHashOf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Converter{Digests: NewDigestCache(DigestOptions{}), HashOf: func(ns uint64) Hash {
		if ns == 7 {
			return SHA384
		}
		return SHA256
	}}
	f := *recFileOf(t, p)
	e, err := c.Convert(recParse(t, rawFileOpen(recHeader{ns: 7, comm: "t", ttd: 1}, f)))
	if err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum384([]byte("x"))
	if got := e.Payload.(*FileEvent).File.Digest; !bytes.Equal(got.Bytes(), want[:]) {
		t.Errorf("digest = %s; want SHA-384 %x", got, want)
	}
	if e.Header.TaskID != SHA384.Zero() || e.Header.PTaskID != SHA384.Zero() {
		t.Errorf("task ids = %s, %s; want 48 zero bytes", e.Header.TaskID, e.Header.PTaskID)
	}
	line := string(e.AppendTSEM(nil))
	if !strings.Contains(line, `"task_id": "`+strings.Repeat("0", 96)+`"`) || !strings.Contains(line, hex.EncodeToString(want[:])) {
		t.Errorf("description lacks the 96-digit task id or digest: %s", line)
	}
	back, err := Parse([]byte(line))
	if err != nil || back.Payload.(*FileEvent).File.Digest != e.Payload.(*FileEvent).File.Digest || back.Header.TaskID != e.Header.TaskID {
		t.Errorf("Parse(AppendTSEM) = %v; the long digests do not read back", err)
	}

	other := []byte{1, 2, 3, 4}
	raw := rawSocket(recHeader{typ: bpf.RecSocketConnect, ns: 7, comm: "x", ttd: 9}, bpf.Sock{Family: 16}, bpf.Addr{Family: 16, Len: 6, Raw: [128]byte{1, 2, 3, 4}})
	e, err = c.Convert(recParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	wantOther := sha512.Sum384(other)
	if got := e.Payload.(*SocketAddr).Addr.Other; !bytes.Equal(got.Bytes(), wantOther[:]) {
		t.Errorf("af_other digest = %s; want SHA-384 of the address bytes %x", got, wantOther)
	}
}

// TestConvertAcceptOtherFamily: an accept on a socket of another family
// has the namespace's zero digest as its address, as TSEM maps it.
func TestConvertAcceptOtherFamily(t *testing.T) {
	for _, h := range []Hash{SHA256, SHA384, SHA512} {
		c := &Converter{HashOf: func(uint64) Hash { return h }}
		raw := rawSocket(recHeader{typ: bpf.RecSocketAccept, ns: 1, comm: "x", ttd: 9}, bpf.Sock{Family: 16}, bpf.Addr{Family: 16, Len: 6, Raw: [128]byte{1, 2, 3, 4}})
		e, err := c.Convert(recParse(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Payload.(*SocketAddr).Addr; got.Kind != AddrOther || got.Other != h.Empty() {
			t.Errorf("%s accept address = %+v; want af_other with H(\"\")", h, got)
		}
	}
}
