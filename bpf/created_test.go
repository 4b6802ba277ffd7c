package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envDir names the directory of the create helper.
const envDir = "VIGIL_BPF_DIR"

// helperCreate is the helper mode "create": in VIGIL_BPF_DIR it makes
// files with random names as mkstemp does, and uses them the ways the
// created-file tags must follow:
//
//	tmp.*   created (instance 1), read back, unlinked
//	final   created as tmp.* (instance 2), renamed
//	same    created (3), unlinked, created again under the same name (4)
//	exe.*   created (5) with a copy of this binary, mapped PROT_EXEC and
//	        executed in mode "open" of final (another task, the same owner)
//	d.*     a directory (LSM: instance 6; the tracepoint backend does not
//	        see mkdir)
//
// and first rewrites VIGIL_BPF_FILES (existing files: an O_CREAT open
// that creates nothing tags nothing). It prints "NAME PATH" per file and
// "child PID" for the executed copy.
func helperCreate() int {
	dir := os.Getenv(envDir)
	var out strings.Builder
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "helper: create: %s: %v\n", what, err)
		return 3
	}
	for _, p := range strings.Split(os.Getenv(envFiles), ":") {
		if p == "" {
			continue
		}
		if err := os.WriteFile(p, []byte("rewritten\n"), 0o644); err != nil {
			return fail("rewrite", err)
		}
	}
	tmp, err := os.CreateTemp(dir, "tmp.*")
	if err != nil {
		return fail("tmp", err)
	}
	tmp.WriteString("one")
	tmp.Close()
	fmt.Fprintf(&out, "tmp %s\n", tmp.Name())
	two, err := os.CreateTemp(dir, "tmp.*")
	if err != nil {
		return fail("two", err)
	}
	two.WriteString("two")
	two.Close()
	final := filepath.Join(dir, "final")
	if err := os.Rename(two.Name(), final); err != nil {
		return fail("rename", err)
	}
	fmt.Fprintf(&out, "final %s\n", final)
	if _, err := os.ReadFile(tmp.Name()); err != nil {
		return fail("read tmp", err)
	}
	same := filepath.Join(dir, "same")
	for i := range 2 {
		if err := os.WriteFile(same, []byte("same"), 0o644); err != nil {
			return fail("same", err)
		}
		if i == 0 {
			if err := os.Remove(same); err != nil {
				return fail("remove same", err)
			}
		}
	}
	fmt.Fprintf(&out, "same %s\n", same)
	if err := os.Remove(tmp.Name()); err != nil {
		return fail("remove tmp", err)
	}
	exe, err := copySelf(dir)
	if err != nil {
		return fail("exe", err)
	}
	fmt.Fprintf(&out, "exe %s\n", exe)
	if err := mapExec(exe); err != nil {
		return fail("map exe", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envHelper+"=open", envFiles+"="+final)
	cmd.Stderr = os.Stderr
	child, err := cmd.Output()
	if err != nil || string(child) != final+" ok\n" {
		return fail("run exe", fmt.Errorf("%v, output %q", err, child))
	}
	fmt.Fprintf(&out, "child %d\n", cmd.Process.Pid)
	sub, err := os.MkdirTemp(dir, "d.*")
	if err != nil {
		return fail("mkdir", err)
	}
	fmt.Fprintf(&out, "dir %s\n", sub)
	os.Stdout.WriteString(out.String())
	return 0
}

// helperCreateLoop creates its file (O_CREAT|O_EXCL), then opens it
// VIGIL_BPF_N times as openloop does.
func helperCreateLoop() int {
	f, err := os.OpenFile(os.Getenv(envFiles), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: create-loop:", err)
		return 3
	}
	f.WriteString("x")
	f.Close()
	return helperMain("openloop")
}

// copySelf writes a copy of the running binary to a new file with a
// random name in dir, as a build writes the program it then runs.
func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "exe.*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o755)
	}
	return f.Name(), err
}

// mapExec maps the first page of path with PROT_EXEC (an mmap_file event
// on both backends).
func mapExec(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	b, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	return unix.Munmap(b)
}

// createdRun is one run of the create helper in a namespace.
type createdRun struct {
	ns    uint64
	pid   int
	files map[string]string // helper name -> path
	recs  []Record          // of the namespace
}

func runCreate(t *testing.T, c *Capture, col *collector, dir, bin string, rewrite ...string) createdRun {
	t.Helper()
	ns := nextNS()
	env := []string{envDir + "=" + dir, envFiles + "=" + strings.Join(rewrite, ":")}
	run := runEnrolled(t, c, ns, workload{next: "create", env: env, bin: bin})
	cr := createdRun{ns: ns, pid: run.pid, files: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(run.out), "\n") {
		name, val, _ := strings.Cut(line, " ")
		cr.files[name] = val
	}
	if cr.files["exe"] == "" || cr.files["child"] == "" || cr.files["dir"] == "" {
		t.Fatalf("create helper output %q", run.out)
	}
	child, _ := strconv.Atoi(cr.files["child"])
	if !col.until(exitedMain(run.pid)) || !col.until(exitedMain(child)) {
		t.Fatalf("no task_exit records of %d and %d", run.pid, child)
	}
	cr.recs = recordsOf(col.snapshot(), ns)
	return cr
}

// emptyDir removes everything in dir.
func emptyDir(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if slices.Contains(keep, e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// createdSig describes a record that names a file in dir the way the
// model must see it: the same in every run of the same workload. A tagged
// file's random name is left out (its tag names it), and the owner is
// told as the TTD of the helper's exec ("self") or of its copy ("child").
func createdSig(r Record, dir string, ttds map[uint64]string) (string, bool) {
	h := r.Head()
	name := func(p string, t CreatedTag) string {
		if t.In(h.NS) {
			return fmt.Sprintf("%s* #%d owner=%s", p[:strings.LastIndexByte(p, '/')+1], t.Instance, ttds[t.OwnerTTD])
		}
		if t.Instance != 0 {
			return p + " (created elsewhere)"
		}
		return p
	}
	in := func(p string) bool { return strings.Contains(p, filepath.Base(dir)+"/") }
	var what string
	switch r := r.(type) {
	case *FileOpen:
		if !in(r.File.Path.Name) {
			return "", false
		}
		what = fmt.Sprintf("flags=%#o %s", r.File.Flags, name(r.File.Path.Name, r.File.Inode.Created))
	case *MmapFile:
		if !r.File.Present || !in(r.File.Path.Name) {
			return "", false
		}
		what = fmt.Sprintf("prot=%#x %s", r.Prot, name(r.File.Path.Name, r.File.Inode.Created))
	case *Exec:
		if !in(r.File.Path.Name) {
			return "", false
		}
		what = name(r.File.Path.Name, r.File.Inode.Created)
	case *InodeCreate:
		if !in(r.Path.Name) {
			return "", false
		}
		what = fmt.Sprintf("mode=%#o %s", r.Mode, name(r.Path.Name, r.Created))
	case *InodeUnlink:
		if !in(r.Path.Name) {
			return "", false
		}
		what = name(r.Path.Name, r.Inode.Created)
	case *InodeSetattr:
		if !in(r.Path.Name) {
			return "", false
		}
		what = name(r.Path.Name, r.Inode.Created)
	case *InodeRename:
		if !in(r.OldPath.Name) {
			return "", false
		}
		what = name(r.OldPath.Name, r.OldInode.Created) + " -> " + name(r.NewPath.Name, r.NewInode.Created)
	default:
		return "", false
	}
	k, _ := Key(r)
	return fmt.Sprintf("%s %s by=%s key=%#x", h.Type, what, ttds[h.TTD], k), true
}

// createdSigs returns the sorted signatures of a run's records.
func createdSigs(cr createdRun, dir string) []string {
	ttds := map[uint64]string{}
	child, _ := strconv.Atoi(cr.files["child"])
	for _, r := range cr.recs {
		if e, ok := r.(*Exec); ok {
			switch int(e.TGID) {
			case cr.pid:
				ttds[e.TTD] = "self"
			case child:
				ttds[e.TTD] = "child"
			}
		}
	}
	var sigs []string
	for _, r := range cr.recs {
		if s, ok := createdSig(r, dir, ttds); ok {
			sigs = append(sigs, s)
		}
	}
	slices.Sort(sigs)
	return sigs
}

// testCreatedAcrossRuns runs the create helper in two namespaces, in the
// same directory emptied between them: its files get random names, yet
// every record that names them describes them the same way in both runs,
// allow keys included, because they carry their created tags.
func testCreatedAcrossRuns(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	pre := filepath.Join(dir, "pre")
	writeFile(t, pre, "made before the namespace\n")
	col := collect(t, c)
	one := runCreate(t, c, col, work, bin, pre)
	emptyDir(t, work)
	two := runCreate(t, c, col, work, bin, pre)
	if one.files["exe"] == two.files["exe"] {
		t.Fatalf("both runs made %s: the names should be random", one.files["exe"])
	}
	s1, s2 := createdSigs(one, work), createdSigs(two, work)
	if !slices.Equal(s1, s2) {
		t.Errorf("the runs describe their files differently:\nrun 1:\n  %s\nrun 2:\n  %s",
			strings.Join(s1, "\n  "), strings.Join(s2, "\n  "))
	}
	// What each file must carry, in the second run. Flags are f_flags
	// (O_LARGEFILE always): os.CreateTemp opens O_RDWR, os.WriteFile
	// O_WRONLY, reads O_RDONLY; the LSM's file_open sees the open before
	// the kernel drops O_CREAT, O_EXCL and O_TRUNC from them.
	const largefile = 0o100000 // the kernel's O_LARGEFILE (x/sys/unix has 0 on 64-bit)
	tmpf, samef, ro := unix.O_RDWR|largefile, unix.O_WRONLY|largefile, unix.O_RDONLY|largefile
	if b == BackendLSM {
		tmpf |= unix.O_CREAT | unix.O_EXCL
		samef |= unix.O_CREAT | unix.O_TRUNC
	}
	mustHave := []string{
		fmt.Sprintf("file_open flags=%#o %s/* #1 owner=self by=self", tmpf, work),  // tmp.* written
		fmt.Sprintf("file_open flags=%#o %s/* #1 owner=self by=self", ro, work),    // tmp.* read back
		fmt.Sprintf("file_open flags=%#o %s/* #2 owner=self by=self", tmpf, work),  // the second tmp.*, later final
		fmt.Sprintf("file_open flags=%#o %s/* #3 owner=self by=self", samef, work), // same
		fmt.Sprintf("file_open flags=%#o %s/* #4 owner=self by=self", samef, work), // same again
		fmt.Sprintf("file_open flags=%#o %s/* #5 owner=self by=self", tmpf, work),  // exe.* written
		fmt.Sprintf("mmap_file prot=0x5 %s/* #5 owner=self by=self", work),         // exe.* mapped
		fmt.Sprintf("bprm_committed_creds %s/* #5 owner=self by=child", work),      // exe.* run
		fmt.Sprintf("file_open flags=%#o %s/* #2 owner=self by=child", ro, work),   // final, read by the copy
	}
	if b == BackendLSM {
		mustHave = append(mustHave,
			fmt.Sprintf("inode_create mode=%#o %s/* #1 owner=self by=self", 0o100600, lsmRel(work)),
			fmt.Sprintf("inode_create mode=%#o %s/* #4 owner=self by=self", 0o100644, lsmRel(work)),
			fmt.Sprintf("inode_mkdir mode=%#o %s/* #6 owner=self by=self", 0o700, lsmRel(work)),
			fmt.Sprintf("inode_unlink %s/* #1 owner=self by=self", lsmRel(work)),
			fmt.Sprintf("inode_rename %s/* #2 owner=self -> %s/final by=self", lsmRel(work), lsmRel(work)),
			fmt.Sprintf("inode_setattr %s/* #5 owner=self by=self", lsmRel(work)), // exe.* chmod
		)
	}
	for _, w := range mustHave {
		found := false
		for _, s := range s2 {
			if strings.HasPrefix(s, w+" key=") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no record %q among:\n  %s", w, strings.Join(s2, "\n  "))
		}
	}
	// The O_CREAT open of a file that existed made no tag.
	rewrote := false
	for _, r := range two.recs {
		if fo, ok := r.(*FileOpen); ok && fo.File.Path.Name == pre {
			rewrote = true
			if fo.File.Inode.Created != (CreatedTag{}) {
				t.Errorf("O_CREAT open of the existing %s: tag %+v; want none", pre, fo.File.Inode.Created)
			}
		}
	}
	if !rewrote {
		t.Errorf("no file_open of %s", pre)
	}
	if lost, err := c.Lost(); err != nil || len(lost) != 0 {
		t.Errorf("Lost() = %v, %v; want none", lost, err)
	}
}

// lsmRel is a path as the LSM's inode hooks name it: from the root of its
// filesystem (PathNoMount).
func lsmRel(path string) string {
	var st, root unix.Stat_t
	for p := path; ; p = filepath.Dir(p) {
		if err := unix.Stat(p, &st); err != nil {
			return path
		}
		parent := filepath.Dir(p)
		if err := unix.Stat(parent, &root); err != nil || root.Dev != st.Dev || p == "/" {
			rel, err := filepath.Rel(p, path)
			if err != nil {
				return path
			}
			return filepath.Join("/", rel)
		}
	}
}

func TestTracepointCreatedAcrossRuns(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("tracepoint backend: tested on the host")
	}
	testCreatedAcrossRuns(t, BackendTracepoint)
}

func TestLSMCreatedAcrossRuns(t *testing.T) { testCreatedAcrossRuns(t, BackendLSM) }

// testCreatedElsewhere: a file another namespace created (an earlier run)
// keeps its tag, which names that namespace: the events of a later one
// name the file by its path, as TSEM does. On the tracepoint backend the
// tags go when the namespace is dropped.
func testCreatedElsewhere(t *testing.T, b Backend) {
	c := openCapture(t, b)
	dir, bin := sharedDir(t)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	first := runCreate(t, c, col, work, bin)
	final := first.files["final"]
	openFinal := func() *FileOpen {
		t.Helper()
		ns := nextNS()
		run := runEnrolled(t, c, ns, workload{next: "open", env: []string{envFiles + "=" + final}, bin: bin})
		if run.out != final+" ok\n" {
			t.Fatalf("open helper output %q", run.out)
		}
		col.until(exitedMain(run.pid))
		for _, r := range recordsOf(col.snapshot(), ns) {
			if fo, ok := r.(*FileOpen); ok && fo.File.Path.Name == final {
				return fo
			}
		}
		t.Fatalf("no file_open of %s in namespace %d", final, ns)
		return nil
	}
	fo := openFinal()
	if tag := fo.File.Inode.Created; tag.NS != first.ns || tag.Instance != 2 || tag.In(fo.NS) {
		t.Errorf("file_open of %s in a later namespace: tag %+v; want namespace %d's instance 2, not of namespace %d", final, tag, first.ns, fo.NS)
	}
	if b != BackendTracepoint {
		return
	}
	n, err := c.CreatedTags()
	if err != nil || n == 0 {
		t.Fatalf("CreatedTags() = %d, %v; want some", n, err)
	}
	if err := c.DropNamespace(first.ns); err != nil {
		t.Fatal(err)
	}
	if m, err := c.CreatedTags(); err != nil || m != 0 {
		t.Errorf("CreatedTags() after dropping namespace %d = %d, %v; want 0 (was %d)", first.ns, m, err, n)
	}
	if tag := openFinal().File.Inode.Created; tag != (CreatedTag{}) {
		t.Errorf("file_open of %s after its namespace was dropped: tag %+v; want none", final, tag)
	}
}

func TestTracepointCreatedElsewhere(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("tracepoint backend: tested on the host")
	}
	testCreatedElsewhere(t, BackendTracepoint)
}

func TestLSMCreatedElsewhere(t *testing.T) { testCreatedElsewhere(t, BackendLSM) }

// TestLSMCreatedEnforced learns the create helper in one namespace and
// enforces the keys of its records in another: the second run makes files
// with other random names, yet the kernel allows all of it, and the key
// the kernel computes for each event equals Key of its record (created
// files, their renames, unlinks, mappings and execs included).
func TestLSMCreatedEnforced(t *testing.T) {
	c := openCapture(t, BackendLSM)
	dir, bin := sharedDir(t)
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	col := collect(t, c)
	learn := runCreate(t, c, col, work, bin)
	emptyDir(t, work)
	var keys []uint64
	for _, r := range learn.recs {
		if k, ok := Key(r); ok {
			keys = append(keys, k)
		}
	}
	ns := nextNS()
	if err := c.Allow(ns, keys...); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNamespace(ns, NamespaceConfig{Mode: ModeEnforce}); err != nil {
		t.Fatal(err)
	}
	run := runEnrolled(t, c, ns, workload{next: "create", env: []string{envDir + "=" + work}, bin: bin})
	if !strings.Contains(run.out, "dir ") {
		t.Fatalf("enforced create helper output %q", run.out)
	}
	col.until(exitedMain(run.pid))
	created := 0
	for _, r := range recordsOf(col.finish(t), ns) {
		h := r.Head()
		if h.Flags&FlagDenied != 0 {
			t.Errorf("denied: %s %s", h.Type, describe(r))
		}
		if h.Flags&FlagKey == 0 {
			continue
		}
		if k, _ := Key(r); k != h.Key {
			t.Errorf("%s %s: kernel key %#x, Key() = %#x", h.Type, describe(r), h.Key, k)
		}
		if s, ok := createdSig(r, work, nil); ok && strings.Contains(s, "#") {
			created++
		}
	}
	if created < 10 {
		t.Errorf("%d checked records name created files; want the helper's (10 or more)", created)
	}
}

// testCreatedRepeats: a task opens a file it created many times; the
// repeat cache suppresses most records, the counts still add up, and
// every record of the file carries its tag (the key a repeat is counted
// under names the created file).
func testCreatedRepeats(t *testing.T, b Backend) {
	const n = 2000
	c := openCaptureWith(t, Options{Backend: b, RingBufferBytes: 16 << 20, RepeatWindow: 100 * time.Millisecond})
	dir, bin := sharedDir(t)
	path := filepath.Join(dir, "made")
	ns := nextNS()
	col := collect(t, c)
	run := runEnrolled(t, c, ns, workload{next: "create-loop", env: []string{envFiles + "=" + path, envN + "=" + strconv.Itoa(n)}, bin: bin})
	col.until(exitedMain(run.pid))
	recs := col.finish(t)
	match := fileOpens(path, run.pid)
	if got := eventCount(recs, match); got != n+1 {
		t.Errorf("records + repeats of %s = %d; want %d (the creating open and %d more)", path, got, n+1, n)
	}
	records := 0
	for _, r := range recs {
		if !match(r) {
			continue
		}
		records++
		if tag := r.(*FileOpen).File.Inode.Created; !tag.In(ns) || tag.Instance != 1 {
			t.Errorf("file_open of %s: tag %+v; want instance 1 of namespace %d", path, tag, ns)
		}
	}
	if records == 0 || records >= n/10 {
		t.Errorf("%d file_open records for %d opens; want some, far fewer", records, n+1)
	}
	checkRepeatStream(t, recs, ns, true)
}

func TestTracepointCreatedRepeats(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("tracepoint backend: tested on the host")
	}
	testCreatedRepeats(t, BackendTracepoint)
}

func TestLSMCreatedRepeats(t *testing.T) { testCreatedRepeats(t, BackendLSM) }
