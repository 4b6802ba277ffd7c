package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
)

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Convert TSEM event descriptions",
	}
	cmd.AddCommand(newEventsConvertCmd())
	return cmd
}

func newEventsConvertCmd() *cobra.Command {
	var to, boot, dialect string
	cmd := &cobra.Command{
		Use:   "convert --to ecs|tsem [--dialect tsem|invariant] [FILE...]",
		Short: "Re-encode event descriptions as TSEM JSON lines or Elastic Common Schema",
		Long: `Read TSEM event descriptions and write each one again, one JSON object a line:

  tsem  TSEM's own format, escaped as strict JSON (what Vigil writes)
  ecs   Elastic Common Schema 8.x documents; the coefficient is event.hash,
        ports and IPv4 addresses are converted to host order, and what ECS
        has no field for is under vigil.*

TSEM's "ts" counts nanoseconds since boot. For ECS @timestamp Vigil adds the
boot time: this machine's (from /proc/stat) by default, or --boot-time.`,
		Example: `  vigil events convert --to ecs trajectory.json > trajectory.ecs.json
  vigil events convert --to ecs --boot-time 2026-11-27T00:00:00Z recorded.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDialect(dialect)
			if err != nil {
				return err
			}
			var enc events.Encoder
			switch to {
			case "tsem":
				enc = events.TSEM{}
			case "ecs":
				bt, err := bootTime(boot)
				if err != nil {
					return badInput(err)
				}
				enc = events.ECS{Boot: bt}
			default:
				return badInput(fmt.Errorf("--to %q: want ecs or tsem", to))
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			var buf []byte
			err = mapLines(cmd, args, "converted", d, nil, func(_ lineio.Line, e *events.Event, c model.Coefficient) error {
				buf = enc.Encode(buf[:0], e, c)
				buf = append(buf, '\n')
				_, err := out.Write(buf)
				return err
			})
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "output format: ecs or tsem (required)")
	cmd.Flags().StringVar(&dialect, "dialect", "invariant", dialectUsage+", for event.hash")
	cmd.Flags().StringVar(&boot, "boot-time", "", "boot time (RFC 3339) to add to TSEM's ts for ECS @timestamp (default: this machine's)")
	return cmd
}

// bootTime parses s, or reads this machine's boot time from /proc/stat.
func bootTime(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("--boot-time: %w", err)
		}
		return t, nil
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("read boot time: /proc/stat btime: %w", err)
			}
			return time.Unix(sec, 0).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("read boot time: no btime in /proc/stat")
}
