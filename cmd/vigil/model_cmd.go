package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/events"
	"github.com/vigil-tsem/vigil/internal/lineio"
	"github.com/vigil-tsem/vigil/model"
)

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Map, build, check and show TSEM security models offline",
		Long: `Work with TSEM event descriptions (one JSON object a line, as TSEM and the
Quixote tools write them, or as 'vigil run' records them) and TSEM model files.

Inputs are files, or standard input for "-" or no file at all. A malformed
line stops the command with exit status 2 and an error naming the file and
line; output files are replaced atomically or left untouched.`,
	}
	cmd.AddCommand(newModelPointsCmd(), newModelBuildCmd(), newModelCheckCmd(), newModelShowCmd(), newModelMergeCmd())
	return cmd
}

// dialectUsage is the --dialect flag's help.
const dialectUsage = "coefficient dialect: invariant (s_uuids drawn at mount time and anonymous device numbers hashed as zero, as live namespaces do) or tsem (every value as the TSEM kernel hashes it)"

// parseDialect parses the --dialect flag.
func parseDialect(s string) (model.Dialect, error) {
	d, err := model.ParseDialect(s)
	if err != nil {
		return d, badInput(fmt.Errorf("--dialect: %w", err))
	}
	return d, nil
}

// mapLines parses every event description of the inputs and calls fn with the
// event, its coefficient in dialect d and the raw line. isPseudonym may be
// nil.
func mapLines(cmd *cobra.Command, files []string, verb string, d model.Dialect, isPseudonym func(string) bool,
	fn func(l lineio.Line, e *events.Event, c model.Coefficient) error) error {
	progress := lineio.NewProgress(os.Stderr, verb)
	defer progress.Done()
	err := lineio.Each(files, cmd.InOrStdin(), progress, func(l lineio.Line) error {
		e, err := events.Parse(l.Bytes)
		if err != nil {
			return badInput(l.At(err))
		}
		// The namespace's hash is the one of the description's task
		// ids: a sha384 namespace prints 96-digit ones.
		h, _ := e.Header.TaskID.Hash()
		c, err := model.Mapping{Hash: h, Dialect: d, IsPseudonym: isPseudonym}.Coefficient(e)
		if err != nil {
			return badInput(l.At(err))
		}
		return fn(l, e, c)
	})
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		err = badInput(err)
	}
	return err
}

func newModelPointsCmd() *cobra.Command {
	var dialect string
	cmd := &cobra.Command{
		Use:   "points [--dialect tsem|invariant] [FILE...]",
		Short: "Print the security state coefficient of every event description",
		Long: `Print one coefficient (lowercase hex) per input event description, in input
order. --dialect tsem computes each exactly as the TSEM kernel modeling agent
does; the default, invariant, is what Vigil's live namespaces compute: the same
but for values the kernel chooses afresh at each mount (see
docs/tsem-compatibility.md).`,
		Example: `  vigil model points --dialect tsem trajectory.json
  vigil run --trajectory - -- true | vigil model points`,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseDialect(dialect)
			if err != nil {
				return err
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			var hexbuf [2 * events.MaxDigestSize]byte
			return mapLines(cmd, args, "mapped", d, nil, func(_ lineio.Line, _ *events.Event, c model.Coefficient) error {
				b := c.Bytes()
				encodeHex(hexbuf[:], b)
				out.Write(hexbuf[:2*len(b)])
				return out.WriteByte('\n')
			})
		},
	}
	cmd.Flags().StringVar(&dialect, "dialect", "invariant", dialectUsage)
	return cmd
}

const hexDigits = "0123456789abcdef"

func encodeHex(dst, src []byte) {
	for i, b := range src {
		dst[2*i] = hexDigits[b>>4]
		dst[2*i+1] = hexDigits[b&0x0f]
	}
}

func newModelBuildCmd() *cobra.Command {
	var out, hash, dialect string
	var seal bool
	reg := &registerFlags{}
	cmd := &cobra.Command{
		Use:   "build [-o MODEL] [FILE...]",
		Short: "Learn a model from trajectories and write it as a TSEM model file",
		Long: `Learn a security model from event descriptions: every new coefficient becomes
a model point. The model is written in the TSEM/Quixote model file format to
-o (atomically) or to standard output, with its trajectory beside it.

With --log, every new point is also appended to a measured event log and
extended into a measurement register (see 'vigil verify').`,
		Example: `  vigil model build -o workload.model trajectory.json
  vigil model build --log events.log --register software -o m.model trajectory.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := model.ParseHash(hash)
			if err != nil {
				return badInput(fmt.Errorf("--hash: %w", err))
			}
			d, err := parseDialect(dialect)
			if err != nil {
				return err
			}
			m, closeReg, err := reg.newModel(cmd, "model-build", model.Options{Hash: h, Dialect: d})
			if err != nil {
				return err
			}
			var unlearned int
			err = mapLines(cmd, args, "learned", d, m.IsPseudonym, func(l lineio.Line, e *events.Event, c model.Coefficient) error {
				if e.HasUnhashableFile() {
					unlearned++ // no content to vouch for: never a model point
					return nil
				}
				if _, err := m.Add(c, l.Bytes); err != nil {
					return fmt.Errorf("%s:%d: add point: %w", l.Name, l.Number, err)
				}
				return nil
			})
			if cerr := closeReg(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if unlearned > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "vigil: %d events were not learned: a file of theirs has the unhashable digest (its content was never read)\n", unlearned)
			}
			if seal {
				m.Seal()
			}
			return writeModel(cmd.OutOrStdout(), out, m)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "model file to write (default: standard output)")
	cmd.Flags().BoolVar(&seal, "seal", true, "write a 'seal' line so the model loads sealed")
	cmd.Flags().StringVar(&hash, "hash", "sha256", "the model's hash algorithm, that of the descriptions' namespace: sha256, sha384 or sha512")
	cmd.Flags().StringVar(&dialect, "dialect", "invariant", dialectUsage+"; written in the model file")
	reg.addFlags(cmd)
	return cmd
}

// writeModel writes m to path atomically, or to w when path is empty or "-".
func writeModel(w io.Writer, path string, m *model.Model) error {
	if path == "" || path == "-" {
		_, err := m.WriteTo(w)
		return err
	}
	return m.SaveFile(path)
}

func newModelCheckCmd() *cobra.Command {
	var modelPath string
	cmd := &cobra.Command{
		Use:   "check --model MODEL [FILE...]",
		Short: "Replay event descriptions against a sealed model and print the forensics",
		Long: `Replay event descriptions against a model. Every event whose coefficient is
not a point of the model is a forensics event: its line is printed to standard
output unchanged. Coefficients are computed in the model's dialect (its
"#dialect" line; the kernel's without one) with its pseudonyms. Exit status 0
when there are none, 1 when there are some, 2 for bad input.`,
		Example: `  vigil model check --model workload.model today.json > forensics.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if modelPath == "" {
				return badInput(errors.New("--model is required"))
			}
			m, err := model.LoadFile(modelPath)
			if err != nil {
				return badInput(err)
			}
			m.Seal()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			var total, forensics int
			err = mapLines(cmd, args, "checked", m.Dialect(), m.IsPseudonym, func(l lineio.Line, e *events.Event, c model.Coefficient) error {
				total++
				if m.Contains(c) && !e.HasUnhashableFile() {
					return nil
				}
				forensics++
				out.Write(l.Bytes)
				return out.WriteByte('\n')
			})
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if forensics > 0 {
				return failed(fmt.Errorf("%d of %d events are outside the model %s", forensics, total, modelPath))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&modelPath, "model", "", "sealed model file to check against (required)")
	return cmd
}

func newModelShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show MODEL",
		Short: "Print the points, measurement and state of a model file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := model.LoadFile(args[0])
			if err != nil {
				return badInput(err)
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			sealed := "learning"
			if m.Sealed() {
				sealed = "sealed"
			}
			fmt.Fprintf(out, "model:       %s (%s)\n", args[0], sealed)
			fmt.Fprintf(out, "hash:        %s\n", m.Hash())
			fmt.Fprintf(out, "dialect:     %s\n", m.Dialect())
			fmt.Fprintf(out, "aggregate:   %s\n", m.Aggregate())
			fmt.Fprintf(out, "base:        %s\n", m.Base())
			fmt.Fprintf(out, "points:      %d\n", m.Len())
			fmt.Fprintf(out, "pseudonyms:  %d\n", len(m.Pseudonyms()))
			fmt.Fprintf(out, "measurement: %s\n", m.Measurement())
			fmt.Fprintf(out, "state:       %s\n", m.State())
			for i, p := range m.Points() {
				fmt.Fprintf(out, "point %d %s\n", i+1, p.Coefficient)
			}
			for _, p := range m.Pseudonyms() {
				fmt.Fprintf(out, "pseudonym %s\n", p)
			}
			return nil
		},
	}
}
