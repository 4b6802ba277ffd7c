package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "init" {
		os.Exit(initMain())
	}
	applet, ok := applets[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "vminit: unknown applet %q\n", name)
		os.Exit(127)
	}
	if err := applet(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// initMain runs the tests and powers off; it returns only when it cannot power off or
// is not running as the guest's init.
func initMain() int {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: not PID 1; this is the init of the VM test harness, run `go run ./test/vm` instead")
		return 2
	}
	if _, err := os.Stat(vmproto.ConfigPath); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		return 2
	}
	mountAll()
	ensureConsole()
	if err := loopbackUp(); err != nil {
		warnf("bring up lo: %v", err)
	}
	if err := syscall.Sethostname([]byte("vigil-vm")); err != nil {
		warnf("set hostname: %v", err)
	}

	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		warnf("read lsm list: %v", err)
	}
	fmt.Printf("%s%s kernel=%s lsm=%s\n", vmproto.Prefix, vmproto.KindInit, cstr(uts.Release[:]), strings.TrimSpace(string(lsm)))

	cfg, err := readConfig()
	if err != nil {
		warnf("%v", err)
	}
	passed := 0
	for _, t := range cfg.Tests {
		if runTest(t, cfg.Env).Verdict == vmproto.Pass {
			passed++
		}
	}
	fmt.Printf("%s%s passed=%d total=%d\n", vmproto.Prefix, vmproto.KindDone, passed, len(cfg.Tests))
	powerOff()
	return 1
}

func warnf(format string, args ...any) {
	fmt.Printf("%s%s %s\n", vmproto.Prefix, vmproto.KindWarn, fmt.Sprintf(format, args...))
}

func readConfig() (vmproto.Config, error) {
	var cfg vmproto.Config
	b, err := os.ReadFile(vmproto.ConfigPath)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("decode config %s: %w", vmproto.ConfigPath, err)
	}
	return cfg, nil
}

type mount struct {
	source, target, fstype string
	data                   string
}

// mounts are in order: a target's parent filesystem comes first.
var mounts = []mount{
	{"proc", "/proc", "proc", ""},
	{"sysfs", "/sys", "sysfs", ""},
	{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
	{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
	{"securityfs", "/sys/kernel/security", "securityfs", ""},
	{"bpf", "/sys/fs/bpf", "bpf", "mode=0700"},
	{"tracefs", "/sys/kernel/tracing", "tracefs", ""},
	{"debugfs", "/sys/kernel/debug", "debugfs", ""},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", ""},
	{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	{"tmpfs", "/run", "tmpfs", "mode=0755"},
}

func mountAll() {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			warnf("mkdir %s: %v", m.target, err)
			continue
		}
		if err := syscall.Mount(m.source, m.target, m.fstype, syscall.MS_NOSUID, m.data); err != nil {
			warnf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
}

// ensureConsole reopens stdio on /dev/console when the kernel could not give init one.
func ensureConsole() {
	var st syscall.Stat_t
	if syscall.Fstat(1, &st) == nil {
		return
	}
	fd, err := syscall.Open("/dev/console", syscall.O_RDWR, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = syscall.Dup3(fd, i, 0)
	}
}

// loopbackUp sets IFF_UP on lo; the kernel then gives it 127.0.0.1 and ::1, which
// tests of connect/bind/accept need.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [24]byte
	}
	copy(ifr.name[:], "lo")
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, unsafe.Pointer(&ifr)); err != nil {
		return fmt.Errorf("get flags: %w", err)
	}
	ifr.flags |= syscall.IFF_UP
	if err := ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(&ifr)); err != nil {
		return fmt.Errorf("set flags: %w", err)
	}
	return nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// runTest runs one binary, copying its output to the console while counting results.
func runTest(t vmproto.Test, env []string) vmproto.Result {
	fmt.Printf("%s%s %s\n", vmproto.Prefix, vmproto.KindBegin, t.Name)
	start := time.Now()
	cmd := exec.Command(t.Path, t.Args...)
	cmd.Dir = t.Dir
	cmd.Env = append(baseEnv(), env...)
	pr, pw, err := os.Pipe()
	var c vmproto.Counter
	exit := -1
	if err == nil {
		cmd.Stdout, cmd.Stderr = pw, pw
		err = cmd.Start()
		pw.Close()
		if err == nil {
			copyCounting(pr, &c)
			err = cmd.Wait()
		}
		pr.Close()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		exit = 0
	case errors.As(err, &exitErr):
		exit = exitErr.ExitCode()
		fmt.Printf("%s%s %s: %v\n", vmproto.Prefix, vmproto.KindWarn, t.Name, err)
	default:
		fmt.Printf("%s%s %s: run: %v\n", vmproto.Prefix, vmproto.KindWarn, t.Name, err)
	}
	r := vmproto.Result{
		Name: t.Name, Verdict: vmproto.Judge(exit, c), Exit: exit,
		Pass: c.Pass, Fail: c.Fail, Skip: c.Skip, Elapsed: time.Since(start),
	}
	fmt.Println(r.Line())
	return r
}

func copyCounting(r io.Reader, c *vmproto.Counter) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			os.Stdout.WriteString(line)
			c.Observe(line)
		}
		if err != nil {
			if !strings.HasSuffix(line, "\n") && line != "" {
				os.Stdout.WriteString("\n")
			}
			return
		}
	}
}

func baseEnv() []string {
	return []string{
		"PATH=" + vmproto.AppletDir,
		"HOME=/root",
		"TMPDIR=/tmp",
		"VIGIL_VM=1",
		"VIGIL_VM_BIN=" + vmproto.AppletDir,
		"VIGIL_TEST_BPF=require",
		"VIGIL_TEST_LSM=require",
	}
}

func powerOff() {
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		warnf("power off: %v", err)
	}
}

func cstr(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
