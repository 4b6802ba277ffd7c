package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

func TestChooseAccel(t *testing.T) {
	works := func() error { return nil }
	absent := func() error { return &fs.PathError{Op: "open", Path: "/dev/kvm", Err: fs.ErrNotExist} }
	for _, tc := range []struct {
		name      string
		accel     string
		check     func() error
		wantAccel string
		wantProbe bool
		wantWhy   string
		wantErr   bool
	}{
		{"auto with kvm", "auto", works, "kvm", true, "tcg instead if the guest's init has not started within 10s", false},
		{"auto without kvm", "auto", absent, "tcg", false, "open /dev/kvm: file does not exist", false},
		{"tcg", "tcg", works, "tcg", false, "-accel tcg", false},
		{"kvm forced", "kvm", absent, "kvm", false, "no fallback", false},
		{"unknown", "hvf", works, "", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := chooseAccel(vmOptions{accel: tc.accel, kvmCheck: tc.check})
			if (err != nil) != tc.wantErr {
				t.Fatalf("chooseAccel(%s) error = %v; want error %v", tc.accel, err, tc.wantErr)
			}
			if c.accel != tc.wantAccel || (c.probe > 0) != tc.wantProbe || !strings.Contains(c.why, tc.wantWhy) {
				t.Errorf("chooseAccel(%s) = %+v; want %s, probe %v, why containing %q", tc.accel, c, tc.wantAccel, tc.wantProbe, tc.wantWhy)
			}
		})
	}
}

// fakeQEMU is a qemu-system-x86_64 that appends its -accel value to
// $FAKE_QEMU_LOG and, under tcg (and under kvm with FAKE_KVM=works), prints
// what a guest whose one test binary passes prints. Under kvm, FAKE_KVM=msr
// fails as qemu does with -cpu host on a host whose nested KVM lacks the
// MSR, hang spins silently, and bios prints the firmware banner, then spins.
const fakeQEMU = `#!/bin/sh
accel=
while [ $# -gt 0 ]; do
	if [ "$1" = -accel ]; then accel=$2; fi
	shift
done
echo "$accel" >>"$FAKE_QEMU_LOG"
if [ "$accel" = kvm ]; then
	case "$FAKE_KVM" in
	msr)
		echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000" >&2
		echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3213: kvm_buf_set_msrs: Assertion failed." >&2
		exit 134 ;;
	hang) exec sleep 60 ;;
	bios) echo "SeaBIOS (version fake)"; exec sleep 60 ;;
	esac
fi
echo "SeaBIOS (version fake)"
echo "VIGIL-VM INIT kernel=fake lsm=lockdown,capability,landlock,bpf"
echo "VIGIL-VM BEGIN ./a"
echo "VIGIL-VM END ./a verdict=PASS exit=0 pass=1 fail=0 skip=0 time=1ms"
echo "VIGIL-VM DONE passed=1 total=1"
`

// TestBootAccelFallback boots a fake qemu that behaves like a host whose
// /dev/kvm opens but cannot run the guest (nested KVM), one where KVM works,
// and one without KVM: the harness must end with a passing guest and say
// which accelerator it used and why, and must not boot twice when KVM works.
func TestBootAccelFallback(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(fakeQEMU), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	works := func() error { return nil }
	absent := func() error { return &fs.PathError{Op: "open", Path: "/dev/kvm", Err: fs.ErrNotExist} }
	for _, tc := range []struct {
		name      string
		accel     string
		check     func() error
		fakeKVM   string
		wantBoots string // the -accel of each qemu started
		wantAccel string
		wantOut   []string
		wantErr   bool
	}{
		{"kvm works", "auto", works, "works", "kvm", "kvm", []string{"vmtest: accelerator kvm (-accel auto: /dev/kvm opens"}, false},
		{"kvm fails to set MSR", "auto", works, "msr", "kvm tcg", "tcg",
			[]string{"failed to set MSR 0x10a", "vmtest: kvm cannot run this guest here: the guest's init did not start: qemu ended (exit status 134)", "booting again under tcg", "vmtest: accelerator tcg (-accel auto: /dev/kvm opens but kvm failed"}, false},
		{"kvm guest silent", "auto", works, "hang", "kvm tcg", "tcg",
			[]string{"vmtest: kvm cannot run this guest here: the guest's init did not start within 2s: no INIT marker", "vmtest: accelerator tcg"}, false},
		{"kvm guest stuck after the firmware", "auto", works, "bios", "kvm tcg", "tcg",
			[]string{"within 2s: no INIT marker", "vmtest: accelerator tcg"}, false},
		{"no /dev/kvm", "auto", absent, "msr", "tcg", "tcg", []string{"vmtest: accelerator tcg (-accel auto: open /dev/kvm: file does not exist)"}, false},
		{"kvm forced and broken", "kvm", works, "msr", "kvm", "kvm", []string{"vmtest: accelerator kvm (-accel kvm, no fallback)"}, true},
		{"tcg forced", "tcg", works, "works", "tcg", "tcg", []string{"vmtest: accelerator tcg (-accel tcg)"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "boots")
			t.Setenv("FAKE_QEMU_LOG", log)
			t.Setenv("FAKE_KVM", tc.fakeKVM)
			o := vmOptions{kernel: "K", initrd: "I", memMB: 64, cpus: 1, accel: tc.accel, timeout: time.Minute,
				kvmProbe: time.Minute, kvmCheck: tc.check}
			if tc.fakeKVM == "hang" || tc.fakeKVM == "bios" {
				// Short, as the probe must run out; only these cases
				// wait for it, so a loaded machine cannot fail the others.
				o.kvmProbe = 2 * time.Second
			}
			var out bytes.Buffer
			rep, err := boot(context.Background(), o, &out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("boot error = %v; want error %v\n%s", err, tc.wantErr, out.String())
			}
			boots, _ := os.ReadFile(log)
			if got := strings.Join(strings.Fields(string(boots)), " "); got != tc.wantBoots {
				t.Errorf("qemu started with -accel %q; want %q", got, tc.wantBoots)
			}
			if rep.accel != tc.wantAccel {
				t.Errorf("report accelerator = %q; want %q", rep.accel, tc.wantAccel)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			if tc.wantErr {
				if errors.Is(err, errNotStarted) && tc.accel != "kvm" {
					t.Errorf("boot error %v: want no fallback error outside auto", err)
				}
				return
			}
			if lines, ok := rep.verdict([]string{"./a"}); !ok {
				t.Errorf("verdict = %q; want the guest's test to pass", lines)
			}
			if rep.results["./a"].Verdict != vmproto.Pass {
				t.Errorf("result of ./a = %+v; want PASS", rep.results["./a"])
			}
		})
	}
}
