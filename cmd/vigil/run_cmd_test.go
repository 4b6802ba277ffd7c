package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunFlags checks the refusals 'vigil run' makes before it needs root
// or a kernel; the runs themselves are tested in test/e2e.
func TestRunFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", []string{"run"}, 2, "requires at least 1 arg"},
		{"enforce without model", []string{"run", "--enforce", "--", "true"}, 2, "--enforce needs --model"},
		{"forensics without model", []string{"run", "--forensics", "f", "--", "true"}, 2, "--forensics needs --model"},
		{"enforce on tracepoints", []string{"run", "--backend", "tracepoint", "--model", "m", "--enforce", "--", "true"}, 2, "observes only"},
		{"bad backend", []string{"run", "--backend", "kprobe", "--", "true"}, 2, "--backend"},
		{"command not found", []string{"run", "--", filepath.Join(t.TempDir(), "missing")}, 127, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, msg, code := vigilCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("vigil %s: exit %d %q; want %d and %q", strings.Join(tc.args, " "), code, msg, tc.code, tc.msg)
			}
		})
	}
	t.Run("needs root", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root; test/e2e checks the message as uid 65534")
		}
		_, msg, code := vigilCLI(t, "run", "--", "true")
		if code != 1 || !strings.Contains(msg, "needs root") {
			t.Errorf("exit %d %q; want 1 saying it needs root", code, msg)
		}
	})
}
