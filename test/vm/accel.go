package main

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// defaultKVMProbe is how long a guest booted under KVM by -accel auto has to
// start its init (print the INIT marker) before the harness gives up on KVM
// and boots again under TCG. A working KVM guest starts its init within a
// second or two. Where /dev/kvm opens but cannot run this guest (nested KVM
// on a CI runner), qemu either exits at once ("failed to set MSR 0x10a"
// with -cpu host) or spins without printing anything; both end the probe.
const defaultKVMProbe = 10 * time.Second

// errNotStarted: the guest's init never printed its INIT marker: qemu exited
// first, or the probe's time ran out.
var errNotStarted = errors.New("the guest's init did not start")

// accelChoice is the accelerator one boot uses, and why.
type accelChoice struct {
	accel string // kvm or tcg
	why   string
	// probe, when positive, makes the boot fail with errNotStarted if
	// the guest's init has not started within it, so that the caller
	// can boot again under TCG.
	probe time.Duration
}

// chooseAccel resolves -accel. auto takes KVM when the device opens (the
// check is o.kvmCheck, openKVM by default), on probation: the real boot is
// the probe, so a working KVM costs no extra boot.
func chooseAccel(o vmOptions) (accelChoice, error) {
	switch o.accel {
	case "tcg":
		return accelChoice{accel: "tcg", why: "-accel tcg"}, nil
	case "kvm":
		return accelChoice{accel: "kvm", why: "-accel kvm, no fallback"}, nil
	case "auto":
		check := o.kvmCheck
		if check == nil {
			check = openKVM
		}
		if err := check(); err != nil {
			return accelChoice{accel: "tcg", why: fmt.Sprintf("-accel auto: %v", err)}, nil
		}
		probe := o.kvmProbe
		if probe <= 0 {
			probe = defaultKVMProbe
		}
		return accelChoice{accel: "kvm", probe: probe,
			why: fmt.Sprintf("-accel auto: /dev/kvm opens; tcg instead if the guest's init has not started within %v (-kvm-probe)", probe)}, nil
	}
	return accelChoice{}, fmt.Errorf("parse -accel %q: want auto, kvm or tcg", o.accel)
}

// openKVM checks that /dev/kvm opens for reading and writing, as qemu needs.
func openKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}
