package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/bpf"
	"github.com/vigil-tsem/vigil/internal/control"
)

// Timeouts of the requests 'vigil run' makes to an agent: probeTimeout for
// the first (does an agent answer?), agentTimeout for each later one,
// syncTimeout for the agent to process CMD's exit.
const (
	probeTimeout = 5 * time.Second
	agentTimeout = 30 * time.Second
	syncTimeout  = 10 * time.Second
)

// runViaAgent runs CMD in a namespace of the agent behind client: create
// the namespace (and seal it to --model), enrol the stub, run CMD, wait
// until the agent has processed CMD's exit, write the outputs from the
// agent's copies, end the namespace.
func runViaAgent(cmd *cobra.Command, f *runFlags, sigs *runSignals, client *control.Client, agent control.AgentInfo, path string, args []string) error {
	stderr := cmd.ErrOrStderr()
	for _, name := range standaloneFlags {
		if cmd.Flags().Changed(name) {
			return badInput(fmt.Errorf("--%s is a standalone flag, and the vigil agent at %s captures and measures this run (%s backend, its own log): drop --%s, or use --agent never", name, f.socket, agent.Backend, name))
		}
	}
	m, err := f.loadModel()
	if err != nil {
		return err
	}
	settings := f.settings(agent.Defaults, m)
	var modelFile []byte
	if m != nil {
		if modelFile, err = os.ReadFile(f.modelIn); err != nil {
			return badInput(fmt.Errorf("--model: %w", err))
		}
	}
	if f.enforce && !agent.CanEnforce {
		return failed(fmt.Errorf("--enforce: the vigil agent at %s: %w", f.socket, bpf.ErrObserveOnly))
	}
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(cmd.Context(), agentTimeout)
	}

	ctx, cancel := call()
	info, err := client.Create(ctx, control.CreateRequest{Name: f.name, Origin: control.OriginRun, Settings: settings})
	cancel()
	if err != nil {
		if errors.Is(err, control.ErrConflict) && f.name != "" {
			return badInput(fmt.Errorf("--name %s: %w", f.name, err))
		}
		return failed(fmt.Errorf("create the namespace: %w", err))
	}
	ns := info.Name
	fmt.Fprintf(stderr, "vigil: using the vigil agent at %s (pid %d, %s backend): namespace %q (context %d)\n", f.socket, agent.PID, agent.Backend, ns, info.Context)
	ended := false
	end := func() (control.NamespaceInfo, error) {
		ended = true
		// Not cmd.Context(): the namespace ends even when we are
		// interrupted (the agent would end it anyway when we exit).
		ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
		defer cancel()
		return client.End(ctx, ns)
	}
	defer func() {
		if !ended {
			if _, err := end(); err != nil {
				fmt.Fprintf(stderr, "vigil: end namespace %s: %v\n", ns, err)
			}
		}
	}()

	if modelFile != nil {
		ctx, cancel := call()
		err := client.Load(ctx, ns, bytes.NewReader(modelFile))
		if err == nil {
			info, err = client.Namespace(ctx, ns)
		}
		if err == nil && f.enforce && info.Mode != control.ModeEnforcing {
			info, err = client.Enforce(ctx, ns)
		}
		cancel()
		if err != nil {
			return failed(fmt.Errorf("--model: %w", err))
		}
	}

	var stub int
	status, runErr := runEnrolled(cmd, sigs, func(pid int) error {
		stub = pid
		ctx, cancel := call()
		defer cancel()
		return client.AddTask(ctx, ns, pid)
	}, path, args)
	if runErr != nil {
		return runFailed(runErr)
	}

	// Every record of CMD, and of the children it waited for, precedes
	// its exit record in the ring buffer: once the agent has processed
	// that, the model holds them.
	ctx, cancel = context.WithTimeout(cmd.Context(), syncTimeout+agentTimeout)
	reply, err := client.Sync(ctx, ns, stub, syncTimeout)
	cancel()
	if err != nil {
		return failed(fmt.Errorf("wait for the agent to process %s's exit: %w", f.command, err))
	}
	if !reply.Exited {
		fmt.Fprintf(stderr, "vigil: WARNING: the agent did not see %s exit within %s (its exit record was lost?): the outputs may miss its last events\n", f.command, syncTimeout)
	}
	if err := writeRunOutputs(cmd.OutOrStdout(), agentOutputs(cmd, f, client, ns)); err != nil {
		return failed(err)
	}
	final, err := end()
	if err != nil {
		return failed(fmt.Errorf("end namespace %s: %w", ns, err))
	}
	printAgentSummary(cmd, f, client, agent, final)
	if status != 0 {
		return exitCode(status)
	}
	return nil
}

// agentOutputs are -o, --trajectory and --forensics from the agent's
// copies of namespace ns.
func agentOutputs(cmd *cobra.Command, f *runFlags, client *control.Client, ns string) []runOutput {
	from := func(get func(context.Context, string, io.Writer) error) func(io.Writer) error {
		return func(w io.Writer) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), agentTimeout)
			defer cancel()
			return get(ctx, ns, w)
		}
	}
	return []runOutput{
		{"-o", f.output, from(client.Model)},
		{"--trajectory", f.trajectory, from(client.Trajectory)},
		{"--forensics", f.forensics, from(client.Forensics)},
	}
}

// printAgentSummary is printRunSummary for a namespace of the agent.
func printAgentSummary(cmd *cobra.Command, f *runFlags, client *control.Client, agent control.AgentInfo, n control.NamespaceInfo) {
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "vigil: namespace %q (context %d, agent's %s backend): %d events, %d model points, %d forensics points (%d events), %d lost\n",
		n.Name, n.Context, agent.Backend, n.Events, n.Points, n.ForensicsPoints, n.ForensicsEvents, n.Lost)
	if n.Lost > 0 {
		fmt.Fprintf(w, "vigil: WARNING: %d records of namespace %q lost: its model and measurement are incomplete\n", n.Lost, n.Name)
	}
	if n.ForensicsPoints == 0 || f.forensics != "" {
		return
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), agentTimeout)
	defer cancel()
	pts, err := client.ForensicsPoints(ctx, n.Name)
	var lines bytes.Buffer
	if err == nil {
		err = client.Forensics(ctx, n.Name, &lines)
	}
	if err != nil {
		fmt.Fprintf(w, "vigil: %d events outside the model %s; read them: %v\n", n.ForensicsPoints, f.modelIn, err)
		return
	}
	descs := bytes.Split(bytes.TrimSuffix(lines.Bytes(), []byte("\n")), []byte("\n"))
	fmt.Fprintf(w, "vigil: %d events outside the model %s (use --forensics FILE for their descriptions):\n", len(pts), f.modelIn)
	for i, p := range pts {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(pts)-10)
			break
		}
		var what string
		if i < len(descs) {
			what = describeLine(descs[i])
		}
		fmt.Fprintf(w, "  %s x%d %s\n", p.Coefficient, p.Count, what)
	}
}
