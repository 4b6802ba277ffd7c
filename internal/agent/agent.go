package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/config"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/export"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// Errors of New for configurations the agent cannot run.
var (
	// ErrNotRoot: loading the capture programs and enrolling tasks needs root.
	ErrNotRoot = errors.New("vigil agent needs root: loading eBPF programs takes CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN, and the control socket lives in /run; run it with sudo or as a privileged service")
	// ErrUnsupported: a configuration value the agent does not implement.
	ErrUnsupported = errors.New("not supported by this agent")
)

// DefaultStopGrace is how long the namespace of a container that stopped is
// kept: long enough for its last records to leave the ring buffer and for
// an operator to read its forensics, and so that a container restarted
// under the same id (docker restart) continues in the same namespace.
const DefaultStopGrace = time.Minute

// Options tune New beyond the configuration file.
type Options struct {
	// Stdout receives the export when the destination is "-".
	Stdout io.Writer
	// Stderr receives the final "register NAME INDEX ALG HEX" line.
	Stderr io.Writer
	// Logger receives the agent's log; slog.Default() when nil.
	Logger *slog.Logger
	// StopGrace overrides DefaultStopGrace.
	StopGrace time.Duration
	// EnrollResync is how often every container cgroup is re-read for
	// processes that entered it from outside; 1s when zero.
	EnrollResync time.Duration
	// LossInterval is how often loss counters and statistics are polled;
	// 1s when zero.
	LossInterval time.Duration
}

// Agent is a running host agent; see the package documentation. It is the
// pipeline (pipeline.go) with container discovery, the enroller, the
// control socket and the metrics listener around it.
type Agent struct {
	*pipeline
	cfg  config.Config
	opts Options

	enroller *enroller
	watcher  *namespace.ContainerWatcher

	controlL, metricsL net.Listener

	mu         sync.Mutex
	containers map[string]*container // by namespace name
	closed     bool
	selfSeen   bool // the agent's own container was found and skipped
}

// container is a discovered container and its namespace.
type container struct {
	st      *nsState
	removal *time.Timer // set while the container is stopped
}

// New opens everything the agent needs, so that every configuration or
// privilege problem shows before it runs. Close it with Run (which shuts
// down when its context ends) or, if Run is never called, with Close.
func New(cfg config.Config, opts Options) (a *Agent, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if _, err := model.ParseHash(cfg.Hash); err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	if opts.EnrollResync <= 0 {
		opts.EnrollResync = time.Second
	}
	if opts.LossInterval <= 0 {
		opts.LossInterval = time.Second
	}
	a = &Agent{cfg: cfg, opts: opts, containers: make(map[string]*container)}
	opened := a // a is nil when New fails
	defer func() {
		if err != nil {
			opened.closeAll(false)
		}
	}()

	root, err := namespace.FindCgroup2Root(cfg.CgroupRoot)
	if err != nil {
		return nil, fmt.Errorf("cgroup_root: %w", err)
	}
	a.watcher = &namespace.ContainerWatcher{Root: root, Resync: cfg.ContainerResync}

	backend, err := bpf.ParseBackend(cfg.Backend)
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	// config.Resolve checked the size; a Config built in code may not
	// have been, and the uint32 below must not wrap.
	if err := bpf.CheckRingBufferBytes(int64(cfg.RingBufferSize)); err != nil {
		return nil, fmt.Errorf("ring_buffer_size: %w", err)
	}
	po := pipelineOptions{
		backend: backend, ringBytes: uint32(cfg.RingBufferSize), logPath: cfg.Log,
		defaults: control.Settings{HashAlgorithm: cfg.Hash, Dialect: cfg.Dialect, Capable: cfg.Capable, Enforce: cfg.Enforce, FailClosed: cfg.FailClosed, RepeatCache: cfg.RepeatCache},
		modelDir: cfg.ModelDir, met: metrics.New(metrics.Options{Runtime: true}), log: opts.Logger, stderr: opts.Stderr,
	}
	if cfg.Log != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.Log), 0o700); err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		if po.register, po.why, err = measure.OpenRegister(cfg.Register, measure.RegisterOptions{TDXRoot: cfg.TDXRoot, TPMDevice: cfg.TPM, PCR: cfg.PCR}); err != nil {
			return nil, fmt.Errorf("register %s: %w", cfg.Register, err)
		}
	}
	if a.pipeline, err = openPipeline(po); err != nil {
		return nil, err
	}
	if cfg.Enforce && !a.capture.CanEnforce() {
		a.log.Warn("enforce is set but the capture backend cannot deny: namespaces will seal, not enforce", "backend", a.capture.Backend())
	}
	a.ecs = cfg.ExportFormat == "ecs"
	a.forensicsLog = newLogLimiter(forensicsLogBurst, forensicsLogWindow)
	a.table.containerPseudonyms = cfg.ContainerPseudonyms
	a.table.runs.grace = opts.StopGrace // ended `vigil run` namespaces are kept as long as stopped containers'
	a.table.images = &namespace.ImageResolver{Root: cfg.RuntimeRoot}
	a.disp.Converter().FileSystemOf = a.table.fileSystem // containerfs.go
	a.table.keyByImage = cfg.ModelKey == "image"
	a.table.hostEnforce = cfg.HostEnforce
	if cfg.LearnInstances > 0 || cfg.LearnPeriod > 0 {
		a.table.learner = newImageLearner(cfg.LearnInstances, cfg.LearnPeriod, a.table, a.log)
	}
	a.table.logFull = cfg.LogFull
	a.enroller = newEnroller(a.capture, a.log, opts.EnrollResync)

	if cfg.Export != "" {
		a.sink, err = export.Open(cfg.Export, opts.Stdout, export.Options{
			MaxSize: cfg.ExportMaxSize, MaxFiles: cfg.ExportMaxFiles, ForensicsOnly: cfg.ExportForensicsOnly,
			FlushInterval: cfg.ExportFlushInterval, Log: a.log,
		})
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		a.met.CountExport(func() metrics.ExportCounts {
			st := a.sink.Stats()
			return metrics.ExportCounts{Written: st.Written, Dropped: st.Dropped, Failed: st.Failed, WriteErrors: st.WriteErrors}
		})
	}
	if a.controlL, err = control.Listen(cfg.Socket); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if a.metricsL, err = metrics.Listen(cfg.MetricsAddr); err != nil {
			return nil, err
		}
	}
	if cfg.HostNamespace {
		// Last: from here on the kernel reports every task of the node.
		a.self = newSelfFilter(os.Getpid())
		st, err := a.table.startHost()
		if err != nil {
			return nil, fmt.Errorf("host_namespace: %w", err)
		}
		a.log.Info("modeling the host", "namespace", st.ns.Name(), "context", st.ns.ID(), "mode", st.ns.Mode())
	}
	return a, nil
}

// Backend returns the capture backend in use.
func (a *Agent) Backend() bpf.Backend { return a.capture.Backend() }

// MetricsAddr returns the address /metrics is served on, nil when off.
func (a *Agent) MetricsAddr() net.Addr {
	if a.metricsL == nil {
		return nil
	}
	return a.metricsL.Addr()
}

// Control returns the control API backend (the agent's namespaces).
func (a *Agent) Control() control.Backend { return a.table }

// Close releases what New opened, for an agent whose Run was never called.
func (a *Agent) Close() error { return a.closeAll(false) }

// closeAll closes every resource in the order that keeps the log
// consistent: the listeners, then the pipeline's export, log, register and
// programs (pipeline.close; final prints the register's value).
func (a *Agent) closeAll(final bool) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	var errs []error
	// The servers have closed their listeners when Run stopped them, and
	// a unix listener removes its socket file as it closes.
	if a.controlL != nil {
		if err := a.controlL.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the control socket: %w", err))
		}
		if a.cfg.Socket != "" {
			if err := os.Remove(a.cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove the control socket: %w", err))
			}
		}
	}
	if a.metricsL != nil {
		if err := a.metricsL.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the metrics listener: %w", err))
		}
	}
	if a.enroller != nil && a.enroller.in != nil {
		// Closed already when the enroller stopped with Run.
		if err := a.enroller.in.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("close the cgroup watch: %w", err))
		}
	}
	if a.pipeline != nil {
		errs = append(errs, a.pipeline.close(final))
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends or a part of the agent fails, then shuts down
// gracefully: discovery stops, the ring buffer is drained into the models,
// the last losses are recorded, the export is flushed, the log and the
// register are closed and the programs detached. It returns nil after a
// shutdown asked for by ctx.
func (a *Agent) Run(ctx context.Context) error {
	serveCtx, stopServing := context.WithCancel(context.Background())
	watchCtx, stopWatching := context.WithCancel(context.Background())
	defer stopServing()
	defer stopWatching()

	fatal := make(chan error, 4)
	var servers, watchers sync.WaitGroup
	servers.Add(1)
	go func() {
		defer servers.Done()
		srv := &control.Server{Backend: a.table, Log: a.log}
		if err := srv.Serve(serveCtx, a.controlL); err != nil {
			fatal <- err
		}
	}()
	if a.metricsL != nil {
		servers.Add(1)
		go func() {
			defer servers.Done()
			if err := a.met.Serve(serveCtx, a.metricsL); err != nil {
				fatal <- err
			}
		}()
	}
	a.start(a.opts.LossInterval)

	watchers.Add(2)
	go func() {
		defer watchers.Done()
		if err := a.watcher.Run(watchCtx, a.onContainer); err != nil {
			fatal <- fmt.Errorf("watch containers: %w", err)
		}
	}()
	go func() {
		defer watchers.Done()
		a.enroller.run(watchCtx)
	}()

	attrs := []any{"backend", a.capture.Backend(), "socket", a.cfg.Socket, "cgroup_root", a.watcher.Root}
	if a.metricsL != nil {
		attrs = append(attrs, "metrics", a.metricsL.Addr().String())
	}
	if a.mlog != nil {
		attrs = append(attrs, "log", a.cfg.Log)
	}
	a.log.Info("agent running", attrs...)

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case runErr = <-fatal:
		a.log.Error("agent failed; shutting down", "err", runErr)
	case err := <-a.readDone:
		runErr = fmt.Errorf("read records: %w", err)
		if err == nil {
			runErr = errors.New("read records: the capture closed")
		}
		a.readDone <- nil // for drain
		a.log.Error("agent failed; shutting down", "err", runErr)
	}

	// Nothing new joins: no more containers or enrolments.
	stopWatching()
	watchers.Wait()
	if a.table.learner != nil {
		// Merges under way finish while the reader still runs.
		a.table.learner.close()
	}
	a.mu.Lock()
	for _, c := range a.containers {
		if c.removal != nil {
			c.removal.Stop()
		}
	}
	a.mu.Unlock()
	// Drain: the reader delivers what is in the ring buffer, then the
	// last losses are recorded.
	if err := a.drain(); err != nil && runErr == nil {
		runErr = err
	}
	if a.self != nil {
		a.log.Info("the agent's own host records were not modeled", "records", a.self.Dropped())
	}
	stopServing()
	servers.Wait()
	if err := a.closeAll(true); err != nil && runErr == nil {
		runErr = err
	}
	a.log.Info("agent stopped")
	return runErr
}

// onContainer gives a discovered container its namespace, or starts the
// removal of a stopped one's. It runs on the watcher's goroutine.
func (a *Agent) onContainer(ev namespace.ContainerEvent) {
	c := ev.Container
	name := c.NamespaceName()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	switch ev.Kind {
	case namespace.ContainerStarted:
		if old, ok := a.containers[name]; ok {
			// Restarted under the same id within the grace period: same
			// namespace, same model.
			if old.removal != nil {
				old.removal.Stop()
				old.removal = nil
			}
			old.st.cgroupDir = filepath.Join(a.watcher.Root, c.Cgroup)
			a.table.reopenContainerFS(old.st, a.opts.StopGrace)
			a.table.watchCgroup(old.st)
			a.enroller.add(old.st)
			a.log.Info("container restarted", "namespace", name)
			return
		}
		dir := filepath.Join(a.watcher.Root, c.Cgroup)
		if slices.Contains(cgroupProcs(dir), os.Getpid()) {
			// The agent's own container (a DaemonSet pod): modeling it
			// would feed the agent's digest reads back into itself.
			if !a.selfSeen {
				a.selfSeen = true
				a.log.Info("not modeling the agent's own container", "cgroup", c.Cgroup)
			}
			return
		}
		st, err := a.table.startContainer(c, dir)
		if err != nil {
			a.log.Error("container not modeled", "cgroup", c.Cgroup, "err", err)
			if st == nil {
				return
			}
		}
		a.containers[name] = &container{st: st}
		a.enroller.add(st)
		a.log.Info("container namespace", "namespace", name, "context", st.ns.ID(), "mode", st.ns.Mode(), "cgroup", c.Cgroup)
	case namespace.ContainerStopped:
		cur, ok := a.containers[name]
		if !ok || cur.removal != nil {
			return
		}
		a.enroller.remove(cur.st)
		a.log.Info("container stopped", "namespace", name, "keep", a.opts.StopGrace)
		if a.table.learner != nil {
			a.table.learner.ended(cur.st)
		}
		cur.removal = time.AfterFunc(a.opts.StopGrace, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.closed || a.containers[name] != cur || cur.removal == nil {
				return
			}
			delete(a.containers, name)
			a.table.remove(cur.st)
			a.log.Info("container namespace removed", "namespace", name)
		})
	}
}
