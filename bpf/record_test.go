package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// encode writes a generated (C layout) record as the kernel would.
func encode(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func setName(dst []int8, s string) {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

func testHdr(typ RecordType, size int) lsmVgHdr {
	h := lsmVgHdr{Size: uint16(size), Type: uint16(typ), Flags: uint32(FlagKey | FlagDenied), Ns: 7, Ktime: 123456789,
		Pid: 101, Tgid: 100, Ttd: 42, P_ttd: 41, Key: 0xfeedface, Rid: 77}
	setName(h.Comm[:], "cat")
	h.Coe.Uid, h.Coe.Euid, h.Coe.Suid, h.Coe.Gid = 1, 2, 3, 4
	h.Coe.Egid, h.Coe.Sgid, h.Coe.Fsuid, h.Coe.Fsgid = 5, 6, 7, 8
	h.Coe.Capeff = 0x1ffffffffff
	return h
}

func checkHdr(t *testing.T, h *Header, typ RecordType) {
	t.Helper()
	want := Header{Size: h.Size, Type: typ, Flags: FlagKey | FlagDenied, NS: 7, KTime: 123456789, PID: 101, TGID: 100,
		COE: COE{1, 2, 3, 4, 5, 6, 7, 8, 0x1ffffffffff}, TTD: 42, PTTD: 41, Key: 0xfeedface, RepeatID: 77}
	copy(want.Comm[:], "cat")
	if *h != want {
		t.Errorf("header = %+v;\nwant %+v", *h, want)
	}
	if h.Process() != "cat" {
		t.Errorf("Process() = %q; want cat", h.Process())
	}
}

// TestParseRecordLayouts encodes records with the types bpf2go generated
// from the C structs and decodes them: every offset the decoder assumes
// must match the C layout, up to the last field of each record.
func TestParseRecordLayouts(t *testing.T) {
	tests := []struct {
		name  string
		typ   RecordType
		raw   func() any
		check func(t *testing.T, r Record)
	}{
		{"file_open", RecFileOpen, func() any {
			var r lsmRecFile
			r.File.Flags, r.File.Present = 0o100000, 1
			r.File.Inode.Ino, r.File.Inode.Size, r.File.Inode.Mode = 99, 12, 0o100644
			r.File.Inode.CtimeSec, r.File.Inode.MtimeNsec, r.File.Inode.S_magic = 1700000000, 5, 0xef53
			r.File.Inode.DevMajor, r.File.Inode.DevMinor = 8, 3
			copy(r.File.Inode.S_id[:], "sda3")
			r.File.Inode.S_uuid[15] = 0xab
			r.File.Inode.Created = lsmVgCtag{Ns: 7, OwnerTtd: 40, Instance: 3}
			r.File.Path.Len = uint32(len("/etc/hostname"))
			setName(r.File.Path.Name[:], "/etc/hostname")
			return &r
		}, func(t *testing.T, r Record) {
			f := r.(*FileOpen).File
			in := f.Inode
			if !f.Present || f.Flags != 0o100000 || in.Ino != 99 || in.Size != 12 || in.Mode != 0o100644 ||
				in.CTimeSec != 1700000000 || in.MTimeNsec != 5 || in.SMagic != 0xef53 || in.DevMajor != 8 ||
				in.DevMinor != 3 || in.SIDString() != "sda3" || in.SUUID[15] != 0xab || f.Path.Name != "/etc/hostname" ||
				in.Created != (CreatedTag{NS: 7, OwnerTTD: 40, Instance: 3}) {
				t.Errorf("file = %+v", f)
			}
		}},
		{"inode_create", RecInodeCreate, func() any {
			var r lsmRecInodeCreate
			r.Dir.Ino, r.Mode = 4, 0o100600
			r.Created = lsmVgCtag{Ns: 7, OwnerTtd: 42, Instance: 9}
			r.Path.Len, r.Path.Flags = 12, uint32(PathNoMount)
			setName(r.Path.Name[:], "/tmp/ccA1b2")
			return &r
		}, func(t *testing.T, r Record) {
			c := r.(*InodeCreate)
			if c.Dir.Ino != 4 || c.Mode != 0o100600 || c.Created != (CreatedTag{NS: 7, OwnerTTD: 42, Instance: 9}) ||
				c.Path.Name != "/tmp/ccA1b2" || c.Path.Flags != PathNoMount {
				t.Errorf("inode_create = %+v", c)
			}
		}},
		{"inode_unlink", RecInodeUnlink, func() any {
			var r lsmRecInodeUnlink
			r.Dir.Ino, r.Inode.Ino = 4, 5
			r.Inode.Created = lsmVgCtag{Ns: 7, OwnerTtd: 42, Instance: 9}
			r.Path.Len = 2
			setName(r.Path.Name[:], "/u")
			return &r
		}, func(t *testing.T, r Record) {
			u := r.(*InodeUnlink)
			if u.Dir.Ino != 4 || u.Inode.Ino != 5 || u.Inode.Created != (CreatedTag{NS: 7, OwnerTTD: 42, Instance: 9}) || u.Path.Name != "/u" {
				t.Errorf("inode_unlink = %+v", u)
			}
		}},
		{"bprm_committed_creds", RecExec, func() any {
			var r lsmRecExec
			r.PrevTtd = 40
			r.File.Path.Len = 8
			setName(r.File.Path.Name[:], "/bin/cat")
			return &r
		}, func(t *testing.T, r Record) {
			e := r.(*Exec)
			if e.PrevTTD != 40 || e.File.Path.Name != "/bin/cat" {
				t.Errorf("exec = %+v", e)
			}
		}},
		{"mmap_file", RecMmapFile, func() any {
			var r lsmRecMmap
			r.Prot, r.Flags = 5, 0x802
			r.File.Present = 1
			r.File.Path.Len, r.File.Path.Flags = 3, uint32(PathTruncated)
			setName(r.File.Path.Name[:], "/lx")
			return &r
		}, func(t *testing.T, r Record) {
			m := r.(*MmapFile)
			if m.Prot != 5 || m.MmapFlags != 0x802 || !m.File.Present || m.File.Path.Name != "/lx" || m.File.Path.Flags != PathTruncated {
				t.Errorf("mmap = %+v", m)
			}
		}},
		{"file_ioctl", RecFileIoctl, func() any {
			var r lsmRecIoctl
			r.Cmd, r.Arg = 0x5401, 0xdead
			r.File.Path.Len = 8
			setName(r.File.Path.Name[:], "/dev/tty")
			return &r
		}, func(t *testing.T, r Record) {
			i := r.(*FileIoctl)
			if i.Cmd != 0x5401 || i.Arg != 0xdead || i.File.Path.Name != "/dev/tty" {
				t.Errorf("ioctl = %+v", i)
			}
		}},
		{"socket_create", RecSocketCreate, func() any {
			return &lsmRecSockCreate{Family: 2, Type: 1, Protocol: 6, Kern: 0}
		}, func(t *testing.T, r Record) {
			s := r.(*SocketCreate)
			if s.Family != 2 || s.Type != 1 || s.Protocol != 6 {
				t.Errorf("socket_create = %+v", s)
			}
		}},
		{"socket_connect", RecSocketConnect, func() any {
			var r lsmRecSockAddr
			r.Sock.Family, r.Sock.Type, r.Sock.OwnerTtd = 1, 1, 42
			r.Addr.Family, r.Addr.Len = 1, 22
			copy(r.Addr.Raw[:], "/var/run/nscd/socket")
			r.Addr.Raw[127] = 0
			return &r
		}, func(t *testing.T, r Record) {
			s := r.(*SocketAddr)
			if s.Sock.Family != 1 || s.Sock.OwnerTTD != 42 || s.Addr.UnixPath() != "/var/run/nscd/socket" || s.Addr.Len != 22 {
				t.Errorf("socket_connect = %+v", s)
			}
		}},
		{"task_kill", RecTaskKill, func() any {
			var r lsmRecTaskKill
			r.Target.Pid, r.Target.Tgid, r.Target.Ns, r.Target.Ttd = 9, 8, 7, 6
			r.Sig, r.CrossNs = 15, 1
			return &r
		}, func(t *testing.T, r Record) {
			k := r.(*TaskKill)
			if k.Target != (TaskTarget{9, 8, 7, 6, true}) || k.Sig != 15 || k.CrossNS != 1 {
				t.Errorf("task_kill = %+v", k)
			}
		}},
		{"inode_rename", RecInodeRename, func() any {
			var r lsmRecInodeRename
			r.NewDir.Ino, r.Flags = 5, 1
			r.OldInode.Ino, r.OldInode.Created = 6, lsmVgCtag{Ns: 7, OwnerTtd: 42, Instance: 2}
			r.NewInode.Ino, r.Present = 8, renameOld
			r.OldPath.Len, r.NewPath.Len = 2, 2
			setName(r.OldPath.Name[:], "/a")
			setName(r.NewPath.Name[:], "/b")
			return &r
		}, func(t *testing.T, r Record) {
			n := r.(*InodeRename)
			if n.NewDir.Ino != 5 || n.RenameFlags != 1 || n.OldPath.Name != "/a" || n.NewPath.Name != "/b" ||
				n.OldInode.Ino != 6 || n.OldInode.Created != (CreatedTag{NS: 7, OwnerTTD: 42, Instance: 2}) ||
				n.NewInode.Ino != 8 || !n.HasOld || n.HasNew {
				t.Errorf("inode_rename = %+v", n)
			}
		}},
		{"inode_setattr", RecInodeSetattr, func() any {
			var r lsmRecInodeSetattr
			r.Valid, r.Mode, r.Uid, r.Gid, r.Size = 8, 0o644, 1, 2, 4096
			r.Path.Len = 2
			setName(r.Path.Name[:], "/x")
			return &r
		}, func(t *testing.T, r Record) {
			s := r.(*InodeSetattr)
			if s.Valid != 8 || s.Mode != 0o644 || s.UID != 1 || s.GID != 2 || s.Size != 4096 || s.Path.Name != "/x" {
				t.Errorf("inode_setattr = %+v", s)
			}
		}},
		{"sb_mount", RecSbMount, func() any {
			var r lsmRecSbMount
			r.Flags = 0x1000
			setName(r.DevName[:], "none")
			setName(r.Type[:], "tmpfs")
			r.Path.Len = 4
			setName(r.Path.Name[:], "/mnt")
			return &r
		}, func(t *testing.T, r Record) {
			m := r.(*SbMount)
			if m.MountFlags != 0x1000 || m.DevName != "none" || m.FSType != "tmpfs" || m.Path.Name != "/mnt" {
				t.Errorf("sb_mount = %+v", m)
			}
		}},
		{"kernel_module_request", RecKernelModuleRequest, func() any {
			var r lsmRecKmod
			setName(r.Name[:], "net-pf-38")
			return &r
		}, func(t *testing.T, r Record) {
			if k := r.(*KernelModuleRequest); k.Name != "net-pf-38" {
				t.Errorf("kmod = %+v", k)
			}
		}},
		{"capable", RecCapable, func() any { return &lsmRecCapable{Cap: 21, Opts: 2} }, func(t *testing.T, r Record) {
			if c := r.(*Capable); c.Cap != 21 || c.Opts != 2 {
				t.Errorf("capable = %+v", c)
			}
		}},
		{"task_fork", RecTaskFork, func() any { return &lsmRecFork{ChildPid: 3, ChildTgid: 3, ChildTtd: 42} }, func(t *testing.T, r Record) {
			if f := r.(*TaskFork); f.ChildPID != 3 || f.ChildTTD != 42 {
				t.Errorf("task_fork = %+v", f)
			}
		}},
		{"task_exit", RecTaskExit, func() any { return &lsmRecExit{Code: 256} }, func(t *testing.T, r Record) {
			if e := r.(*TaskExit); e.ExitCode != 256 {
				t.Errorf("task_exit = %+v", e)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.raw()
			size, _ := RecordSize(tc.typ)
			raw := encode(t, v)
			if len(raw) != size {
				t.Fatalf("generated %T is %d bytes; RecordSize(%s) = %d", v, len(raw), tc.typ, size)
			}
			h := testHdr(tc.typ, size)
			copy(raw, encode(t, &h))
			r, err := ParseRecord(append(raw, 0, 0, 0, 0)) // ring buffer padding is ignored
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			if r.Head().Type.String() != tc.name {
				t.Errorf("type name %q; want %q", r.Head().Type, tc.name)
			}
			checkHdr(t, r.Head(), tc.typ)
			tc.check(t, r)
		})
	}
}

func TestParseRecordErrors(t *testing.T) {
	good := encode(t, &lsmRecCapable{Hdr: testHdr(RecCapable, HeaderSize+8)})
	withType := func(typ, size uint16) []byte {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint16(b[0:], size)
		binary.LittleEndian.PutUint16(b[2:], typ)
		return b
	}
	tests := []struct {
		name string
		raw  []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrShortRecord, "0 bytes"},
		{"short header", good[:HeaderSize-1], ErrShortRecord, "119 bytes"},
		{"short payload", good[:HeaderSize+4], ErrShortRecord, "capable: 124 bytes, want 128"},
		{"type 0", withType(0, 128), ErrUnknownRecord, "type 0"},
		{"type past the end", withType(uint16(recTypeEnd), 128), ErrUnknownRecord, "type 24"},
		{"user-space type", withType(uint16(RecRepeatCount), 128), ErrUnknownRecord, "type 256"},
		{"size field", withType(uint16(RecCapable), 127), ErrRecordSize, "size field 127, want 128"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRecord(tc.raw)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("ParseRecord = %v, %v; want %v", r, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestParseCaptured decodes real records the kernel wrote (saved by the
// kernel tests with -update-records) and checks what must hold for any.
func TestParseCaptured(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "records", "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no captured records in testdata/records")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseRecord(raw)
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			h := r.Head()
			if want := strings.TrimSuffix(strings.SplitN(filepath.Base(f), "-", 2)[1], ".bin"); seedName(h.Type) != want {
				t.Errorf("type %s; file says %s", h.Type, want)
			}
			if h.PID == 0 || h.TGID == 0 || h.TTD == 0 || h.NS == 0 || h.KTime == 0 || h.Process() == "" {
				t.Errorf("header %+v: zero identity", *h)
			}
			if k, ok := Key(r); ok && k == 0 {
				t.Errorf("Key = 0")
			}
			switch r := r.(type) {
			case *FileOpen:
				if !r.File.Present || !strings.HasPrefix(r.File.Path.Name, "/") || r.File.Inode.Ino == 0 {
					t.Errorf("file_open %+v", r.File)
				}
			case *ExecScript:
				if !r.File.Present || !strings.HasPrefix(r.File.Path.Name, "/") || r.File.Flags&0x20 == 0 {
					t.Errorf("exec script %+v", r.File)
				}
			case *Exec:
				if !strings.HasPrefix(r.File.Path.Name, "/") || r.TTD == r.PrevTTD {
					t.Errorf("exec %+v", r)
				}
			}
		})
	}
}

// TestKeyTable pins what Key separates: each case changes one input and
// must change the key, except the inputs the kernel does not hash.
func TestKeyTable(t *testing.T) {
	base := func() *FileOpen {
		r := &FileOpen{Header: Header{Type: RecFileOpen, COE: COE{UID: 1000}}}
		r.File = File{Present: true, Flags: 0o100000, Inode: Inode{UID: 0, Mode: 0o100644, SMagic: 0xef53, Ino: 5}, Path: Path{Name: "/etc/hostname"}}
		return r
	}
	k0, ok := Key(base())
	if !ok {
		t.Fatal("Key(file_open) not ok")
	}
	tests := []struct {
		name    string
		edit    func(*FileOpen)
		changes bool
	}{
		{"path", func(r *FileOpen) { r.File.Path.Name = "/etc/hosts" }, true},
		{"flags", func(r *FileOpen) { r.File.Flags |= 1 }, true},
		{"mode", func(r *FileOpen) { r.File.Inode.Mode = 0o100600 }, true},
		{"fsuid", func(r *FileOpen) { r.COE.FSUID = 1 }, true},
		{"capeff", func(r *FileOpen) { r.COE.CapEff = 1 }, true},
		{"type", func(r *FileOpen) { r.Type = RecExec }, true},
		{"inode number", func(r *FileOpen) { r.File.Inode.Ino = 6 }, false},
		{"pid", func(r *FileOpen) { r.PID = 6 }, false},
		{"ttd", func(r *FileOpen) { r.TTD = 6 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.edit(r)
			k, _ := Key(r)
			if (k != k0) != tc.changes {
				t.Errorf("Key changed = %v; want %v", k != k0, tc.changes)
			}
		})
	}
	if _, ok := Key(&TaskExit{Header: Header{Type: RecTaskExit}}); ok {
		t.Error("Key(task_exit) ok; the kernel never checks it")
	}
}

func BenchmarkParseRecord(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "records", "tracepoint-file_open.bin"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ParseRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "records", "tracepoint-file_open.bin"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := ParseRecord(raw)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Key(r)
	}
}
