package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

// recWriter lays out raw records as bpf/lib/records.h defines them, so tests
// go through the real decoder (bpf.ParseRecord) before converting.
type recWriter struct{ b []byte }

func (w *recWriter) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *recWriter) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *recWriter) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *recWriter) fixed(s string, n int) {
	b := make([]byte, n)
	copy(b, s)
	w.b = append(w.b, b...)
}

type recHeader struct {
	typ            bpf.RecordType
	flags          bpf.HeaderFlags
	ns, ktime      uint64
	pid, tgid      uint32
	comm           string
	coe            bpf.COE
	ttd, pttd, key uint64
}

func (w *recWriter) header(h recHeader) {
	size, ok := bpf.RecordSize(h.typ)
	if !ok {
		panic("unknown record type")
	}
	w.u16(uint16(size))
	w.u16(uint16(h.typ))
	w.u32(uint32(h.flags))
	w.u64(h.ns)
	w.u64(h.ktime)
	w.u32(h.pid)
	w.u32(h.tgid)
	w.fixed(h.comm, bpf.CommLen)
	c := h.coe
	for _, v := range []uint32{c.UID, c.EUID, c.SUID, c.GID, c.EGID, c.SGID, c.FSUID, c.FSGID} {
		w.u32(v)
	}
	w.u64(c.CapEff)
	w.u64(h.ttd)
	w.u64(h.pttd)
	w.u64(h.key)
	w.u64(0) // repeat cache entry
}

func (w *recWriter) inode(in bpf.Inode) {
	w.u64(in.Ino)
	w.u64(in.Size)
	w.u64(uint64(in.CTimeSec))
	w.u64(uint64(in.MTimeSec))
	w.u32(in.CTimeNsec)
	w.u32(in.MTimeNsec)
	for _, v := range []uint32{in.UID, in.GID, in.Mode, in.SMagic, in.DevMajor, in.DevMinor} {
		w.u32(v)
	}
	w.b = append(w.b, in.SID[:]...)
	w.b = append(w.b, in.SUUID[:]...)
	w.ctag(in.Created)
}

func (w *recWriter) ctag(t bpf.CreatedTag) {
	w.u64(t.NS)
	w.u64(t.OwnerTTD)
	w.u64(t.Instance)
}

func (w *recWriter) path(p bpf.Path) {
	w.u32(uint32(len(p.Name)))
	w.u32(uint32(p.Flags))
	w.fixed(p.Name, bpf.PathMax)
}

func (w *recWriter) file(f bpf.File) {
	w.u32(f.Flags)
	present := uint32(0)
	if f.Present {
		present = 1
	}
	w.u32(present)
	w.inode(f.Inode)
	w.path(f.Path)
}

func (w *recWriter) sockAddr(s bpf.Sock, a bpf.Addr) {
	w.u32(s.Family)
	w.u32(s.Type)
	w.u32(s.Protocol)
	w.u32(0)
	w.u64(s.OwnerTTD)
	w.u16(a.Family)
	w.u16(a.Port)
	w.u32(a.Addr4)
	w.u32(a.Flow)
	w.u32(a.Scope)
	w.b = append(w.b, a.Addr6[:]...)
	w.u32(a.Len)
	w.u32(0)
	w.b = append(w.b, a.Raw[:]...)
}

func rawFileOpen(h recHeader, f bpf.File) []byte {
	h.typ = bpf.RecFileOpen
	var w recWriter
	w.header(h)
	w.file(f)
	return w.b
}

func rawExec(h recHeader, prev uint64, f bpf.File) []byte {
	h.typ = bpf.RecExec
	var w recWriter
	w.header(h)
	w.u64(prev)
	w.file(f)
	return w.b
}

func rawSocket(h recHeader, s bpf.Sock, a bpf.Addr) []byte {
	var w recWriter
	w.header(h)
	w.sockAddr(s, a)
	return w.b
}

func recParse(tb testing.TB, raw []byte) bpf.Record {
	tb.Helper()
	r, err := bpf.ParseRecord(raw)
	if err != nil {
		tb.Fatalf("ParseRecord: %v", err)
	}
	return r
}

func recSID(s string) (b [32]byte) { copy(b[:], s); return b }

// recTasks resolves TTD n to 32 bytes of n.
type recTasks struct{}

func (recTasks) TaskID(ttd uint64) Digest {
	var id [32]byte
	for i := range id {
		id[i] = byte(ttd)
	}
	return Digest32(id)
}

var recRootCOE = bpf.COE{CapEff: 0x1ffffffffff}

func TestConvertFileOpen(t *testing.T) {
	content := []byte("vm\n")
	dir := t.TempDir()
	p := filepath.Join(dir, "hostname")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	in := recStatInode(t, p)
	in.SMagic = 0xef53
	in.SID = recSID("vda")
	f := bpf.File{Present: true, Flags: 0x8000, Inode: in, Path: bpf.Path{Name: p}}
	h := recHeader{ns: 3, ktime: 77, pid: 10, tgid: 10, comm: "cat", coe: bpf.COE{UID: 65534, EUID: 65534, SUID: 65534, GID: 65534, EGID: 65534, SGID: 65534, FSUID: 65534, FSGID: 65534}, ttd: 5, pttd: 4}
	c := &Converter{Digests: NewDigestCache(DigestOptions{}), Tasks: recTasks{}}
	e, err := c.Convert(recParse(t, rawFileOpen(h, f)))
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := Digest32(sha256.Sum256(content))
	fe, ok := e.Payload.(*FileEvent)
	if !ok {
		t.Fatalf("payload %T, want *FileEvent", e.Payload)
	}
	if fe.File.Digest != wantDigest {
		t.Errorf("digest = %x; want %x", fe.File.Digest, wantDigest)
	}
	if e.Header.Type != "file_open" || e.Header.Process != "cat" || e.Header.Context != 3 || e.Header.TTD != 5 || e.Header.PTTD != 4 || e.Header.TS != 77 {
		t.Errorf("header = %+v", e.Header)
	}
	if e.Header.TaskID != (recTasks{}).TaskID(5) || e.Header.PTaskID != (recTasks{}).TaskID(4) {
		t.Errorf("task ids = %x, %x; want the ids of TTD 5 and 4", e.Header.TaskID, e.Header.PTaskID)
	}
	if e.COE.UID != 65534 || e.COE.FSGID != 65534 || e.COE.CapEff != 0 {
		t.Errorf("COE = %+v", e.COE)
	}
	wantPath := Path{HasDev: true, Dev: Dev{in.DevMajor, in.DevMinor}, Type: "root", Pathname: p}
	if fe.File.Path != wantPath {
		t.Errorf("path = %+v; want %+v", fe.File.Path, wantPath)
	}
	if fe.File.Inode.SID != "vda" || fe.File.Inode.Mode != in.Mode || fe.File.Flags != 0x8000 {
		t.Errorf("file = %+v", fe.File)
	}
	// The description goes through the TSEM writer and reader unchanged.
	line := e.AppendTSEM(nil)
	back, err := Parse(line)
	if err != nil {
		t.Fatalf("Parse(%s): %v", line, err)
	}
	if !bytes.Equal(back.AppendTSEM(nil), line) {
		t.Errorf("round trip changed the line:\n%s\n%s", line, back.AppendTSEM(nil))
	}
}

// TestConvertFileOpenThroughFileSystem: the converter reads a file of a
// namespace through the file system FileSystemOf gives for it, and only
// for it.
func TestConvertFileOpenThroughFileSystem(t *testing.T) {
	dir := t.TempDir()
	content := []byte("in the container\n")
	const name = "/etc/os-release-of-the-container" // not on the host
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	in := recStatInode(t, p)
	in.SMagic = 0x794c7630 // overlayfs
	f := bpf.File{Present: true, Inode: in, Path: bpf.Path{Name: name}}
	held := &dirFS{root: dir}
	c := &Converter{Digests: NewDigestCache(DigestOptions{}), Tasks: recTasks{}, FileSystemOf: func(ns uint64) FileSystem {
		if ns == 7 {
			return held
		}
		return nil
	}}
	for _, tc := range []struct {
		ns   uint64
		want Digest
	}{
		{8, SHA256.Unhashable()}, // first: the cache would give namespace 7's digest
		{7, Digest32(sha256.Sum256(content))},
	} {
		h := recHeader{ns: tc.ns, pid: 1 << 30, tgid: 1 << 30, comm: "cat", ttd: 5}
		e, err := c.Convert(recParse(t, rawFileOpen(h, f)))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Payload.(*FileEvent).File.Digest; got != tc.want {
			t.Errorf("namespace %d: digest %x; want %x", tc.ns, got, tc.want)
		}
	}
	if held.opens != 1 {
		t.Errorf("the file system was asked %d times; want once, for its namespace", held.opens)
	}
}

// recStatInode returns the inode fields of a real file, as the kernel reports
// them.
func recStatInode(tb testing.TB, path string) bpf.Inode {
	tb.Helper()
	var st = new(recStatT)
	if err := recStat(path, st); err != nil {
		tb.Fatal(err)
	}
	k := keyOfStat(st)
	return bpf.Inode{
		Ino: k.Ino, Size: k.Size, CTimeSec: k.CTimeSec, MTimeSec: k.MTimeSec,
		CTimeNsec: k.CTimeNsec, MTimeNsec: k.MTimeNsec,
		UID: st.Uid, GID: st.Gid, Mode: st.Mode, DevMajor: k.DevMajor, DevMinor: k.DevMinor,
	}
}

func TestConvertPaths(t *testing.T) {
	tests := []struct {
		name   string
		in     bpf.Inode
		path   string
		want   Path
		digest Digest
	}{
		{"block device", bpf.Inode{SMagic: 0xef53, DevMajor: 8, DevMinor: 3, Mode: 0o100644}, "/etc/x",
			Path{HasDev: true, Dev: Dev{8, 3}, Type: "root", Pathname: "/etc/x"}, EmptyDigest},
		{"tmpfs keeps its anonymous device", bpf.Inode{SMagic: 0x01021994, DevMinor: 81, Mode: 0o100644}, "/dev/shm/x",
			Path{HasDev: true, Dev: Dev{0, 81}, Type: "root", Pathname: "/dev/shm/x"}, EmptyDigest},
		{"pipe", bpf.Inode{SMagic: 0x50495045, DevMinor: 14, Mode: 0o10600}, "pipe:[12345]",
			Path{Type: "root", Pathname: "pipe:/"}, EmptyDigest},
		{"proc", bpf.Inode{SMagic: 0x9fa0, DevMinor: 22, Mode: 0o100444, Size: 0}, "/proc/self/status",
			Path{Type: "root", Pathname: "/proc/self/status"}, EmptyDigest},
		{"devpts", bpf.Inode{SMagic: 0x1cd1, DevMinor: 24, Mode: 0o20620}, "/dev/pts/1",
			Path{Type: "root", Pathname: "/dev/pts/1"}, EmptyDigest},
		{"sysfs has a device (it can rename)", bpf.Inode{SMagic: 0x62656572, DevMinor: 21, Mode: 0o100444, Size: 4096}, "/sys/kernel/x",
			Path{HasDev: true, Dev: Dev{0, 21}, Type: "root", Pathname: "/sys/kernel/x"}, EmptyDigest},
	}
	c := &Converter{Digests: NewDigestCache(DigestOptions{}), Tasks: recTasks{}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bpf.File{Present: true, Inode: tc.in, Path: bpf.Path{Name: tc.path}}
			e, err := c.Convert(recParse(t, rawFileOpen(recHeader{ns: 1, comm: "t", ttd: 1}, f)))
			if err != nil {
				t.Fatal(err)
			}
			got := e.Payload.(*FileEvent).File
			if got.Path != tc.want {
				t.Errorf("path = %+v; want %+v", got.Path, tc.want)
			}
			if got.Digest != tc.digest {
				t.Errorf("digest = %x; want %x", got.Digest, tc.digest)
			}
		})
	}
}

func TestConvertSockets(t *testing.T) {
	var unixRaw [len(bpf.Addr{}.Raw)]byte
	copy(unixRaw[:], "/run/x.sock")
	var abstract [len(bpf.Addr{}.Raw)]byte
	copy(abstract[1:], "hidden")
	var other [len(bpf.Addr{}.Raw)]byte
	copy(other[:], "\x01\x02\x03\x04")
	tests := []struct {
		name string
		typ  bpf.RecordType
		addr bpf.Addr
		want SockAddr
	}{
		// 127.0.0.1:8080 as the kernel stores it, read little-endian.
		{"inet connect", bpf.RecSocketConnect, bpf.Addr{Family: 2, Port: 0x901f, Addr4: 0x0100007f, Len: 16},
			SockAddr{Kind: AddrInet, Port: 0x901f, Address: 0x0100007f}},
		{"inet6 bind keeps flow and scope", bpf.RecSocketBind, bpf.Addr{Family: 10, Port: 0x5000, Flow: 7, Scope: 2, Addr6: [16]byte{15: 1}, Len: 28},
			SockAddr{Kind: AddrInet6, Port: 0x5000, Addr6: [16]byte{15: 1}, HasFlowScope: true, Flow: 7, Scope: 2}},
		{"inet6 accept drops flow and scope", bpf.RecSocketAccept, bpf.Addr{Family: 10, Port: 0x5000, Flow: 7, Scope: 2, Len: 28},
			SockAddr{Kind: AddrInet6, Port: 0x5000, Flow: 7, Scope: 2}},
		{"unix", bpf.RecSocketConnect, bpf.Addr{Family: 1, Len: 2 + 12, Raw: unixRaw},
			SockAddr{Kind: AddrUnix, Unix: "/run/x.sock"}},
		{"abstract unix prints empty", bpf.RecSocketConnect, bpf.Addr{Family: 1, Len: 2 + 7, Raw: abstract},
			SockAddr{Kind: AddrUnix}},
		{"other family hashes its bytes", bpf.RecSocketConnect, bpf.Addr{Family: 16, Len: 6, Raw: other},
			SockAddr{Kind: AddrOther, Other: Digest32(sha256.Sum256([]byte{1, 2, 3, 4}))}},
	}
	c := &Converter{Tasks: recTasks{}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawSocket(recHeader{typ: tc.typ, ns: 1, comm: "curl", ttd: 9}, bpf.Sock{Family: uint32(tc.addr.Family), Type: 1, Protocol: 6, OwnerTTD: 8}, tc.addr)
			e, err := c.Convert(recParse(t, raw))
			if err != nil {
				t.Fatal(err)
			}
			p := e.Payload.(*SocketAddr)
			if p.Addr != tc.want {
				t.Errorf("addr = %+v; want %+v", p.Addr, tc.want)
			}
			if p.Sock.Owner != (recTasks{}).TaskID(8) || p.Sock.Type != 1 || p.Sock.Protocol != 6 {
				t.Errorf("sock = %+v", p.Sock)
			}
			if e.Header.Type != tc.typ.String() {
				t.Errorf("type = %q; want %q", e.Header.Type, tc.typ)
			}
		})
	}
	t.Run("port in the JSON is the raw network-order value", func(t *testing.T) {
		raw := rawSocket(recHeader{typ: bpf.RecSocketConnect, ns: 1, comm: "curl", ttd: 9}, bpf.Sock{Family: 2}, bpf.Addr{Family: 2, Port: 0x5000, Addr4: 0x0100007f, Len: 16})
		e, err := c.Convert(recParse(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		line := string(e.AppendTSEM(nil))
		if want := `"af_inet": {"port": "20480", "address": "16777343"}`; !strings.Contains(line, want) {
			t.Errorf("line %s lacks %s (port 80, 127.0.0.1)", line, want)
		}
	})
}

func TestConvertLifecycleIsNotAnEvent(t *testing.T) {
	c := &Converter{Tasks: recTasks{}}
	raw := rawExec(recHeader{ns: 1, comm: "sh", ttd: 2}, 1, bpf.File{Present: true})
	if _, err := c.Convert(recParse(t, raw)); !errors.Is(err, ErrNotEvent) {
		t.Errorf("Convert(exec) error = %v; want ErrNotEvent", err)
	}
}

func TestExecOpen(t *testing.T) {
	c := &Converter{Tasks: recTasks{}}
	// The struct file's flags as read (here without __FMODE_EXEC) do not
	// matter: an executed file's cell has the exec open's flags.
	r := recParse(t, rawExec(recHeader{ns: 1, comm: "cat", ttd: 7, pttd: 3, coe: recRootCOE}, 6,
		bpf.File{Present: true, Flags: 0x8000, Inode: bpf.Inode{Mode: 0o100755, SMagic: 0xef53, DevMajor: 8}, Path: bpf.Path{Name: "/usr/bin/cat"}})).(*bpf.Exec)
	file := c.ExecFile(r)
	if file.Flags != 32800 || file.Path.Type != "root" || !file.Path.HasDev {
		t.Errorf("ExecFile = %+v; want flags 32800 (O_LARGEFILE|__FMODE_EXEC), path type root and the device", file)
	}
	e := c.ExecOpen(r, file, "sh")
	if e.Header.Type != "file_open" || e.Header.Process != "sh" || e.Header.TTD != 6 || e.Header.PTTD != 3 {
		t.Errorf("header = %+v; want file_open by sh in TTD 6 (before the exec)", e.Header)
	}
	if e.Header.TaskID != (recTasks{}).TaskID(6) {
		t.Errorf("task_id = %x; want the id before the exec", e.Header.TaskID)
	}
	if got := e.Payload.(*FileEvent).File; got.Path.Pathname != "/usr/bin/cat" || got.Flags != 0x8020 {
		t.Errorf("file = %+v", got)
	}
}

func TestKernelKeys(t *testing.T) {
	c := &Converter{Tasks: recTasks{}}
	recs := []bpf.Record{
		recParse(t, rawFileOpen(recHeader{ns: 1, comm: "cat", ttd: 1, coe: recRootCOE},
			bpf.File{Present: true, Flags: 0x8000, Inode: bpf.Inode{UID: 1, GID: 2, Mode: 0o100644, SMagic: 0xef53, DevMajor: 8}, Path: bpf.Path{Name: "/etc/hostname"}})),
		recParse(t, rawSocket(recHeader{typ: bpf.RecSocketConnect, ns: 1, comm: "curl", ttd: 1}, bpf.Sock{Family: 2, Type: 1, Protocol: 6}, bpf.Addr{Family: 2, Port: 0x5000, Addr4: 0x0100007f, Len: 16})),
		// Descriptions Vigil keeps generic have keys too.
		&bpf.Bpf{Header: bpf.Header{Type: bpf.RecBpf, NS: 1, TTD: 1}, Cmd: 0, AttrSize: 72},
		&bpf.KernelModuleRequest{Header: bpf.Header{Type: bpf.RecKernelModuleRequest, NS: 1, TTD: 1}, Name: "net-pf-38"},
		&bpf.KernelReadFile{Header: bpf.Header{Type: bpf.RecKernelReadFile, NS: 1, TTD: 1}, ID: 2, Contents: 1},
		&bpf.KernelReadFile{Header: bpf.Header{Type: bpf.RecKernelReadFile, NS: 1, TTD: 1}, ID: 2, Contents: 1,
			File: bpf.File{Present: true, Inode: bpf.Inode{Mode: 0o100644, SMagic: 0xef53, DevMajor: 8}, Path: bpf.Path{Name: "/lib/firmware/x.bin"}}},
	}
	var lines [][]byte
	want := map[uint64]bool{}
	for _, r := range recs {
		e, err := c.Convert(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, e.AppendTSEM(nil))
		k, ok := bpf.Key(r)
		if !ok {
			t.Fatalf("no key for %s", r.Head().Type)
		}
		want[k] = true
	}
	lines = append(lines, nil, []byte("not json"))
	keys, skipped := KernelKeys(lines)
	if skipped != 2 {
		t.Errorf("skipped = %d; want 2", skipped)
	}
	if len(keys) != len(want) {
		t.Fatalf("keys = %x; want %d keys", keys, len(want))
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("key %#x is not the kernel's key of any record", k)
		}
	}
}

// FuzzDecodeConvert feeds arbitrary bytes through the record decoder and
// the converter; every record that decodes must convert (or be a lifecycle
// record) and give a description the TSEM reader reads back byte-exact.
func FuzzDecodeConvert(f *testing.F) {
	f.Add(rawFileOpen(recHeader{ns: 1, comm: "cat", ttd: 2, pttd: 1}, bpf.File{Present: true, Flags: 0x8000, Inode: bpf.Inode{Mode: 0o100644, SMagic: 0xef53, DevMajor: 8, SID: recSID("sda3")}, Path: bpf.Path{Name: "/etc/hostname"}}))
	f.Add(rawFileOpen(recHeader{ns: 1, comm: "a\tb\xff", ttd: 2}, bpf.File{Present: true, Inode: bpf.Inode{Mode: 0o10600, SMagic: 0x50495045}, Path: bpf.Path{Name: "pipe:[9]", Flags: bpf.PathDetached}}))
	f.Add(rawExec(recHeader{ns: 1, comm: "sh", ttd: 3, pttd: 0}, 1, bpf.File{Present: true, Path: bpf.Path{Name: "/bin/sh"}}))
	f.Add(rawSocket(recHeader{typ: bpf.RecSocketConnect, ns: 1, comm: "nc", ttd: 2}, bpf.Sock{Family: 2}, bpf.Addr{Family: 2, Port: 0x5000, Addr4: 0x0100007f, Len: 16}))
	f.Add(rawSocket(recHeader{typ: bpf.RecSocketAccept, ns: 1, comm: "nc", ttd: 2}, bpf.Sock{Family: 1}, bpf.Addr{Family: 1, Len: 200}))
	c := &Converter{Tasks: recTasks{}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := bpf.ParseRecord(raw)
		if err != nil {
			return
		}
		e, err := c.Convert(r)
		if err != nil {
			if !errors.Is(err, ErrNotEvent) {
				t.Fatalf("Convert: %v", err)
			}
			return
		}
		line := e.AppendTSEM(nil)
		back, err := Parse(line)
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		if again := back.AppendTSEM(nil); !bytes.Equal(again, line) {
			t.Fatalf("round trip:\n%q\n%q", line, again)
		}
	})
}

func BenchmarkDecodeConvert(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "lib.so")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x7f}, 1<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	in := recStatInode(b, p)
	in.SMagic = 0xef53
	raws := [][]byte{
		rawFileOpen(recHeader{ns: 1, comm: "cat", ttd: 2, pttd: 1, coe: recRootCOE}, bpf.File{Present: true, Flags: 0x8000, Inode: in, Path: bpf.Path{Name: p}}),
		rawSocket(recHeader{typ: bpf.RecSocketConnect, ns: 1, comm: "curl", ttd: 2, pttd: 1}, bpf.Sock{Family: 2, Type: 1, Protocol: 6}, bpf.Addr{Family: 2, Port: 0x5000, Addr4: 0x0100007f, Len: 16}),
	}
	c := &Converter{Digests: NewDigestCache(DigestOptions{}), Tasks: recTasks{}}
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := bpf.ParseRecord(raws[i&1])
		if err != nil {
			b.Fatal(err)
		}
		e, err := c.Convert(r)
		if err != nil {
			b.Fatal(err)
		}
		buf = e.AppendTSEM(buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
