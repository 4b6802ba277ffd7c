package vmagent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The helper modes of the test binary, chosen by VIGIL_VMAGENT_HELPER:
//
//	gate   read one byte from stdin (the test moves the process into its
//	       container cgroup and waits for the agent to enrol it
//	       meanwhile), then exec this binary again in mode serve, so that
//	       everything the workload does from its exec on is modeled
//	serve  read commands from stdin, one a line, and answer each with
//	       one line: "open PATH" opens, reads and closes PATH and answers
//	       "ok" or the errno's name (EPERM); anything else answers
//	       "bad command"; end of input ends the helper
const envHelper = "VIGIL_VMAGENT_HELPER"

func init() {
	// The gate execs from the main thread: the agent enrols the process
	// by pid, and namespace membership belongs to that thread.
	if os.Getenv(envHelper) != "" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	switch mode {
	case "gate":
		// One byte, unbuffered: the commands after it are mode serve's.
		var b [1]byte
		if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper: gate:", err)
			return 3
		}
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 3
		}
		// The first of duplicate variables wins: replace the mode.
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envHelper+"=") {
				env = append(env, kv)
			}
		}
		env = append(env, envHelper+"=serve")
		err = syscall.Exec(self, []string{self}, env)
		fmt.Fprintln(os.Stderr, "helper: exec:", err)
		return 3
	case "serve":
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			os.Stdout.WriteString(serve(in.Text()) + "\n")
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "helper: unknown mode %q\n", mode)
	return 3
}

// serve runs one command of mode serve and returns its answer.
func serve(cmd string) string {
	path, ok := strings.CutPrefix(cmd, "open ")
	if !ok || path == "" {
		return "bad command"
	}
	f, err := os.Open(path)
	if err == nil {
		_, err = io.Copy(io.Discard, f)
		f.Close()
	}
	return errName(err)
}

// errName is "ok" for nil, the errno's name (EPERM) for an errno, and the
// error's text otherwise.
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/file"
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd, want string
	}{
		{"open " + file, "ok"},
		{"open " + dir + "/missing", "ENOENT"},
		{"open ", "bad command"},
		{"read " + file, "bad command"},
		{"", "bad command"},
	}
	for _, tt := range tests {
		if got := serve(tt.cmd); got != tt.want {
			t.Errorf("serve(%q) = %q; want %q", tt.cmd, got, tt.want)
		}
	}
}

func TestErrName(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{unix.EPERM, "EPERM"},
		{&os.PathError{Op: "open", Path: "/x", Err: unix.EACCES}, "EACCES"},
		{errors.New("other"), "other"},
	}
	for _, tt := range tests {
		if got := errName(tt.err); got != tt.want {
			t.Errorf("errName(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}
