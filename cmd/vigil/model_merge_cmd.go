package main

import (
	"github.com/spf13/cobra"

	"github.com/vigil-tsem/vigil/model"
)

func newModelMergeCmd() *cobra.Command {
	var out string
	var seal bool
	cmd := &cobra.Command{
		Use:   "merge [-o OUT] [--seal] MODEL...",
		Short: "Merge model files into one: the union of their points",
		Long: `Merge TSEM model files (for example models learned from several instances of a
workload) into one: every point of the first file in its order, then the
points each later file adds, in its order, each with the first trajectory
line any file has for it.

The files must agree on what a coefficient or the measurement depends on:
hash, coefficient dialect, pseudonyms, aggregate and base. If they do not,
nothing is written and the error names the first file and the one that
differs (exit status 2). The merged model is learning unless --seal; it is
written atomically to -o, or to standard output.`,
		Example: `  vigil model merge -o app.model app-1.model app-2.model app-3.model
  vigil model merge --seal -o app.model app-*.model`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := make([]model.Named, len(args))
			for i, path := range args {
				m, err := model.LoadFile(path)
				if err != nil {
					return badInput(err)
				}
				in[i] = model.Named{Name: path, Model: m}
			}
			m, err := model.Merge(in...)
			if err != nil {
				return badInput(err)
			}
			if seal {
				m.Seal()
			}
			return writeModel(cmd.OutOrStdout(), out, m)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "model file to write (default: standard output)")
	cmd.Flags().BoolVar(&seal, "seal", false, "write a 'seal' line so the merged model loads sealed")
	return cmd
}
