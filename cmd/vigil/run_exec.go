package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// runExecArg makes the vigil binary act as the enrolled stub of 'vigil run':
// "vigil <runExecArg> PATH ARG0 ARGS..." waits until its parent has enrolled
// it in the modeling namespace, then executes PATH, so the command's exec is
// the namespace's first event. The stub first says it is ready (closes file
// descriptor 4): its own start-up (the Go runtime's file opens and threads)
// happens before the enrollment and is not modeled. Then it waits for a
// byte on file descriptor 3.
const runExecArg = "__vigil-run-exec"

// stubName is the stub's task name (comm) while it waits to exec: the
// process of the command's exec in the trajectory, on either backend.
const stubName = "vigil-run"

// The stub must exec from the thread its parent enrolled: the kernel keeps
// namespace membership per task, and the parent enrolled the process's main
// thread (its pid). Go runs init functions on the main thread, locked to it,
// so the stub does all its work here, before main, and never returns.
func init() {
	if len(os.Args) >= 4 && os.Args[1] == runExecArg {
		runtime.LockOSThread()
		os.Exit(enrolledExec(os.Args[2], os.Args[3:]))
	}
}

// enrolledExec is the stub: wait for the go-ahead, then exec. It returns only
// on failure, with env(1)'s exit codes: 126 cannot execute, 127 not found.
func enrolledExec(path string, argv []string) int {
	// Name the task before the parent enrolls it, so its exec is
	// described the same way whatever the binary is called.
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte(stubName + "\x00")[0])), 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "vigil: WARNING: name the task %s: %v; its exec is described under the name of the vigil binary\n", stubName, err)
	}
	if err := os.NewFile(4, "enroll-ready").Close(); err != nil {
		fmt.Fprintf(os.Stderr, "vigil: say ready to be enrolled: %v; not running %s\n", err, path)
		return 125
	}
	gate := os.NewFile(3, "enroll-gate")
	var b [1]byte
	n, err := gate.Read(b[:])
	if n != 1 || err != nil {
		// The parent went away or could not enroll us: run nothing
		// unobserved.
		fmt.Fprintln(os.Stderr, "vigil: not enrolled in the modeling namespace; not running", path)
		return 125
	}
	// The gate is no file of CMD's: it must not stay open across the
	// exec.
	if err := gate.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "vigil: close the enroll gate: %v; not running %s\n", err, path)
		return 125
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "vigil: exec %s: %v\n", path, err)
	if errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

// runEnrolled starts the stub, enrolls it into the namespace (enroll), lets
// it exec CMD and waits for CMD. It returns CMD's exit status. A signal
// held by sigs before CMD could start makes it return an *interruptedError
// without starting CMD.
func runEnrolled(cmd *cobra.Command, sigs *runSignals, enroll func(pid int) error, path string, args []string) (int, error) {
	if s := sigs.pending(); s != nil {
		return 0, &interruptedError{sig: s}
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the vigil executable: %w", err)
	}
	gateR, gateW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create enroll gate: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		_ = gateR.Close() // unused: nothing to lose
		_ = gateW.Close()
		return 0, fmt.Errorf("create ready pipe: %w", err)
	}
	child := exec.Command(self, append([]string{runExecArg, path}, args...)...)
	child.Args[0] = "vigil"
	child.Stdin, child.Stdout, child.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	child.ExtraFiles = []*os.File{gateR, readyW}
	err = child.Start()
	// The stub has its own copies of its ends (or none: it did not
	// start); closing ours cannot lose anything.
	_ = gateR.Close()
	_ = readyW.Close()
	if err != nil {
		_ = gateW.Close()
		_ = readyR.Close()
		return 0, fmt.Errorf("start %s: %w", path, err)
	}
	// stop ends the stub before CMD runs (it sees EOF at the gate and
	// exits): err says why, unless a signal killed the stub first.
	stop := func(err error) (int, error) {
		_ = gateW.Close() // the stub's EOF
		var ee *exec.ExitError
		if errors.As(child.Wait(), &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 0, &interruptedError{sig: ws.Signal()}
			}
		}
		return 0, err
	}
	// Wait until the stub has started and waits at the gate (it closes
	// its end of the ready pipe: EOF here).
	_, err = io.Copy(io.Discard, readyR)
	_ = readyR.Close() // read to its end, or failed: either way done with it
	if err != nil {
		return stop(fmt.Errorf("wait for the stub of %s to start: %w", path, err))
	}
	// From here signals go to the stub, then to CMD; one that came
	// before stops the run with CMD never started.
	if s := sigs.forwardTo(child.Process); s != nil {
		_, _ = stop(nil) // the signal is the reason
		return 0, &interruptedError{sig: s}
	}
	defer sigs.childExited()
	if err := enroll(child.Process.Pid); err != nil {
		return stop(fmt.Errorf("enroll %s (pid %d): %w", path, child.Process.Pid, err))
	}
	if _, err := gateW.Write([]byte{1}); err != nil {
		return stop(fmt.Errorf("release %s: %w", path, err))
	}
	// The byte is in the pipe: the stub goes on whatever closing says.
	_ = gateW.Close()

	err = child.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("wait for %s: %w", path, err)
	}
	return 0, nil
}

// runSignals holds the signals a user sends 'vigil run' (SIGINT, SIGTERM,
// SIGHUP, SIGQUIT, as a closing terminal or Ctrl-C does) for as long as it
// runs, so that none kills it half-way (leaving outputs unwritten and
// the capture torn down before the ring buffer was drained). The kernel
// detaches the capture programs of a process that dies (nothing is
// pinned) and outputs are written atomically, so a SIGKILL leaves no BPF
// state and no half-written file; the other signals are handled by phase:
//
//   - before CMD starts, the first one stops the run: CMD is never
//     started, no output is written, the exit status is 128+N;
//   - while CMD runs, each goes to CMD, which decides; vigil waits for it
//     to exit as always (exit status 128+N when the signal killed it);
//   - after CMD exited, vigil finishes its work (drain, outputs, summary)
//     and says so on standard error.
type runSignals struct {
	ch     chan os.Signal
	stderr io.Writer
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	first  os.Signal   // the first signal before CMD started
	child  *os.Process // set while the stub or CMD runs
	exited bool        // CMD has exited
}

// holdRunSignals starts holding the signals; release stops.
func holdRunSignals(stderr io.Writer) *runSignals {
	s := &runSignals{ch: make(chan os.Signal, 4), stderr: stderr, done: make(chan struct{})}
	signal.Notify(s.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case sig := <-s.ch:
				s.handle(sig)
			case <-s.done:
				return
			}
		}
	}()
	return s
}

func (s *runSignals) handle(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.exited:
		fmt.Fprintf(s.stderr, "vigil: %s: the command has exited; finishing the model and the outputs first\n", signalName(sig))
	case s.child != nil:
		if err := s.child.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintf(s.stderr, "vigil: %s: forward it to the command: %v\n", signalName(sig), err)
		}
	case s.first == nil:
		s.first = sig
		fmt.Fprintf(s.stderr, "vigil: %s: stopping before the command starts\n", signalName(sig))
	}
}

// pending returns the signal that came before CMD started, if any.
func (s *runSignals) pending() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// forwardTo sends later signals to p, unless one came before: then it
// returns that one and forwards nothing.
func (s *runSignals) forwardTo(p *os.Process) os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first != nil {
		return s.first
	}
	s.child = p
	return nil
}

// childExited ends the forwarding: CMD has exited.
func (s *runSignals) childExited() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.child, s.exited = nil, true
}

// release stops holding the signals.
func (s *runSignals) release() {
	signal.Stop(s.ch)
	close(s.done)
	s.wg.Wait()
}

// interruptedError: a signal stopped 'vigil run' before CMD started.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string {
	return fmt.Sprintf("%s before the command started: not started, no output written", signalName(e.sig))
}

// status is the exit status of a run stopped by the signal: 128+N.
func (e *interruptedError) status() int {
	if n, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 130
}

// runFailed is the exit of a run whose CMD did not run to its end: 128+N
// for a signal before CMD started, else a failure.
func runFailed(err error) error {
	var ie *interruptedError
	if errors.As(err, &ie) {
		return &exitError{code: ie.status(), err: err}
	}
	return failed(err)
}

// signalName is "SIGHUP" for syscall.SIGHUP.
func signalName(s os.Signal) string {
	if n, ok := s.(syscall.Signal); ok {
		if name := unix.SignalName(n); name != "" {
			return name
		}
	}
	return s.String()
}
