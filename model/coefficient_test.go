package model_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/model"
)

// kernelCase is one event description with the coefficient the TSEM kernel
// computed for it.
type kernelCase struct {
	name string
	line []byte
	want model.Coefficient
}

// kernelCases reads every trajectory with its .coefficients file and every
// vector of ../testdata/tsem.
func kernelCases(tb testing.TB) []kernelCase {
	tb.Helper()
	dir := filepath.Join("..", "testdata", "tsem")
	var out []kernelCase
	for _, n := range []string{"process_1", "process_3", "process_4", "process_6"} {
		lines := readLines(tb, filepath.Join(dir, n+".json"))
		coeffs := readLines(tb, filepath.Join(dir, n+".coefficients"))
		if len(lines) != len(coeffs) || len(lines) == 0 {
			tb.Fatalf("%s: %d events, %d coefficients", n, len(lines), len(coeffs))
		}
		for i := range lines {
			c, err := model.ParseCoefficient(string(coeffs[i]))
			if err != nil {
				tb.Fatalf("%s.coefficients:%d: %v", n, i+1, err)
			}
			out = append(out, kernelCase{name: fmt.Sprintf("%s.json:%d", n, i+1), line: lines[i], want: c})
		}
	}
	for i, l := range readLines(tb, filepath.Join(dir, "vectors.jsonl")) {
		var v struct{ Name, Coefficient, Event string }
		if err := json.Unmarshal(l, &v); err != nil {
			tb.Fatalf("vectors.jsonl:%d: %v", i+1, err)
		}
		c, err := model.ParseCoefficient(v.Coefficient)
		if err != nil {
			tb.Fatalf("vectors.jsonl:%d: %v", i+1, err)
		}
		out = append(out, kernelCase{name: fmt.Sprintf("vectors.jsonl:%d %s", i+1, v.Name), line: []byte(v.Event), want: c})
	}
	return out
}

func readLines(tb testing.TB, path string) [][]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestEventCoefficientReproducesKernel(t *testing.T) {
	cases := kernelCases(t)
	if len(cases) != 155+2+5+1+17 {
		t.Fatalf("read %d reference events; want 180", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := events.Parse(tc.line)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			got, err := model.EventCoefficient(e, nil)
			if err != nil {
				t.Fatalf("EventCoefficient = %v", err)
			}
			if got != tc.want {
				t.Errorf("EventCoefficient(%s) = %s; want %s", e.Header.Type, got, tc.want)
			}
		})
	}
}

// TestEventCoefficientInputs checks that each input the layout names
// changes the coefficient, and that pseudonyms replace the digest.
func TestEventCoefficientInputs(t *testing.T) {
	cases := kernelCases(t)
	base, err := events.Parse(cases[2].line) // process_1.json:3, file_open /usr/bin/bash
	if err != nil {
		t.Fatal(err)
	}
	want, _ := model.EventCoefficient(base, nil)
	tests := []struct {
		name   string
		mutate func(e *events.Event)
		pseudo func(string) bool
		same   bool
	}{
		{name: "unchanged", mutate: func(*events.Event) {}, same: true},
		{name: "ts is not hashed", mutate: func(e *events.Event) { e.Header.TS++ }, same: true},
		{name: "number is not hashed", mutate: func(e *events.Event) { e.Header.Number++ }, same: true},
		{name: "task_id", mutate: func(e *events.Event) { e.Header.TaskID.Bytes()[0] ^= 1 }},
		{name: "p_task_id", mutate: func(e *events.Event) { e.Header.PTaskID.Bytes()[0] ^= 1 }},
		{name: "fsgid", mutate: func(e *events.Event) { e.COE.FSGID++ }},
		{name: "capeff", mutate: func(e *events.Event) { e.COE.CapEff ^= 1 << 40 }},
		{name: "digest", mutate: func(e *events.Event) { e.Payload.(*events.FileEvent).File.Digest.Bytes()[31] ^= 1 }},
		{name: "pathname", mutate: func(e *events.Event) { e.Payload.(*events.FileEvent).File.Path.Pathname += "x" }},
		{name: "path type", mutate: func(e *events.Event) { e.Payload.(*events.FileEvent).File.Path.Type = "namespace" }},
		{name: "pseudonym of another path", mutate: func(*events.Event) {}, pseudo: func(p string) bool { return p == "/etc/hosts" }, same: true},
		{name: "pseudonym", mutate: func(*events.Event) {}, pseudo: func(p string) bool { return p == "/usr/bin/bash" }},
		{name: "pseudonym equals empty digest", mutate: func(e *events.Event) {
			e.Payload.(*events.FileEvent).File.Digest = events.Digest32(sha256.Sum256(nil))
		}, pseudo: func(p string) bool { return p == "/usr/bin/bash" }, same: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := events.Parse(cases[2].line)
			tc.mutate(e)
			got, err := model.EventCoefficient(e, tc.pseudo)
			if err != nil {
				t.Fatal(err)
			}
			if (got == want) != tc.same {
				t.Errorf("EventCoefficient = %s, base %s; want same=%v", got, want, tc.same)
			}
		})
	}
	// A digest replaced by a pseudonym equals a file whose digest is H("").
	e1, _ := events.Parse(cases[2].line)
	c1, _ := model.EventCoefficient(e1, func(string) bool { return true })
	e2, _ := events.Parse(cases[2].line)
	e2.Payload.(*events.FileEvent).File.Digest = events.Digest32(sha256.Sum256(nil))
	c2, _ := model.EventCoefficient(e2, nil)
	if c1 != c2 {
		t.Errorf("pseudonym coefficient %s != coefficient with H(\"\") digest %s", c1, c2)
	}
}

func TestEventCoefficientNoLayout(t *testing.T) {
	line := []byte(`{"event": {"context": "1", "number": "1", "process": "a", "type": "settime", "ttd": "1", "p_ttd": "1", "task_id": "` + strings.Repeat("0", 64) + `", "p_task_id": "` + strings.Repeat("0", 64) + `", "ts": "1"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0"}, "settime": {"ts": {"seconds": "1", "nsecs": "0"}}}`)
	e, err := events.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.EventCoefficient(e, nil); !errors.Is(err, model.ErrNoCellLayout) {
		t.Errorf("EventCoefficient(settime) error = %v; want ErrNoCellLayout", err)
	}
}

func decodedReference(b *testing.B) []*events.Event {
	b.Helper()
	var evs []*events.Event
	for _, tc := range kernelCases(b) {
		e, err := events.Parse(tc.line)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

// BenchmarkEventCoefficient measures the coefficient of already decoded
// events (the reference events in turn), and, in the same run, a plain
// SHA-256 loop over exactly the bytes a coefficient hashes (COE, CELL and
// the outer message) for the ratio.
func BenchmarkEventCoefficient(b *testing.B) {
	evs := decodedReference(b)
	b.Run("coefficient", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := model.EventCoefficient(evs[i%len(evs)], nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	type hashed struct{ coe, cell, outer []byte }
	var in []hashed
	for _, e := range evs {
		cell, err := model.AppendCell(nil, e, nil)
		if err != nil {
			b.Fatal(err)
		}
		coe := fmt.Appendf(nil, "%040d", 0) // 40 bytes, the size of the COE layout
		outer := append([]byte(e.Header.Type), make([]byte, 4*32)...)
		in = append(in, hashed{coe, cell, outer})
	}
	b.Run("sha256-same-bytes", func(b *testing.B) {
		b.ReportAllocs()
		var sink [32]byte
		for i := 0; b.Loop(); i++ {
			h := &in[i%len(in)]
			a := sha256.Sum256(h.coe)
			c := sha256.Sum256(h.cell)
			o := sha256.Sum256(h.outer)
			sink[0] ^= a[0] ^ c[0] ^ o[0]
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		_ = sink
	})
}

// BenchmarkPoints is `vigil model points` without I/O: Parse and
// EventCoefficient of each reference line.
func BenchmarkPoints(b *testing.B) {
	cases := kernelCases(b)
	var bytesIn int
	for _, tc := range cases {
		bytesIn += len(tc.line)
	}
	b.SetBytes(int64(bytesIn / len(cases)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e, err := events.Parse(cases[i%len(cases)].line)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := model.EventCoefficient(e, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestAppendCellSizes checks the CELL layouts the reference data does not
// exercise by their sizes, worked out from the byte layout in
// testdata/tsem/README.md (inode 64 bytes, dev 8, str(s) 4+len(s),
// sock 12+32+32).
func TestAppendCellSizes(t *testing.T) {
	in := events.Inode{Mode: 0o40755, SMagic: 0xef53, SID: "sda3"}
	path := events.Path{HasDev: true, Dev: events.Dev{Major: 8, Minor: 3}, Type: "root", Pathname: "/x"} // 8 + 8 + 6 = 22
	bare := events.Dentry{Path: path}                                                                    // 8 + 6 = 14
	full := events.Dentry{HasInode: true, Inode: in, Path: path}                                         // 64 + 14 = 78
	sock := events.Sock{Family: 2, Type: 1, Protocol: 6}
	inet := events.SockAddr{Kind: events.AddrInet, Port: 20480, Address: 16777343}
	inet6 := events.SockAddr{Kind: events.AddrInet6, Port: 20480, HasFlowScope: true, Flow: 1, Scope: 2}
	created := events.Path{Created: true, Instance: 4, Type: "namespace", Pathname: "/dev/console"}
	tests := []struct {
		typ  string
		p    events.Payload
		size int
	}{
		{"inode_create", &events.InodeCreate{Dir: in, Dentry: bare, Mode: 0o100644}, 64 + 14 + 2},
		{"inode_mknod", &events.InodeMknod{Dir: in, Dentry: bare, Mode: 0o20666, Dev: events.Dev{Major: 1, Minor: 3}}, 64 + 14 + 2 + 4},
		{"inode_unlink", &events.InodeRemove{Dir: in, Dentry: full}, 64 + 78},
		{"inode_symlink", &events.InodeSymlink{Dir: in, Dentry: bare, OldName: "/y"}, 64 + 14 + 6},
		{"inode_setattr", &events.InodeSetattr{Dentry: full}, 78 + 16 + 8},
		{"sb_statfs", &events.DentryEvent{Dentry: full}, 78},
		{"sb_mount", &events.SbMount{HasDevName: true, DevName: "proc", Path: events.Path{HasDev: true, Type: "root", Pathname: "/mnt"}, HasFSType: true, FSType: "proc"}, 8 + (0 + 8 + 8) + 8 + 8},
		{"sb_mount", &events.SbMount{Path: events.Path{Type: "root", Pathname: "/mnt"}}, 4 + 16 + 4 + 8},
		{"sb_umount", &events.SbUmount{Mnt: full}, 78 + 4},
		{"sb_pivotroot", &events.PathPair{Old: path, New: path}, 44},
		{"move_mount", &events.PathPair{Old: path, New: path}, 44},
		{"socket_bind", &events.SocketAddr{Sock: sock, Addr: inet}, 76 + 6},
		{"socket_connect", &events.SocketAddr{Sock: sock, Addr: inet6}, 76 + 2 + 16 + 8},
		{"socket_accept", &events.SocketAddr{Sock: sock, Addr: inet6}, 76 + 2 + 16},
		{"socket_connect", &events.SocketAddr{Sock: sock, Addr: events.SockAddr{Kind: events.AddrUnix, Unix: "/run/x"}}, 76 + 6},
		{"socket_connect", &events.SocketAddr{Sock: sock, Addr: events.SockAddr{Kind: events.AddrOther}}, 76 + 32},
		{"socket_recvmsg", &events.SocketMsg{Sock: sock}, 76},
		{"socket_recvmsg", &events.SocketMsg{Sock: sock, HasAddr: true, Addr: inet6}, 76 + 2 + 16},
		{"socket_socketpair", &events.SockPair{A: sock, B: sock}, 152},
		{"unix_may_send", &events.SockPair{A: sock, B: sock}, 152},
		{"task_getscheduler", &events.TaskTarget{}, 32},
		{"task_setrlimit", &events.TaskSetrlimit{}, 32 + 4 + 16},
		{"ptrace_access_check", &events.PtraceAccessCheck{}, 36},
		{"capget", &events.Capget{}, 32 + 24},
		{"capset", &events.Capset{}, 24},
		{"key_permission", &events.KeyPermission{}, 4 + 2 + 2 + 8 + 4 + 4},
		{"mmap_file", &events.MmapFile{Prot: 4}, 8},
		{"file_open", &events.FileEvent{File: events.File{Inode: in, Path: created}}, 4 + 64 + (0 + 13 + 9 + 8 + 32) + 32},
		{"file_receive", &events.FileEvent{File: events.File{Inode: in, Path: path}}, 4 + 64 + 22 + 32},
		{"file_lock", &events.FileCmd{File: events.File{Inode: in, Path: path}}, 4 + 64 + 22 + 32 + 4},
		// Layouts taken from the TSEM kernel's map.c (see doc.go).
		{"inode_link", &events.InodeLink{OldDentry: full, Dir: in, NewDentry: bare}, 78 + 64 + 14},
		{"inode_rename", &events.InodeRename{OldDir: in, OldDentry: bare, NewDir: in, NewDentry: full}, 64 + 14 + 64 + 78},
		{"inode_killpriv", &events.DentryEvent{Dentry: full}, 78},
		{"inode_listxattr", &events.DentryEvent{Dentry: bare}, 14},
		{"quota_on", &events.DentryEvent{Dentry: full}, 78},
		{"inode_getxattr", &events.InodeXattr{Dentry: full, Name: "user.a"}, 78 + 4 + 6},
		{"inode_removexattr", &events.InodeXattr{Dentry: bare, Name: "user.a"}, 14 + 4 + 6},
		{"sb_remount", &events.SbRemount{Dentry: full, FSType: "ext4", Flags: 1}, 78 + 8 + 8},
		{"socket_getsockname", &events.SockEvent{Sock: sock}, 76},
		{"socket_getpeername", &events.SockEvent{Sock: sock}, 76},
		{"socket_listen", &events.SockValue{Sock: sock, Value: 128}, 76 + 4},
		{"socket_shutdown", &events.SockValue{Sock: sock, Value: 1}, 76 + 4},
		{"socket_setsockopt", &events.SocketSetsockopt{Sock: sock, Level: 1, Optname: 2}, 76 + 8},
		{"task_setnice", &events.TaskValue{Value: -5}, 64 + 4},
		{"task_setioprio", &events.TaskValue{Value: 4}, 64 + 4},
		{"task_prlimit", &events.TaskPrlimit{Flags: 2}, 4 + 4 + 4},
		{"ptrace_traceme", &events.PtraceTraceme{}, 32},
		{"kernel_read_file", &events.KernelReadFile{File: events.File{Inode: in, Path: path}, ID: 2, Contents: 1}, 4 + 64 + 22 + 32 + 8},
		{"kernel_module_request", &events.Generic{Fields: []events.Field{{Key: "kmod_name", Value: "fs-xfs"}}}, 4 + 6},
		{"kernel_load_data", &events.Generic{Fields: []events.Field{{Key: "id", Value: "1"}, {Key: "contents", Value: "0"}}}, 8},
		{"syslog", &events.Generic{Fields: []events.Field{{Key: "type", Value: "3"}}}, 4},
		{"bpf", &events.Generic{Fields: []events.Field{{Key: "cmd", Value: "5"}, {Key: "size", Value: "144"}}}, 4},
		{"bpf_map", &events.Generic{Fields: []events.Field{{Key: "map", Object: true, Fields: []events.Field{{Key: "map_type", Value: "2"}}}, {Key: "fmode", Value: "3"}}}, 4},
		{"bpf_prog", &events.Generic{Fields: []events.Field{{Key: "prog", Object: true, Fields: []events.Field{{Key: "type", Value: "1"}, {Key: "attach_type", Value: "0"}}}}}, 4},
		{"file_permission", &events.Generic{}, len("file_permission") + 32},
		{"tun_dev_create", &events.Generic{}, len("tun_dev_create") + 32},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			e := &events.Event{Header: events.Header{Type: tc.typ}, Payload: tc.p}
			cell, err := model.AppendCell(nil, e, nil)
			if err != nil {
				t.Fatalf("AppendCell = %v", err)
			}
			if len(cell) != tc.size {
				t.Errorf("len(AppendCell(%s)) = %d; want %d", tc.typ, len(cell), tc.size)
			}
			if _, err := model.EventCoefficient(e, nil); err != nil {
				t.Errorf("EventCoefficient = %v", err)
			}
		})
	}
}

// TestAppendCellBytes checks the layouts whose bytes are fixed by the
// kernel source alone, byte by byte.
func TestAppendCellBytes(t *testing.T) {
	empty := sha256.Sum256(nil)
	var task [32]byte
	task[0] = 0xaa
	tests := []struct {
		name string
		e    *events.Event
		want []byte
	}{
		{"generic", &events.Event{Header: events.Header{Type: "file_permission"}, Payload: &events.Generic{}},
			append([]byte("file_permission"), empty[:]...)},
		{"kernel_module_request", &events.Event{Header: events.Header{Type: "kernel_module_request"}, Payload: &events.Generic{Fields: []events.Field{{Key: "kmod_name", Value: "fs-xfs"}}}},
			[]byte{6, 0, 0, 0, 'f', 's', '-', 'x', 'f', 's'}},
		{"bpf hashes only cmd", &events.Event{Header: events.Header{Type: "bpf"}, Payload: &events.Generic{Fields: []events.Field{{Key: "cmd", Value: "5"}, {Key: "size", Value: "144"}}}},
			[]byte{5, 0, 0, 0}},
		{"kernel_load_data", &events.Event{Header: events.Header{Type: "kernel_load_data"}, Payload: &events.Generic{Fields: []events.Field{{Key: "id", Value: "-1"}, {Key: "contents", Value: "1"}}}},
			[]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0}},
		{"task_setnice", &events.Event{Header: events.Header{Type: "task_setnice"}, Payload: &events.TaskValue{Task: events.Digest32(task), Value: -1}},
			append(append(append([]byte{}, task[:]...), make([]byte, 32)...), 0xff, 0xff, 0xff, 0xff)},
		{"task_prlimit", &events.Event{Header: events.Header{Type: "task_prlimit"}, Payload: &events.TaskPrlimit{Cred: events.Cred{COE: events.COE{UID: 1, EUID: 9}}, TCred: events.Cred{COE: events.COE{UID: 2}}, Flags: 3}},
			[]byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := model.AppendCell(nil, tc.e, nil)
			if err != nil {
				t.Fatalf("AppendCell = %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("AppendCell = %x; want %x", got, tc.want)
			}
		})
	}
}

// TestAppendCellStillUnknown lists descriptions that keep ErrNoCellLayout:
// kernel layouts not implemented, and members missing from a description.
func TestAppendCellStillUnknown(t *testing.T) {
	tests := []struct {
		typ string
		p   events.Payload
	}{
		{"settime", &events.Generic{}},
		{"netlink_send", &events.Generic{}},
		{"quotactl", &events.Generic{}},
		{"file_ioctl_compat", &events.Generic{}},
		{"kernel_read_file", &events.Generic{Fields: []events.Field{{Key: "id", Value: "2"}}}},
		{"kernel_module_request", &events.Generic{}},
		{"bpf", &events.Generic{Fields: []events.Field{{Key: "cmd", Value: "x"}}}},
		{"inode_setxattr", &events.InodeXattr{Name: "user.a", Value: "AA=="}},
		{"", &events.Generic{}},
		{"path_mkdir", &events.Generic{Fields: []events.Field{{Key: "x", Value: "1"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			e := &events.Event{Header: events.Header{Type: tc.typ}, Payload: tc.p}
			if _, err := model.EventCoefficient(e, nil); !errors.Is(err, model.ErrNoCellLayout) {
				t.Errorf("EventCoefficient(%s) error = %v; want ErrNoCellLayout", tc.typ, err)
			}
		})
	}
}

// TestGenericFromDescription parses a kernel description of a generic
// event (its cell object is empty) and checks it gets the generic cell.
func TestGenericFromDescription(t *testing.T) {
	zero := strings.Repeat("0", 64)
	line := []byte(`{"event": {"context": "1", "number": "1", "process": "a", "type": "tun_dev_create", "ttd": "1", "p_ttd": "1", "task_id": "` + zero + `", "p_task_id": "` + zero + `", "ts": "1"}, "COE": {"uid": "0", "euid": "0", "suid": "0", "gid": "0", "egid": "0", "sgid": "0", "fsuid": "0", "fsgid": "0", "capeff": "0x0"}, "tun_dev_create": {}}`)
	e, err := events.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	cell, err := model.AppendCell(nil, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	if want := append([]byte("tun_dev_create"), empty[:]...); !bytes.Equal(cell, want) {
		t.Errorf("cell = %x; want %x", cell, want)
	}
	if _, err := model.EventCoefficient(e, nil); err != nil {
		t.Errorf("EventCoefficient = %v", err)
	}
}
