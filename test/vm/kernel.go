package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// metapackage always depends on Debian's current cloud kernel image.
const metapackage = "linux-image-cloud-amd64"

var cloudImage = regexp.MustCompile(`^linux-image-[0-9][0-9a-z.+~-]*-cloud-amd64$`)

// parseDepends returns the cloud kernel image package that `apt-cache depends
// linux-image-cloud-amd64` names.
func parseDepends(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.TrimPrefix(f[0], "|") == "Depends:" && cloudImage.MatchString(f[1]) {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("parse apt-cache depends %s: no linux-image-*-cloud-amd64 dependency in %q", metapackage, out)
}

// kernel finds Debian's cloud kernel in cacheDir, downloading and unpacking it first
// when it is not there. It installs nothing: the .deb is fetched with `apt-get
// download` and only its boot/ directory is kept, in cacheDir/PACKAGE/boot.
func kernel(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", metapackage).Output()
	if err != nil {
		// Offline or not Debian: a kernel fetched earlier still serves.
		if cached, _ := filepath.Glob(filepath.Join(cacheDir, "linux-image-*", "boot", "vmlinuz-*")); len(cached) > 0 {
			sort.Strings(cached)
			fmt.Fprintf(log, "vmtest: apt-cache depends %s: %v; using cached %s\n", metapackage, errText(err), cached[len(cached)-1])
			return cached[len(cached)-1], nil
		}
		return "", fmt.Errorf("resolve %s with apt-cache (Debian only; or pass -kernel): %s", metapackage, errText(err))
	}
	pkg, err := parseDepends(out)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, pkg)
	if path, err := vmlinuz(dir); err == nil {
		fmt.Fprintf(log, "vmtest: kernel %s (cached)\n", path)
		return path, nil
	}
	if err := download(ctx, cacheDir, pkg, dir, log); err != nil {
		return "", err
	}
	path, err := vmlinuz(dir)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "vmtest: kernel %s\n", path)
	checkConfig(path, log)
	pruneOld(cacheDir, pkg, log)
	return path, nil
}

func vmlinuz(dir string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return "", fmt.Errorf("find kernel in %s: %d boot/vmlinuz-* files, want 1", dir, len(m))
	}
	return m[0], nil
}

func download(ctx context.Context, cacheDir, pkg, dir string, log io.Writer) error {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("create kernel cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "download-")
	if err != nil {
		return fmt.Errorf("create kernel cache: %w", err)
	}
	defer os.RemoveAll(tmp)

	args := []string{"download", pkg}
	if os.Geteuid() == 0 {
		// apt's download sandbox user cannot write into a root-owned temp dir.
		args = append([]string{"-o", "APT::Sandbox::User=root"}, args...)
	}
	if err := run(ctx, tmp, log, "apt-get", args...); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("download %s: %d .deb files in %s, want 1", pkg, len(debs), tmp)
	}
	root := filepath.Join(tmp, "root")
	if err := run(ctx, tmp, log, "dpkg-deb", "-x", debs[0], root); err != nil {
		return err
	}
	// Keep only boot/ (vmlinuz, config, System.map); the modules are not needed, the
	// guest runs from the initramfs alone.
	staged := filepath.Join(tmp, "kernel")
	if err := os.Mkdir(staged, 0o755); err != nil {
		return fmt.Errorf("stage kernel: %w", err)
	}
	if err := os.Rename(filepath.Join(root, "boot"), filepath.Join(staged, "boot")); err != nil {
		return fmt.Errorf("stage kernel: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(staged, dir); err != nil {
		return fmt.Errorf("install kernel into cache: %w", err)
	}
	return nil
}

// pruneOld removes the kernels an older metapackage named, so the cache holds one.
func pruneOld(cacheDir, current string, log io.Writer) {
	old, _ := filepath.Glob(filepath.Join(cacheDir, "linux-image-*"))
	for _, dir := range old {
		if filepath.Base(dir) != current {
			fmt.Fprintf(log, "vmtest: remove old kernel %s\n", dir)
			os.RemoveAll(dir)
		}
	}
}

// checkConfig says whether the kernel's config next to it has the BPF LSM built in.
func checkConfig(vmlinuzPath string, log io.Writer) {
	cfg := filepath.Join(filepath.Dir(vmlinuzPath), "config-"+strings.TrimPrefix(filepath.Base(vmlinuzPath), "vmlinuz-"))
	b, err := os.ReadFile(cfg)
	if err != nil {
		return
	}
	if !bytes.Contains(b, []byte("\nCONFIG_BPF_LSM=y\n")) {
		fmt.Fprintf(log, "vmtest: warning: %s has no CONFIG_BPF_LSM=y; LSM tests will fail\n", cfg)
	}
}

// run runs a command, its output going to log, and wraps a failure with the command.
func run(ctx context.Context, dir string, log io.Writer, name string, args ...string) error {
	fmt.Fprintf(log, "vmtest: %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func errText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return err.Error()
}
