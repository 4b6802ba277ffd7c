package ctrtest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Image references of the images this package builds. Podman records
// them as given; Docker too (localhost is a registry host name to it).
const (
	BusyboxRef = "localhost/vigil-busybox:test"
	PythonRef  = "localhost/vigil-python:test"
)

// Applets are the busybox applets the images link in /bin.
var Applets = []string{"sh", "cat", "ls", "echo", "sleep", "cp", "true", "mkdir", "rm", "nc", "wc", "head"}

// PythonModules are the standard modules the python image holds (with
// what importing them loads), besides what the interpreter loads at start.
var PythonModules = []string{"os", "sys", "socket", "json", "time"}

// epoch is the time of every entry not copied from the host, so that the
// same files give the same archive.
var epoch = time.Unix(1700000000, 0)

// rootfs is a root file system being built: entries by absolute path.
type rootfs struct {
	files map[string]entry
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func newRootfs() *rootfs {
	fs := &rootfs{files: map[string]entry{}}
	for _, d := range []string{"/bin", "/etc", "/proc", "/sys", "/dev", "/app", "/usr", "/usr/bin"} {
		fs.dir(d, 0o755)
	}
	fs.dir("/tmp", 0o1777)
	fs.text("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	fs.text("/etc/group", "root:x:0:\nnogroup:x:65534:\n")
	fs.text("/etc/os-release", "NAME=\"Vigil test image\"\nID=vigil-test\n")
	fs.text("/app/data.txt", "data the workload reads\n")
	return fs
}

func (fs *rootfs) dir(p string, mode int64) {
	for q := path.Dir(p); q != "/"; q = path.Dir(q) {
		if _, ok := fs.files[q]; !ok {
			fs.files[q] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: q, Mode: 0o755, ModTime: epoch}}
		}
	}
	fs.files[p] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: mode, ModTime: epoch}}
}

func (fs *rootfs) text(p, content string) {
	fs.dir(path.Dir(p), 0o755)
	fs.files[p] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(content)), ModTime: epoch}, data: []byte(content)}
}

func (fs *rootfs) symlink(p, target string) {
	fs.dir(path.Dir(p), 0o755)
	fs.files[p] = entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

// copy copies host file src (links followed) to p, with its mode and
// modification time (Python checks a cached module against its source's).
func (fs *rootfs) copy(p, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s into the image: %w", src, err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copy %s into the image: %w", src, err)
	}
	fs.dir(path.Dir(p), 0o755)
	fs.files[p] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(st.Mode().Perm()), Size: int64(len(data)), ModTime: st.ModTime()}, data: data}
	return nil
}

// withLibraries copies a dynamically linked host program or library and
// every shared library ldd names for it, at the same paths.
func (fs *rootfs) withLibraries(p string) error {
	if err := fs.copy(p, p); err != nil {
		return err
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	dynamic := false
	for _, prog := range f.Progs {
		dynamic = dynamic || prog.Type == elf.PT_DYNAMIC
	}
	f.Close()
	if !dynamic {
		return nil
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", p, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
		fields := strings.Fields(sc.Text())
		lib := ""
		switch {
		case len(fields) >= 3 && fields[1] == "=>":
			lib = fields[2]
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			lib = fields[0]
		}
		if !strings.HasPrefix(lib, "/") {
			continue
		}
		if err := fs.copy(lib, lib); err != nil {
			return err
		}
	}
	return nil
}

// busybox adds the host's static busybox (Debian's busybox-static) as
// /bin/busybox with its applets.
func (fs *rootfs) busybox() error {
	src := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if f, err := elf.Open(p); err == nil {
			static := true
			for _, prog := range f.Progs {
				static = static && prog.Type != elf.PT_INTERP
			}
			f.Close()
			if static {
				src = p
				break
			}
		}
	}
	if src == "" {
		return fmt.Errorf("no static busybox at /bin/busybox or /usr/bin/busybox (Debian's busybox-static; make deps installs it)")
	}
	if err := fs.copy("/bin/busybox", src); err != nil {
		return err
	}
	for _, a := range Applets {
		fs.symlink("/bin/"+a, "busybox")
	}
	return nil
}

// python adds the host's python3 with its libraries and the standard
// modules that loading PythonModules loads, with their compiled caches.
func (fs *rootfs) python() error {
	interp, err := filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		return fmt.Errorf("no /usr/bin/python3 (Debian's python3-minimal): %w", err)
	}
	if err := fs.withLibraries(interp); err != nil {
		return err
	}
	fs.symlink("/usr/bin/python3", filepath.Base(interp))
	script := "import sys, " + strings.Join(PythonModules, ", ") + "\n" +
		"for m in list(sys.modules.values()):\n" +
		"    f = getattr(m, '__file__', None)\n" +
		"    if f: print(f)\n" +
		"print(sys.prefix)\n"
	out, err := exec.Command("/usr/bin/python3", "-c", script).Output()
	if err != nil {
		return fmt.Errorf("list python modules: %w", err)
	}
	lines := strings.Fields(string(out))
	prefix := lines[len(lines)-1]
	stdlib := filepath.Join(prefix, "lib", filepath.Base(interp))
	files := lines[:len(lines)-1]
	// Codecs load as needed: all of encodings.
	enc, _ := filepath.Glob(filepath.Join(stdlib, "encodings", "*.py"))
	files = append(files, enc...)
	for _, f := range files {
		if !strings.HasPrefix(f, stdlib+"/") {
			continue // site packages: not needed
		}
		if strings.HasSuffix(f, ".so") {
			if err := fs.withLibraries(f); err != nil {
				return err
			}
			continue
		}
		if err := fs.copy(f, f); err != nil {
			return err
		}
		dir, base := filepath.Split(f)
		pyc, _ := filepath.Glob(filepath.Join(dir, "__pycache__", strings.TrimSuffix(base, ".py")+".cpython-*.pyc"))
		for _, c := range pyc {
			if err := fs.copy(c, c); err != nil {
				return err
			}
		}
	}
	// The landmark python looks for to find its prefix.
	return fs.copy(filepath.Join(stdlib, "os.py"), filepath.Join(stdlib, "os.py"))
}

// writeTar writes the root file system as a tar archive, parents first.
func (fs *rootfs) writeTar(file string) error {
	paths := make([]string, 0, len(fs.files))
	for p := range fs.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	tw := tar.NewWriter(f)
	for _, p := range paths {
		e := fs.files[p]
		h := e.hdr
		h.Name = "." + p
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			f.Close()
			return fmt.Errorf("write image archive %s: %w", p, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			f.Close()
			return fmt.Errorf("write image archive %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write image archive: %w", err)
	}
	return f.Close()
}

// build writes the archive of fs and imports it into r as ref.
func build(t testing.TB, r *Runtime, ref string, fs *rootfs) string {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := fs.writeTar(archive); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Import(ctx, archive, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// Busybox builds the busybox image (static busybox, its applets in /bin,
// /etc/passwd, /etc/group, /etc/os-release and /app/data.txt) and
// imports it into r; it returns the image reference. A missing static
// busybox skips t (fails it under CI).
func Busybox(t testing.TB, r *Runtime) string {
	t.Helper()
	fs := newRootfs()
	if err := fs.busybox(); err != nil {
		skipOrFail(t, "busybox image: %v", err)
	}
	return build(t, r, BusyboxRef, fs)
}

// Python builds the python image: the busybox image's files plus the
// host's python3, its shared libraries and the standard modules of
// PythonModules; it returns the image reference.
func Python(t testing.TB, r *Runtime) string {
	t.Helper()
	fs := newRootfs()
	if err := fs.busybox(); err != nil {
		skipOrFail(t, "python image: %v", err)
	}
	if err := fs.python(); err != nil {
		skipOrFail(t, "python image: %v", err)
	}
	return build(t, r, PythonRef, fs)
}
