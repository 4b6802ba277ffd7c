package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/internal/control"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
)

func newNsCmd() *cobra.Command {
	socket := control.DefaultSocket
	cmd := &cobra.Command{
		Use:   "ns",
		Short: "Inspect and control the modeling namespaces of a running agent",
		Long: `Talk to a running 'vigil agent' over its control socket (root only).

Each container the agent discovers is a security
modeling namespace with its own model. A namespace starts learning: every new
security state coefficient joins its trajectory. 'seal' freezes the model:
later events outside it are forensics. 'enforce' also denies them.

Output follows TSEM and the Quixote tools: trajectories and forensics are TSEM
event descriptions, one JSON object a line; --coefficients prints one
coefficient (lowercase hex) a line and --counts one count a line, in the same
order; 'model' prints a TSEM model file.

NS is a namespace's name as 'vigil ns list' prints it, or any prefix that
names just one namespace (containerd-0b4e5c3f7d5f for a container's).`,
	}
	cmd.PersistentFlags().StringVar(&socket, "socket", socket, "the agent's control socket")
	client := func() *control.Client { return control.NewClient(socket) }
	cmd.AddCommand(
		newNsListCmd(client), newNsShowCmd(client),
		newNsTransitionCmd(client, "seal", "Seal a namespace's model: later out-of-model events become forensics"),
		newNsTransitionCmd(client, "enforce", "Enforce a sealed namespace's model: out-of-model events are denied"),
		newNsEventsCmd(client, "trajectory", "Print a namespace's trajectory (its unique security events)"),
		newNsEventsCmd(client, "forensics", "Print a namespace's forensics (events outside its sealed model)"),
		newNsModelCmd(client), newNsLoadCmd(client), newNsPseudonymCmd(client),
	)
	return cmd
}

// nsError maps the control API's errors to exit statuses: a namespace that
// does not exist or a model the agent rejects is bad input (2); an agent
// that cannot be reached or refuses us is a failure (1).
func nsError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, control.ErrNotFound) || errors.Is(err, control.ErrInvalid) {
		return badInput(err)
	}
	return failed(err)
}

func requestContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), time.Minute)
}

func newNsListCmd(client func() *control.Client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the agent's modeling namespaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := requestContext(cmd)
			defer cancel()
			list, err := client().Namespaces(ctx)
			if err != nil {
				return nsError(err)
			}
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), list)
			}
			return printNamespaceTable(cmd.OutOrStdout(), list)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the namespaces as JSON")
	return cmd
}

func printNamespaceTable(w io.Writer, list []control.NamespaceInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tCONTEXT\tORIGIN\tMODE\tPOINTS\tEVENTS\tFORENSICS\tLOST\tLOG\tPOD")
	for _, n := range list {
		pod := "-"
		if n.Container != nil && n.Container.PodUID != "" {
			pod = n.Container.PodUID
		}
		origin := n.Origin
		if origin == "" {
			origin = "-"
		}
		if n.Ended {
			origin += " (ended)"
		}
		log := "-"
		if n.Log != nil {
			log = n.Log.Status
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
			n.Name, n.Context, origin, n.Mode, n.Points, n.Events, n.ForensicsPoints, n.Lost, log, pod)
	}
	return tw.Flush()
}

func newNsShowCmd(client func() *control.Client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NS",
		Short: "Show a namespace: mode, settings, counts, state and measurement",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := requestContext(cmd)
			defer cancel()
			n, err := client().Namespace(ctx, args[0])
			if err != nil {
				return nsError(err)
			}
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), n)
			}
			return printNamespace(cmd.OutOrStdout(), n)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the namespace as JSON")
	return cmd
}

func printNamespace(w io.Writer, n control.NamespaceInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("namespace", n.Name)
	row("context", n.Context)
	row("origin", n.Origin)
	if c := n.Container; c != nil {
		row("runtime", c.Runtime)
		row("container", c.ID)
		if c.PodUID != "" {
			row("pod", c.PodUID)
		}
		if c.Image != "" {
			row("image", c.Image)
		}
		if c.Cgroup != "" {
			row("cgroup", c.Cgroup)
		}
	}
	row("mode", n.Mode)
	row("hash", n.Settings.HashAlgorithm)
	if n.Settings.Dialect != "" {
		row("dialect", n.Settings.Dialect)
	}
	pseudonyms := fmt.Sprint(n.Pseudonyms)
	if len(n.Settings.Pseudonyms) > 0 {
		pseudonyms += " (" + strings.Join(n.Settings.Pseudonyms, ", ") + ")"
	}
	row("pseudonyms", pseudonyms)
	row("capable", onOff(n.Settings.Capable))
	row("repeat cache", onOff(n.Settings.RepeatCache))
	if n.Settings.Model != "" {
		row("seal to", n.Settings.Model)
	}
	row("enforce", onOff(n.Settings.Enforce))
	row("fail closed", onOff(n.Settings.FailClosed))
	if !n.Created.IsZero() {
		row("created", n.Created.UTC().Format(time.RFC3339))
	}
	row("trajectory size", n.Points)
	row("events", n.Events)
	row("forensics size", n.ForensicsPoints)
	row("forensics events", n.ForensicsEvents)
	row("denials", n.Denials)
	row("lost", n.Lost)
	row("log", logSummary(n.Log))
	row("tasks", n.Tasks)
	row("untrusted tasks", n.UntrustedTasks)
	row("aggregate", n.Aggregate)
	row("state", n.State)
	row("measurement", n.Measurement)
	return tw.Flush()
}

// logSummary says how complete a namespace's part of the measured log is.
func logSummary(l *control.LogState) string {
	if l == nil {
		return "none (the agent keeps no measured log)"
	}
	var parts []string
	if l.Unrecorded > 0 {
		parts = append(parts, fmt.Sprintf("%d model points not recorded (gap records count them)", l.Unrecorded))
	}
	if l.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d events not modeled while the log could not be written (gap records count them)", l.Skipped))
	}
	if l.Waiting > 0 {
		parts = append(parts, fmt.Sprintf("%d records waiting in memory", l.Waiting))
	}
	s := l.Status
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	if l.Error != "" {
		s += "; " + l.Error
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func newNsTransitionCmd(client func() *control.Client, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NS",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := requestContext(cmd)
			defer cancel()
			c := client()
			var n control.NamespaceInfo
			var err error
			if verb == "seal" {
				n, err = c.Seal(ctx, args[0])
			} else {
				n, err = c.Enforce(ctx, args[0])
			}
			if err != nil {
				return nsError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %d points, state %s\n", n.Name, n.Mode, n.Points, n.State)
			return nil
		},
	}
}

func newNsEventsCmd(client func() *control.Client, what, short string) *cobra.Command {
	var coefficients, counts bool
	cmd := &cobra.Command{
		Use:   what + " NS",
		Short: short,
		Long: short + `.

By default each unique event is printed as its TSEM event description (one
JSON object a line, as first seen). --coefficients prints each event's
security state coefficient instead, and --counts how many times it occurred,
one a line in the same order, as the Quixote console prints them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if coefficients && counts {
				return badInput(errors.New("--coefficients and --counts: choose one"))
			}
			ctx, cancel := requestContext(cmd)
			defer cancel()
			c := client()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			if !coefficients && !counts {
				if what == "trajectory" {
					return nsError(c.Trajectory(ctx, args[0], out))
				}
				return nsError(c.Forensics(ctx, args[0], out))
			}
			var pts []control.Point
			var err error
			if what == "trajectory" {
				pts, err = c.TrajectoryPoints(ctx, args[0])
			} else {
				pts, err = c.ForensicsPoints(ctx, args[0])
			}
			if err != nil {
				return nsError(err)
			}
			for _, p := range pts {
				if coefficients {
					out.WriteString(p.Coefficient.String())
				} else {
					out.WriteString(strconv.FormatUint(p.Count, 10))
				}
				out.WriteByte('\n')
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&coefficients, "coefficients", false, "print security state coefficients, one a line")
	cmd.Flags().BoolVar(&counts, "counts", false, "print event counts, one a line")
	return cmd
}

func newNsModelCmd(client func() *control.Client) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "model NS [-o FILE]",
		Short: "Print a namespace's model as a TSEM model file",
		Long: `Print the namespace's current model in the TSEM/Quixote model file format
(aggregate, one state line per point, seal, end), to standard output or
atomically to -o FILE. 'vigil ns load' and 'vigil run --model' read it back.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := requestContext(cmd)
			defer cancel()
			c := client()
			if out == "" || out == "-" {
				return nsError(c.Model(ctx, args[0], cmd.OutOrStdout()))
			}
			return nsError(lineio.WriteFileAtomic(out, 0o644, func(w *bufio.Writer) error {
				return c.Model(ctx, args[0], w)
			}))
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the model to this file instead of standard output")
	return cmd
}

func newNsLoadCmd(client func() *control.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "load NS MODEL",
		Short: "Load a TSEM model file into a namespace (\"-\" reads standard input)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			name := lineio.StdinName
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return badInput(err)
				}
				defer f.Close()
				in, name = f, args[1]
			}
			file, err := io.ReadAll(in)
			if err != nil {
				return badInput(fmt.Errorf("read %s: %w", name, err))
			}
			// Check it here too, so that errors name the user's file;
			// the agent checks it again against the namespace's hash.
			if _, err := model.Load(bytes.NewReader(file), name); err != nil {
				return badInput(err)
			}
			ctx, cancel := requestContext(cmd)
			defer cancel()
			c := client()
			if err := c.Load(ctx, args[0], bytes.NewReader(file)); err != nil {
				return nsError(fmt.Errorf("load %s: %w", args[1], err))
			}
			n, err := c.Namespace(ctx, args[0])
			if err != nil {
				return nsError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %d points, state %s\n", n.Name, n.Mode, n.Points, n.State)
			return nil
		},
	}
}

func newNsPseudonymCmd(client func() *control.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "pseudonym NS PATH...",
		Short: "Give a learning namespace pseudonyms for files whose contents differ per instance",
		Long: `Give the namespace a pseudonym for each PATH (absolute, as the kernel prints it
inside the namespace): its later events of that file are hashed with the
empty file's digest instead of the file's, as TSEM does, so a file whose
content differs from one instance to the next keeps one coefficient. Points
learned before keep theirs: add pseudonyms early. Only a learning namespace
takes them; a sealed model holds coefficients computed without them. The
pseudonyms are written to the namespace's model file ('vigil ns model').`,
		Example: `  vigil ns pseudonym containerd-0b4e5c3f7d5f /etc/app/instance.id /var/run/app.pid`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := requestContext(cmd)
			defer cancel()
			n, err := client().AddPseudonyms(ctx, args[0], args[1:])
			if err != nil {
				return nsError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %d pseudonyms: %s\n", n.Name, n.Mode, n.Pseudonyms, strings.Join(n.Settings.Pseudonyms, ", "))
			return nil
		},
	}
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
