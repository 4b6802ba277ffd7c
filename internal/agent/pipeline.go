package agent

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/export"
	"github.com/vigil-tsem/vigil/internal/metrics"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/namespace"
)

// pipeline carries every namespace's records from the kernel to the
// models and the measured log: the capture, the dispatcher, the namespace
// table (the transitions of each namespace), the measured log, the loss
// poller and the export. The agent (Agent) and a standalone `vigil run`
// (Standalone) each run one; they differ only in what they put around it.
type pipeline struct {
	log    *slog.Logger
	stderr io.Writer // the final register line

	capture  *bpf.Capture
	register measure.Register // nil: no measured log
	mlog     *measure.Log
	logPath  string
	registry *namespace.Registry
	disp     *namespace.Dispatcher
	digests  *events.DigestCache
	table    *table
	met      *metrics.Metrics
	sink     *export.Sink // nil: no export
	ecs      bool
	self     *selfFilter // the agent's own host records (host.go); nil: host not modeled
	losses   LossReporter
	denied   func(bpf.Record) // nil: denials are only counted

	// Reader goroutine only.
	line         []byte
	forensicsLog *logLimiter // new forensics points logged per namespace; nil: not logged
	current      bpf.Record  // the record being dispatched, for onEvent
	relatives    namespace.Relatives

	// Poller only (and the final poll after it stopped).
	lossSeen        map[bpf.LossKey]uint64
	digestSeen      events.DigestStats
	countersFailing bool // the last poll could not read the loss counters

	// Set by start, used by drain.
	readDone    chan error
	stopReading context.CancelFunc
	stopPolling context.CancelFunc
	pollDone    chan struct{}
}

// LossReporter is told what the pipeline recorded as gaps: records the
// kernel could not deliver, and loss counters it could not read.
type LossReporter interface {
	// Lost: n records of namespace ns were lost for reason; the
	// namespace (and its part of the measured log) has the gap.
	Lost(ns string, n uint64, reason string)
	// Unreadable: the kernel's loss counters could not be read; every
	// namespace has a gap of one record for it.
	Unreadable(err error)
}

// logLosses is the agent's LossReporter: its log.
type logLosses struct{ log *slog.Logger }

func (l logLosses) Lost(ns string, n uint64, reason string) {
	l.log.Warn("records lost: the namespace's model and measurement are incomplete", "namespace", ns, "lost", n, "reason", reason)
}

func (l logLosses) Unreadable(err error) {
	l.log.Error("read loss counters: models may be incomplete", "err", err)
}

// reasonUnreadable is the reason of the gap a namespace gets when the loss
// counters cannot be read.
const reasonUnreadable = "loss counters unreadable"

// pipelineOptions say what openPipeline opens.
type pipelineOptions struct {
	backend   bpf.Backend
	ringBytes uint32
	// logPath is the measured log ("" for none) and register the
	// register it extends, opened by the caller and owned by the
	// pipeline from the call on (closed by close, or at once when
	// openPipeline fails); why says how the register was chosen.
	logPath  string
	register measure.Register
	why      string
	defaults control.Settings
	modelDir string
	met      *metrics.Metrics
	log      *slog.Logger
	stderr   io.Writer
	losses   LossReporter // nil: logged
}

// openPipeline opens the capture programs and the measured log and builds
// the registry, dispatcher and namespace table on them. On failure it
// closes what it opened, the register included.
func openPipeline(o pipelineOptions) (_ *pipeline, err error) {
	p := &pipeline{log: o.log, stderr: o.stderr, register: o.register, logPath: o.logPath, met: o.met, losses: o.losses, lossSeen: make(map[bpf.LossKey]uint64)}
	if p.losses == nil {
		p.losses = logLosses{o.log}
	}
	defer func() {
		if err != nil {
			p.close(false)
		}
	}()
	if p.capture, err = bpf.Open(bpf.Options{Backend: o.backend, RingBufferBytes: o.ringBytes}); err != nil {
		return nil, err
	}
	firstID := uint64(1)
	if o.register != nil {
		if err := p.openLog(o.why); err != nil {
			return nil, err
		}
		firstID = p.mlog.NextNamespaceID()
	}
	p.met.CountLogAppendErrors(func() uint64 {
		if p.mlog == nil {
			return 0
		}
		return p.mlog.Status().AppendErrors
	})
	p.met.SetBackend(string(p.capture.Backend()))
	p.registry = namespace.NewRegistry(namespace.RegistryOptions{FirstID: firstID})
	p.digests = events.NewDigestCache(events.DigestOptions{})
	p.disp = namespace.NewDispatcher(p.registry, p.digests)
	p.disp.OnEvent = p.onEvent
	p.met.CountRepeatErrors(p.disp.RepeatErrors)
	p.disp.OnRepeats = func(n *namespace.Namespace, r namespace.Repeats) {
		if !r.Unmodeled && !r.Unlearned {
			p.met.Repeats(n.Name(), r.Type, r.Count, r.Forensic)
		}
	}
	p.table = newTable(p.registry, p.capture, p.mlog, p.met, o.defaults, o.modelDir, p.log)
	return p, nil
}

// openLog opens the measured log on the register, starts group commit and
// begins this process's run of the log.
func (p *pipeline) openLog(why string) error {
	reg := p.register
	extended := func(records int, took time.Duration) { p.met.RegisterExtends(reg.Name(), records, took) }
	var err error
	if p.mlog, err = measure.OpenLog(p.logPath, reg, measure.LogOptions{Extended: extended}); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	// Group commit: a new point is queued and the reader goes on; a
	// committer shares one fdatasync among the waiting records. The
	// queue's bound holds the reader back only when it is full, and
	// close's mlog.Close commits everything queued before the register
	// is read. The bound is logQueue (descriptions.go), not measure's
	// default: queued records are heap, and the ring buffer behind a
	// waiting reader holds records at no extra cost. While the log
	// cannot be written the queue is the hold: beyond it new points are
	// counted in gap records (logfull.go).
	p.mlog.StartBatching(measure.BatchOptions{Queue: logQueue})
	for _, r := range p.mlog.Repairs() {
		p.log.Warn("repaired the event log after a crash", "log", p.logPath, "line", r.Line, "repair", r.Action)
	}
	if err := p.beginRun(); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	p.log.Info("measuring", "log", p.logPath, "register", why)
	return nil
}

// beginRun begins this process's run of the measured log (a start record)
// and says what cannot be trusted about the runs before.
func (p *pipeline) beginRun() error {
	rs, err := p.mlog.BeginRun()
	if logFailed(err) {
		return err
	}
	prev := rs.Previous
	if prev == nil {
		return nil
	}
	if prev.Runs > 0 && !prev.Clean {
		p.log.Warn("the previous run of the measured log did not end with a stop record: the process that wrote it crashed or was killed, or records at the end of the log were removed; 'vigil verify' reports it",
			"log", p.logPath, "run", rs.Run, "records_before", prev.Records)
	}
	if rs.Replayed {
		p.log.Warn("records of earlier runs cannot be attested: the software register starts at zero in every process and was set by replaying them; only a hardware register (tdx, tpm) attests a log across restarts",
			"log", p.logPath, "run", rs.Run, "records_before", prev.Records)
	}
	return nil
}

// start runs the reader (the only caller of the dispatcher, so that the
// records of a task stay in order) and the poller, every interval, until
// drain.
func (p *pipeline) start(interval time.Duration) {
	readCtx, stopReading := context.WithCancel(context.Background())
	pollCtx, stopPolling := context.WithCancel(context.Background())
	p.stopReading, p.stopPolling = stopReading, stopPolling
	p.readDone = make(chan error, 1)
	p.pollDone = make(chan struct{})
	go func() { p.readDone <- p.capture.Run(readCtx, p.handle) }()
	go func() {
		defer close(p.pollDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
				p.poll()
			}
		}
	}()
}

// drain stops the poller, then the reader once it has delivered every
// record in the ring buffer and the repeat counts the kernel holds, and
// polls the loss counters a last time: the models then hold everything
// the kernel reported. It returns the reader's error.
func (p *pipeline) drain() error {
	p.stopPolling()
	<-p.pollDone
	p.stopReading()
	err := <-p.readDone
	p.poll()
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	return nil
}

// close releases what openPipeline opened in the order that keeps the log
// consistent: export, log, register, then the programs. With final it
// prints the register's value, as every command that writes a measured
// log does on exit, for 'vigil verify --register'.
func (p *pipeline) close(final bool) error {
	var errs []error
	if p.sink != nil {
		errs = append(errs, p.sink.Close())
	}
	if p.mlog != nil {
		// Commits the queued records first.
		errs = append(errs, p.mlog.Close())
	}
	if p.register != nil {
		if v, err := p.register.Read(); err != nil {
			errs = append(errs, fmt.Errorf("read the register: %w", err))
		} else if final {
			fmt.Fprintf(p.stderr, "register %s %d %s %s\n", p.register.Name(), p.register.Index(), measure.AlgName(p.register.Alg()), hex.EncodeToString(v))
		}
		errs = append(errs, measure.CloseRegister(p.register))
	}
	if p.capture != nil {
		errs = append(errs, p.capture.Close())
	}
	return errors.Join(errs...)
}

// handle takes one record on the reader goroutine.
func (p *pipeline) handle(r bpf.Record) {
	if p.self != nil && p.self.drop(r) {
		p.disp.Skip(r) // its repeat count goes too
		return
	}
	h := r.Head()
	if h.Flags&bpf.FlagDenied != 0 {
		if st, ok := p.table.get(h.NS); ok {
			st.denials.Add(1)
			p.met.Denial(st.ns.Name())
		}
		if p.denied != nil {
			p.denied(r)
		}
	}
	p.table.beforeDispatch(r) // runns.go
	p.current = r
	var err error
	if p.table.stopped.Load() == 0 || !p.skipStopped(r) { // logfull.go
		err = p.disp.Dispatch(r)
	}
	p.current = nil
	if err != nil {
		p.newPointFailed(h.NS, err)
	}
	p.table.afterDispatch(r)
	if now := monotonicNow(); now > h.KTime {
		p.met.PipelineLatency(time.Duration(now - h.KTime))
	}
}

// newPointFailed reports a new point of namespace id that the model or
// the log could not keep. A log that cannot be written is reported by the
// poller (and with log_full stop, stops the namespace); anything else is
// kept as the namespace's model error and logged once per namespace.
func (p *pipeline) newPointFailed(id uint64, err error) {
	st, ok := p.table.get(id)
	if !ok {
		return
	}
	p.table.noteLogError(st, err)
	if !logFailed(err) {
		return
	}
	if st.modelErr.CompareAndSwap(nil, &err) {
		p.log.Error("a new point was not kept as it should be: the namespace's model or measurement may be incomplete (reported once)", "namespace", st.ns.Name(), "err", err)
	}
}

// onEvent counts, exports and acts on an event the dispatcher added to its
// namespace. It runs on the reader goroutine.
func (p *pipeline) onEvent(n *namespace.Namespace, e *events.Event, res namespace.Result) {
	name := n.Name()
	p.relatives.See(e)
	if e.HasUnhashableFile() {
		p.met.Unhashable(name)
	}
	if !res.Unmodeled && !res.Unlearned {
		p.met.Event(name, e.Header.Type)
		if res.New && !res.Forensic {
			p.met.SetPoints(name, n.Model().Len())
		}
	}
	if res.Forensic {
		if res.New && p.forensicsLog != nil {
			if ok, held := p.forensicsLog.allow(name); ok {
				attrs := []any{"namespace", name, "type", e.Header.Type, "process", e.Header.Process, "coefficient", res.Coefficient}
				if held > 0 {
					attrs = append(attrs, "not_logged_before", held)
				}
				p.log.Info("forensics event", attrs...)
			}
		}
		p.met.Forensics(name)
		if p.relatives.Untrust(n, p.current, e, res) {
			// The kernel passed what its key allowed; the model says
			// no by what the key cannot see: the task is no longer
			// trusted (namespace.Relatives.Untrust).
			if err := p.capture.MarkUntrusted(int(e.Header.Pid)); err != nil {
				p.log.Debug("mark task untrusted", "pid", e.Header.Pid, "err", err)
			}
		}
	}
	if p.sink == nil {
		return
	}
	// Exports carry the pid (the model's description, written at Add,
	// does not), so that an operator can find the process.
	e.Header.HasPid = true
	if p.ecs {
		p.line = events.ECS{Boot: n.Created()}.Encode(p.line[:0], e, res.Coefficient)
	} else {
		p.line = events.TSEM{}.Encode(p.line[:0], e, res.Coefficient)
	}
	// Never waits for the destination; a line it cannot take is counted
	// (vigil_export_lines_total) and logged at most every 10 s.
	p.sink.Export(p.line, res.Forensic)
}

// poll turns the kernel's loss counters into gaps and metrics, and brings
// the digest cache counters and point gauges up to date. Losses the kernel
// could not attribute to a namespace may belong to any: they become a gap
// in every namespace. It runs on the poller.
func (p *pipeline) poll() {
	lost, err := p.capture.Lost()
	switch {
	case err != nil && !p.countersFailing:
		// Once per failing streak: whatever was lost meanwhile is in
		// the counters when they can be read again.
		p.countersFailing = true
		p.losses.Unreadable(err)
		for _, st := range p.table.list() {
			st.ns.RecordGap(1, reasonUnreadable)
		}
	case err == nil:
		p.countersFailing = false
	}
	keys := make([]bpf.LossKey, 0, len(lost))
	for k, v := range lost {
		if v > p.lossSeen[k] {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b bpf.LossKey) int {
		return cmp.Or(cmp.Compare(a.NS, b.NS), cmp.Compare(a.Reason, b.Reason))
	})
	for _, k := range keys {
		n := lost[k] - p.lossSeen[k]
		p.lossSeen[k] = lost[k]
		p.recordLoss(k, n)
	}
	ds := p.digests.Stats()
	for i := p.digestSeen.Hits; i < ds.Hits; i++ {
		p.met.DigestCache(true)
	}
	for i := p.digestSeen.Misses; i < ds.Misses; i++ {
		p.met.DigestCache(false)
	}
	p.digestSeen = ds
	for _, st := range p.table.list() {
		p.met.SetPoints(st.ns.Name(), st.ns.Model().Len())
	}
	p.met.SetRingFill(p.capture.RingFill())
	p.table.pollLog() // logfull.go
}

// recordLoss records n more records lost under k as a gap of the
// namespaces they may belong to.
func (p *pipeline) recordLoss(k bpf.LossKey, n uint64) {
	reason := k.Reason.String()
	var targets []*nsState
	// Namespace 0's losses are the host's when it is modeled, but for
	// those nobody could attribute (a full loss table, undecodable
	// records): they may belong to any namespace.
	if k.NS == 0 && (k.Reason == bpf.LossOverflow || k.Reason == bpf.LossDecode || p.self == nil) {
		p.met.RecordsLost("", reason, n)
		targets = p.table.list()
	} else if st, ok := p.table.get(k.NS); ok {
		p.met.RecordsLost(st.ns.Name(), reason, n)
		targets = []*nsState{st}
	}
	for _, st := range targets {
		st.ns.RecordGap(n, reason)
		if st.logNS != nil {
			if err := st.logNS.Gap(n, reason); logFailed(err) {
				p.log.Error("record a gap in the log", "namespace", st.ns.Name(), "err", err)
			}
		}
		p.losses.Lost(st.ns.Name(), n, reason)
	}
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
