package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/model"
	"github.com/vigil-tsem/vigil/namespace"
)

// runFlags are the flags of 'vigil run'.
type runFlags struct {
	name       string
	modelIn    string
	enforce    bool
	output     string
	trajectory string
	forensics  string
	backend    string
	noCapable  bool
	noRepeats  bool
	ringBytes  uint32
	agent      string // auto, always or never
	socket     string
	command    string // CMD, for messages
	reg        registerFlags
	hash       string // --hash: "" for the model's, else sha256
	dialect    string // --dialect: "" for the model's, else the agent's, else invariant
	pseudonyms []string
}

// The values of --agent.
const (
	agentAuto   = "auto"
	agentAlways = "always"
	agentNever  = "never"
)

// standaloneFlags are the flags that only make sense when 'vigil run' loads
// its own capture programs and keeps its own log.
var standaloneFlags = []string{"backend", "ring-buffer", "log", "register", "tdx-root", "tpm"}

func newRunCmd() *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command in a new security modeling namespace and model what it does",
		Long: `Run CMD in a new security modeling namespace: the kernel reports every
security event of CMD and of every task it starts (file opens, execs,
mmaps, sockets, signals, ...), each becomes a TSEM event description with
its credentials (COE) and coefficient, and the namespace's model learns
them. CMD is enrolled before it execs, so nothing it does is missed.

When CMD exits, the ring buffer is drained, and Vigil writes the learned
model (-o, a TSEM/Quixote model file with its trajectory, replaced
atomically) and the trajectory (--trajectory, one TSEM JSON line per model
point). Lost records are never silent: they are reported on standard error
and recorded as a gap in the measured log.

With --model the namespace starts sealed to that model: events outside it
are forensics, written to --forensics (TSEM JSON lines) or summarised on
standard error. With --enforce (BPF LSM backend only) an out-of-model action
fails with EPERM, and so does every later action of the task that made it;
what the kernel denied is listed on standard error. Anonymous memory
mappings without PROT_EXEC and signals a process sends to its own threads
always pass (they are still modeled, and forensics when new); anonymous
executable mappings are checked by protection and mapping type only. A
process's own /proc/<pid> is modeled as /proc/self, pipes, sockets and
anonymous inodes as pipe:/, socket:/, anon_inode:/, and a file CMD created
(a temporary file with a random name) by its directory, its instance number
and the task that created it, with no content digest, as TSEM does, so that
a model learned in one run holds in the next.

When a Vigil agent runs on the host (its control socket answers), 'vigil
run' loads no programs of its own: two captures would record every event
twice. It asks the agent for a namespace (origin run, listed by 'vigil ns
list' while CMD runs), the agent enrols CMD before it execs, its new model
points go to the agent's measured log, and when CMD exits Vigil fetches the
model, trajectory and forensics from the agent and ends the namespace (the
agent keeps it a minute for 'vigil ns'). --agent auto (the default) uses an
agent when one answers on --socket and runs standalone otherwise; always
requires one, never ignores it. Standard error says which. --backend,
--ring-buffer and --log/--register are standalone flags: with an agent they
are refused. Runs through an agent are also cheap: standalone, loading,
verifying and attaching the programs costs about 0.1-0.15 s before CMD
starts and detaching them about 0.1 s after it ends; an agent has them
loaded already.

SIGINT, SIGTERM, SIGHUP and SIGQUIT go to CMD while it runs. One that
comes before CMD starts stops the run: CMD is not started, no output is
written, the exit status is 128+N. After CMD has exited Vigil finishes
draining and writing its outputs first.

The exit status is CMD's (128+N when a signal N killed it); 127 when CMD is
not found, 126 when it cannot be executed. Vigil's own failures exit 1 (2
for bad flags). Needs root: loading eBPF programs takes CAP_BPF,
CAP_PERFMON and CAP_SYS_ADMIN, and the agent's control socket serves root
only.`,
		Example: `  sudo vigil run -o m.model -- sh -c 'cat /etc/hostname'
  sudo vigil run --trajectory t.json -- curl -s http://127.0.0.1:8080/ && vigil model points t.json
  sudo vigil run --model m.model --forensics f.json -- sh -c 'cat /etc/hostname'
  sudo vigil run --log events.log --register software -o m.model -- make
  sudo vigil run --agent always --name build -o m.model -- make`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash > 0 {
				return badInput(fmt.Errorf("unexpected arguments before --: %q", args[:dash]))
			}
			return runRun(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVar(&f.name, "name", "", "name of the modeling namespace (default run-<id>)")
	fl.StringVar(&f.modelIn, "model", "", "seal the namespace to this model file; out-of-model events are forensics")
	fl.BoolVar(&f.enforce, "enforce", false, "with --model: out-of-model actions fail with EPERM (BPF LSM backend only)")
	fl.StringVarP(&f.output, "output", "o", "", "write the learned model to this file (atomically)")
	fl.StringVar(&f.trajectory, "trajectory", "", "write the trajectory (TSEM JSON lines) to this file, - for standard output (after CMD's own output)")
	fl.StringVar(&f.forensics, "forensics", "", "with --model: write the forensics (TSEM JSON lines) to this file, - for standard output (default: a summary on standard error)")
	fl.StringVar(&f.backend, "backend", "auto", "capture backend: auto, lsm or tracepoint")
	fl.StringVar(&f.hash, "hash", "", "the namespace's hash algorithm: sha256, sha384 or sha512 (default: --model's, else the agent's default, else sha256)")
	fl.StringVar(&f.dialect, "dialect", "", "the namespace's coefficient dialect: invariant or tsem (default: --model's, else the agent's default, else invariant)")
	fl.StringArrayVar(&f.pseudonyms, "pseudonym", nil, "give the namespace a pseudonym for this absolute path (its events hash the empty file's digest instead of its content's); repeatable; not with --model, whose pseudonyms are its own")
	fl.BoolVar(&f.noCapable, "no-capable", false, "do not model capable events")
	fl.BoolVar(&f.noRepeats, "no-repeat-cache", false, "record every event in the kernel, not one per repeat window with its count (model counts are exact either way)")
	fl.Uint32Var(&f.ringBytes, "ring-buffer", 0, "ring buffer size in bytes, a power of two multiple of the page size up to 1 GiB (default 16 MiB)")
	fl.StringVar(&f.agent, "agent", agentAuto, "use a running vigil agent: auto (when its socket answers), always or never (standalone)")
	fl.StringVar(&f.socket, "socket", control.DefaultSocket, "the agent's control socket")
	f.reg.addFlags(cmd)
	return cmd
}

// exitCode wraps a command's exit status.
func exitCode(code int) error { return &exitError{code: code} }

func runRun(cmd *cobra.Command, f *runFlags, args []string) error {
	backend, err := bpf.ParseBackend(f.backend)
	if err != nil {
		return badInput(fmt.Errorf("--backend: %w", err))
	}
	if f.ringBytes != 0 {
		if err := bpf.CheckRingBufferBytes(int64(f.ringBytes)); err != nil {
			return badInput(fmt.Errorf("--ring-buffer: %w", err))
		}
	}
	if f.enforce && f.modelIn == "" {
		return badInput(errors.New("--enforce needs --model: there is no model to enforce"))
	}
	if f.forensics != "" && f.modelIn == "" {
		return badInput(errors.New("--forensics needs --model: only a sealed model has forensics"))
	}
	var h model.Hash
	if f.hash != "" {
		if h, err = model.ParseHash(f.hash); err != nil {
			return badInput(fmt.Errorf("--hash: %w", err))
		}
	}
	if err := f.checkModelFlags(); err != nil {
		return err
	}
	if f.enforce && backend == bpf.BackendTracepoint {
		return badInput(fmt.Errorf("--enforce: %w; use --backend lsm (or auto) on a kernel with the BPF LSM active", bpf.ErrObserveOnly))
	}
	switch f.agent {
	case agentAuto, agentAlways, agentNever:
	default:
		return badInput(fmt.Errorf("--agent %q: want auto, always or never", f.agent))
	}
	if f.agent == agentAlways {
		for _, name := range standaloneFlags {
			if cmd.Flags().Changed(name) {
				return badInput(fmt.Errorf("--%s is a standalone flag: with --agent always the agent captures and measures; drop it or use --agent never", name))
			}
		}
	}
	f.command = args[0]
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "vigil: %v\n", err)
		return exitCode(127)
	}
	sigs := holdRunSignals(cmd.ErrOrStderr())
	defer sigs.release()
	if os.Geteuid() != 0 {
		return failed(errors.New("vigil run needs root: loading and attaching eBPF programs takes CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN, and the agent's control socket serves root only; run it with sudo"))
	}
	if f.agent == agentNever {
		fmt.Fprintln(cmd.ErrOrStderr(), "vigil: standalone (--agent never): loading the capture programs")
	} else {
		client := control.NewClient(f.socket)
		ctx, cancel := context.WithTimeout(cmd.Context(), probeTimeout)
		info, err := client.Agent(ctx)
		cancel()
		switch {
		case err == nil:
			return runViaAgent(cmd, f, sigs, client, info, path, args)
		case f.agent == agentAuto && errors.Is(err, control.ErrNoAgent):
			fmt.Fprintf(cmd.ErrOrStderr(), "vigil: standalone (no agent at %s): loading the capture programs\n", f.socket)
		default:
			return failed(fmt.Errorf("--agent %s: %w; --agent never runs standalone", f.agent, err))
		}
	}

	m, err := f.newModel(h)
	if err != nil {
		return err
	}

	capture, err := bpf.Open(bpf.Options{Backend: backend, RingBufferBytes: f.ringBytes})
	if err != nil {
		return failed(err)
	}
	defer capture.Close()
	if f.enforce && !capture.CanEnforce() {
		return failed(fmt.Errorf("--enforce: the %s backend was selected: %w", capture.Backend(), bpf.ErrObserveOnly))
	}
	slog.Debug("capture open", "backend", capture.Backend())

	// The measured log, when asked for: the namespace's points, seal,
	// enforcement and gaps become records extended into the register.
	meas, err := f.reg.open(cmd)
	if err != nil {
		return err
	}
	firstID := uint64(1)
	var logNS *measure.Namespace
	if meas != nil {
		defer meas.close()
		firstID = meas.log.NextNamespaceID()
	}
	reg := namespace.NewRegistry(namespace.RegistryOptions{FirstID: firstID})
	ns, err := reg.Create(namespace.Options{Name: f.name, Origin: namespace.OriginRun, Model: m, Hash: m.Hash(), Dialect: m.Dialect(), KTime: monotonicNow()})
	if err != nil {
		return failed(err)
	}
	if meas != nil {
		if logNS, err = startLogNamespace(meas, ns, f.enforce); err != nil {
			return failed(err)
		}
	}

	mode := bpf.ModeLearn
	if m.Sealed() {
		mode = bpf.ModeSeal
	}
	if f.enforce {
		if err := ns.Enforce(); err != nil {
			return failed(err)
		}
		keys, skipped := events.KernelKeys(m.Trajectory())
		if skipped > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "vigil: %d model points have no description or no kernel key: the kernel will deny those events\n", skipped)
		}
		if err := capture.Allow(ns.ID(), keys...); err != nil {
			return failed(err)
		}
		mode = bpf.ModeEnforce
	}
	if err := capture.SetNamespace(ns.ID(), bpf.NamespaceConfig{Mode: mode, NoCapable: f.noCapable, NoRepeatCache: f.noRepeats}); err != nil {
		return failed(err)
	}

	digests := events.NewDigestCache(events.DigestOptions{})
	disp := namespace.NewDispatcher(reg, digests)
	disp.RootProcess = stubName
	var (
		obsMu  sync.Mutex
		obsErr error
	)
	// current is the record being dispatched (OnEvent runs inside
	// Dispatch, on the reader's goroutine, as does everything using
	// relatives).
	var (
		current   bpf.Record
		relatives namespace.Relatives
	)
	disp.OnEvent = func(n *namespace.Namespace, e *events.Event, res namespace.Result) {
		relatives.See(e)
		if f.enforce && relatives.Untrust(n, current, e, res) {
			// Out of the model by what the kernel's key cannot see:
			// no more trust (namespace.Relatives.Untrust).
			if err := capture.MarkUntrusted(int(e.Header.Pid)); err != nil {
				slog.Debug("mark untrusted", "pid", e.Header.Pid, "err", err)
			}
		}
	}
	denials := &denialLog{}
	stop := make(chan struct{})
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	readDone := make(chan error, 1)
	go func() {
		// Run delivers every record already in the ring buffer when
		// readCtx ends, then returns: ending it after CMD exits drains.
		readDone <- capture.Run(readCtx, func(r bpf.Record) {
			denials.note(r)
			current = r
			err := disp.Dispatch(r)
			current = nil
			if err != nil {
				obsMu.Lock()
				if obsErr == nil {
					obsErr = err
				}
				obsMu.Unlock()
			}
		})
	}()

	losses := &lossWatcher{stderr: cmd.ErrOrStderr(), capture: capture, ns: ns, logNS: logNS, seen: make(map[bpf.LossKey]uint64)}
	go losses.watch(stop, time.Second)

	status, runErr := runEnrolled(cmd, sigs, func(pid int) error { return capture.Enroll(pid, ns.ID()) }, path, args)

	// Every record of CMD is in the ring buffer once it has exited: drain
	// it to the end before looking at the model.
	close(stop)
	stopReading()
	if err := <-readDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("read records: %w", err)
	}
	losses.poll()
	lost := losses.total
	if runErr != nil {
		return runFailed(runErr)
	}
	if obsErr != nil {
		return failed(fmt.Errorf("--log: %w", obsErr))
	}
	if err := writeRunOutputs(cmd, f, ns); err != nil {
		return failed(err)
	}
	printRunSummary(cmd.ErrOrStderr(), f, capture, ns, disp, digests, lost)
	denials.print(cmd.ErrOrStderr())
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

// startLogNamespace records the namespace in the measured log: created,
// the points of a loaded model, sealed and enforcing as they apply, and
// makes the log observe the model's later points.
func startLogNamespace(meas *measured, ns *namespace.Namespace, enforce bool) (*measure.Namespace, error) {
	m := ns.Model()
	logNS, err := meas.log.Namespace(ns.ID(), ns.Name(), m.Aggregate(), m.Base())
	if err != nil {
		return nil, fmt.Errorf("--log: %w", err)
	}
	for _, p := range m.SetObserver(logNS) {
		if err := logNS.NewPoint(p); err != nil {
			return nil, fmt.Errorf("--log: %w", err)
		}
	}
	if m.Sealed() {
		if err := logNS.Sealed(); err != nil {
			return nil, fmt.Errorf("--log: %w", err)
		}
	}
	if enforce {
		if err := logNS.Enforcing(); err != nil {
			return nil, fmt.Errorf("--log: %w", err)
		}
	}
	return logNS, nil
}

// lossWatcher turns the kernel's loss counters into gaps of the namespace
// as they grow: polled while the command runs, so a gap lands in the
// measured log close to where the records went missing, and once more
// after the drain. Losses of the namespace, and those the kernel or the
// reader could not attribute (they may be the namespace's), count.
type lossWatcher struct {
	stderr  io.Writer
	capture *bpf.Capture
	ns      *namespace.Namespace
	logNS   *measure.Namespace

	mu    sync.Mutex
	seen  map[bpf.LossKey]uint64
	total uint64
}

func (w *lossWatcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	lost, err := w.capture.Lost()
	if err != nil {
		fmt.Fprintf(w.stderr, "vigil: WARNING: cannot read the loss counters, the model may be incomplete: %v\n", err)
		w.ns.RecordGap(1, "loss counters unreadable")
		return
	}
	keys := make([]bpf.LossKey, 0, len(lost))
	for k := range lost {
		if (k.NS == w.ns.ID() || k.NS == 0) && lost[k] > w.seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Reason < keys[j].Reason })
	for _, k := range keys {
		n := lost[k] - w.seen[k]
		w.seen[k] = lost[k]
		w.total += n
		reason := k.Reason.String()
		fmt.Fprintf(w.stderr, "vigil: WARNING: %d records of namespace %q lost (%s): its model and measurement are incomplete\n", n, w.ns.Name(), reason)
		w.ns.RecordGap(n, reason)
		if w.logNS != nil {
			if err := w.logNS.Gap(n, reason); err != nil {
				fmt.Fprintf(w.stderr, "vigil: record the gap in the log: %v\n", err)
			}
		}
	}
}

// watch polls every interval until stop is closed.
func (w *lossWatcher) watch(stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.poll()
		}
	}
}

func writeRunOutputs(cmd *cobra.Command, f *runFlags, ns *namespace.Namespace) error {
	m := ns.Model()
	if f.output != "" {
		if err := m.SaveFile(f.output); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
	}
	if f.trajectory != "" {
		if err := writeLines(cmd.OutOrStdout(), f.trajectory, m.Trajectory()); err != nil {
			return fmt.Errorf("--trajectory: %w", err)
		}
	}
	if f.forensics != "" {
		fs := m.Forensics()
		lines := make([][]byte, len(fs))
		for i, p := range fs {
			lines[i] = p.Description
		}
		if err := writeLines(cmd.OutOrStdout(), f.forensics, lines); err != nil {
			return fmt.Errorf("--forensics: %w", err)
		}
	}
	return nil
}

// writeLines writes one line per entry (nil entries skipped) to path,
// atomically, or to stdout for "-".
func writeLines(stdout io.Writer, path string, lines [][]byte) error {
	write := func(w *bufio.Writer) error {
		for _, l := range lines {
			if l == nil {
				continue
			}
			w.Write(l)
			if err := w.WriteByte('\n'); err != nil {
				return err
			}
		}
		return nil
	}
	if path == "-" {
		w := bufio.NewWriter(stdout)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	}
	return lineio.WriteFileAtomic(path, 0o644, write)
}

func printRunSummary(w io.Writer, f *runFlags, capture *bpf.Capture, ns *namespace.Namespace, disp *namespace.Dispatcher, digests *events.DigestCache, lost uint64) {
	st := ns.Stats()
	m := ns.Model()
	fmt.Fprintf(w, "vigil: namespace %q (context %d, %s backend): %d events, %d model points, %d forensics points (%d events), %d lost\n",
		ns.Name(), ns.ID(), capture.Backend(), st.Events, m.Len(), len(m.Forensics()), st.ForensicEvents, lost)
	if st.Unmodeled > 0 {
		types := make([]string, 0, len(st.UnmodeledTypes))
		for t, n := range st.UnmodeledTypes {
			types = append(types, t+" "+strconv.FormatUint(n, 10))
		}
		sort.Strings(types)
		fmt.Fprintf(w, "vigil: %d events have no TSEM coefficient layout and are not modeled: %v\n", st.Unmodeled, types)
	}
	if n := disp.Tasks().Unknown(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d task identity lookups found no exec record (lost or from outside the namespace); those events carry a zero task id\n", n)
	}
	if n := disp.Tasks().Live(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d tasks of the namespace were still running when %s exited; what they do from then on is not modeled\n", n, f.command)
	}
	if n := disp.Converter().DigestFailures(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d file digests could not be read (file changed, deleted or unreachable before Vigil read it); their events carry the unhashable digest (ff...ff), are never learned and are forensics in a sealed run\n", n)
	}
	if st.Unlearned > 0 {
		fmt.Fprintf(w, "vigil: %d events were not learned: a file of theirs had no digest\n", st.Unlearned)
	}
	if n := ns.Model().Forensics(); len(n) > 0 && f.forensics == "" {
		fmt.Fprintf(w, "vigil: %d events outside the model %s (use --forensics FILE for their descriptions):\n", len(n), f.modelIn)
		for i, p := range n {
			if i == 10 {
				fmt.Fprintf(w, "  ... %d more\n", len(n)-10)
				break
			}
			fmt.Fprintf(w, "  %s x%d %s\n", p.Coefficient, p.Count, describeLine(p.Description))
		}
	}
	slog.Debug("digest cache", "stats", digests.Stats())
}

// denialLog keeps what the kernel denied in an enforcing namespace, for
// the summary: the first denial is the out-of-model action, the rest are
// actions of the task the kernel no longer trusts. It is used by the
// reader's goroutine only, and read after the reader is done.
type denialLog struct {
	n     uint64
	first []string
}

func (d *denialLog) note(r bpf.Record) {
	if r.Head().Flags&bpf.FlagDenied == 0 {
		return
	}
	d.n++
	if len(d.first) < 5 {
		d.first = append(d.first, describeRecord(r))
	}
}

func (d *denialLog) print(w io.Writer) {
	if d.n == 0 {
		return
	}
	fmt.Fprintf(w, "vigil: the kernel denied %d events with EPERM (out of the model, or by a task that had stepped out of it):\n", d.n)
	for _, s := range d.first {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if d.n > uint64(len(d.first)) {
		fmt.Fprintf(w, "  ... %d more\n", d.n-uint64(len(d.first)))
	}
}

// describeRecord names a kernel record for people: type, pid, process and
// what it acted on.
func describeRecord(r bpf.Record) string {
	h := r.Head()
	s := fmt.Sprintf("%s pid %d %q", h.Type, h.PID, h.Process())
	switch r := r.(type) {
	case *bpf.FileOpen:
		s += " " + strconv.Quote(r.File.Path.Name)
	case *bpf.ExecScript:
		s += " " + strconv.Quote(r.File.Path.Name)
	case *bpf.Exec:
		s += " " + strconv.Quote(r.File.Path.Name)
	case *bpf.MmapFile:
		s += fmt.Sprintf(" prot %#x flags %#x", r.Prot, r.MmapFlags)
		if r.File.Present {
			s += " " + strconv.Quote(r.File.Path.Name)
		}
	case *bpf.FileIoctl:
		s += fmt.Sprintf(" cmd %#x %q", r.Cmd, r.File.Path.Name)
	}
	return s
}

// describeLine names an event for people: "type process".
func describeLine(desc []byte) string {
	e, err := events.Parse(desc)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s %q", e.Header.Type, e.Header.Process)
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of the kernel's
// record timestamps.
func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*uint64(time.Second) + uint64(ts.Nsec)
}
