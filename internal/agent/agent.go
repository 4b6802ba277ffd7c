package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
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

// Agent is a running host agent; see the package documentation.
type Agent struct {
	cfg  config.Config
	opts Options
	log  *slog.Logger

	capture  *bpf.Capture
	register measure.Register
	mlog     *measure.Log
	registry *namespace.Registry
	disp     *namespace.Dispatcher
	digests  *events.DigestCache
	table    *table
	enroller *enroller
	watcher  *namespace.ContainerWatcher
	met      *metrics.Metrics
	sink     *export.Sink
	ecs      bool
	self     *selfFilter // the agent's own host records (host.go); nil: host not modeled

	controlL, metricsL net.Listener

	// Reader goroutine only.
	line         []byte
	forensicsLog *logLimiter // new forensics points logged per namespace
	current      bpf.Record  // the record being dispatched, for onEvent
	relatives    namespace.Relatives

	// Poller only (and the final poll after it stopped).
	lossSeen   map[bpf.LossKey]uint64
	digestSeen events.DigestStats

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
	a = &Agent{cfg: cfg, opts: opts, log: opts.Logger, lossSeen: make(map[bpf.LossKey]uint64), containers: make(map[string]*container), ecs: cfg.ExportFormat == "ecs"}
	a.forensicsLog = newLogLimiter(forensicsLogBurst, forensicsLogWindow)
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
	if a.capture, err = bpf.Open(bpf.Options{Backend: backend, RingBufferBytes: uint32(cfg.RingBufferSize)}); err != nil {
		return nil, err
	}
	if cfg.Enforce && !a.capture.CanEnforce() {
		a.log.Warn("enforce is set but the capture backend cannot deny: namespaces will seal, not enforce", "backend", a.capture.Backend())
	}

	a.met = metrics.New(metrics.Options{Runtime: true})
	firstID := uint64(1)
	if cfg.Log != "" {
		if err := a.openLog(); err != nil {
			return nil, err
		}
		firstID = a.mlog.NextNamespaceID()
	}
	a.met.CountLogAppendErrors(func() uint64 {
		if a.mlog == nil {
			return 0
		}
		return a.mlog.Status().AppendErrors
	})
	a.met.SetBackend(string(a.capture.Backend()))
	a.registry = namespace.NewRegistry(namespace.RegistryOptions{FirstID: firstID})
	a.digests = events.NewDigestCache(events.DigestOptions{})
	a.disp = namespace.NewDispatcher(a.registry, a.digests)
	a.disp.OnEvent = a.onEvent
	a.met.CountRepeatErrors(a.disp.RepeatErrors)
	a.disp.OnRepeats = func(n *namespace.Namespace, r namespace.Repeats) {
		if !r.Unmodeled && !r.Unlearned {
			a.met.Repeats(n.Name(), r.Type, r.Count, r.Forensic)
		}
	}
	defaults := control.Settings{HashAlgorithm: cfg.Hash, Dialect: cfg.Dialect, Capable: cfg.Capable, Enforce: cfg.Enforce, FailClosed: cfg.FailClosed, RepeatCache: cfg.RepeatCache}
	a.table = newTable(a.registry, a.capture, a.mlog, a.met, defaults, cfg.ModelDir, a.log)
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
// consistent: export, log, register, listeners, then the programs. With
// final it prints the register's value, as every command that writes a
// measured log does on exit, for 'vigil verify --register'.
func (a *Agent) closeAll(final bool) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	var errs []error
	if a.sink != nil {
		errs = append(errs, a.sink.Close())
	}
	if a.mlog != nil {
		// Commits the queued records first.
		errs = append(errs, a.mlog.Close())
	}
	if a.register != nil {
		if v, err := a.register.Read(); err == nil && final {
			fmt.Fprintf(a.opts.Stderr, "register %s %d %s %s\n", a.register.Name(), a.register.Index(), measure.AlgName(a.register.Alg()), hex.EncodeToString(v))
		}
		errs = append(errs, measure.CloseRegister(a.register))
	}
	if a.controlL != nil {
		a.controlL.Close()
		if a.cfg.Socket != "" {
			os.Remove(a.cfg.Socket)
		}
	}
	if a.metricsL != nil {
		a.metricsL.Close()
	}
	if a.enroller != nil && a.enroller.in != nil {
		a.enroller.in.Close()
	}
	if a.capture != nil {
		errs = append(errs, a.capture.Close())
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
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopServing()
	defer stopWatching()
	defer stopReading()

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
	readDone := make(chan error, 1)
	go func() { readDone <- a.capture.Run(readCtx, a.handle) }()

	watchers.Add(3)
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
	go func() {
		defer watchers.Done()
		t := time.NewTicker(a.opts.LossInterval)
		defer t.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-t.C:
				a.poll()
			}
		}
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
	case err := <-readDone:
		runErr = fmt.Errorf("read records: %w", err)
		if err == nil {
			runErr = errors.New("read records: the capture closed")
		}
		readDone <- nil
		a.log.Error("agent failed; shutting down", "err", runErr)
	}

	// Nothing new joins: no more containers, enrolments or polls.
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
	// Drain: Run delivers what is in the ring buffer, then returns.
	stopReading()
	if err := <-readDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("read records: %w", err)
	}
	a.poll()
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

// handle takes one record on the reader goroutine.
func (a *Agent) handle(r bpf.Record) {
	if a.self != nil && a.self.drop(r) {
		a.disp.Skip(r) // its repeat count goes too
		return
	}
	h := r.Head()
	if h.Flags&bpf.FlagDenied != 0 {
		if st, ok := a.table.get(h.NS); ok {
			st.denials.Add(1)
			a.met.Denial(st.ns.Name())
		}
	}
	a.table.beforeDispatch(r) // runns.go
	a.current = r
	var err error
	if a.table.stopped.Load() == 0 || !a.skipStopped(r) { // logfull.go
		err = a.disp.Dispatch(r)
	}
	a.current = nil
	if err != nil {
		a.newPointFailed(h.NS, err)
	}
	a.table.afterDispatch(r)
	if now := monotonicNow(); now > h.KTime {
		a.met.PipelineLatency(time.Duration(now - h.KTime))
	}
}

// openLog opens the register and the measured log, starts group commit
// and begins the agent's run of the log.
func (a *Agent) openLog() error {
	if err := os.MkdirAll(filepath.Dir(a.cfg.Log), 0o700); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	reg, why, err := measure.OpenRegister(a.cfg.Register, measure.RegisterOptions{TDXRoot: a.cfg.TDXRoot, TPMDevice: a.cfg.TPM, PCR: a.cfg.PCR})
	if err != nil {
		return fmt.Errorf("register %s: %w", a.cfg.Register, err)
	}
	a.register = reg
	extended := func(records int, took time.Duration) { a.met.RegisterExtends(reg.Name(), records, took) }
	if a.mlog, err = measure.OpenLog(a.cfg.Log, reg, measure.LogOptions{Extended: extended}); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	// Group commit: a new point is queued and the reader goes on; a
	// committer shares one fdatasync among the waiting records. The
	// queue's bound holds the reader back only when it is full, and
	// closeAll's mlog.Close commits everything queued before the
	// register is read. The bound is logQueue (descriptions.go), not
	// measure's default: queued records are heap, and the ring
	// buffer behind a waiting reader holds records at no extra cost.
	// While the log cannot be written the queue is the hold: beyond it
	// new points are counted in gap records (logfull.go).
	a.mlog.StartBatching(measure.BatchOptions{Queue: logQueue})
	for _, r := range a.mlog.Repairs() {
		a.log.Warn("repaired the event log after a crash", "log", a.cfg.Log, "line", r.Line, "repair", r.Action)
	}
	if err := a.beginRun(); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	a.log.Info("measuring", "log", a.cfg.Log, "register", why)
	return nil
}

// newPointFailed reports a new point of namespace id that the model or
// the log could not keep. A log that cannot be written is reported by the
// poller (and with log_full stop, stops the namespace); anything else is
// logged once per namespace.
func (a *Agent) newPointFailed(id uint64, err error) {
	st, ok := a.table.get(id)
	if !ok {
		return
	}
	a.table.noteLogError(st, err)
	if !logFailed(err) {
		return
	}
	if !st.modelErr.Swap(true) {
		a.log.Error("a new point was not kept as it should be: the namespace's model or measurement may be incomplete (reported once)", "namespace", st.ns.Name(), "err", err)
	}
}

// beginRun begins the agent's run of the measured log (a start record)
// and says what cannot be trusted about the runs before.
func (a *Agent) beginRun() error {
	rs, err := a.mlog.BeginRun()
	if logFailed(err) {
		return err
	}
	p := rs.Previous
	if p == nil {
		return nil
	}
	if p.Runs > 0 && !p.Clean {
		a.log.Warn("the previous run of the measured log did not end with a stop record: the agent crashed or was killed, or records at the end of the log were removed; 'vigil verify' reports it",
			"log", a.cfg.Log, "run", rs.Run, "records_before", p.Records)
	}
	if rs.Replayed {
		a.log.Warn("records of earlier runs cannot be attested: the software register starts at zero in every process and was set by replaying them; only a hardware register (tdx, tpm) attests a log across restarts",
			"log", a.cfg.Log, "run", rs.Run, "records_before", p.Records)
	}
	return nil
}

// onEvent counts, exports and acts on an event the dispatcher added to its
// namespace. It runs on the reader goroutine.
func (a *Agent) onEvent(n *namespace.Namespace, e *events.Event, res namespace.Result) {
	name := n.Name()
	a.relatives.See(e)
	if e.HasUnhashableFile() {
		a.met.Unhashable(name)
	}
	if !res.Unmodeled && !res.Unlearned {
		a.met.Event(name, e.Header.Type)
		if res.New && !res.Forensic {
			a.met.SetPoints(name, n.Model().Len())
		}
	}
	if res.Forensic {
		if res.New {
			if ok, held := a.forensicsLog.allow(name); ok {
				attrs := []any{"namespace", name, "type", e.Header.Type, "process", e.Header.Process, "coefficient", res.Coefficient}
				if held > 0 {
					attrs = append(attrs, "not_logged_before", held)
				}
				a.log.Info("forensics event", attrs...)
			}
		}
		a.met.Forensics(name)
		if a.relatives.Untrust(n, a.current, e, res) {
			// The kernel passed what its key allowed; the model says
			// no by what the key cannot see: the task is no longer
			// trusted (namespace.Relatives.Untrust).
			if err := a.capture.MarkUntrusted(int(e.Header.Pid)); err != nil {
				a.log.Debug("mark task untrusted", "pid", e.Header.Pid, "err", err)
			}
		}
	}
	if a.sink == nil {
		return
	}
	// Exports carry the pid (the model's description, written at Add,
	// does not), so that an operator can find the process.
	e.Header.HasPid = true
	if a.ecs {
		a.line = events.ECS{Boot: n.Created()}.Encode(a.line[:0], e, res.Coefficient)
	} else {
		a.line = events.TSEM{}.Encode(a.line[:0], e, res.Coefficient)
	}
	// Never waits for the destination; a line it cannot take is counted
	// (vigil_export_lines_total) and logged at most every 10 s.
	a.sink.Export(a.line, res.Forensic)
}

// poll turns the kernel's loss counters into gaps and metrics, and brings
// the digest cache counters and point gauges up to date. Losses the kernel
// could not attribute to a namespace may belong to any: they become a gap
// in every namespace.
func (a *Agent) poll() {
	lost, err := a.capture.Lost()
	if err != nil {
		a.log.Error("read loss counters: models may be incomplete", "err", err)
	}
	for k, v := range lost {
		prev := a.lossSeen[k]
		if v <= prev {
			continue
		}
		a.lossSeen[k] = v
		n := v - prev
		reason := k.Reason.String()
		var targets []*nsState
		// Namespace 0's losses are the host's when it is modeled, but for
		// those nobody could attribute (a full loss table, undecodable
		// records): they may belong to any namespace.
		if k.NS == 0 && (k.Reason == bpf.LossOverflow || k.Reason == bpf.LossDecode || a.self == nil) {
			a.met.RecordsLost("", reason, n)
			targets = a.table.list()
		} else if st, ok := a.table.get(k.NS); ok {
			a.met.RecordsLost(st.ns.Name(), reason, n)
			targets = []*nsState{st}
		}
		for _, st := range targets {
			a.log.Warn("records lost: the namespace's model and measurement are incomplete", "namespace", st.ns.Name(), "lost", n, "reason", reason)
			st.ns.RecordGap(n, reason)
			if st.logNS != nil {
				if err := st.logNS.Gap(n, reason); logFailed(err) {
					a.log.Error("record a gap in the log", "namespace", st.ns.Name(), "err", err)
				}
			}
		}
	}
	ds := a.digests.Stats()
	for i := a.digestSeen.Hits; i < ds.Hits; i++ {
		a.met.DigestCache(true)
	}
	for i := a.digestSeen.Misses; i < ds.Misses; i++ {
		a.met.DigestCache(false)
	}
	a.digestSeen = ds
	for _, st := range a.table.list() {
		a.met.SetPoints(st.ns.Name(), st.ns.Model().Len())
	}
	if a.capture != nil {
		a.met.SetRingFill(a.capture.RingFill())
	}
	a.table.pollLog() // logfull.go
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of the
// kernel's record timestamps. The reader asks for it at every record: it
// reads the clock through a system call once, then adds Go's monotonic
// time, the same clock read through the vDSO (a system call per record
// cost a sixth of the reader's CPU at 100k events/s).
func monotonicNow() uint64 {
	c := monotonicBase()
	return c.ns + uint64(time.Since(c.at))
}

var monotonicBase = sync.OnceValue(func() (c struct {
	ns uint64
	at time.Time
}) {
	c.at = time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		c.ns = uint64(ts.Sec)*uint64(time.Second) + uint64(ts.Nsec)
	}
	return c
})
