package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

// cmdline is the kernel command line: the serial console, the BPF LSM in the active
// list, no boot chatter, and a panic (init dying) ends the VM at once.
const cmdline = "console=ttyS0 lsm=lockdown,capability,landlock,bpf quiet panic=-1"

type vmOptions struct {
	kernel, initrd string
	append         string
	memMB, cpus    int
	accel          string // auto, kvm or tcg
	timeout        time.Duration
	// kvmProbe is how long a KVM guest of -accel auto has to start its
	// init; defaultKVMProbe when zero.
	kvmProbe time.Duration
	// kvmCheck says whether KVM may be tried with -accel auto; openKVM
	// when nil.
	kvmCheck func() error
}

// qemuArgs gives qemu-system-x86_64's arguments for accelerator accel (kvm
// or tcg).
func qemuArgs(o vmOptions, accel string) ([]string, error) {
	cpu := "max"
	switch accel {
	case "kvm":
		cpu = "host"
	case "tcg":
	default:
		return nil, fmt.Errorf("accelerator %q: want kvm or tcg", accel)
	}
	line := cmdline
	if o.append != "" {
		line += " " + o.append
	}
	return []string{
		"-kernel", o.kernel, "-initrd", o.initrd, "-append", line,
		"-nographic", "-no-reboot", "-nic", "none",
		"-m", fmt.Sprint(o.memMB), "-smp", fmt.Sprint(o.cpus),
		"-accel", accel, "-cpu", cpu,
	}, nil
}

// report is what the host saw on the console.
type report struct {
	accel, accelWhy string        // the accelerator of the boot that ran, and why
	initAfter       time.Duration // from qemu start to the INIT marker; 0 if never seen
	initLine        string
	results         map[string]vmproto.Result
	done            bool
	panicked        bool
	elapsed         time.Duration
	timedOut        bool
}

// boot runs the VM, copying its console to out and collecting the markers.
// Under -accel auto with KVM on probation, a guest that does not start
// (errNotStarted) is booted again under TCG.
func boot(ctx context.Context, o vmOptions, out io.Writer) (report, error) {
	rep := report{results: map[string]vmproto.Result{}}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return rep, fmt.Errorf("find qemu: %w (install it with test/vm/ci-deps.sh: apt-get install qemu-system-x86)", err)
	}
	choice, err := chooseAccel(o)
	if err != nil {
		return rep, err
	}
	rep, err = bootWith(ctx, qemu, o, choice, out)
	if choice.probe > 0 && errors.Is(err, errNotStarted) {
		fmt.Fprintf(out, "vmtest: kvm cannot run this guest here: %v; booting again under tcg\n", err)
		choice = accelChoice{accel: "tcg", why: fmt.Sprintf("-accel auto: /dev/kvm opens but kvm failed: %v", err)}
		rep, err = bootWith(ctx, qemu, o, choice, out)
	}
	return rep, err
}

// errProbeExpired ends a boot whose probe ran out.
var errProbeExpired = errors.New("kvm probe expired")

// bootWith is one boot of qemu under c's accelerator.
func bootWith(ctx context.Context, qemu string, o vmOptions, c accelChoice, out io.Writer) (report, error) {
	rep := report{results: map[string]vmproto.Result{}, accel: c.accel, accelWhy: c.why}
	args, err := qemuArgs(o, c.accel)
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "vmtest: accelerator %s (%s)\n", c.accel, c.why)
	if c.accel == "tcg" {
		fmt.Fprintln(out, "vmtest: emulating the CPU (TCG), slower")
	}
	fmt.Fprintf(out, "vmtest: %s %s\n", qemu, quoteArgs(args))
	runCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	qemuCtx, stopQEMU := context.WithCancelCause(runCtx)
	defer stopQEMU(nil)
	cmd := exec.CommandContext(qemuCtx, qemu, args...)
	cmd.Stdin = nil
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return rep, fmt.Errorf("start qemu: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return rep, fmt.Errorf("start qemu: %w", err)
	}
	var started atomic.Bool
	if c.probe > 0 {
		probe := time.AfterFunc(c.probe, func() {
			if !started.Load() {
				stopQEMU(errProbeExpired)
			}
		})
		defer probe.Stop()
	}
	rep.scan(stdout, out, start, func() { started.Store(true) })
	werr := cmd.Wait()
	rep.elapsed = time.Since(start)
	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("run qemu: %w", context.Cause(ctx))
	case errors.Is(context.Cause(qemuCtx), errProbeExpired):
		return rep, fmt.Errorf("%w within %v: no INIT marker on the console", errNotStarted, c.probe)
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		rep.timedOut = true
		return rep, fmt.Errorf("run vm: no power-off within %v (-timeout)", o.timeout)
	case c.probe > 0 && rep.initAfter == 0:
		how := "exit status 0"
		if werr != nil {
			how = werr.Error()
		}
		return rep, fmt.Errorf("%w: qemu ended (%s) after %v, before the INIT marker", errNotStarted, how, rep.elapsed.Round(10*time.Millisecond))
	case werr != nil:
		return rep, fmt.Errorf("run qemu: %w", werr)
	}
	return rep, nil
}

// terminalControl matches what the firmware sends to clear a terminal, and carriage
// returns, none of which belongs in a log.
var terminalControl = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b[c()][0-9A-Za-z]?|\r`)

// scan copies console lines to out, without the serial line's carriage returns, and
// records the markers. It calls started (once) when the INIT marker shows.
func (rep *report) scan(console io.Reader, out io.Writer, start time.Time, started func()) {
	br := bufio.NewReaderSize(console, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = terminalControl.ReplaceAllString(strings.TrimRight(line, "\r\n"), "")
			fmt.Fprintln(out, line)
			seen := rep.initAfter > 0
			rep.observe(line, time.Since(start))
			if !seen && rep.initAfter > 0 {
				started()
			}
		}
		if err != nil {
			return
		}
	}
}

func (rep *report) observe(line string, at time.Duration) {
	if strings.Contains(line, "Kernel panic") {
		rep.panicked = true
	}
	kind, rest, ok := vmproto.Marker(line)
	if !ok {
		return
	}
	switch kind {
	case vmproto.KindInit:
		if rep.initAfter == 0 {
			rep.initAfter = at
			rep.initLine = rest
		}
	case vmproto.KindEnd:
		if r, err := vmproto.ParseEnd(rest); err == nil {
			rep.results[r.Name] = r
		}
	case vmproto.KindDone:
		rep.done = true
	}
}

// verdict says, for each expected package, what happened, and whether all passed.
func (rep *report) verdict(names []string) (lines []string, ok bool) {
	ok = rep.done
	for _, n := range names {
		r, seen := rep.results[n]
		if !seen {
			ok = false
			lines = append(lines, fmt.Sprintf("FAIL %s: no result (the VM stopped before it finished)", n))
			continue
		}
		if r.Verdict != vmproto.Pass {
			ok = false
		}
		lines = append(lines, fmt.Sprintf("%s %s (pass=%d skip=%d fail=%d, exit %d, %v)",
			r.Verdict, n, r.Pass, r.Skip, r.Fail, r.Exit, r.Elapsed))
	}
	if rep.initAfter > 0 && !lsmHasBPF(rep.initLine) {
		lines = append(lines, "warning: bpf is not in the guest's active LSMs ("+rep.initLine+"); LSM tests cannot pass")
	}
	if !rep.done {
		why := "the guest did not finish"
		switch {
		case rep.timedOut:
			why = "timed out"
		case rep.panicked:
			why = "kernel panic"
		case rep.initAfter == 0:
			why = "the init never started (see the console above)"
		}
		lines = append(lines, "no DONE marker: "+why)
	}
	return lines, ok
}

// lsmHasBPF reads the lsm= field of an INIT marker.
func lsmHasBPF(initRest string) bool {
	for _, f := range strings.Fields(initRest) {
		if list, ok := strings.CutPrefix(f, "lsm="); ok {
			return slices.Contains(strings.Split(list, ","), "bpf")
		}
	}
	return false
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
