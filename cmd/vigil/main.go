// Command vigil is the Vigil security event modeling agent and its tools.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status through cobra. Code 1 means a check
// failed (out-of-model events, verification failure); code 2 means bad input.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// badInput wraps err as a bad-input failure (exit status 2).
func badInput(err error) error { return &exitError{code: 2, err: err} }

// failed reports a failed check (exit status 1) with an optional message.
func failed(err error) error { return &exitError{code: 1, err: err} }

func newRootCmd() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:   "vigil",
		Short: "Security event modeling for Linux workloads (TSEM on the BPF LSM)",
		Long: `Vigil models what workloads do. Each security event (a file open, an exec,
a socket connect, ...) is described as a TSEM JSON event description with its
credentials (COE), mapped to a security state coefficient, and added to the
model of the workload's security modeling namespace. A model can be learned,
sealed and enforced, and every new model point can be extended into a
measurement register with a replayable event log.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return badInput(fmt.Errorf("--log-level: %w", err))
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by the init-free registration lists in the files of
// this package (see commands.go), so each area keeps its command in its own file.
func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(os.Stderr, "vigil: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
	return 2
}
