package bpf

import (
	"fmt"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	const (
		ext4  = 0xef53
		pipe  = 0x50495045
		sock  = 0x534f434b
		anon  = 0x09041934
		proc  = procSuperMagic
		tmpfs = 0x01021994
	)
	tests := []struct {
		name               string
		path               string
		magic, major, tgid uint32
		want               string
	}{
		{"own proc dir", "/proc/4711/cgroup", proc, 0, 4711, "/proc/self/cgroup"},
		{"own proc dir itself", "/proc/4711", proc, 0, 4711, "/proc/self"},
		{"own proc dir, deeper", "/proc/4711/task/4712/stat", proc, 0, 4711, "/proc/self/task/4712/stat"},
		{"another process", "/proc/4712/cgroup", proc, 0, 4711, "/proc/4712/cgroup"},
		{"a longer number", "/proc/47110/cgroup", proc, 0, 4711, "/proc/47110/cgroup"},
		{"digits then a letter", "/proc/4711x/cgroup", proc, 0, 4711, "/proc/4711x/cgroup"},
		{"no digits", "/proc/self/cgroup", proc, 0, 4711, "/proc/self/cgroup"},
		{"proc root", "/proc/", proc, 0, 4711, "/proc/"},
		{"eleven digits", "/proc/00000004711/x", proc, 0, 4711, "/proc/00000004711/x"},
		{"ten digits, leading zeros", "/proc/0000004711/x", proc, 0, 4711, "/proc/self/x"},
		{"largest tgid", "/proc/4294967295/x", proc, 0, 4294967295, "/proc/self/x"},
		{"not procfs", "/proc/4711/cgroup", tmpfs, 0, 4711, "/proc/4711/cgroup"},
		{"no acting process", "/proc/4711/cgroup", proc, 0, 0, "/proc/4711/cgroup"},
		{"pipe", "pipe:[1234]", pipe, 0, 1, "pipe:/"},
		{"socket", "socket:[99]", sock, 0, 1, "socket:/"},
		{"anon inode", "anon_inode:[eventfd]", anon, 0, 1, "anon_inode:/"},
		{"already canonical", "pipe:/", pipe, 0, 1, "pipe:/"},
		{"pipe walked as a path", "/", pipe, 0, 1, "pipe:/"},
		{"socket walked as a path", "/", sock, 0, 1, "socket:/"},
		{"anon inode walked as a path", "/", anon, 0, 1, "anon_inode:/"},
		{"procfs root", "/", proc, 0, 1, "/"},
		{"pipe fs root on a device", "/", pipe, 8, 1, "/"},
		{"colon after a slash", "/a:b", pipe, 0, 1, "/a:b"},
		{"pseudo fs on a real device", "pipe:[1]", pipe, 8, 1, "pipe:[1]"},
		{"not a pseudo fs", "x:[1]", ext4, 0, 1, "x:[1]"},
		{"colon first", ":x", pipe, 0, 1, ":x"},
		{"plain file", "/etc/hostname", ext4, 8, 1, "/etc/hostname"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CanonicalPath(tc.path, tc.magic, tc.major, tc.tgid)
			if got != tc.want {
				t.Errorf("CanonicalPath(%q, %#x, %d, %d) = %q; want %q", tc.path, tc.magic, tc.major, tc.tgid, got, tc.want)
			}
			if again := CanonicalPath(got, tc.magic, tc.major, tc.tgid); again != got {
				t.Errorf("CanonicalPath is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func FuzzCanonicalPath(f *testing.F) {
	f.Add("/proc/4711/cgroup", uint32(procSuperMagic), uint32(0), uint32(4711))
	f.Add("pipe:[1234]", uint32(0x50495045), uint32(0), uint32(1))
	f.Add("/etc/hostname", uint32(0xef53), uint32(8), uint32(1))
	f.Fuzz(func(t *testing.T, name string, magic, major, tgid uint32) {
		got := CanonicalPath(name, magic, major, tgid)
		if again := CanonicalPath(got, magic, major, tgid); again != got {
			t.Errorf("CanonicalPath(%q) = %q, then %q", name, got, again)
		}
		if got != name && !strings.HasPrefix(got, "/proc/self") && !strings.HasSuffix(got, ":/") {
			t.Errorf("CanonicalPath(%q) = %q: an unexpected rewrite", name, got)
		}
	})
}

func TestDecides(t *testing.T) {
	h := func(typ RecordType) Header { return Header{Type: typ, PID: 10, TGID: 10} }
	file := File{Present: true, Path: Path{Name: "/lib/x.so"}}
	tests := []struct {
		name string
		r    Record
		want Decision
	}{
		{"file open", &FileOpen{Header: h(RecFileOpen)}, DecideKey},
		{"file mapping", &MmapFile{Header: h(RecMmapFile), Prot: 5, MmapFlags: 0x812, File: file}, DecideKey},
		{"anonymous data mapping", &MmapFile{Header: h(RecMmapFile), Prot: 3, MmapFlags: 0x22}, DecidePass},
		{"anonymous reservation", &MmapFile{Header: h(RecMmapFile), Prot: 0, MmapFlags: 0x4022}, DecidePass},
		{"anonymous executable mapping", &MmapFile{Header: h(RecMmapFile), Prot: 7, MmapFlags: 0x22}, DecideCoarseKey},
		{"signal to its own thread", &TaskKill{Header: h(RecTaskKill), Sig: 23, Target: TaskTarget{PID: 11, TGID: 10}}, DecidePass},
		{"signal to another process", &TaskKill{Header: h(RecTaskKill), Sig: 9, Target: TaskTarget{PID: 12, TGID: 12}}, DecideKey},
		{"signal of a description (no tgid)", &TaskKill{Header: Header{Type: RecTaskKill}, Sig: 9}, DecideKey},
		{"capable", &Capable{Header: h(RecCapable), Cap: 21}, DecideKey},
		{"fork", &TaskFork{Header: h(RecTaskFork)}, DecideNever},
		{"exit", &TaskExit{Header: h(RecTaskExit)}, DecideNever},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decides(tc.r); got != tc.want {
				t.Errorf("Decides(%s) = %v; want %v", tc.name, got, tc.want)
			}
		})
	}
}

// TestKeyCanonical checks that the key of a record equals the key of the
// record rebuilt from its description (canonical names, no tgid), and
// differs where the event differs.
func TestKeyCanonical(t *testing.T) {
	fileRec := func(tgid uint32, name string, magic, major uint32) Record {
		return &FileOpen{Header: Header{Type: RecFileOpen, PID: tgid, TGID: tgid},
			File: File{Present: true, Flags: 0x8000, Inode: Inode{Mode: 0o100444, SMagic: magic, DevMajor: major}, Path: Path{Name: name}}}
	}
	mmapRec := func(prot, flags uint32) Record {
		return &MmapFile{Header: Header{Type: RecMmapFile, PID: 7, TGID: 7}, Prot: prot, MmapFlags: flags}
	}
	tests := []struct {
		name string
		a, b Record
		same bool
	}{
		{"own /proc dir is /proc/self", fileRec(4711, "/proc/4711/cgroup", procSuperMagic, 0), fileRec(0, "/proc/self/cgroup", procSuperMagic, 0), true},
		{"two runs, two pids", fileRec(4711, "/proc/4711/cgroup", procSuperMagic, 0), fileRec(815, "/proc/815/cgroup", procSuperMagic, 0), true},
		{"another process's /proc dir", fileRec(4711, "/proc/815/cgroup", procSuperMagic, 0), fileRec(0, "/proc/self/cgroup", procSuperMagic, 0), false},
		{"pipe", fileRec(1, "pipe:[1234]", 0x50495045, 0), fileRec(0, "pipe:/", 0x50495045, 0), true},
		{"two pipes", fileRec(1, "pipe:[1234]", 0x50495045, 0), fileRec(1, "pipe:[99]", 0x50495045, 0), true},
		{"unnamed pipe", fileRec(1, "/", 0x50495045, 0), fileRec(0, "pipe:/", 0x50495045, 0), true},
		{"root directory", fileRec(1, "/", 0xef53, 8), fileRec(0, "pipe:/", 0xef53, 8), false},
		{"pipe and socket", fileRec(1, "pipe:[1234]", 0x50495045, 0), fileRec(1, "socket:[1234]", 0x534f434b, 0), false},
		{"files", fileRec(1, "/etc/a", 0xef53, 8), fileRec(1, "/etc/b", 0xef53, 8), false},
		{"executable mapping, MAP_FIXED", mmapRec(5, 0x22), mmapRec(5, 0x32), true},
		{"executable mapping, MAP_NORESERVE", mmapRec(7, 0x22), mmapRec(7, 0x4022), true},
		{"executable mapping, shared or private", mmapRec(5, 0x21), mmapRec(5, 0x22), false},
		{"executable mapping, writable or not", mmapRec(5, 0x22), mmapRec(7, 0x22), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ka, oka := Key(tc.a)
			kb, okb := Key(tc.b)
			if !oka || !okb {
				t.Fatalf("Key ok = %v, %v; want true", oka, okb)
			}
			if (ka == kb) != tc.same {
				t.Errorf("Key(a) = %#x, Key(b) = %#x; want equal %v", ka, kb, tc.same)
			}
		})
	}
	// A file mapping keeps its exact flags: the file is what it maps.
	fm := func(flags uint32) Record {
		return &MmapFile{Header: Header{Type: RecMmapFile, TGID: 1}, Prot: 5, MmapFlags: flags,
			File: File{Present: true, Inode: Inode{SMagic: 0xef53, DevMajor: 8}, Path: Path{Name: "/lib/x.so"}}}
	}
	if a, _ := Key(fm(0x812)); a == func() uint64 { k, _ := Key(fm(0x802)); return k }() {
		t.Error("file mappings with different flags have the same key")
	}
}

// TestKeyCreated checks that the key of an event on a file created in
// its namespace holds from one run to the next (the random name does not
// count, the directory and instance do), and that a file created by
// another namespace is keyed by its name.
func TestKeyCreated(t *testing.T) {
	const ns = 3
	tag := func(ns, instance uint64) CreatedTag { return CreatedTag{NS: ns, OwnerTTD: 40 + ns, Instance: instance} }
	open := func(name string, t CreatedTag) Record {
		return &FileOpen{Header: Header{Type: RecFileOpen, NS: ns, TGID: 7},
			File: File{Present: true, Flags: 0x8002, Inode: Inode{Mode: 0o100600, SMagic: 0x01021994, Created: t}, Path: Path{Name: name}}}
	}
	exec := func(name string, t CreatedTag) Record {
		return &Exec{Header: Header{Type: RecExec, NS: ns, TGID: 7},
			File: File{Present: true, Flags: 0x8020, Inode: Inode{Mode: 0o100755, SMagic: 0x01021994, Created: t}, Path: Path{Name: name}}}
	}
	create := func(name string, t CreatedTag) Record {
		return &InodeCreate{Header: Header{Type: RecInodeCreate, NS: ns}, Mode: 0o100600, Created: t, Path: Path{Name: name}}
	}
	unlink := func(name string, t CreatedTag) Record {
		return &InodeUnlink{Header: Header{Type: RecInodeUnlink, NS: ns}, Inode: Inode{Created: t}, Path: Path{Name: name}}
	}
	rename := func(name string, t CreatedTag) Record {
		return &InodeRename{Header: Header{Type: RecInodeRename, NS: ns}, OldInode: Inode{Created: t}, HasOld: true,
			OldPath: Path{Name: name}, NewPath: Path{Name: "/w/final"}}
	}
	setattr := func(name string, t CreatedTag) Record {
		return &InodeSetattr{Header: Header{Type: RecInodeSetattr, NS: ns}, Valid: 1, Inode: Inode{Created: t}, Path: Path{Name: name}}
	}
	tests := []struct {
		name string
		a, b Record
		same bool
	}{
		{"two runs, two random names", open("/tmp/ccAbC123.s", tag(ns, 1)), open("/tmp/ccXyZ789.s", tag(ns, 1)), true},
		{"another instance", open("/tmp/ccAbC123.s", tag(ns, 1)), open("/tmp/ccXyZ789.s", tag(ns, 2)), false},
		{"another directory", open("/tmp/ccAbC123.s", tag(ns, 1)), open("/var/tmp/ccAbC123.s", tag(ns, 1)), false},
		{"created or not", open("/tmp/ccAbC123.s", tag(ns, 1)), open("/tmp/ccAbC123.s", CreatedTag{}), false},
		{"created elsewhere is named", open("/tmp/keep", tag(ns+1, 1)), open("/tmp/keep", CreatedTag{}), true},
		{"created elsewhere, random names", open("/tmp/ccAbC123.s", tag(ns+1, 1)), open("/tmp/ccXyZ789.s", tag(ns+1, 1)), false},
		{"a name without directory", open("ccAbC123.s", tag(ns, 1)), open("ccXyZ789.s", tag(ns, 1)), true},
		{"exec", exec("/tmp/a.out.1", tag(ns, 4)), exec("/tmp/a.out.2", tag(ns, 4)), true},
		{"inode_create", create("/ccAbC123.s", tag(ns, 1)), create("/ccXyZ789.s", tag(ns, 1)), true},
		{"inode_unlink", unlink("/ccAbC123.s", tag(ns, 1)), unlink("/ccXyZ789.s", tag(ns, 1)), true},
		{"inode_rename", rename("/w/tmp.1", tag(ns, 1)), rename("/w/tmp.2", tag(ns, 1)), true},
		{"inode_setattr", setattr("/w/exe.1", tag(ns, 5)), setattr("/w/exe.2", tag(ns, 5)), true},
		{"inode_setattr, not created", setattr("/w/exe.1", CreatedTag{}), setattr("/w/exe.2", CreatedTag{}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ka, _ := Key(tc.a)
			kb, _ := Key(tc.b)
			if (ka == kb) != tc.same {
				t.Errorf("Key(a) = %#x, Key(b) = %#x; want equal %v", ka, kb, tc.same)
			}
		})
	}
}

// TestKeyVectors pins Key to values computed by hand from the hash's
// definition (FNV-1a style over 64-bit words), so that a change of either
// twin shows here as well as in the VM.
func TestKeyVectors(t *testing.T) {
	fnv := func(words ...uint64) uint64 {
		h := keyOffset
		for _, w := range words {
			h = (h ^ w) * keyPrime
		}
		return h
	}
	str := func(s string) []uint64 {
		var w []uint64
		for i := 0; i < len(s); i++ {
			w = append(w, uint64(s[i]))
		}
		return append(w, uint64(len(s)))
	}
	coe := []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0}
	head := func(typ RecordType) []uint64 { return append([]uint64{uint64(typ)}, coe...) }
	words := func(parts ...[]uint64) []uint64 {
		var w []uint64
		for _, p := range parts {
			w = append(w, p...)
		}
		return w
	}
	tests := []struct {
		r    Record
		want uint64
	}{
		{&FileOpen{Header: Header{Type: RecFileOpen, TGID: 42},
			File: File{Present: true, Flags: 0x8000, Inode: Inode{UID: 1, GID: 2, Mode: 0o100444, SMagic: procSuperMagic}, Path: Path{Name: "/proc/42/cgroup"}}},
			fnv(words(head(RecFileOpen), []uint64{0x8000, 1, 2, 0o100444, procSuperMagic}, str("/proc/self/cgroup"))...)},
		{&MmapFile{Header: Header{Type: RecMmapFile, TGID: 42}, Prot: 7, MmapFlags: 0x4032},
			fnv(words(head(RecMmapFile), []uint64{7, 2})...)},
		// A file created in the namespace: its directory part and
		// instance, not its name.
		{&FileOpen{Header: Header{Type: RecFileOpen, NS: 3, TGID: 42},
			File: File{Present: true, Flags: 0x8002, Inode: Inode{Mode: 0o100600, SMagic: 0xef53, Created: CreatedTag{NS: 3, OwnerTTD: 9, Instance: 2}}, Path: Path{Name: "/tmp/ccX1y2Z3.s"}}},
			fnv(words(head(RecFileOpen), []uint64{0x8002, 0, 0, 0o100600, 0xef53}, str("/tmp/"), []uint64{2})...)},
		{&InodeCreate{Header: Header{Type: RecInodeCreate, NS: 3}, Mode: 0o100600, Created: CreatedTag{NS: 3, OwnerTTD: 9, Instance: 2}, Path: Path{Name: "/ccX1y2Z3.s"}},
			fnv(words(head(RecInodeCreate), []uint64{0o100600}, str("/"), []uint64{2})...)},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if got, _ := Key(tc.r); got != tc.want {
				t.Errorf("Key = %#x; want %#x", got, tc.want)
			}
		})
	}
}

// TestLSMKeyTwin runs a Go workload that reads its own /proc directory
// (the runtime reads /proc/self/cgroup at start, and the workload opens
// /proc/self/stat) and a pipe (/proc/self/fd/0), learns its keys, then
// runs it again enforcing them from its exec on: nothing is denied, the
// kernel's key of every record it checked equals Key's, the kernel checks
// exactly the records Decides says it checks, and the per-run names
// (/proc/<pid>, the pipe's) have the keys of their canonical names.
func TestLSMKeyTwin(t *testing.T) {
	c := openCapture(t, BackendLSM)
	dir, bin := sharedDir(t)
	file := dir + "/twin"
	writeFile(t, file, "x")
	col := collect(t, c)
	ns := nextNS()
	w := workload{next: "open", env: []string{envFiles + "=" + file + ":/proc/self/stat:/proc/self/fd/0"}, bin: bin}
	want := file + " ok\n/proc/self/stat ok\n/proc/self/fd/0 ok\n"
	var keys []uint64
	for range 2 {
		run := runEnrolled(t, c, ns, w)
		if run.out != want {
			t.Fatalf("learning run output %q; want %q", run.out, want)
		}
		col.until(exitedMain(run.pid))
	}
	for _, r := range recordsOf(col.snapshot(), ns) {
		if k, ok := Key(r); ok {
			keys = append(keys, k)
		}
	}
	if err := c.Allow(ns, keys...); err != nil {
		t.Fatal(err)
	}
	if err := c.SetMode(ns, ModeEnforce); err != nil {
		t.Fatal(err)
	}
	run := runEnrolled(t, c, ns, w)
	if run.out != want {
		t.Errorf("enforced run output %q; want %q", run.out, want)
	}
	col.until(exitedMain(run.pid))
	var procSelfChecked, pipeChecked, passed bool
	for _, r := range col.finish(t) {
		h := r.Head()
		if int(h.TGID) != run.pid {
			continue
		}
		if h.Flags&FlagDenied != 0 {
			t.Errorf("denied: %s %s", h.Type, describe(r))
		}
		d := Decides(r)
		checked := h.Flags&FlagKey != 0
		if checked && d != DecideKey && d != DecideCoarseKey {
			t.Errorf("%s %s: the kernel checked it; Decides = %v", h.Type, describe(r), d)
		}
		if d == DecidePass {
			passed = true
			if checked {
				t.Errorf("%s %s: Decides = pass, yet the kernel checked it", h.Type, describe(r))
			}
		}
		if !checked {
			continue
		}
		k, _ := Key(r)
		if k != h.Key {
			t.Errorf("%s %s: kernel key %#x, Key() = %#x", h.Type, describe(r), h.Key, k)
		}
		fo, ok := r.(*FileOpen)
		if !ok {
			continue
		}
		canon := *fo
		canon.Header = Header{Type: RecFileOpen, COE: fo.COE}
		canon.File.Path.Name = CanonicalPath(fo.File.Path.Name, fo.File.Inode.SMagic, fo.File.Inode.DevMajor, fo.TGID)
		ck, _ := Key(&canon)
		switch {
		case strings.HasPrefix(fo.File.Path.Name, fmt.Sprintf("/proc/%d/", run.pid)):
			procSelfChecked = true
			if canon.File.Path.Name[:11] != "/proc/self/" || ck != h.Key {
				t.Errorf("%s: canonical %q, key %#x; want /proc/self/... with the kernel's key %#x", fo.File.Path.Name, canon.File.Path.Name, ck, h.Key)
			}
		case fo.File.Inode.SMagic == 0x50495045:
			pipeChecked = true
			t.Logf("pipe open: kernel name %q (flags %#x), canonical %q", fo.File.Path.Name, fo.File.Path.Flags, canon.File.Path.Name)
			if ck != h.Key {
				t.Errorf("pipe %q: key of its canonical name %q = %#x; want the kernel's %#x", fo.File.Path.Name, canon.File.Path.Name, ck, h.Key)
			}
		}
	}
	if !procSelfChecked {
		t.Errorf("no checked file_open under /proc/%d/", run.pid)
	}
	if !pipeChecked {
		t.Error("no checked file_open of a pipe")
	}
	if !passed {
		t.Error("no record the kernel passes by policy (an anonymous data mapping)")
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	names := []struct {
		name               string
		magic, major, tgid uint32
	}{
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", 0xef53, 8, 4711},
		{"/proc/4711/cgroup", procSuperMagic, 0, 4711},
		{"pipe:[123456]", 0x50495045, 0, 4711},
	}
	for _, n := range names {
		b.Run(n.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				CanonicalPath(n.name, n.magic, n.major, n.tgid)
			}
		})
	}
}
