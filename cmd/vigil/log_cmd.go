package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/measure"
)

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show and export measured event logs",
		Long: `A measured event log has one JSON record a line in the TCG Canonical Event Log
shape: recnum, the register index ("rtmr", "pcr" or "swreg"), the digest
extended into the register, content_type "vigil" and the content, Vigil's
record of a namespace (created, point, sealed, enforcing, gap) or of a run
(start, stop: one process appending, see 'vigil verify'). The digest is
the hash of the exact bytes of the content. See 'vigil verify'.`,
	}
	cmd.AddCommand(newLogShowCmd(), newLogExportCmd())
	return cmd
}

func newLogShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show LOG",
		Short: "Print a measured event log for people, one record a line",
		Long: `Print every record: number, time, kind, namespace and what it records (a
point's coefficient and its event's type and process). Records are checked
as they are read (numbering, register, digests); the first bad one stops the
listing with exit status 1. The register value is not checked: use 'vigil
verify' for that.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return badInput(err)
			}
			defer f.Close()
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			rp := measure.NewReplayer("", 0, 0)
			err = measure.Scan(f, args[0], func(line int, rec measure.Record) error {
				if rec.Recnum == 0 {
					fmt.Fprintf(out, "log %s: %s register %d, %s\n", args[0], rec.Kind, rec.Index, measure.AlgName(rec.Alg))
				}
				rp.Add(rec)
				c, err := measure.ParseContent(rec.Content)
				if err != nil {
					return &measure.LineError{File: args[0], Line: line, Err: err}
				}
				fmt.Fprintf(out, "%6d %s %-9s", rec.Recnum, c.Time, c.Record)
				if c.Record != measure.RecordStart && c.Record != measure.RecordStop {
					fmt.Fprintf(out, " ns %d %q", c.Namespace.ID, c.Namespace.Name)
				}
				switch c.Record {
				case measure.RecordCreated:
					fmt.Fprintf(out, " aggregate %s base %s", c.Aggregate, c.Base)
				case measure.RecordPoint:
					fmt.Fprintf(out, " %s", c.Coef)
					if c.Forensic {
						fmt.Fprint(out, " FORENSIC")
					}
					fmt.Fprint(out, describeEvent(&c))
				case measure.RecordGap:
					if c.Points > 0 {
						fmt.Fprintf(out, " points not recorded %d", c.Points)
					} else {
						fmt.Fprintf(out, " lost %d", c.Lost)
					}
					fmt.Fprintf(out, " (%s)", c.Reason)
				case measure.RecordStart:
					fmt.Fprintf(out, " run %d", c.Run)
					if p := c.Previous; p != nil {
						fmt.Fprintf(out, " after %d records (clean end: %v) value %s", p.Records, p.Clean, p.Value)
					}
				case measure.RecordStop:
					fmt.Fprintf(out, " run %d after %d records value %s", c.Run, c.Records, c.Value)
				}
				fmt.Fprintln(out)
				return nil
			})
			if err != nil {
				var le *measure.LineError
				if errors.As(err, &le) || errors.Is(err, measure.ErrTornLine) {
					return failed(err)
				}
				return badInput(err)
			}
			if rp.Kind == "" {
				fmt.Fprintf(out, "log %s: empty\n", args[0])
				return nil
			}
			fmt.Fprintf(out, "%d records; they explain %s register %d = %s\n", rp.Records(), rp.Kind, rp.Index, hex.EncodeToString(rp.Value()))
			return nil
		},
	}
}

// describeEvent names a point's event for people: " type process".
func describeEvent(c *measure.Content) string {
	desc, err := c.Description()
	if err != nil || len(desc) == 0 {
		return ""
	}
	var e struct {
		Event struct {
			Type    string `json:"type"`
			Process string `json:"process"`
		} `json:"event"`
	}
	if json.Unmarshal(desc, &e) != nil {
		return " (event description is not strict JSON)"
	}
	return fmt.Sprintf(" %s %q", e.Event.Type, e.Event.Process)
}

func newLogExportCmd() *cobra.Command {
	var format, output string
	cmd := &cobra.Command{
		Use:   "export --format cel-tlv LOG [-o FILE]",
		Short: "Convert a measured event log to TCG CEL TLV",
		Long: `Write the log as TCG Canonical Event Log TLV records (recnum, register index,
digests, content), readable by CEL tools such as github.com/google/go-eventlog.
A TDX RTMR N becomes confidential-computing MR index N+1; TPM and software
registers are PCRs. Each content is a TLV of type 224 whose value is the
record's JSON content, byte for byte, so every digest still verifies.
The output goes to -o (replaced atomically) or standard output.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "cel-tlv" {
				return badInput(fmt.Errorf("--format %q: the only format is cel-tlv", format))
			}
			f, err := os.Open(args[0])
			if err != nil {
				return badInput(err)
			}
			defer f.Close()
			export := func(w io.Writer) error {
				_, err := measure.ExportCEL(w, f, args[0])
				var le *measure.LineError
				if errors.As(err, &le) || errors.Is(err, measure.ErrTornLine) {
					return failed(err)
				}
				return err
			}
			if output == "" || output == "-" {
				w := bufio.NewWriter(cmd.OutOrStdout())
				if err := export(w); err != nil {
					return err
				}
				return w.Flush()
			}
			return lineio.WriteFileAtomic(output, 0o644, func(w *bufio.Writer) error { return export(w) })
		},
	}
	cmd.Flags().StringVar(&format, "format", "cel-tlv", "output format: cel-tlv")
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default: standard output)")
	return cmd
}
