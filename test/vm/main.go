package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

const usage = `usage: go run ./test/vm [flags] -- PKG... [TESTFLAG...]

Boots Debian's cloud kernel under qemu with the BPF LSM active and runs the tests of
each PKG (go list patterns, e.g. ./bpf/...) in it, one static test binary at a time,
with VIGIL_VM=1, VIGIL_TEST_BPF=require and VIGIL_TEST_LSM=require. Arguments after -- that start with - are
passed to every test binary (e.g. -test.run=TestEnforce -test.count=2).
Exits 0 only if every binary passed with at least one test run and not all skipped.

flags:
`

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout))
}

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func mainErr(argv []string, out io.Writer) int {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { fmt.Fprint(out, usage); fs.PrintDefaults() }
	var (
		kernelPath  = fs.String("kernel", "", "boot this bzImage instead of Debian's cloud kernel")
		cacheDir    = fs.String("cache", "", "kernel cache directory (default REPO/.cache/vm, git-ignored)")
		fetchOnly   = fs.Bool("fetch", false, "only fetch the kernel into the cache and print its path")
		timeout     = fs.Duration("timeout", 15*time.Minute, "limit for the whole VM run, boot to power-off")
		testTimeout = fs.Duration("test-timeout", 10*time.Minute, "passed to each test binary as -test.timeout")
		runRE       = fs.String("run", "", "passed to each test binary as -test.run")
		memMB       = fs.Int("mem", 1024, "guest memory in MiB")
		cpus        = fs.Int("smp", 2, "guest CPUs")
		accel       = fs.String("accel", "auto", "auto (kvm if /dev/kvm opens and the guest starts under it within -kvm-probe, else tcg), kvm or tcg")
		kvmProbe    = fs.Duration("kvm-probe", defaultKVMProbe, "with -accel auto: how long a kvm guest has to start its init before the harness boots again under tcg")
		appendLine  = fs.String("append", "", "added to the kernel command line")
		tags        = fs.String("tags", "", "build tags for the test binaries")
		keep        = fs.Bool("keep", false, "keep the work directory (binaries, initramfs) and print it")
		env, bins   repeated
		includes    repeated
	)
	fs.Var(&env, "env", "KEY=VALUE added to the test binaries' environment (repeatable)")
	fs.Var(&bins, "bin", "build this main package (e.g. ./cmd/vigil) into the guest's /bin (repeatable)")
	fs.Var(&includes, "include", "copy this repository path (file or directory) into the guest under /repo (repeatable)")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var patterns, testFlags []string
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") {
			testFlags = append(testFlags, a)
		} else {
			patterns = append(patterns, a)
		}
	}
	if len(patterns) == 0 && !*fetchOnly {
		fmt.Fprintln(out, "vmtest: no packages given")
		fs.Usage()
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, err := repoRoot(ctx)
	if err != nil {
		fmt.Fprintf(out, "vmtest: %v\n", err)
		return 1
	}
	if *cacheDir == "" {
		*cacheDir = filepath.Join(repo, ".cache", "vm")
	}
	h := harness{
		repo: repo, cache: *cacheDir, out: out, kernel: *kernelPath, tags: *tags, keep: *keep,
		env: env, bins: bins, includes: includes,
		vm: vmOptions{append: *appendLine, memMB: *memMB, cpus: *cpus, accel: *accel, timeout: *timeout, kvmProbe: *kvmProbe},
	}
	if *fetchOnly {
		if err := h.findKernel(ctx); err != nil {
			fmt.Fprintf(out, "vmtest: %v\n", err)
			return 1
		}
		return 0
	}
	args := []string{"-test.v", "-test.timeout=" + testTimeout.String()}
	if *runRE != "" {
		args = append(args, "-test.run="+*runRE)
	}
	ok, err := h.run(ctx, patterns, append(args, testFlags...))
	if err != nil {
		fmt.Fprintf(out, "vmtest: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

type harness struct {
	repo, cache, kernel, tags string
	keep                      bool
	env, bins, includes       []string
	vm                        vmOptions
	out                       io.Writer
}

func (h *harness) findKernel(ctx context.Context) error {
	if h.kernel != "" {
		if _, err := os.Stat(h.kernel); err != nil {
			return fmt.Errorf("use -kernel: %w", err)
		}
		return nil
	}
	k, err := kernel(ctx, h.cache, h.out)
	if err != nil {
		return err
	}
	h.kernel = k
	return nil
}

// run builds, boots and judges; ok is true when every package passed.
func (h *harness) run(ctx context.Context, patterns, testArgs []string) (ok bool, err error) {
	for _, inc := range h.includes {
		if !filepath.IsLocal(inc) {
			return false, fmt.Errorf("parse -include %q: want a path inside the repository", inc)
		}
	}
	for _, e := range h.env {
		if !strings.Contains(e, "=") {
			return false, fmt.Errorf("parse -env %q: want KEY=VALUE", e)
		}
	}
	if err := h.findKernel(ctx); err != nil {
		return false, err
	}
	pkgs, err := listPackages(ctx, h.repo, patterns, h.out)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(h.cache, 0o755); err != nil {
		return false, fmt.Errorf("create cache: %w", err)
	}
	work, err := os.MkdirTemp(h.cache, "run-")
	if err != nil {
		return false, fmt.Errorf("create work directory: %w", err)
	}
	if h.keep {
		fmt.Fprintf(h.out, "vmtest: work directory %s (kept)\n", work)
	} else {
		defer os.RemoveAll(work)
	}

	buildStart := time.Now()
	img := image{init: filepath.Join(work, "init"), includes: h.includes, repo: h.repo}
	if err := goBuild(ctx, h.repo, h.out, "build", "-o", img.init, "-ldflags=-s -w", "./test/vm/vminit"); err != nil {
		return false, err
	}
	for _, b := range h.bins {
		host := filepath.Join(work, "bin", filepath.Base(b))
		if err := goBuild(ctx, h.repo, h.out, "build", "-o", host, "-ldflags=-s -w", b); err != nil {
			return false, err
		}
		img.extra = append(img.extra, extraBinary{pkg: b, host: host})
	}
	if err := buildTests(ctx, h.repo, work, h.tags, pkgs, h.out); err != nil {
		return false, err
	}
	var names []string
	for _, p := range pkgs {
		names = append(names, p.name())
		img.config.Tests = append(img.config.Tests, vmproto.Test{
			Name: p.name(),
			Path: filepath.ToSlash(filepath.Join(p.guestDir(), filepath.Base(p.importPath)+".test")),
			Dir:  p.guestDir(),
			Args: testArgs,
		})
	}
	img.pkgs = pkgs
	img.config.Env = h.env

	initrd := filepath.Join(work, "initramfs.cpio.gz")
	f, err := os.Create(initrd)
	if err != nil {
		return false, fmt.Errorf("create initramfs: %w", err)
	}
	err = writeInitramfs(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write initramfs %s: %w", initrd, err)
	}
	st, _ := os.Stat(initrd)
	fmt.Fprintf(h.out, "vmtest: built %d test binaries and initramfs (%.1f MiB) in %v\n",
		len(pkgs), float64(st.Size())/(1<<20), time.Since(buildStart).Round(100*time.Millisecond))

	o := h.vm
	o.kernel, o.initrd = h.kernel, initrd
	rep, bootErr := boot(ctx, o, h.out)
	lines, ok := rep.verdict(names)
	fmt.Fprintln(h.out, "vmtest: ---- summary ----")
	if rep.accel != "" {
		fmt.Fprintf(h.out, "vmtest: accelerator %s (%s)\n", rep.accel, rep.accelWhy)
	}
	if rep.initAfter > 0 {
		fmt.Fprintf(h.out, "vmtest: guest init started %v after qemu (%s)\n", rep.initAfter.Round(10*time.Millisecond), rep.initLine)
	}
	for _, l := range lines {
		fmt.Fprintf(h.out, "vmtest: %s\n", l)
	}
	passed := 0
	for _, n := range names {
		if rep.results[n].Verdict == vmproto.Pass {
			passed++
		}
	}
	fmt.Fprintf(h.out, "vmtest: %d/%d test binaries passed; VM ran %v\n", passed, len(names), rep.elapsed.Round(10*time.Millisecond))
	// The plain closing line CI reads: tests (with subtests) of every binary.
	// A binary that did not pass without reporting a failed test (it crashed,
	// ran nothing, or never ran) counts as one failure.
	var np, nf, ns int
	for _, n := range names {
		r := rep.results[n]
		np, nf, ns = np+r.Pass, nf+r.Fail, ns+r.Skip
		if r.Verdict != vmproto.Pass && r.Fail == 0 {
			nf++
		}
	}
	if bootErr != nil && nf == 0 {
		nf++
	}
	if bootErr == nil {
		verdict := "FAIL"
		if ok {
			verdict = "PASS"
		}
		fmt.Fprintln(h.out, "vmtest: "+verdict)
	}
	fmt.Fprintf(h.out, "vmtest: %d passed, %d failed, %d skipped\n", np, nf, ns)
	if bootErr != nil {
		return false, bootErr
	}
	return ok, nil
}

// repoRoot is the directory of the main module's go.mod.
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find repository: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find repository: not inside a Go module; run from the Vigil repository")
	}
	return filepath.Dir(gomod), nil
}
