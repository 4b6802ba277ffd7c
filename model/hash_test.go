package model_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// The tests in this file check SHA-384 and SHA-512 namespaces against an
// independent rendering of the byte layouts of testdata/tsem/README.md
// (written out here with crypto/sha512 and encoding/binary, without the
// code under test), with every digest (task ids, file digest, owner) of
// the namespace's length, as TSEM's kernel sizes them with
// tsem_digestsize(), and the socket owner in its 64-byte field.

// hashCase is one namespace algorithm and an independent hash of it.
type hashCase struct {
	name string
	alg  model.Hash
	new  func() hash.Hash
}

var wideHashes = []hashCase{
	{"sha384", model.SHA384, sha512.New384},
	{"sha512", model.SHA512, sha512.New},
	{"sha256", model.SHA256, sha256.New}, // the same layout with the default hash
}

func sum(newH func() hash.Hash, parts ...[]byte) []byte {
	h := newH()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func lstr(s string) []byte { return append(le32(uint32(len(s))), s...) }

// fill returns n bytes of b.
func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// refCOE is the layout of a COE with every id 0 and capeff 0x1ffffffffff.
func refCOE() []byte {
	var b []byte
	for range 8 {
		b = append(b, le32(0)...)
	}
	return append(b, le64(0x1ffffffffff)...)
}

const refCOEJSON = `"COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x1ffffffffff"}`

func header(typ string, task, ptask []byte) string {
	return fmt.Sprintf(`{"event": {"context": "1", "number": "3", "process": "bash", "type": %q, "ttd": "2", "p_ttd": "1", "task_id": %q, "p_task_id": %q, "ts": "1"}, %s, `,
		typ, hex.EncodeToString(task), hex.EncodeToString(ptask), refCOEJSON)
}

func TestWideHashFileOpen(t *testing.T) {
	for _, hc := range wideHashes {
		t.Run(hc.name, func(t *testing.T) {
			n := hc.alg.Size()
			task, ptask, digest := fill(0xa1, n), fill(0xb2, n), fill(0xc3, n)
			line := header("file_open", task, ptask) +
				`"file_open": {"file": {"flags": "32800", "inode": {"uid": "0", "gid": "0", "mode": "0100755", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": "/usr/bin/bash"}, "digest": "` +
				hex.EncodeToString(digest) + `"}}}`
			e, err := events.Parse([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			// file = u32 flags ‖ inode ‖ path ‖ digest[n]
			var cell []byte
			cell = append(cell, le32(32800)...)
			cell = append(cell, le32(0)...)
			cell = append(cell, le32(0)...)
			cell = append(cell, le32(0o100755)...)
			cell = append(cell, le32(0xef53)...)
			sid := make([]byte, 32)
			copy(sid, "sda3")
			cell = append(cell, sid...)
			uuid, _ := hex.DecodeString("e896110b42b24dbca89c7caa36961685")
			cell = append(cell, uuid...)
			cell = append(cell, le32(8)...)
			cell = append(cell, le32(3)...)
			cell = append(cell, lstr("root")...)
			cell = append(cell, lstr("/usr/bin/bash")...)
			cell = append(cell, digest...)
			want := sum(hc.new, []byte("file_open"), ptask, task, sum(hc.new, refCOE()), sum(hc.new, cell))

			got, err := model.EventCoefficientHash(hc.alg, e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != n || !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("EventCoefficientHash(%s) = %s (%d bytes); want %x", hc.alg, got, got.Len(), want)
			}
			// The hash follows from the description's task ids.
			if got2, err := model.EventCoefficient(e, nil); err != nil || got2 != got {
				t.Errorf("EventCoefficient = %s, %v; want %s", got2, err, got)
			}
			// A pseudonym's file is hashed with H("") of the namespace.
			pseudo := func(string) bool { return true }
			cell2 := append(cell[:len(cell)-n:len(cell)-n], sum(hc.new)...)
			wantP := sum(hc.new, []byte("file_open"), ptask, task, sum(hc.new, refCOE()), sum(hc.new, cell2))
			if gotP, err := model.EventCoefficientHash(hc.alg, e, pseudo); err != nil || !bytes.Equal(gotP.Bytes(), wantP) {
				t.Errorf("pseudonym coefficient = %s, %v; want %x", gotP, err, wantP)
			}
			// Its description reads back byte for byte with the long digests.
			if out := e.AppendTSEM(nil); !bytes.Contains(out, []byte(hex.EncodeToString(digest))) {
				t.Errorf("AppendTSEM lost the %d-byte digest: %s", n, out)
			}
		})
	}
}

func TestWideHashSocketOwnerField(t *testing.T) {
	for _, hc := range wideHashes {
		t.Run(hc.name, func(t *testing.T) {
			n := hc.alg.Size()
			task, ptask := fill(0x11, n), fill(0x22, n)
			line := header("socket_connect", task, ptask) +
				`"socket_connect": {"sock": {"family": "2", "type": "1", "protocol": "6", "owner": "` + hex.EncodeToString(task) +
				`"}, "addr": {"af_inet": {"port": "20480", "address": "16777343"}}}}`
			e, err := events.Parse([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			// sock = u32 family ‖ u32 type ‖ u32 protocol ‖ owner in a
			// 64-byte field; addr = u16 port ‖ u32 address
			var cell []byte
			cell = append(cell, le32(2)...)
			cell = append(cell, le32(1)...)
			cell = append(cell, le32(6)...)
			cell = append(cell, task...)
			cell = append(cell, make([]byte, 64-n)...)
			cell = binary.LittleEndian.AppendUint16(cell, 20480)
			cell = append(cell, le32(16777343)...)
			want := sum(hc.new, []byte("socket_connect"), ptask, task, sum(hc.new, refCOE()), sum(hc.new, cell))
			got, err := model.EventCoefficientHash(hc.alg, e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("EventCoefficientHash(%s) = %s; want %x", hc.alg, got, want)
			}
		})
	}
}

func TestWideHashMismatch(t *testing.T) {
	// A SHA-256 description (the reference data) in a SHA-384 namespace.
	e, err := events.Parse(kernelCases(t)[2].line)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := model.EventCoefficientHash(model.SHA384, e, nil); !errors.Is(err, model.ErrHashMismatch) {
		t.Errorf("EventCoefficientHash(sha384, sha256 event) = %s, %v; want ErrHashMismatch", c, err)
	}
	m := model.New(model.Options{Hash: model.SHA384})
	if _, err := m.Add(c32(1), nil); !errors.Is(err, model.ErrHashMismatch) {
		t.Errorf("Add(32-byte coefficient) to a sha384 model = %v; want ErrHashMismatch", err)
	}
}

func TestWideHashMeasurementAndTaskID(t *testing.T) {
	for _, hc := range wideHashes {
		t.Run(hc.name, func(t *testing.T) {
			n := hc.alg.Size()
			zero := make([]byte, n)
			extend := func(m, base, x []byte) []byte { return sum(hc.new, m, sum(hc.new, base, x)) }
			a, b := fill(0x5a, n), fill(0x01, n)
			ca, _ := events.MakeDigest(a)
			cb, _ := events.MakeDigest(b)

			m := model.New(model.Options{Hash: hc.alg})
			for _, c := range []model.Coefficient{ca, cb, ca} {
				if _, err := m.Add(c, nil); err != nil {
					t.Fatal(err)
				}
			}
			meas := extend(extend(extend(zero, zero, zero), zero, a), zero, b)
			if got := m.Measurement(); !bytes.Equal(got.Bytes(), meas) {
				t.Errorf("Measurement = %s; want %x", got, meas)
			}
			// state: the same over the points sorted bytewise (b < a)
			state := extend(extend(extend(zero, zero, zero), zero, b), zero, a)
			if got := m.State(); !bytes.Equal(got.Bytes(), state) {
				t.Errorf("State = %s; want %x", got, state)
			}
			if got := m.Aggregate(); got.Len() != n || !got.IsZero() {
				t.Errorf("Aggregate = %s; want %d zero bytes", got, n)
			}
			pseudo := sum(hc.new, le32(uint32(len("/var/log/x"))), []byte("/var/log/x"))
			if got := model.PseudonymOfHash(hc.alg, "/var/log/x"); !bytes.Equal(got.Bytes(), pseudo) {
				t.Errorf("PseudonymOfHash = %s; want %x", got, pseudo)
			}

			// task_id = H("bprm_committed_creds" ‖ parent ‖ zero[n] ‖ H(40 zero bytes) ‖ H(file))
			file := events.File{Flags: 0, Inode: events.Inode{Mode: 0o100755, SMagic: 0x01021994, SID: "tmpfs"},
				Path: events.Path{Type: "root", Pathname: "/bin/sh"}}
			file.Digest, _ = events.MakeDigest(fill(0xd4, n))
			var fcell []byte
			fcell = append(fcell, le32(0)...)
			fcell = append(fcell, le32(0)...)
			fcell = append(fcell, le32(0)...)
			fcell = append(fcell, le32(0o100755)...)
			fcell = append(fcell, le32(0x01021994)...)
			sid := make([]byte, 32)
			copy(sid, "tmpfs")
			fcell = append(fcell, sid...)
			fcell = append(fcell, make([]byte, 16)...) // tmpfs: zero s_uuid
			fcell = append(fcell, lstr("root")...)
			fcell = append(fcell, lstr("/bin/sh")...)
			fcell = append(fcell, fill(0xd4, n)...)
			// The COE hashed is 40 zero bytes whatever the hash.
			want := sum(hc.new, []byte("bprm_committed_creds"), zero, zero, sum(hc.new, make([]byte, 40)), sum(hc.new, fcell))
			if got := model.TaskIDHash(hc.alg, model.Coefficient{}, &file); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("TaskIDHash(root) = %s; want %x", got, want)
			}
		})
	}
}

func TestWideHashModelFile(t *testing.T) {
	for _, hc := range wideHashes {
		t.Run(hc.name, func(t *testing.T) {
			n := hc.alg.Size()
			m := model.New(model.Options{Hash: hc.alg})
			var cs []model.Coefficient
			for i := range 3 {
				c, _ := events.MakeDigest(fill(byte(0x10+i), n))
				cs = append(cs, c)
				if _, err := m.Add(c, withPathname(t, fileOpenLine(t), fmt.Sprintf("/n/%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			m.AddPseudonym(model.PseudonymOfHash(hc.alg, "/var/log/x"))
			m.Seal()
			var buf bytes.Buffer
			if _, err := m.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			text := buf.String()
			hashLine := strings.HasPrefix(text, "#hash "+hc.name+"\n")
			if hashLine != (hc.alg != model.SHA256) {
				t.Errorf("model file starts %q; a #hash line only for a hash other than sha256", text[:min(len(text), 20)])
			}
			if !strings.Contains(text, "state "+strings.Repeat("10", n)+"\n") {
				t.Errorf("model file has no %d-digit state line:\n%s", 2*n, text)
			}
			path := filepath.Join(t.TempDir(), "m.model")
			if err := m.SaveFile(path); err != nil {
				t.Fatal(err)
			}
			for _, load := range []func() (*model.Model, error){
				func() (*model.Model, error) { return model.LoadFile(path) },
				func() (*model.Model, error) { return model.LoadFileHash(path, hc.alg) },
			} {
				got, err := load()
				if err != nil {
					t.Fatal(err)
				}
				if got.Hash() != hc.alg || got.Measurement() != m.Measurement() || got.State() != m.State() || !got.Sealed() {
					t.Errorf("loaded %s model: hash %s, measurement %s, state %s; want %s, %s, %s", hc.name, got.Hash(), got.Measurement(), got.State(), hc.alg, m.Measurement(), m.State())
				}
				if !got.IsPseudonym("/var/log/x") {
					t.Error("the pseudonym was lost")
				}
				for _, c := range cs {
					if !got.Contains(c) {
						t.Errorf("loaded model lacks %s", c)
					}
				}
				if tr := got.Trajectory(); len(tr) != 3 || !bytes.Equal(tr[2], withPathname(t, fileOpenLine(t), "/n/2")) {
					t.Errorf("trajectory = %q", tr)
				}
			}
			// Into a namespace of another hash: an error naming the
			// file and line.
			other := model.SHA256
			if hc.alg == model.SHA256 {
				other = model.SHA384
			}
			_, err := model.LoadFileHash(path, other)
			if !errors.Is(err, model.ErrHashMismatch) || !errors.Is(err, model.ErrInvalidModel) || !strings.Contains(err.Error(), path+":1:") {
				t.Errorf("LoadFileHash(%s model, %s) = %v; want ErrHashMismatch at %s:1", hc.name, other, err, path)
			}
		})
	}
}

func TestModelFileMixedLengths(t *testing.T) {
	long := strings.Repeat("ab", 48)
	short := strings.Repeat("cd", 32)
	tests := []struct {
		name, file string
		line       int
	}{
		{"state shorter than the first", "state " + long + "\nstate " + short + "\nend\n", 2},
		{"aggregate decides", "aggregate " + short + "\nstate " + long + "\nend\n", 2},
		{"hash line decides", "#hash sha512\nstate " + long + "\nend\n", 2},
		{"hash line after a coefficient", "state " + long + "\n#hash sha384\nend\n", 2},
		{"unknown hash", "#hash md5\nend\n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.Load(strings.NewReader(tc.file), "x.model")
			if !errors.Is(err, model.ErrInvalidModel) || !strings.Contains(err.Error(), fmt.Sprintf("x.model:%d:", tc.line)) {
				t.Errorf("Load = %v; want an invalid model at x.model:%d", err, tc.line)
			}
		})
	}
}

// TestCoefficientSize documents the cost of a coefficient: a comparable
// value of 65 bytes (64 for the longest digest, one for its length).
func TestCoefficientSize(t *testing.T) {
	if got := unsafe.Sizeof(model.Coefficient{}); got != 65 {
		t.Errorf("Sizeof(Coefficient) = %d; want 65", got)
	}
}

func BenchmarkEventCoefficientHash(b *testing.B) {
	for _, hc := range wideHashes {
		b.Run(hc.name, func(b *testing.B) {
			n := hc.alg.Size()
			line := header("file_open", fill(0xa1, n), fill(0xb2, n)) +
				`"file_open": {"file": {"flags": "32800", "inode": {"uid": "0", "gid": "0", "mode": "0100755", "s_magic": "0xef53", "s_id": "sda3", "s_uuid": "e896110b42b24dbca89c7caa36961685"}, "path": {"dev": {"major": "8", "minor": "3"}, "type": "root", "pathname": "/usr/bin/bash"}, "digest": "` +
				hex.EncodeToString(fill(0xc3, n)) + `"}}}`
			e, err := events.Parse([]byte(line))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := model.EventCoefficientHash(hc.alg, e, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWideHashSharedHead adds SHA-384 coefficients that share their first
// 32 bytes (the model's index key): each is its own point.
func TestWideHashSharedHead(t *testing.T) {
	head := fill(0x10, 32)
	mk := func(tail byte) model.Coefficient {
		c, _ := events.MakeDigest(append(append([]byte{}, head...), fill(tail, 16)...))
		return c
	}
	x, y, z := mk(1), mk(2), mk(3)
	m := model.New(model.Options{Hash: model.SHA384})
	for i, c := range []model.Coefficient{x, y, x, y} {
		res, err := m.Add(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.New != (i < 2) {
			t.Errorf("Add #%d (%s) New = %v; want %v", i, c, res.New, i < 2)
		}
	}
	if !m.Contains(x) || !m.Contains(y) || m.Contains(z) {
		t.Errorf("Contains x, y, z = %v, %v, %v; want true, true, false", m.Contains(x), m.Contains(y), m.Contains(z))
	}
	ps := m.Points()
	if len(ps) != 2 || ps[0].Coefficient != x || ps[1].Coefficient != y || ps[0].Count != 2 || ps[1].Count != 2 {
		t.Errorf("Points = %+v; want x and y twice each", ps)
	}
	if recorded, _ := m.AddRepeats(y, 3); !recorded || m.Points()[1].Count != 5 {
		t.Errorf("AddRepeats(y, 3) recorded %v, count %d; want true, 5", recorded, m.Points()[1].Count)
	}
}
