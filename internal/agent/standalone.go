package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// Standalone is `vigil run` without an agent: the agent's pipeline in the
// process, with one run namespace and nothing around it (no control
// socket, no metrics listener, no container discovery, no export). Its
// namespace is created, enrolled and drained by the same code as an
// agent's run namespace, so a command modeled either way gives the same
// model and the same log records.
//
// Use: OpenStandalone, Create, Enroll the command's first process, Finish
// when it has exited (the ring buffer is drained into the model), read the
// namespace, Close.
type Standalone struct {
	p       *pipeline
	st      *nsState
	drained bool
	readErr error // drain's
}

// StandaloneOptions configure OpenStandalone.
type StandaloneOptions struct {
	Backend         bpf.Backend
	RingBufferBytes uint32 // 0: bpf's default
	// Log is the measured log to append to ("" for none) and Register
	// the register it extends: opened by the caller, owned by the
	// Standalone from the call on; Why says how the register was chosen.
	Log      string
	Register measure.Register
	Why      string
	// Logger receives the pipeline's log; slog.Default() when nil.
	Logger *slog.Logger
	// Stderr receives the final "register NAME INDEX ALG HEX" line.
	Stderr io.Writer
	// Losses is told of lost records (the pipeline's log when nil).
	Losses LossReporter
	// Denied, if set, is called on the reader goroutine with every
	// record the kernel denied, before it is modeled.
	Denied func(bpf.Record)
	// LossInterval is how often the loss counters are polled while the
	// command runs; 1s when zero.
	LossInterval time.Duration
}

// OpenStandalone loads the capture programs, opens the measured log and
// starts reading records. On failure it releases what it opened, the
// register included.
func OpenStandalone(o StandaloneOptions) (*Standalone, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.LossInterval <= 0 {
		o.LossInterval = time.Second
	}
	if o.Register == nil && o.Log != "" {
		return nil, errors.New("open standalone pipeline: a measured log needs a register")
	}
	p, err := openPipeline(pipelineOptions{
		backend: o.Backend, ringBytes: o.RingBufferBytes,
		logPath: o.Log, register: o.Register, why: o.Why,
		met: metrics.New(metrics.Options{}), log: o.Logger, stderr: o.Stderr, losses: o.Losses,
	})
	if err != nil {
		return nil, err
	}
	p.denied = o.Denied
	p.start(o.LossInterval)
	return &Standalone{p: p}, nil
}

// Backend is the capture backend in use.
func (s *Standalone) Backend() bpf.Backend { return s.p.capture.Backend() }

// CanEnforce reports whether the backend can deny events.
func (s *Standalone) CanEnforce() bool { return s.p.capture.CanEnforce() }

// Create creates the run namespace, named name (run-<id> when empty) with
// settings, learning, or sealed to m when m is not nil (a loaded model,
// sealed; settings.HashAlgorithm must be its hash): in the kernel, in the
// measured log and, with settings.Enforce, enforcing.
func (s *Standalone) Create(name string, m *model.Model, settings control.Settings) error {
	if s.st != nil {
		return fmt.Errorf("create namespace %q: the run has namespace %q already", name, s.st.ns.Name())
	}
	if settings.Enforce && !s.CanEnforce() {
		return fmt.Errorf("create namespace %q: enforce: %w", name, bpf.ErrObserveOnly)
	}
	st, err := s.p.table.createRun(name, 0, m, settings)
	if err != nil {
		return err
	}
	s.st = st
	return nil
}

// Enroll makes process pid, a child of this process in no namespace yet,
// the first task of the namespace (before it execs the command).
func (s *Standalone) Enroll(pid int) error {
	if s.st == nil {
		return errors.New("enroll: no namespace created")
	}
	return s.p.table.AddTask(s.st.ns.Name(), control.TaskRequest{PID: pid, Caller: control.Peer{PID: int32(os.Getpid())}})
}

// Finish stops reading once every record in the ring buffer (and the
// kernel's repeat counts) is in the model and the last losses are
// recorded. It returns the reader's failure.
func (s *Standalone) Finish() error {
	if !s.drained {
		s.drained = true
		s.readErr = s.p.drain()
		s.p.log.Debug("digest cache", "stats", s.p.digests.Stats())
	}
	return s.readErr
}

// Err returns the first error a new point of the namespace met, other
// than a measured log that cannot be written now (which Close reports if
// it still cannot): the model or its measurement is incomplete.
func (s *Standalone) Err() error {
	if s.st == nil {
		return nil
	}
	if err := s.st.modelErr.Load(); err != nil {
		return *err
	}
	return nil
}

// Namespace is the run's namespace (nil before Create).
func (s *Standalone) Namespace() *namespace.Namespace {
	if s.st == nil {
		return nil
	}
	return s.st.ns
}

// Tasks is the task table of the namespace's tasks.
func (s *Standalone) Tasks() *namespace.Tasks { return s.p.disp.Tasks() }

// DigestFailures counts file digests that could not be read.
func (s *Standalone) DigestFailures() uint64 { return s.p.disp.Converter().DigestFailures() }

// Close stops reading (if Finish did not), commits and closes the
// measured log, prints the register's value (when there is a log) and
// detaches the programs.
func (s *Standalone) Close() error {
	if !s.drained {
		s.drained = true
		s.readErr = s.p.drain()
	}
	err := s.p.close(true)
	if s.st != nil {
		// After the log: its queued records are committed first.
		s.p.table.closeModel(s.st.ns)
	}
	return err
}
