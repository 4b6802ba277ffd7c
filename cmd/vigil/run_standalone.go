package main

import (
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/agent"
	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/model"
)

// runStandalone runs CMD without an agent: the agent's pipeline in this
// process (agent.Standalone) with one run namespace, created, enrolled and
// drained as an agent does, then the outputs and a summary.
func runStandalone(cmd *cobra.Command, f *runFlags, sigs *runSignals, backend bpf.Backend, path string, args []string) error {
	stderr := cmd.ErrOrStderr()
	m, err := f.loadModel()
	if err != nil {
		return err
	}
	reg, why, err := f.reg.openRegister(cmd)
	if err != nil {
		return err
	}
	denials := &denialLog{}
	s, err := agent.OpenStandalone(agent.StandaloneOptions{
		Backend: backend, RingBufferBytes: f.ringBytes,
		Log: f.reg.log, Register: reg, Why: why,
		Logger: slog.Default(), Stderr: stderr, Losses: stderrLosses{stderr}, Denied: denials.note,
	})
	if err != nil {
		return failed(err)
	}
	closed := false
	defer func() {
		if !closed {
			if err := s.Close(); err != nil {
				fmt.Fprintf(stderr, "vigil: %v\n", err)
			}
		}
	}()
	if f.enforce && !s.CanEnforce() {
		return failed(fmt.Errorf("--enforce: the %s backend was selected: %w", s.Backend(), bpf.ErrObserveOnly))
	}
	slog.Debug("capture open", "backend", s.Backend())
	if err := s.Create(f.name, m, f.settings(control.Settings{}, m)); err != nil {
		return failed(err)
	}

	status, runErr := runEnrolled(cmd, sigs, s.Enroll, path, args)
	// Every record of CMD is in the ring buffer once it has exited: drain
	// it to the end before looking at the model.
	if err := s.Finish(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runFailed(runErr)
	}
	if err := s.Err(); err != nil {
		return failed(fmt.Errorf("--log: %w", err))
	}
	ns := s.Namespace()
	if err := writeRunOutputs(cmd.OutOrStdout(), modelOutputs(f, ns.Model())); err != nil {
		return failed(err)
	}
	printRunSummary(stderr, f, s)
	denials.print(stderr)
	closed = true
	if err := s.Close(); err != nil {
		if status == 0 {
			return failed(err)
		}
		fmt.Fprintf(stderr, "vigil: %v\n", err)
	}
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

// stderrLosses reports lost records on standard error as they are found.
type stderrLosses struct{ w io.Writer }

func (l stderrLosses) Lost(ns string, n uint64, reason string) {
	fmt.Fprintf(l.w, "vigil: WARNING: %d records of namespace %q lost (%s): its model and measurement are incomplete\n", n, ns, reason)
}

func (l stderrLosses) Unreadable(err error) {
	fmt.Fprintf(l.w, "vigil: WARNING: cannot read the loss counters, the model may be incomplete: %v\n", err)
}

// modelOutputs are -o, --trajectory and --forensics from the model m.
func modelOutputs(f *runFlags, m *model.Model) []runOutput {
	return []runOutput{
		{"-o", f.output, func(w io.Writer) error {
			_, err := m.WriteTo(w)
			return err
		}},
		{"--trajectory", f.trajectory, func(w io.Writer) error {
			lines, err := m.ReadTrajectory()
			if err != nil {
				return err
			}
			return writeLines(w, lines)
		}},
		{"--forensics", f.forensics, func(w io.Writer) error {
			fs, err := m.ReadForensics()
			if err != nil {
				return err
			}
			lines := make([][]byte, len(fs))
			for i, p := range fs {
				lines[i] = p.Description
			}
			return writeLines(w, lines)
		}},
	}
}

func printRunSummary(w io.Writer, f *runFlags, s *agent.Standalone) {
	ns := s.Namespace()
	st := ns.Stats()
	m := ns.Model()
	fmt.Fprintf(w, "vigil: namespace %q (context %d, %s backend): %d events, %d model points, %d forensics points (%d events), %d lost\n",
		ns.Name(), ns.ID(), s.Backend(), st.Events, m.Len(), m.NumForensics(), st.ForensicEvents, st.Lost)
	if st.Unmodeled > 0 {
		types := make([]string, 0, len(st.UnmodeledTypes))
		for t, n := range st.UnmodeledTypes {
			types = append(types, t+" "+strconv.FormatUint(n, 10))
		}
		sort.Strings(types)
		fmt.Fprintf(w, "vigil: %d events have no TSEM coefficient layout and are not modeled: %v\n", st.Unmodeled, types)
	}
	if n := s.Tasks().Unknown(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d task identity lookups found no exec record (lost or from outside the namespace); those events carry a zero task id\n", n)
	}
	if n := s.Tasks().Live(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d tasks of the namespace were still running when %s exited; what they do from then on is not modeled\n", n, f.command)
	}
	if n := s.DigestFailures(); n > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d file digests could not be read (file changed, deleted or unreachable before Vigil read it); their events carry the unhashable digest (ff...ff), are never learned and are forensics in a sealed run\n", n)
	}
	if st.Unlearned > 0 {
		fmt.Fprintf(w, "vigil: %d events were not learned: a file of theirs had no digest\n", st.Unlearned)
	}
	if f.forensics != "" {
		return
	}
	fs, err := m.ReadForensics()
	if err != nil {
		fmt.Fprintf(w, "vigil: %d events outside the model %s; read them: %v\n", len(fs), f.modelIn, err)
		return
	}
	if len(fs) > 0 {
		fmt.Fprintf(w, "vigil: %d events outside the model %s (use --forensics FILE for their descriptions):\n", len(fs), f.modelIn)
		for i, p := range fs {
			if i == 10 {
				fmt.Fprintf(w, "  ... %d more\n", len(fs)-10)
				break
			}
			fmt.Fprintf(w, "  %s x%d %s\n", p.Coefficient, p.Count, describeLine(p.Description))
		}
	}
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
