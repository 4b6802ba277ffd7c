package events

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
)

type recStatT = syscall.Stat_t

func recStat(path string, st *recStatT) error { return syscall.Stat(path, st) }

// recFileOf describes a real file as the kernel would report it.
func recFileOf(tb testing.TB, path string) *bpf.File {
	tb.Helper()
	in := recStatInode(tb, path)
	in.SMagic = 0xef53
	return &bpf.File{Present: true, Inode: in, Path: bpf.Path{Name: path}}
}

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("vigil "), 1000)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := Digest32(sha256.Sum256(content))

	tests := []struct {
		name    string
		file    func() *bpf.File
		want    Digest
		wantErr error
	}{
		{"regular file", func() *bpf.File { return recFileOf(t, p) }, want, nil},
		{"empty file", func() *bpf.File { return recFileOf(t, empty) }, EmptyDigest, nil},
		{"directory", func() *bpf.File { return recFileOf(t, dir) }, EmptyDigest, nil},
		{"proc file is not read", func() *bpf.File {
			f := recFileOf(t, p)
			f.Inode.SMagic = 0x9fa0
			return f
		}, EmptyDigest, nil},
		{"tmpfs file is read", func() *bpf.File {
			f := recFileOf(t, p)
			f.Inode.SMagic = 0x01021994
			return f
		}, want, nil},
		{"another file by that name", func() *bpf.File {
			f := recFileOf(t, p)
			f.Inode.Ino++
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable},
		{"changed since the event", func() *bpf.File {
			f := recFileOf(t, p)
			f.Inode.MTimeSec--
			return f
		}, SHA256.Unhashable(), ErrFileChanged},
		{"relative path", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = "f"
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable},
		{"truncated path", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Flags = bpf.PathTruncated
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable},
		{"gone", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = filepath.Join(dir, "nonexistent")
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewDigestCache(DigestOptions{ProcRoot: filepath.Join(dir, "noproc")})
			got, err := c.Digest(tc.file(), 1)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Digest error = %v; want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Digest = %x; want %x", got, tc.want)
			}
		})
	}
}

// TestDigestOpenFile: a file no path leads to (here a path the kernel
// cut) is hashed through a descriptor a task of the namespace holds; a
// file deleted since the event is not (unlinking changed its ctime, so
// nothing shows its content is still the one the event saw) and gets the
// unhashable digest, never zero or another version's.
func TestDigestOpenFile(t *testing.T) {
	dir := t.TempDir()
	content := []byte("read then deleted\n")
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := recFileOf(t, p)
	rec.Path.Flags = bpf.PathTruncated
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := NewDigestCache(DigestOptions{})
	self := uint32(os.Getpid())
	got, err := c.DigestFrom(rec, []uint32{1 << 30, self}, SHA256) // the acting task gone, another holds it
	if want := Digest32(sha256.Sum256(content)); err != nil || got != want {
		t.Errorf("DigestFrom(open, no path) = %x, %v; want %x", got, err, want)
	}
	if st := c.Stats(); st.FromOpenFile != 1 {
		t.Errorf("stats %+v; want one digest from an open file", st)
	}

	rec = recFileOf(t, p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	got, err = NewDigestCache(DigestOptions{}).DigestFrom(rec, []uint32{self}, SHA384)
	if !errors.Is(err, ErrFileChanged) || got != SHA384.Unhashable() || !got.IsUnhashable() {
		t.Errorf("DigestFrom(deleted, still open) = %x, %v; want the unhashable sha384 digest and ErrFileChanged", got, err)
	}
}

func TestUnhashableDigest(t *testing.T) {
	for _, h := range []Hash{SHA256, SHA384, SHA512} {
		u := h.Unhashable()
		if u.Len() != h.Size() || !u.IsUnhashable() {
			t.Errorf("%s: Unhashable() = %x (%d bytes); want %d bytes 0xff", h, u, u.Len(), h.Size())
		}
		for _, d := range []Digest{h.Zero(), h.Empty(), h.Sum([]byte{0xff})} {
			if d.IsUnhashable() || d == u {
				t.Errorf("%s: %x is taken for unhashable", h, d)
			}
		}
	}
	if (Digest{}).IsUnhashable() {
		t.Error("the zero Digest is taken for unhashable")
	}
}

func TestDigestCacheHashesOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewDigestCache(DigestOptions{})
	f := recFileOf(t, p)
	for i := 0; i < 3; i++ {
		if d, err := c.Digest(f, 1); err != nil || d != Digest32(sha256.Sum256([]byte("one"))) {
			t.Fatalf("Digest #%d = %x, %v", i, d, err)
		}
	}
	if st := c.Stats(); st.Misses != 1 || st.Hits != 2 || st.Hashed != 3 {
		t.Errorf("stats = %+v; want 1 miss, 2 hits, 3 bytes hashed", st)
	}

	// A new version of the file (new mtime, size) is a new key: hashed
	// again, and the old version's key still gives the old digest.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(p, []byte("two!"), 0o644); err != nil {
		t.Fatal(err)
	}
	f2 := recFileOf(t, p)
	if d, err := c.Digest(f2, 1); err != nil || d != Digest32(sha256.Sum256([]byte("two!"))) {
		t.Fatalf("Digest(new version) = %x, %v", d, err)
	}
	if d, err := c.Digest(f, 1); err != nil || d != Digest32(sha256.Sum256([]byte("one"))) {
		t.Errorf("Digest(old version) = %x, %v; want the cached old digest", d, err)
	}
}

func TestDigestCacheBounded(t *testing.T) {
	c := NewDigestCache(DigestOptions{MaxEntries: 16})
	for i := 0; i < 100; i++ {
		c.store(FileKey{Ino: uint64(i)}, SHA256, Digest32([32]byte{byte(i)}))
	}
	if n := c.Len(); n > 16 {
		t.Errorf("Len = %d; want at most 16", n)
	}
}

func TestDigestThroughTaskRoot(t *testing.T) {
	// A file outside vigil's mount namespace is opened as
	// PROCROOT/TGID/root/PATH; a fake proc tree stands in for it.
	dir := t.TempDir()
	root := filepath.Join(dir, "proc", "42", "root")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc", "os-release-in-container")
	if err := os.WriteFile(p, []byte("ID=test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := recFileOf(t, p)
	f.Path.Name = "/etc/os-release-in-container" // not there in vigil's view
	c := NewDigestCache(DigestOptions{ProcRoot: filepath.Join(dir, "proc")})
	d, err := c.Digest(f, 42)
	if err != nil || d != Digest32(sha256.Sum256([]byte("ID=test\n"))) {
		t.Errorf("Digest = %x, %v; want the file's digest through the task root", d, err)
	}
}

// dirFS is a FileSystem of a directory tree standing for a container's
// root held from the host; it counts its opens.
type dirFS struct {
	root  string
	opens int
}

func (d *dirFS) OpenFile(name string) (*os.File, error) {
	d.opens++
	return os.OpenFile(filepath.Join(d.root, name), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
}

// TestDigestThroughFileSystem: a container's file whose tasks are gone
// (no task root, no host path) is hashed through the namespace's held file
// system, under the same stamp check as any other way: what the file
// system opens is used only if it is the event's version of the file.
func TestDigestThroughFileSystem(t *testing.T) {
	dir := t.TempDir()
	content := []byte("data the workload reads\n")
	p := filepath.Join(dir, "app", "data.txt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "app", "other.txt")
	if err := os.WriteFile(other, content, 0o644); err != nil {
		t.Fatal(err)
	}
	want := Digest32(sha256.Sum256(content))
	gone := []uint32{1 << 30} // the acting task has exited
	tests := []struct {
		name    string
		file    func() *bpf.File
		want    Digest
		wantErr error
		fromFS  uint64
	}{
		{"the event's file", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = "/app/data.txt"
			return f
		}, want, nil, 1},
		{"another file under that name", func() *bpf.File {
			f := recFileOf(t, other)
			f.Path.Name = "/app/data.txt"
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable, 0},
		{"changed since the event", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = "/app/data.txt"
			f.Inode.CTimeNsec ^= 1
			return f
		}, SHA256.Unhashable(), ErrFileChanged, 0},
		{"not in the file system", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = "/app/missing"
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable, 0},
		{"a path the kernel cut is not looked up", func() *bpf.File {
			f := recFileOf(t, p)
			f.Path.Name = "/app/data.txt"
			f.Path.Flags = bpf.PathTruncated
			return f
		}, SHA256.Unhashable(), ErrFileUnreachable, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &dirFS{root: dir}
			c := NewDigestCache(DigestOptions{ProcRoot: filepath.Join(dir, "no-proc")})
			got, err := c.DigestIn(tc.file(), Reach{FS: fs, Tasks: gone}, SHA256)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("DigestIn = %x, %v; want %x, %v", got, err, tc.want, tc.wantErr)
			}
			if st := c.Stats(); st.FromFileSystem != tc.fromFS {
				t.Errorf("stats %+v; want %d digests through the file system", st, tc.fromFS)
			}
		})
	}

	// Without the file system, the same event after its task ended is
	// unhashable: the case the held file system is for.
	f := recFileOf(t, p)
	f.Path.Name = "/app/data.txt"
	c := NewDigestCache(DigestOptions{ProcRoot: filepath.Join(dir, "no-proc")})
	if got, err := c.DigestIn(f, Reach{Tasks: gone}, SHA256); !errors.Is(err, ErrFileUnreachable) || !got.IsUnhashable() {
		t.Errorf("DigestIn without a file system = %x, %v; want the unhashable digest", got, err)
	}
}

func BenchmarkDigestCacheHit(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	c := NewDigestCache(DigestOptions{})
	f := recFileOf(b, p)
	if _, err := c.Digest(f, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Digest(f, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigestMiss1MiB(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	f := recFileOf(b, p)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := NewDigestCache(DigestOptions{})
		if _, err := c.Digest(f, 1); err != nil {
			b.Fatal(err)
		}
	}
}
