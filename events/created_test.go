package events

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

// rawInodeRecord lays out an inode record: write adds the payload after
// the header.
func rawInodeRecord(h recHeader, write func(w *recWriter)) []byte {
	var w recWriter
	w.header(h)
	write(&w)
	return w.b
}

// TestConvertCreatedFile: a file created in the record's namespace is
// named by its tag (owner = task id of the creator, instance) and has the
// zero digest, H(""), without its content being read; a file another
// namespace created is named by its path and digested.
func TestConvertCreatedFile(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept")
	content := []byte("made by an earlier run\n")
	if err := os.WriteFile(kept, content, 0o644); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "tmp.a1B2c3") // removed: reading it would fail
	h := recHeader{ns: 3, pid: 10, tgid: 10, comm: "cc1", ttd: 6, pttd: 5}
	tests := []struct {
		name    string
		hash    Hash
		path    string
		tag     bpf.CreatedTag
		want    Path
		digest  Digest
		hashing bool // the content was digested
	}{
		{"created here", SHA256, gone, bpf.CreatedTag{NS: 3, OwnerTTD: 5, Instance: 2},
			Path{Created: true, Owner: recTasks{}.TaskID(5), Instance: 2, Type: "root", Pathname: gone}, SHA256.Empty(), false},
		{"created here, sha384", SHA384, gone, bpf.CreatedTag{NS: 3, OwnerTTD: 5, Instance: 1},
			Path{Created: true, Owner: recTasks{}.TaskID(5), Instance: 1, Type: "root", Pathname: gone}, SHA384.Empty(), false},
		{"created by another namespace", SHA256, kept, bpf.CreatedTag{NS: 2, OwnerTTD: 1, Instance: 1},
			Path{Type: "root", Pathname: kept}, Digest32(sha256.Sum256(content)), true},
		{"not created", SHA256, kept, bpf.CreatedTag{},
			Path{Type: "root", Pathname: kept}, Digest32(sha256.Sum256(content)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := bpf.Inode{Ino: 77, Size: 23, Mode: 0o100600, SMagic: 0x01021994, Created: tc.tag}
			if tc.hashing {
				in = recStatInode(t, kept)
				in.SMagic, in.Created = 0xef53, tc.tag
			}
			f := bpf.File{Present: true, Flags: 0x8002, Inode: in, Path: bpf.Path{Name: tc.path}}
			c := &Converter{Digests: NewDigestCache(DigestOptions{}), Tasks: recTasks{}, HashOf: func(uint64) Hash { return tc.hash }}
			e, err := c.Convert(recParse(t, rawFileOpen(h, f)))
			if err != nil {
				t.Fatal(err)
			}
			got := e.Payload.(*FileEvent).File
			want := tc.want
			want.HasDev, want.Dev = in.DevMajor != 0 || in.DevMinor != 0, Dev{in.DevMajor, in.DevMinor}
			if got.Path != want {
				t.Errorf("path = %+v;\nwant %+v", got.Path, want)
			}
			if got.Digest != tc.digest {
				t.Errorf("digest = %x; want %x", got.Digest, tc.digest)
			}
			if n := c.DigestFailures(); n != 0 {
				t.Errorf("DigestFailures = %d; want 0 (a created file is not read)", n)
			}
			// The description says so, and reads back the same.
			line := e.AppendTSEM(nil)
			back, err := Parse(line)
			if err != nil {
				t.Fatalf("Parse(%s): %v", line, err)
			}
			if p := back.Payload.(*FileEvent).File.Path; p != want {
				t.Errorf("parsed back: path %+v;\nwant %+v", p, want)
			}
		})
	}
}

// TestConvertCreatedInode: the inode events name a created file as TSEM
// does: inode_create and inode_unlink with the creator as owner,
// inode_setattr and inode_rename with the acting task (TSEM's fill_dentry
// puts the current task id there).
func TestConvertCreatedInode(t *testing.T) {
	tag := bpf.CreatedTag{NS: 3, OwnerTTD: 5, Instance: 4}
	other := bpf.CreatedTag{NS: 2, OwnerTTD: 5, Instance: 4}
	created := func(owner uint64, name string) Path {
		return Path{Created: true, Owner: recTasks{}.TaskID(owner), Instance: 4, Type: "root", Pathname: name}
	}
	plain := func(name string) Path { return Path{Type: "root", Pathname: name} }
	name := func(s string) bpf.Path { return bpf.Path{Name: s, Flags: bpf.PathNoMount} }
	h := func(typ bpf.RecordType) recHeader {
		return recHeader{typ: typ, ns: 3, pid: 10, tgid: 10, comm: "sh", ttd: 6, pttd: 5}
	}
	tests := []struct {
		name string
		raw  []byte
		want func(e *Event) []Path
		exp  []Path
	}{
		{"inode_create", rawInodeRecord(h(bpf.RecInodeCreate), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o40755})
			w.u32(0o100600)
			w.u32(0)
			w.ctag(bpf.CreatedTag{NS: 3, OwnerTTD: 6, Instance: 4})
			w.path(name("/tmp/ccQw3rTy.s"))
		}), func(e *Event) []Path { return []Path{e.Payload.(*InodeCreate).Dentry.Path} },
			[]Path{created(6, "/tmp/ccQw3rTy.s")}},
		{"inode_mkdir", rawInodeRecord(h(bpf.RecInodeMkdir), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o40755})
			w.u32(0o700)
			w.u32(0)
			w.ctag(bpf.CreatedTag{NS: 3, OwnerTTD: 6, Instance: 4})
			w.path(name("/tmp/tmp.Zx81"))
		}), func(e *Event) []Path { return []Path{e.Payload.(*InodeCreate).Dentry.Path} },
			[]Path{created(6, "/tmp/tmp.Zx81")}},
		{"inode_unlink", rawInodeRecord(h(bpf.RecInodeUnlink), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o40755})
			w.inode(bpf.Inode{Mode: 0o100600, Created: tag})
			w.path(name("/tmp/ccQw3rTy.s"))
		}), func(e *Event) []Path { return []Path{e.Payload.(*InodeRemove).Dentry.Path} },
			[]Path{created(5, "/tmp/ccQw3rTy.s")}},
		{"inode_unlink of a file of another namespace", rawInodeRecord(h(bpf.RecInodeUnlink), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o40755})
			w.inode(bpf.Inode{Mode: 0o100600, Created: other})
			w.path(name("/tmp/keep"))
		}), func(e *Event) []Path { return []Path{e.Payload.(*InodeRemove).Dentry.Path} },
			[]Path{plain("/tmp/keep")}},
		{"inode_setattr", rawInodeRecord(h(bpf.RecInodeSetattr), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o100600, Created: tag})
			for range 4 {
				w.u32(0)
			}
			w.u64(0)
			w.path(name("/w/exe.9f"))
		}), func(e *Event) []Path { return []Path{e.Payload.(*InodeSetattr).Dentry.Path} },
			[]Path{created(6, "/w/exe.9f")}},
		{"inode_rename", rawInodeRecord(h(bpf.RecInodeRename), func(w *recWriter) {
			w.inode(bpf.Inode{Mode: 0o40755})
			w.inode(bpf.Inode{Mode: 0o40755})
			w.inode(bpf.Inode{Ino: 8, Mode: 0o100600, Created: tag})
			w.inode(bpf.Inode{})
			w.u32(0)
			w.u32(1) // the old entry has an inode, the new one none
			w.path(name("/w/mod.pyc.140"))
			w.path(name("/w/mod.pyc"))
		}), func(e *Event) []Path {
			r := e.Payload.(*InodeRename)
			if !r.OldDentry.HasInode || r.NewDentry.HasInode {
				return nil
			}
			return []Path{r.OldDentry.Path, r.NewDentry.Path}
		}, []Path{created(6, "/w/mod.pyc.140"), plain("/w/mod.pyc")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Converter{Tasks: recTasks{}}
			e, err := c.Convert(recParse(t, tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			got := tc.want(e)
			if len(got) != len(tc.exp) {
				t.Fatalf("paths %+v; want %+v", got, tc.exp)
			}
			for i := range got {
				if got[i] != tc.exp[i] {
					t.Errorf("path %d = %+v;\nwant %+v", i, got[i], tc.exp[i])
				}
			}
		})
	}
}

// TestKernelKeysCreated: the allow key rebuilt from the description of an
// event on a created file (what a sealed model pushes to the kernel) is
// the key of its record, and holds for another random name.
func TestKernelKeysCreated(t *testing.T) {
	const ns = 3
	tag := bpf.CreatedTag{NS: ns, OwnerTTD: 5, Instance: 2}
	hdr := func(typ bpf.RecordType) bpf.Header {
		return bpf.Header{Type: typ, NS: ns, PID: 9, TGID: 9, TTD: 6, PTTD: 5, COE: bpf.COE{CapEff: 0x1ff}}
	}
	file := func(name string, flags uint32) bpf.File {
		return bpf.File{Present: true, Flags: flags, Inode: bpf.Inode{Mode: 0o100600, SMagic: 0x01021994, Created: tag}, Path: bpf.Path{Name: name}}
	}
	recs := func(name string) []bpf.Record {
		return []bpf.Record{
			&bpf.FileOpen{Header: hdr(bpf.RecFileOpen), File: file("/tmp/"+name, 0x8002)},
			&bpf.FileOpen{Header: hdr(bpf.RecFileOpen), File: file("/tmp/"+name, 0x8020)}, // an exec's open
			&bpf.MmapFile{Header: hdr(bpf.RecMmapFile), Prot: 5, MmapFlags: 2, File: file("/tmp/"+name, 0x8000)},
			&bpf.InodeCreate{Header: hdr(bpf.RecInodeCreate), Mode: 0o100600, Created: tag, Path: bpf.Path{Name: "/" + name}},
			&bpf.InodeUnlink{Header: hdr(bpf.RecInodeUnlink), Inode: bpf.Inode{Created: tag}, Path: bpf.Path{Name: "/" + name}},
			&bpf.InodeSetattr{Header: hdr(bpf.RecInodeSetattr), Valid: 1, Inode: bpf.Inode{Created: tag}, Path: bpf.Path{Name: "/" + name}},
			&bpf.InodeRename{Header: hdr(bpf.RecInodeRename), OldInode: bpf.Inode{Created: tag}, HasOld: true,
				OldPath: bpf.Path{Name: "/" + name}, NewPath: bpf.Path{Name: "/final"}},
		}
	}
	c := &Converter{Tasks: recTasks{}}
	one, two := recs("ccAb12Cd.s"), recs("ccZz98Yx.s")
	for i, r := range one {
		t.Run(r.Head().Type.String(), func(t *testing.T) {
			e, err := c.Convert(r)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := bpf.Key(r)
			keys, skipped := KernelKeys([][]byte{e.AppendTSEM(nil)})
			if skipped != 0 || len(keys) == 0 || keys[0] != want {
				t.Errorf("KernelKeys(%s) = %#x (skipped %d); want the record's key %#x", e.AppendTSEM(nil), keys, skipped, want)
			}
			if other, _ := bpf.Key(two[i]); other != want {
				t.Errorf("key of another random name %#x; want %#x", other, want)
			}
		})
	}
}
