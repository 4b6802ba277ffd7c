package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

// pkg is a package whose tests run in the guest.
type pkg struct {
	importPath string
	dir        string // on the host
	rel        string // slash path relative to the repository root, "." for the root
	binary     string // built test binary on the host
}

// name is how markers and the summary call the package.
func (p pkg) name() string {
	if p.rel == "." {
		return "."
	}
	return "./" + p.rel
}

// guestDir is the package's directory in the guest.
func (p pkg) guestDir() string { return path.Join(vmproto.RepoDir, p.rel) }

// listPackages expands patterns to the packages that have tests.
func listPackages(ctx context.Context, repo string, patterns []string, log io.Writer) ([]pkg, error) {
	args := append([]string{"list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{len .TestGoFiles}}\t{{len .XTestGoFiles}}"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	cmd.Stderr = log
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list packages %s: %w", strings.Join(patterns, " "), err)
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("list packages: unexpected line %q", sc.Text())
		}
		if f[2] == "0" && f[3] == "0" {
			fmt.Fprintf(log, "vmtest: %s: no test files, skipped\n", f[0])
			continue
		}
		rel, err := filepath.Rel(repo, f[1])
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsAny(rel, " \t") {
			return nil, fmt.Errorf("list packages: %s is in %s, not inside the repository %s", f[0], f[1], repo)
		}
		pkgs = append(pkgs, pkg{importPath: f[0], dir: f[1], rel: filepath.ToSlash(rel)})
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("list packages %s: none has tests", strings.Join(patterns, " "))
	}
	return pkgs, nil
}

// staticEnv builds binaries that run in a guest with nothing but the initramfs.
func staticEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
}

func goBuild(ctx context.Context, repo string, log io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	cmd.Env = staticEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// buildTests compiles each package's test binary into work.
func buildTests(ctx context.Context, repo, work, tags string, pkgs []pkg, log io.Writer) error {
	for i := range pkgs {
		p := &pkgs[i]
		p.binary = filepath.Join(work, fmt.Sprintf("%02d-%s.test", i, path.Base(p.importPath)))
		args := []string{"test", "-c", "-o", p.binary, "-ldflags=-s -w"}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		fmt.Fprintf(log, "vmtest: build %s\n", p.name())
		if err := goBuild(ctx, repo, log, append(args, p.importPath)...); err != nil {
			return err
		}
	}
	return nil
}

// extraBinary is a program built from the repository into the guest's /bin.
type extraBinary struct {
	pkg, host string
}

// image is what goes into the initramfs.
type image struct {
	init     string // static vminit binary
	pkgs     []pkg  // test binaries, each with its package's testdata
	extra    []extraBinary
	includes []string // repository-relative paths copied to the same place under /repo
	repo     string
	config   vmproto.Config
}

// writeInitramfs writes the gzip-compressed newc archive of img to w.
func writeInitramfs(w io.Writer, img image) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	a := newInitramfs(zw)
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "root", "etc"} {
		a.Dir(d, 0o755)
	}
	// The kernel opens /dev/console for init's stdio before any devtmpfs is mounted.
	a.CharDev("dev/console", 0o600, 5, 1)
	a.File("etc/hostname", 0o644, 9, strings.NewReader("vigil-vm\n"))
	passwd := "root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	a.File("etc/passwd", 0o644, int64(len(passwd)), strings.NewReader(passwd))
	group := "root:x:0:\nnogroup:x:65534:\n"
	a.File("etc/group", 0o644, int64(len(group)), strings.NewReader(group))

	if err := addHostFile(a, "init", img.init, 0o755); err != nil {
		return err
	}
	for _, name := range vmproto.Applets {
		a.Symlink(path.Join(vmproto.AppletDir, name), "/init")
	}
	for _, b := range img.extra {
		if err := addHostFile(a, path.Join(vmproto.AppletDir, filepath.Base(b.host)), b.host, 0o755); err != nil {
			return err
		}
	}
	for _, p := range img.pkgs {
		if err := addHostFile(a, path.Join(p.guestDir(), path.Base(p.importPath)+".test"), p.binary, 0o755); err != nil {
			return err
		}
		if err := addTree(a, filepath.Join(p.dir, "testdata"), path.Join(p.guestDir(), "testdata")); err != nil {
			return err
		}
	}
	for _, inc := range img.includes {
		if err := addTree(a, filepath.Join(img.repo, inc), path.Join(vmproto.RepoDir, filepath.ToSlash(inc))); err != nil {
			return err
		}
	}
	cfg, err := json.MarshalIndent(img.config, "", "  ")
	if err != nil {
		return fmt.Errorf("encode vm config: %w", err)
	}
	a.File(vmproto.ConfigPath, 0o644, int64(len(cfg)), bytes.NewReader(cfg))
	if err := a.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func addHostFile(a *initramfs, name, host string, perm uint32) error {
	f, err := os.Open(host)
	if err != nil {
		return fmt.Errorf("add %s to initramfs: %w", host, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("add %s to initramfs: %w", host, err)
	}
	return a.File(name, perm, st.Size(), f)
}

// addTree copies a host file or directory tree (regular files, directories and
// symlinks) to guest; a missing host path adds nothing.
func addTree(a *initramfs, host, guest string) error {
	if _, err := os.Lstat(host); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("add %s to initramfs: %w", p, err)
		}
		rel, _ := filepath.Rel(host, p)
		name := path.Join(guest, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("add %s to initramfs: %w", p, err)
		}
		perm := uint32(info.Mode().Perm())
		switch {
		case d.IsDir():
			return a.Dir(name, perm)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("add %s to initramfs: %w", p, err)
			}
			return a.Symlink(name, target)
		case info.Mode().IsRegular():
			return addHostFile(a, name, p, perm)
		}
		return nil // sockets, devices and fifos have no place in testdata
	})
}
