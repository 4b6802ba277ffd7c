package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/measure"
	"github.com/vigil-tsem/vigil/measure/tdx"
	"github.com/vigil-tsem/vigil/model"
)

func newVerifyCmd() *cobra.Command {
	var logPath, regArg, quotePath, nonceHex, modelPath, quoteTime string
	var allowGaps bool
	cmd := &cobra.Command{
		Use:   "verify --log LOG [--register HEX | --quote QUOTE] [--nonce HEX] [--model MODEL] [--allow-gaps]",
		Short: "Replay a measured event log and check it against a register or a TDX quote",
		Long: `Replay a measured event log (written by --log of 'vigil run' and
'vigil model build') and check it:

  - every line is a well-formed record, numbered from 0 without gaps, whose
    digest is the hash of its content;
  - the register value, given with --register or read from a TDX quote with
    --quote, is exactly what the log explains (an empty log explains only a
    zero register);
  - the quote's signature chain leads to Intel's SGX root CA (offline: no
    collateral or revocation lists are fetched), and its report data binds
    --nonce and the number of records the quote covers;
  - each namespace's records come in an order Vigil writes them; its
    measurement and state are recomputed and printed, with its gap
    records (events lost, or points the log could not record);
  - each run of the log (one process appending, from its start record to
    its stop record) agrees with the log: the records and register value
    its start and stop records name are those of the log; a run that a
    later run follows without its stop record ended unclean (a crash, or
    records removed from its end);
  - with --model, every point of the log is a point of the model.

--register takes the hex value, or the whole "register NAME INDEX ALG HEX"
line that --log commands print on exit (then the log must be for that
register). Without --register or --quote only the log itself is checked.

A log that verifies but is incomplete (gap records, or a run that ended
unclean) ends with "verified, with gaps" and what is missing.

Exit status 0: verified, complete. 1: verification failed; the message says
what and where (file:line and record number). 2: bad input (a missing
file, bad hex). 3: verified, but the log is incomplete; --allow-gaps makes
that 0.`,
		Example: `  vigil model build --log events.log --register software -o m.model trajectory.json 2> build.err
  vigil verify --log events.log --register "$(grep ^register build.err)"
  vigil verify --log events.log --quote quote.dat --nonce 0123abcd --model m.model`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if logPath == "" {
				return badInput(errors.New("--log is required"))
			}
			if regArg != "" && quotePath != "" {
				return badInput(errors.New("give --register or --quote, not both"))
			}
			nonce, err := hex.DecodeString(nonceHex)
			if err != nil {
				return badInput(fmt.Errorf("--nonce: %w", err))
			}
			if nonceHex != "" && quotePath == "" {
				return badInput(errors.New("--nonce needs --quote"))
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			opts := measure.VerifyOptions{}
			if regArg != "" {
				if err := parseRegisterArg(regArg, &opts); err != nil {
					return badInput(fmt.Errorf("--register: %w", err))
				}
			}
			if modelPath != "" {
				if opts.Model, err = model.LoadFile(modelPath); err != nil {
					return badInput(fmt.Errorf("--model: %w", err))
				}
			}
			f, err := os.Open(logPath)
			if err != nil {
				return badInput(fmt.Errorf("--log: %w", err))
			}
			defer f.Close()
			if quotePath != "" {
				raw, err := os.ReadFile(quotePath)
				if err != nil {
					return badInput(fmt.Errorf("--quote: %w", err))
				}
				var now time.Time
				if quoteTime != "" {
					if now, err = time.Parse(time.RFC3339, quoteTime); err != nil {
						return badInput(fmt.Errorf("--quote-time: %w", err))
					}
				}
				inModel := opts.Model
				if opts, err = checkQuote(out, f, logPath, raw, nonce, now); err != nil {
					return err
				}
				opts.Model = inModel
			}
			rep, err := measure.Verify(f, logPath, opts)
			printReport(out, logPath, rep, opts, modelPath, err == nil)
			if err != nil {
				if errors.Is(err, measure.ErrVerify) {
					return failed(err)
				}
				return badInput(err)
			}
			if len(rep.Outside) > 0 {
				return failed(fmt.Errorf("%d points of %s are outside the model %s", len(rep.Outside), logPath, modelPath))
			}
			return verdict(out, logPath, rep, allowGaps)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&logPath, "log", "", "measured event log to verify (required)")
	fl.StringVar(&regArg, "register", "", `register value to explain: HEX, or a "register NAME INDEX ALG HEX" line`)
	fl.StringVar(&quotePath, "quote", "", "raw TDX quote (configfs-tsm outblob) to take the register value from")
	fl.StringVar(&nonceHex, "nonce", "", "hex nonce the quote's report data must bind (default: empty)")
	fl.StringVar(&modelPath, "model", "", "model file every point of the log must belong to")
	fl.StringVar(&quoteTime, "quote-time", "", "RFC 3339 time at which the quote's certificates must be valid (default: now)")
	fl.BoolVar(&allowGaps, "allow-gaps", false, "exit 0 for a log that verifies but is incomplete (it is still reported)")
	return cmd
}

// parseRegisterArg reads --register: HEX, or "register NAME INDEX ALG HEX".
func parseRegisterArg(s string, o *measure.VerifyOptions) error {
	f := strings.Fields(s)
	switch {
	case len(f) == 1:
	case len(f) == 5 && f[0] == "register":
		idx, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("index %q: %w", f[2], err)
		}
		if f[1] != measure.KindTDX && f[1] != measure.KindTPM && f[1] != measure.KindSoftware {
			return fmt.Errorf("register kind %q is not tdx, tpm or software", f[1])
		}
		alg, err := measure.ParseAlg(f[3])
		if err != nil {
			return err
		}
		o.Kind, o.Index = f[1], idx
		if want := measure.AlgName(measure.KindAlg(f[1])); want != f[3] {
			return fmt.Errorf("a %s register is %s, not %s", f[1], want, measure.AlgName(alg))
		}
	default:
		return fmt.Errorf("%q is neither HEX nor \"register NAME INDEX ALG HEX\"", s)
	}
	v, err := hex.DecodeString(f[len(f)-1])
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return errors.New("empty value")
	}
	o.Register = v
	return nil
}

// checkQuote verifies a TDX quote and returns the options that check the log
// in f against it.
func checkQuote(w io.Writer, f io.ReadSeeker, logPath string, raw, nonce []byte, now time.Time) (measure.VerifyOptions, error) {
	q, err := tdx.VerifyQuote(raw, tdx.VerifyOptions{Now: now})
	if err != nil {
		return measure.VerifyOptions{}, failed(fmt.Errorf("quote: %w", err))
	}
	fmt.Fprintf(w, "quote:       signature and certificate chain verified (Intel SGX Root CA, offline)\n")
	fmt.Fprintf(w, "mrtd:        %x\n", q.MRTD)
	first, ok, err := measure.FirstRecord(f, logPath)
	if err != nil {
		return measure.VerifyOptions{}, failed(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return measure.VerifyOptions{}, badInput(err)
	}
	index := tdx.DefaultIndex
	if ok {
		if first.Kind != measure.KindTDX {
			return measure.VerifyOptions{}, failed(fmt.Errorf("%w: %s is a log of the %s register, a TDX quote attests RTMRs", measure.ErrVerify, logPath, first.Kind))
		}
		index = first.Index
	}
	o, err := measure.QuoteOptions(q, nonce, index)
	if err != nil {
		return measure.VerifyOptions{}, failed(fmt.Errorf("quote: %w", err))
	}
	fmt.Fprintf(w, "report data: binds the nonce and %d records\n", *o.Position)
	return o, nil
}

// printReport prints what Verify found; after a failure only the log's
// identity, since nothing recomputed from a bad log means anything.
func printReport(w io.Writer, path string, rep *measure.Report, o measure.VerifyOptions, modelPath string, ok bool) {
	if rep == nil {
		return
	}
	if rep.Kind == "" {
		fmt.Fprintf(w, "log:         %s (empty)\n", path)
	} else {
		fmt.Fprintf(w, "log:         %s (%d records, %s register %d, %s)\n", path, rep.Records, rep.Kind, rep.Index, measure.AlgName(rep.Alg))
	}
	if !ok {
		return
	}
	switch {
	case o.Register == nil:
		fmt.Fprintf(w, "register:    not checked (give --register or --quote); the log replays to %x\n", rep.Value)
	case rep.Checked:
		fmt.Fprintf(w, "register:    %x\n", o.Register)
		if rep.Covered < rep.Records {
			fmt.Fprintf(w, "             the quote covers records 0..%d; %d later records are not attested\n", int64(rep.Covered)-1, rep.Records-rep.Covered)
		}
	}
	printRuns(w, rep)
	for _, ns := range rep.Namespaces {
		status := "learning"
		switch {
		case ns.Enforcing:
			status = "enforcing"
		case ns.Sealed:
			status = "sealed"
		}
		fmt.Fprintf(w, "namespace %d %q (line %d): %s, %d points, %d forensics", ns.ID, ns.Name, ns.Line, status, ns.Points, ns.Forensics)
		if ns.Gaps > 0 {
			fmt.Fprintf(w, ", %d gaps (%d events lost, %d points not recorded: incomplete)", ns.Gaps, ns.Lost, ns.Unrecorded)
		}
		if ns.Hash != model.SHA256 {
			fmt.Fprintf(w, ", %s", ns.Hash) // sha256, the default, goes unsaid
		}
		fmt.Fprintln(w)
		printGaps(w, ns.GapRecords)
		fmt.Fprintf(w, "  measurement: %s\n  state:       %s\n", ns.Measurement, ns.State)
	}
	if o.Model != nil {
		if len(rep.Outside) == 0 {
			fmt.Fprintf(w, "model:       every point is in %s\n", modelPath)
		}
		for _, p := range rep.Outside {
			kind := "point"
			if p.Forensic {
				kind = "forensics point"
			}
			fmt.Fprintf(w, "outside model: %s:%d: record %d: namespace %d %q %s %s\n", path, p.Line, p.Recnum, p.Namespace, p.Name, kind, p.Coefficient)
		}
	}
}

// verdict prints the last line(s) of a log that verified: "verified",
// or "verified, with gaps" and what is missing from an incomplete log,
// which is exit status 3 unless allowGaps.
func verdict(w io.Writer, logPath string, rep *measure.Report, allowGaps bool) error {
	if n := len(rep.Runs); n > 0 && rep.Runs[n-1].End == measure.RunOpen {
		// A live log's last run has no stop record yet; one whose writer
		// died has none either, and may miss records at its end.
		fmt.Fprintf(w, "note:        run %d has no stop record: its process is still running, or it ended without one and records at its end may be missing\n", rep.Runs[n-1].Run)
	}
	inc := rep.Incomplete()
	if len(inc) == 0 {
		fmt.Fprintln(w, "verified")
		return nil
	}
	explained := "the register is explained by the log"
	if !rep.Checked {
		explained = "the log is consistent"
	}
	fmt.Fprintf(w, "verified, with gaps: %s, but the log is incomplete:\n", explained)
	for _, why := range inc {
		fmt.Fprintf(w, "  - %s\n", why)
	}
	if allowGaps {
		return nil
	}
	return &exitError{code: 3, err: fmt.Errorf("%s verifies but is incomplete (--allow-gaps accepts that)", logPath)}
}

// maxGapLines bounds the gap records printed per namespace.
const maxGapLines = 20

// printGaps prints a namespace's gap records, the first maxGapLines.
func printGaps(w io.Writer, gaps []measure.Gap) {
	for i, g := range gaps {
		if i == maxGapLines {
			fmt.Fprintf(w, "  ... %d more gap records\n", len(gaps)-i)
			return
		}
		var what []string
		if g.Lost > 0 {
			what = append(what, fmt.Sprintf("%d events lost", g.Lost))
		}
		if g.Points > 0 {
			what = append(what, fmt.Sprintf("%d points not recorded", g.Points))
		}
		fmt.Fprintf(w, "  gap (line %d): %s: %s\n", g.Line, strings.Join(what, ", "), g.Reason)
	}
}

// printRuns prints the runs of the log: when each started and how it
// ended, its records and namespaces.
func printRuns(w io.Writer, rep *measure.Report) {
	if len(rep.Runs) > 0 && rep.BeforeRuns > 0 {
		fmt.Fprintf(w, "before runs: %d records written without run records\n", rep.BeforeRuns)
	}
	for _, r := range rep.Runs {
		var end string
		switch r.End {
		case measure.RunStopped:
			end = "stopped " + r.Stopped
		case measure.RunUnclean:
			end = "ended UNCLEAN: no stop record (a crash or a kill, or records removed from its end)"
		default:
			end = "not stopped (running, or ended without a stop record)"
		}
		fmt.Fprintf(w, "run %d (line %d): started %s, %s; %s, %s\n", r.Run, r.Line, r.Started, end, count(r.Records, "record"), count(uint64(r.Namespaces), "namespace"))
	}
}

// count says "1 thing" or "n things".
func count(n uint64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
