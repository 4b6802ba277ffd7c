package main

import "github.com/spf13/cobra"

// subcommands lists the top-level commands; each lives in its own file.
var subcommands = []func() *cobra.Command{
	newModelCmd,
	newEventsCmd,
	newVerifyCmd,
	newLogCmd,
	newNsCmd,
	newRunCmd,
	newAgentCmd,
}
