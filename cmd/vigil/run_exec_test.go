package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestRunSignalsPhases drives the signal relay of 'vigil run' through its
// phases: before the command starts a signal stops the run, while it runs
// signals go to it, after it exited they are noted and ignored.
func TestRunSignalsPhases(t *testing.T) {
	t.Run("before the command starts", func(t *testing.T) {
		var stderr bytes.Buffer
		s := &runSignals{stderr: &stderr}
		s.handle(syscall.SIGHUP)
		s.handle(syscall.SIGINT) // the first one counts
		if got := s.pending(); got != syscall.SIGHUP {
			t.Errorf("pending() = %v; want SIGHUP", got)
		}
		if got := s.forwardTo(nil); got != syscall.SIGHUP {
			t.Errorf("forwardTo() = %v; want SIGHUP, nothing forwarded", got)
		}
		if !strings.Contains(stderr.String(), "vigil: SIGHUP: stopping before the command starts") {
			t.Errorf("stderr = %q; want the stop announced", stderr.String())
		}
		err := runFailed(&interruptedError{sig: syscall.SIGHUP})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 129 || !strings.Contains(err.Error(), "SIGHUP before the command started") {
			t.Errorf("runFailed(interrupted by SIGHUP) = %v; want exit status 129 saying why", err)
		}
	})
	t.Run("while the command runs", func(t *testing.T) {
		sleep := exec.Command("sleep", "30")
		if err := sleep.Start(); err != nil {
			t.Skip("no sleep:", err)
		}
		s := &runSignals{stderr: &bytes.Buffer{}}
		if got := s.forwardTo(sleep.Process); got != nil {
			t.Fatalf("forwardTo() = %v; want nil", got)
		}
		s.handle(syscall.SIGHUP)
		err := sleep.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP {
			sleep.Process.Kill()
			t.Fatalf("sleep after a forwarded SIGHUP: %v; want killed by SIGHUP", err)
		}
	})
	t.Run("after the command exited", func(t *testing.T) {
		var stderr bytes.Buffer
		s := &runSignals{stderr: &stderr}
		s.forwardTo(nil)
		s.childExited()
		s.handle(syscall.SIGHUP)
		if got := s.pending(); got != nil {
			t.Errorf("pending() = %v; want nil", got)
		}
		if !strings.Contains(stderr.String(), "vigil: SIGHUP: the command has exited; finishing the model and the outputs first") {
			t.Errorf("stderr = %q; want the signal noted", stderr.String())
		}
	})
}
