package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsem/vigil/test/vm/vmproto"
)

func TestQEMUArgs(t *testing.T) {
	o := vmOptions{kernel: "K", initrd: "I", memMB: 1024, cpus: 2}
	for _, tc := range []struct {
		accel   string
		wantCPU string
		wantErr bool
	}{
		{"kvm", "host", false},
		{"tcg", "max", false},
		{"auto", "", true}, // resolved by chooseAccel first
		{"hvf", "", true},
	} {
		args, err := qemuArgs(o, tc.accel)
		if (err != nil) != tc.wantErr {
			t.Errorf("qemuArgs(%s) error = %v; want error %v", tc.accel, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		joined := strings.Join(args, " ")
		for _, want := range []string{"-kernel K", "-initrd I", "-no-reboot", "-m 1024", "-smp 2", "-accel " + tc.accel, "-cpu " + tc.wantCPU} {
			if !strings.Contains(joined, want) {
				t.Errorf("qemuArgs(%s) = %q; missing %q", tc.accel, joined, want)
			}
		}
		i := slices.Index(args, "-append")
		if i < 0 || !strings.Contains(args[i+1], "lsm=lockdown,capability,landlock,bpf") || !strings.Contains(args[i+1], "console=ttyS0") {
			t.Errorf("qemuArgs kernel command line = %q; want the serial console and the bpf LSM", args)
		}
	}
}

func TestTerminalControl(t *testing.T) {
	in := "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r"
	if got := terminalControl.ReplaceAllString(in, ""); got != "SeaBIOS (version 1.16.2)" {
		t.Errorf("terminalControl stripped %q to %q", in, got)
	}
}

func TestReportVerdict(t *testing.T) {
	end := func(name string, v vmproto.Verdict) string {
		return vmproto.Result{Name: name, Verdict: v, Pass: 1, Elapsed: time.Second}.Line()
	}
	for _, tc := range []struct {
		name    string
		console []string
		want    bool
		wantMsg string
	}{
		{"all pass", []string{"VIGIL-VM INIT kernel=6.1 lsm=capability,bpf", end("./a", vmproto.Pass), end("./b", vmproto.Pass), "VIGIL-VM DONE passed=2 total=2"}, true, ""},
		{"one fails", []string{end("./a", vmproto.Pass), end("./b", vmproto.Fail), "VIGIL-VM DONE passed=1 total=2"}, false, "FAIL ./b"},
		{"no tests", []string{end("./a", vmproto.Pass), end("./b", vmproto.NoTests), "VIGIL-VM DONE"}, false, "NO-TESTS ./b"},
		{"all skipped", []string{end("./a", vmproto.AllSkipped), end("./b", vmproto.Pass), "VIGIL-VM DONE"}, false, "ALL-SKIPPED ./a"},
		{"one missing", []string{end("./a", vmproto.Pass), "VIGIL-VM DONE"}, false, "./b: no result"},
		{"no done", []string{end("./a", vmproto.Pass), end("./b", vmproto.Pass)}, false, "no DONE marker"},
		{"panic", []string{"VIGIL-VM INIT x", end("./a", vmproto.Pass), "[    3.1] Kernel panic - not syncing: Attempted to kill init!"}, false, "kernel panic"},
		{"never started", nil, false, "init never started"},
		{"no bpf lsm", []string{"VIGIL-VM INIT kernel=6.1 lsm=lockdown,capability", end("./a", vmproto.Fail), end("./b", vmproto.Pass), "VIGIL-VM DONE"}, false, "bpf is not in the guest's active LSMs"},
		{"marker after kernel text", []string{"[ 1.0] x: " + end("./a", vmproto.Pass), end("./b", vmproto.Pass), "VIGIL-VM DONE"}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := report{results: map[string]vmproto.Result{}}
			for _, l := range tc.console {
				rep.observe(l, time.Second)
			}
			lines, ok := rep.verdict([]string{"./a", "./b"})
			msg := strings.Join(lines, "\n")
			if ok != tc.want || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("verdict = %v, %q; want %v with %q", ok, msg, tc.want, tc.wantMsg)
			}
		})
	}
}
