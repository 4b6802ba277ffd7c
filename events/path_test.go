package events

import (
	"testing"

	"github.com/vigil-tsem/vigil/bpf"
)

// TestConvertCanonicalPaths checks the pathnames of file descriptions (the
// acting process's /proc directory as /proc/self, generated pseudo file
// names as TSEM prints them) and that the kernel allow key rebuilt from
// each description (KernelKeys) is the key of the record it came from.
func TestConvertCanonicalPaths(t *testing.T) {
	const (
		procMagic = 0x9fa0
		pipeMagic = 0x50495045
		sockMagic = 0x534f434b
		ext4      = 0xef53
	)
	hdr := func(typ bpf.RecordType, tgid uint32) bpf.Header {
		return bpf.Header{Type: typ, NS: 1, PID: tgid, TGID: tgid, TTD: 1, COE: bpf.COE{CapEff: 0x1ff}}
	}
	file := func(name string, magic, major, minor uint32) bpf.File {
		return bpf.File{Present: true, Flags: 0x8000, Inode: bpf.Inode{Mode: 0o100444, SMagic: magic, DevMajor: major, DevMinor: minor}, Path: bpf.Path{Name: name}}
	}
	tests := []struct {
		name     string
		rec      bpf.Record
		pathname string
		hasDev   bool
	}{
		{"own /proc directory", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 4711), File: file("/proc/4711/cgroup", procMagic, 0, 22)}, "/proc/self/cgroup", false},
		{"another process's /proc directory", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 4711), File: file("/proc/1/cgroup", procMagic, 0, 22)}, "/proc/1/cgroup", false},
		{"pipe walked to /", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 7), File: file("/", pipeMagic, 0, 13)}, "pipe:/", false},
		{"pipe with a generated name", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 7), File: file("pipe:[1234]", pipeMagic, 0, 13)}, "pipe:/", false},
		{"socket ioctl", &bpf.FileIoctl{Header: hdr(bpf.RecFileIoctl, 7), Cmd: 0x5401, File: file("/", sockMagic, 0, 8)}, "socket:/", false},
		{"pseudo filesystem on a device", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 7), File: file("x:[1]", pipeMagic, 8, 1)}, "x:[1]", true},
		{"plain file", &bpf.FileOpen{Header: hdr(bpf.RecFileOpen, 7), File: file("/etc/hostname", ext4, 8, 1)}, "/etc/hostname", true},
		{"mapped file", &bpf.MmapFile{Header: hdr(bpf.RecMmapFile, 7), Prot: 5, MmapFlags: 0x812, File: file("/lib/x.so", ext4, 8, 1)}, "/lib/x.so", true},
	}
	c := &Converter{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := c.Convert(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			var f File
			switch p := e.Payload.(type) {
			case *FileEvent:
				f = p.File
			case *FileCmd:
				f = p.File
			case *MmapFile:
				f = p.File
			default:
				t.Fatalf("payload %T", p)
			}
			if f.Path.Pathname != tc.pathname || f.Path.HasDev != tc.hasDev {
				t.Errorf("path = %q (dev %v); want %q (dev %v)", f.Path.Pathname, f.Path.HasDev, tc.pathname, tc.hasDev)
			}
			want, ok := bpf.Key(tc.rec)
			if !ok {
				t.Fatal("no key")
			}
			keys, skipped := KernelKeys([][]byte{e.AppendTSEM(nil)})
			if skipped != 0 || len(keys) == 0 || keys[0] != want {
				t.Errorf("KernelKeys(description) = %#x (skipped %d); want the record's key %#x", keys, skipped, want)
			}
		})
	}
}

// TestKernelKeysAnonymousMappings: the key an anonymous mapping's
// description gives is its record's, which leaves out the flags beyond
// the mapping type.
func TestKernelKeysAnonymousMappings(t *testing.T) {
	c := &Converter{}
	rec := func(prot, flags uint32) bpf.Record {
		return &bpf.MmapFile{Header: bpf.Header{Type: bpf.RecMmapFile, NS: 1, PID: 9, TGID: 9, TTD: 1}, Prot: prot, MmapFlags: flags}
	}
	for _, r := range []bpf.Record{rec(7, 0x22), rec(5, 0x4032), rec(3, 0x22)} {
		e, err := c.Convert(r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := bpf.Key(r)
		keys, _ := KernelKeys([][]byte{e.AppendTSEM(nil)})
		if len(keys) != 1 || keys[0] != want {
			t.Errorf("KernelKeys(%s) = %#x; want %#x", e.AppendTSEM(nil), keys, want)
		}
	}
}
