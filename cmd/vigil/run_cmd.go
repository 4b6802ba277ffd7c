package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
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
	if f.hash != "" {
		if _, err := model.ParseHash(f.hash); err != nil {
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
	return runStandalone(cmd, f, sigs, backend, path, args)
}

// describeLine names an event for people: "type process".
func describeLine(desc []byte) string {
	e, err := events.Parse(desc)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s %q", e.Header.Type, e.Header.Process)
}

// runOutput is one output of 'vigil run': its flag, the path given (""
// for none) and what writes it.
type runOutput struct {
	flag, path string
	write      func(io.Writer) error
}

// writeRunOutputs writes each output given a path: to the file,
// atomically (replaced only once complete), or, for --trajectory and
// --forensics, to stdout for "-", once complete.
func writeRunOutputs(stdout io.Writer, outs []runOutput) error {
	for _, o := range outs {
		if o.path == "" {
			continue
		}
		var err error
		if o.path == "-" && o.flag != "-o" {
			var buf bytes.Buffer
			if err = o.write(&buf); err == nil {
				_, err = stdout.Write(buf.Bytes())
			}
		} else {
			err = lineio.WriteFileAtomic(o.path, 0o644, func(w *bufio.Writer) error { return o.write(w) })
		}
		if err != nil {
			return fmt.Errorf("%s: %w", o.flag, err)
		}
	}
	return nil
}

// writeLines writes one line per entry to w, nil entries skipped.
func writeLines(w io.Writer, lines [][]byte) error {
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		if l == nil {
			continue
		}
		if _, err := bw.Write(l); err != nil {
			return err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}
