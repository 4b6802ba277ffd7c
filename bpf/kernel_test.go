package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// checkFileOpen finds the FileOpen record of path by pid and checks its
// cells against stat and statfs of the file and the expected COE.
func checkFileOpen(t *testing.T, recs []Record, ns uint64, pid int, path string, uid, gid uint32) *FileOpen {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		fo, ok := r.(*FileOpen)
		if !ok || fo.File.Path.Name != path || int(fo.TGID) != pid {
			continue
		}
		h := fo.Head()
		if h.NS != ns {
			t.Errorf("file_open %s: NS = %d; want %d", path, h.NS, ns)
		}
		c := h.COE
		for name, got := range map[string]uint32{"uid": c.UID, "euid": c.EUID, "suid": c.SUID, "fsuid": c.FSUID} {
			if got != uid {
				t.Errorf("file_open %s: COE %s = %d; want %d", path, name, got, uid)
			}
		}
		for name, got := range map[string]uint32{"gid": c.GID, "egid": c.EGID, "sgid": c.SGID, "fsgid": c.FSGID} {
			if got != gid {
				t.Errorf("file_open %s: COE %s = %d; want %d", path, name, got, gid)
			}
		}
		in := fo.File.Inode
		if in.Ino != st.Ino || in.UID != st.Uid || in.GID != st.Gid || in.Mode != st.Mode || int64(in.Size) != st.Size {
			t.Errorf("file_open %s: inode ino=%d uid=%d gid=%d mode=%o size=%d; want %d %d %d %o %d",
				path, in.Ino, in.UID, in.GID, in.Mode, in.Size, st.Ino, st.Uid, st.Gid, st.Mode, st.Size)
		}
		if in.MTimeSec != st.Mtim.Sec || int64(in.MTimeNsec) != st.Mtim.Nsec || in.CTimeSec != st.Ctim.Sec {
			t.Errorf("file_open %s: mtime %d.%d ctime %d; want %d.%d %d", path, in.MTimeSec, in.MTimeNsec, in.CTimeSec,
				st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec)
		}
		if in.SMagic != uint32(sfs.Type) {
			t.Errorf("file_open %s: s_magic = %#x; want %#x", path, in.SMagic, uint32(sfs.Type))
		}
		if fo.File.Flags&unix.O_ACCMODE != unix.O_RDONLY {
			t.Errorf("file_open %s: flags = %#o; want read only", path, fo.File.Flags)
		}
		if fo.File.Path.Flags != 0 {
			t.Errorf("file_open %s: path flags = %#x; want 0", path, fo.File.Path.Flags)
		}
		if fo.Process() == "" {
			t.Errorf("file_open %s: empty comm", path)
		}
		return fo
	}
	t.Errorf("no file_open record of %s by pid %d among %d records", path, pid, len(recs))
	return nil
}

// checkOnly fails for records of ns from tasks other than pids and the
// tasks they forked, and for records of other namespaces.
func checkOnly(t *testing.T, recs []Record, ns uint64, pids ...int) {
	t.Helper()
	allowed := map[uint32]bool{}
	for _, p := range pids {
		allowed[uint32(p)] = true
	}
	for _, r := range recs {
		h := r.Head()
		if h.NS != ns {
			t.Errorf("record %s of pid %d in namespace %d; only %d is modeled", h.Type, h.PID, h.NS, ns)
			continue
		}
		if h.Type == RecRepeatCount {
			continue // names no task; its record was checked
		}
		if !allowed[h.TGID] && !allowed[h.PID] {
			t.Errorf("record %s of pid %d/%d (%s) in namespace %d; want only pids %v and their children", h.Type, h.PID, h.TGID, h.Process(), ns, pids)
		}
		if f, ok := r.(*TaskFork); ok {
			allowed[f.ChildPID] = true
		}
	}
}

func recordsOf(recs []Record, ns uint64) []Record {
	var out []Record
	for _, r := range recs {
		if r.Head().NS == ns {
			out = append(out, r)
		}
	}
	return out
}

func exitedMain(pid int) func(Record) bool {
	return func(r Record) bool {
		e, ok := r.(*TaskExit)
		return ok && int(e.PID) == pid
	}
}

// captureOpen runs the open helper enrolled in a fresh namespace and
// returns the records of that namespace.
func captureOpen(t *testing.T, b Backend, cred *syscall.Credential) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	target := filepath.Join(dir, "hostname")
	writeFile(t, target, "vigil-test\n")
	raw := keepRaw(c)
	col := collect(t, c)
	ns := nextNS()
	run := runEnrolled(t, c, ns, workload{next: "open", env: []string{envFiles + "=" + target}, cred: cred, bin: bin})
	if want := target + " ok\n"; run.out != want {
		t.Fatalf("helper output %q; want %q", run.out, want)
	}
	if !col.until(exitedMain(run.pid)) {
		t.Errorf("no task_exit record of pid %d", run.pid)
	}
	recs := col.finish(t)
	uid, gid := uint32(0), uint32(0)
	if cred != nil {
		uid, gid = cred.Uid, cred.Gid
	}
	fo := checkFileOpen(t, recs, ns, run.pid, target, uid, gid)
	checkOnly(t, recs, ns, run.pid)
	observed := b == BackendTracepoint
	if fo != nil && (fo.Flags&FlagObserved != 0) != observed {
		t.Errorf("file_open flags %#x; observed flag want %v", fo.Flags, observed)
	}
	// The exec that started the workload gave it a new TTD.
	var ex *Exec
	for _, r := range recs {
		if e, ok := r.(*Exec); ok && int(e.TGID) == run.pid {
			ex = e
		}
	}
	if ex == nil {
		t.Fatalf("no exec record of pid %d", run.pid)
	}
	if ex.File.Path.Name != bin || ex.TTD == 0 || ex.TTD == ex.PrevTTD || ex.PTTD != 0 {
		t.Errorf("exec: path %q ttd %d prev %d pttd %d; want %q, a new ttd, pttd 0", ex.File.Path.Name, ex.TTD, ex.PrevTTD, ex.PTTD, bin)
	}
	if fo != nil && fo.TTD != ex.TTD {
		t.Errorf("file_open TTD %d; want the exec's %d", fo.TTD, ex.TTD)
	}
	if lost, err := c.Lost(); err != nil || len(lost) != 0 {
		t.Errorf("Lost() = %v, %v; want none", lost, err)
	}
	raw.save(t, ns, b)
}

func TestTracepointCaptureFileOpen(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	captureOpen(t, BackendTracepoint, nil)
}

func TestTracepointCaptureCOE(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run a workload as uid 65534")
	}
	captureOpen(t, BackendTracepoint, &syscall.Credential{Uid: 65534, Gid: 65534})
}

func TestTracepointConnect(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testConnect(t, BackendTracepoint)
}

func testConnect(t *testing.T, b Backend) {
	c := openCapture(t, b)
	raw := keepRaw(c)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	col := collect(t, c)
	ns := nextNS()
	run := runEnrolled(t, c, ns, workload{next: "connect", env: []string{envAddr + "=" + ln.Addr().String()}})
	if run.out != "ok\n" {
		t.Fatalf("helper output %q; want ok", run.out)
	}
	col.until(exitedMain(run.pid))
	recs := col.finish(t)
	checkOnly(t, recs, ns, run.pid)
	raw.save(t, ns, b)
	// TSEM's convention: the network-order port read as a host integer.
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], uint16(port))
	wantPort := binary.LittleEndian.Uint16(be[:])
	wantAddr := binary.LittleEndian.Uint32([]byte{127, 0, 0, 1})
	for _, r := range recs {
		sa, ok := r.(*SocketAddr)
		if !ok || sa.Type != RecSocketConnect || sa.Addr.Family != afInet {
			continue
		}
		if sa.Addr.Port != wantPort || sa.Addr.Addr4 != wantAddr || sa.Sock.Family != afInet || sa.Sock.Type != unix.SOCK_STREAM {
			t.Errorf("socket_connect: %+v %+v; want port %d (raw %d) addr 127.0.0.1", sa.Sock, sa.Addr, port, wantPort)
		}
		return
	}
	t.Errorf("no socket_connect record among %d", len(recs))
}

// LSM backend tests: they skip on kernels that refuse BPF LSM programs
// (this project's hosts) and run in the VM (go run ./test/vm -- ./bpf).

func TestLSMCaptureFileOpen(t *testing.T) {
	captureOpen(t, BackendLSM, nil)
}

func TestLSMConnect(t *testing.T) {
	testConnect(t, BackendLSM)
}

// TestLSMStickyFork: a child forked by an enrolled task is in the same
// namespace, with the parent's TTD as its PTTD.
func TestLSMStickyFork(t *testing.T) {
	testStickyFork(t, BackendLSM)
}

func TestTracepointStickyFork(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testStickyFork(t, BackendTracepoint)
}

func testStickyFork(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	target := filepath.Join(dir, "child-file")
	writeFile(t, target, "x")
	col := collect(t, c)
	ns := nextNS()
	run := runEnrolled(t, c, ns, workload{next: "fork", env: []string{envFiles + "=" + target}, bin: bin})
	var child int
	for _, line := range strings.Split(run.out, "\n") {
		fmt.Sscanf(line, "child %d", &child)
	}
	if child == 0 {
		t.Fatalf("helper output %q: no child pid", run.out)
	}
	col.until(exitedMain(run.pid))
	recs := col.finish(t)
	checkOnly(t, recs, ns, run.pid, child)
	fo := checkFileOpen(t, recs, ns, child, target, 0, 0)
	var parentTTD uint64
	for _, r := range recs {
		if e, ok := r.(*Exec); ok && int(e.TGID) == run.pid {
			parentTTD = e.TTD
		}
	}
	var childExec *Exec
	for _, r := range recs {
		if e, ok := r.(*Exec); ok && int(e.TGID) == child {
			childExec = e
		}
	}
	if childExec == nil {
		t.Fatalf("no exec record of the child %d", child)
	}
	if childExec.PTTD != parentTTD || childExec.PrevTTD != parentTTD {
		t.Errorf("child exec: pttd %d prev %d; want the parent's ttd %d for both", childExec.PTTD, childExec.PrevTTD, parentTTD)
	}
	if fo != nil && (fo.TTD != childExec.TTD || fo.PTTD != parentTTD) {
		t.Errorf("child file_open: ttd %d pttd %d; want %d %d", fo.TTD, fo.PTTD, childExec.TTD, parentTTD)
	}
	forked := false
	for _, r := range recs {
		if f, ok := r.(*TaskFork); ok && int(f.ChildPID) == child {
			forked = true
		}
	}
	if !forked {
		t.Errorf("no task_fork record for child %d", child)
	}
}

// TestLSMEnforce learns a workload, seals it into an allow set, enforces:
// the same opens work, an open outside the model fails with EPERM, and
// the kernel's keys equal Key's.
func TestLSMEnforce(t *testing.T) {
	c := openCapture(t, BackendLSM)
	dir, bin := sharedDir(t)
	inModel := filepath.Join(dir, "in-model")
	outOfModel := filepath.Join(dir, "out-of-model")
	writeFile(t, inModel, "a")
	writeFile(t, outOfModel, "b")
	col := collect(t, c)
	ns := nextNS()
	// GOMAXPROCS set: the Go runtime then does not read /proc/PID/cgroup,
	// a path that differs from run to run.
	learn := workload{next: "open", env: []string{envFiles + "=" + inModel, "GOMAXPROCS=2"}, bin: bin}
	var keys []uint64
	for range 2 {
		run := runEnrolled(t, c, ns, learn)
		if want := inModel + " ok\n"; run.out != want {
			t.Fatalf("learning run output %q; want %q", run.out, want)
		}
		col.until(exitedMain(run.pid))
	}
	for _, r := range recordsOf(col.snapshot(), ns) {
		if k, ok := Key(r); ok {
			keys = append(keys, k)
		}
	}
	// The Go runtime's start reads /proc/PID/cgroup, a path no model of
	// another run holds; the enforced run switches to enforce after it.
	// The in-model file three times: the kernel allows the first after
	// its check and counts the repeats in its repeat cache.
	enforce := workload{next: "wait-open", env: []string{envFiles + "=" + strings.Repeat(inModel+":", 3) + outOfModel, "GOMAXPROCS=2"}, bin: bin,
		midway: func() {
			if err := c.Allow(ns, keys...); err != nil {
				t.Fatal(err)
			}
			if err := c.SetMode(ns, ModeEnforce); err != nil {
				t.Fatal(err)
			}
		}}
	run := runEnrolled(t, c, ns, enforce)
	if want := strings.Repeat(inModel+" ok\n", 3) + outOfModel + " EPERM\n"; run.out != want {
		t.Errorf("enforced run output %q; want %q", run.out, want)
	}
	col.until(exitedMain(run.pid))
	recs := col.finish(t)
	denied := false
	for _, r := range recs {
		h := r.Head()
		if int(h.TGID) != run.pid || h.Flags&FlagKey == 0 {
			continue
		}
		if h.Flags&FlagDenied != 0 {
			t.Logf("denied: %s %+v", h.Type, describe(r))
		}
		if k, _ := Key(r); k != h.Key {
			t.Errorf("%s: kernel key %#x, Key() = %#x", h.Type, h.Key, k)
		}
		if fo, ok := r.(*FileOpen); ok && fo.File.Path.Name == outOfModel {
			denied = fo.Flags&FlagDenied != 0 && fo.Flags&FlagUntrusted != 0
		}
	}
	if !denied {
		t.Errorf("no file_open record of %s flagged denied and untrusted", outOfModel)
	}
	match := fileOpens(inModel, run.pid)
	if n, records := eventCount(recs, match), countRecords(recs, match); n != 3 || records != 1 {
		t.Errorf("enforced run: %d file_open records of %s standing for %d opens; want 1 record for 3 (allowed repeats cached)", records, inModel, n)
	}
}

// TestTracepointRefusesEnforce: the tracepoint backend says it cannot
// enforce.
func TestTracepointRefusesEnforce(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	c := openCapture(t, BackendTracepoint)
	if c.CanEnforce() {
		t.Error("CanEnforce() = true for the tracepoint backend")
	}
	if err := c.SetMode(1, ModeEnforce); err == nil {
		t.Error("SetMode(enforce) on the tracepoint backend succeeded")
	}
}

// describe prints a record's payload for failure messages.
func describe(r Record) string {
	switch r := r.(type) {
	case *FileOpen:
		return fmt.Sprintf("path=%q flags=%#o", r.File.Path.Name, r.File.Flags)
	case *MmapFile:
		return fmt.Sprintf("prot=%#x flags=%#x file=%v %q", r.Prot, r.MmapFlags, r.File.Present, r.File.Path.Name)
	case *Capable:
		return fmt.Sprintf("cap=%d opts=%#x", r.Cap, r.Opts)
	case *Exec:
		return fmt.Sprintf("path=%q", r.File.Path.Name)
	}
	return fmt.Sprintf("%+v", r)
}

// hostCapture opens the tracepoint backend (a host test: skipped in the
// VM) and makes a file name in the shared directory, with the helper
// binary there.
func hostCapture(t *testing.T, name string) (c *Capture, bin, path string) {
	t.Helper()
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	c = openCapture(t, BackendTracepoint)
	dir, bin := sharedDir(t)
	path = filepath.Join(dir, name)
	writeFile(t, path, "x")
	return c, bin, path
}

// TestTracepointHostModel: with namespace 0 modeled, a task nobody
// enrolled is captured in namespace 0; before and after, it is not.
func TestTracepointHostModel(t *testing.T) {
	c, bin, path := hostCapture(t, "host-file")
	opened := func(recs []Record) bool {
		for _, r := range recs {
			if fo, ok := r.(*FileOpen); ok && fo.File.Path.Name == path && fo.NS == 0 {
				return true
			}
		}
		return false
	}
	col := collect(t, c)
	runOpenLoop(t, nil, 0, bin, path, 3)
	if err := c.SetNamespace(0, NamespaceConfig{Model: true}); err != nil {
		t.Fatal(err)
	}
	runOpenLoop(t, nil, 0, bin, path, 3)
	if err := c.DropNamespace(0); err != nil {
		t.Fatal(err)
	}
	runOpenLoop(t, nil, 0, bin, path, 3)
	modeled := col.until(func(r Record) bool { return opened([]Record{r}) })
	recs := col.finish(t)
	if !modeled {
		t.Errorf("no namespace 0 file_open of %s while the host was modeled (%d records)", path, len(recs))
	}
	n := eventCount(recs, func(r Record) bool {
		fo, ok := r.(*FileOpen)
		return ok && fo.File.Path.Name == path
	})
	if n != 3 {
		t.Errorf("%d file_open records of %s; want 3 (the modeled run's)", n, path)
	}
}

// TestTracepointRingFill: records nobody reads fill the ring buffer, and
// RingFill says so; a closed Capture reports 0 instead of touching the
// unmapped ring.
func TestTracepointRingFill(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	c := openCapture(t, BackendTracepoint)
	if got := c.RingFill(); got != 0 {
		t.Errorf("RingFill() of a fresh capture = %v; want 0", got)
	}
	dir, bin := sharedDir(t)
	path := filepath.Join(dir, "fill-file")
	writeFile(t, path, "x")
	runOpenLoop(t, c, 7, bin, path, 500) // no reader: the records stay
	got := c.RingFill()
	if got <= 0 || got > 1 {
		t.Errorf("RingFill() after 500 unread opens = %v; want in (0, 1]", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.RingFill(); got != 0 {
		t.Errorf("RingFill() after Close = %v; want 0", got)
	}
}

// TestLSMSignalNewThread: a signal to a thread that has made no event yet
// (no task storage) describes the target by the state the thread inherits
// at fork: the sender's namespace and TTD, not a zero target in another
// namespace.
func TestLSMSignalNewThread(t *testing.T) {
	c := openCapture(t, BackendLSM)
	_, bin := sharedDir(t)
	col := collect(t, c)
	ns := nextNS()
	const threads = 8
	run := runEnrolled(t, c, ns, workload{next: "signal-threads", env: []string{envN + "=" + strconv.Itoa(threads)}, bin: bin})
	tids := map[uint32]bool{}
	for _, line := range strings.Split(run.out, "\n") {
		var (
			tid    uint32
			result string
		)
		if n, _ := fmt.Sscanf(line, "tid %d %s", &tid, &result); n == 2 {
			if result != "ok" {
				t.Fatalf("tgkill of thread %d: %s", tid, result)
			}
			tids[tid] = true
		}
	}
	if len(tids) != threads {
		t.Fatalf("helper output %q: want %d threads signalled", run.out, threads)
	}
	col.until(exitedMain(run.pid))
	recs := col.finish(t)
	seen := 0
	for _, r := range recs {
		k, ok := r.(*TaskKill)
		if !ok || int(k.TGID) != run.pid || !tids[k.Target.PID] || k.Sig != uint32(unix.SIGURG) {
			continue
		}
		seen++
		if k.Target.NS != ns || k.Target.TTD != k.TTD || k.Target.TGID != k.TGID || k.CrossNS != 0 {
			t.Errorf("SIGURG to new thread %d: target %+v cross_ns %d; want namespace %d, ttd %d (the sender's), cross_ns 0",
				k.Target.PID, k.Target, k.CrossNS, ns, k.TTD)
		}
	}
	if seen < threads {
		t.Errorf("%d task_kill records of the %d signals", seen, threads)
	}
}

func TestLSMTaskStatePending(t *testing.T) {
	testTaskStatePending(t, BackendLSM)
}

func TestTracepointTaskStatePending(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("the VM runs the LSM backend tests")
	}
	testTaskStatePending(t, BackendTracepoint)
}

// testTaskStatePending: a task a member forked is a member from its fork,
// before its first event (its state waits in the pending table), and
// TaskState says so: the agent's enroller, which finds it in its
// container's cgroup in that moment, must not enrol it anew as a root.
func testTaskStatePending(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	pidFile := filepath.Join(dir, "child-pid")
	ns := nextNS()
	var childNS uint64
	var childOK bool
	var stateErr error
	runEnrolled(t, c, ns, workload{next: "fork-pending", env: []string{envFiles + "=" + pidFile}, bin: bin, midway: func() {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			stateErr = err
			return
		}
		child, err := strconv.Atoi(string(data))
		if err != nil {
			stateErr = err
			return
		}
		childNS, _, _, _, childOK, stateErr = c.TaskState(child)
	}})
	if stateErr != nil || !childOK || childNS != ns {
		t.Errorf("TaskState(child before its first event) = namespace %d, ok %v, %v; want namespace %d", childNS, childOK, stateErr, ns)
	}
}
