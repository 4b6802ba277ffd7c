package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/internal/agent"
	"github.com/vigil-tsem/vigil/internal/config"
)

func newAgentCmd() *cobra.Command {
	var (
		configPath  string
		printConfig bool
	)
	cmd := &cobra.Command{
		Use:   "agent [flags]",
		Short: "Run the host agent: one modeling namespace per container, control socket, metrics, export",
		Long: `Run Vigil's host agent. It loads the capture programs (the BPF LSM when the
kernel allows it, else the observe-only tracepoints), watches the cgroup v2
tree for containers (containerd, CRI-O, Docker, Podman; Kubernetes pods) and
gives each its own security modeling namespace named <runtime>-<container id>.
The processes in a container's cgroup are enrolled as soon as they appear;
their children inherit the membership. 'vigil run' commands started while
the agent runs get their namespaces from it. --host-namespace also models
the node itself as namespace "host" (the agent's own process left out);
--model-key image seals a container to <model-dir>/<image>.model, the image
read from its runtime's state under --runtime-root.

Each namespace learns its model; 'vigil ns seal NS' seals it (later
out-of-model events are forensics) and 'vigil ns enforce NS' denies them
(BPF LSM only). Every new model point is appended to the measured event log
and extended into the measurement register ('vigil verify --log LOG'
checks it); the agent prints the register's final value on exit. Prometheus
metrics are served on --metrics-addr, events are exported with --export.

Every key of the config file (YAML, default ` + config.DefaultPath + `, used
when it exists) is also a flag; flags win. With no file and no flags the
agent runs with the defaults shown below. SIGTERM or SIGINT stops it
gracefully: the ring buffer is drained, the export and the log flushed, the
programs detached, exit status 0. SIGHUP does not stop it: the agent reads
the config file again and logs whether it is valid and which keys differ
from the running configuration, which applies until a restart. Needs root.`,
		Example: `  sudo vigil agent
  sudo vigil agent --config /etc/vigil/config.yaml
  sudo vigil agent --export - --export-format ecs --metrics-addr 0.0.0.0:9476
  vigil agent --print-config > config.yaml`,
		Args: cobra.NoArgs,
	}
	flags := config.BindFlags(cmd.Flags())
	cmd.Flags().StringVar(&configPath, "config", config.DefaultPath, "config file (YAML); a missing default file means the defaults")
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the resolved configuration as a config file and exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// From the start: SIGHUP's default action would kill the agent
		// with nothing drained, no final register line and a stale socket.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		resolve := func() (config.Config, error) {
			path := configPath
			if !cmd.Flags().Changed("config") {
				if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
					path = ""
				}
			}
			return flags.Resolve(path)
		}
		cfg, err := resolve()
		if err != nil {
			return badInput(err)
		}
		if printConfig {
			_, err := cmd.OutOrStdout().Write(cfg.YAML())
			return err
		}
		if os.Geteuid() != 0 {
			return failed(agent.ErrNotRoot)
		}
		// A reader of --export - that goes away must not kill the agent
		// (its models and log would stop with it): the write fails with
		// EPIPE instead, and the export counts and logs the lost lines.
		signal.Ignore(syscall.SIGPIPE)
		a, err := agent.New(cfg, agent.Options{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
		if err != nil {
			if errors.Is(err, agent.ErrUnsupported) {
				return badInput(err)
			}
			return failed(fmt.Errorf("start agent: %w", err))
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		go onHangup(ctx, hup, cfg, resolve, slog.Default())
		if err := a.Run(ctx); err != nil {
			return failed(err)
		}
		return nil
	}
	return cmd
}

// onHangup answers SIGHUP until ctx ends. The agent's configuration is
// fixed at start (the capture, the log and the listeners are opened with
// it), so SIGHUP reloads nothing: it reads the configuration again (reload)
// and logs whether it is valid and which keys differ from the running one,
// so that an operator can check an edited file before restarting. Model
// files are read when a namespace starts, so a new one in model_dir needs
// no signal.
func onHangup(ctx context.Context, hup <-chan os.Signal, running config.Config, reload func() (config.Config, error), log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		next, err := reload()
		switch changed := config.Changed(running, next); {
		case err != nil:
			log.Warn("SIGHUP: the configuration does not load; the agent keeps running with the one it started with", "err", err)
		case len(changed) == 0:
			log.Info("SIGHUP: configuration read again: no change; the agent keeps running")
		default:
			log.Info("SIGHUP: configuration read again: these keys differ from the running configuration and take effect at the next restart; the agent keeps running", "changed", strings.Join(changed, ","))
		}
	}
}
