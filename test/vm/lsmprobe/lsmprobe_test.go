package lsmprobe

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
)

// required: the BPF LSM tests must run, not skip. The VM harness sets
// VIGIL_TEST_LSM=require; the host (where the kernel refuses LSM programs even
// under CI's VIGIL_TEST_BPF=require) leaves it unset.
func required() bool { return os.Getenv("VIGIL_TEST_LSM") == "require" }

// skipOrFail skips on a conclusive "this kernel or user cannot" and fails otherwise,
// or always under VIGIL_TEST_LSM=require.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if required() {
		t.Fatalf("BPF LSM required (VIGIL_TEST_LSM=require): %v", err)
	}
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission) || errors.Is(err, ErrNoBPFLSM) {
		t.Skipf("BPF LSM not usable here: %v", err)
	}
	t.Fatal(err)
}

// mustAttach loads and attaches the probe, skipping or failing as skipOrFail says.
func mustAttach(t *testing.T) *Probe {
	t.Helper()
	p, err := Load()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Attach(); err != nil {
		skipOrFail(t, err)
	}
	return p
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckActive(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		wantErr       error
	}{
		{"bpf last", "lockdown,capability,landlock,bpf\n", nil},
		{"bpf first", "bpf,capability", nil},
		{"no bpf", "lockdown,capability,landlock,apparmor\n", ErrNoBPFLSM},
		{"bpf as part of a name", "capability,bpfx", ErrNoBPFLSM},
		{"empty", "", ErrNoBPFLSM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckActive(writeFile(t, dir, "lsm", tc.content))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr != nil && err == nil) {
				t.Errorf("CheckActive(%q) = %v; want %v", tc.content, err, tc.wantErr)
			}
		})
	}
	if err := CheckActive(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoBPFLSM) {
		t.Errorf("CheckActive(missing file) = %v; want ErrNoBPFLSM", err)
	}
}

// TestActiveInKernel: the running kernel lists bpf among its active LSMs.
func TestActiveInKernel(t *testing.T) {
	if err := CheckActive(LSMList); err != nil {
		skipOrFail(t, err)
	}
}

// TestFileOpen: the program sees opens of a watched file and denies a marked one,
// and the denial ends when the program is detached.
func TestFileOpen(t *testing.T) {
	p := mustAttach(t)
	dir := t.TempDir()
	allowed := writeFile(t, dir, "allowed", "in model\n")
	denied := writeFile(t, dir, "denied", "out of model\n")
	if err := p.Watch(allowed, Allow); err != nil {
		t.Fatal(err)
	}
	if err := p.Watch(denied, Deny); err != nil {
		t.Fatal(err)
	}

	if got, err := os.ReadFile(allowed); err != nil || string(got) != "in model\n" {
		t.Errorf("ReadFile(allowed) = %q, %v; want %q, nil", got, err, "in model\n")
	}
	if _, err := os.ReadFile(denied); !errors.Is(err, syscall.EPERM) {
		t.Errorf("ReadFile(denied) error = %v; want EPERM", err)
	}
	for _, f := range []string{allowed, denied} {
		if hits, err := p.Hits(f); err != nil || hits != 1 {
			t.Errorf("Hits(%s) = %d, %v; want 1, nil", filepath.Base(f), hits, err)
		}
	}

	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(denied); err != nil {
		t.Errorf("ReadFile(denied) after detach: %v; want success", err)
	}
	if hits, err := p.Hits(denied); err != nil || hits != 1 {
		t.Errorf("Hits(denied) after detach = %d, %v; want 1 (unchanged), nil", hits, err)
	}
}

// TestFileOpenInChild: a denial reaches a process the test execs, here the guest's
// cat applet (VIGIL_VM_BIN), the way the LSM tests run workloads in the VM.
func TestFileOpenInChild(t *testing.T) {
	p := mustAttach(t)
	bin := os.Getenv("VIGIL_VM_BIN")
	if bin == "" {
		// Outside the VM the probe attached, so this host has a usable BPF LSM; any cat
		// will do.
		bin = "/bin"
	}
	cat := filepath.Join(bin, "cat")
	dir := t.TempDir()
	allowed := writeFile(t, dir, "allowed", "in model\n")
	denied := writeFile(t, dir, "denied", "out of model\n")
	if err := p.Watch(denied, Deny); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file    string
		wantOut string
		wantErr bool
	}{
		{allowed, "in model\n", false},
		{denied, "not permitted", true},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			out, err := exec.Command(cat, tc.file).CombinedOutput()
			if (err != nil) != tc.wantErr || !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("%s %s = %q, %v; want output containing %q, error %v", cat, tc.file, out, err, tc.wantOut, tc.wantErr)
			}
		})
	}
}
