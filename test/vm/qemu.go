package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
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
}

// qemuArgs gives qemu-system-x86_64's arguments and the accelerator it will use.
func qemuArgs(o vmOptions, haveKVM bool) ([]string, string, error) {
	accel := o.accel
	switch accel {
	case "auto":
		accel = "tcg"
		if haveKVM {
			accel = "kvm"
		}
	case "kvm", "tcg":
	default:
		return nil, "", fmt.Errorf("parse -accel %q: want auto, kvm or tcg", o.accel)
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
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
	}, accel, nil
}

func haveKVM() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// report is what the host saw on the console.
type report struct {
	initAfter time.Duration // from qemu start to the INIT marker; 0 if never seen
	initLine  string
	results   map[string]vmproto.Result
	done      bool
	panicked  bool
	elapsed   time.Duration
	timedOut  bool
}

// boot runs the VM, copying its console to out and collecting the markers.
func boot(ctx context.Context, o vmOptions, out io.Writer) (report, error) {
	rep := report{results: map[string]vmproto.Result{}}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return rep, fmt.Errorf("find qemu: %w (install it with test/vm/ci-deps.sh: apt-get install qemu-system-x86)", err)
	}
	args, accel, err := qemuArgs(o, haveKVM())
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "vmtest: %s %s\n", qemu, quoteArgs(args))
	if accel == "tcg" {
		fmt.Fprintln(out, "vmtest: no /dev/kvm: emulating the CPU (TCG), slower")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
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
	rep.scan(stdout, out, start)
	werr := cmd.Wait()
	rep.elapsed = time.Since(start)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		rep.timedOut = true
		return rep, fmt.Errorf("run vm: no power-off within %v (-timeout)", o.timeout)
	}
	if werr != nil {
		return rep, fmt.Errorf("run qemu: %w", werr)
	}
	return rep, nil
}

// terminalControl matches what the firmware sends to clear a terminal, and carriage
// returns, none of which belongs in a log.
var terminalControl = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\x1b[c()][0-9A-Za-z]?|\r`)

// scan copies console lines to out, without the serial line's carriage returns, and
// records the markers.
func (rep *report) scan(console io.Reader, out io.Writer, start time.Time) {
	br := bufio.NewReaderSize(console, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = terminalControl.ReplaceAllString(strings.TrimRight(line, "\r\n"), "")
			fmt.Fprintln(out, line)
			rep.observe(line, time.Since(start))
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
