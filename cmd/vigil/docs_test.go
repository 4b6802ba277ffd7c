package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestDocsCommands checks that every vigil command line README.md and
// docs/*.md show, in code blocks and in code spans, names commands and flags
// that exist.
func TestDocsCommands(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{filepath.Join("..", "..", "README.md")}, pages...)
	root := newRootCmd()
	checked := 0
	for _, page := range pages {
		lines, err := commandLines(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			checked++
			if err := checkCommand(root, l.text); err != nil {
				t.Errorf("%s:%d: %s: %v", page, l.line, l.text, err)
			}
		}
	}
	t.Logf("checked %d command lines in %d pages", checked, len(pages))
	if checked < 50 {
		t.Errorf("checked %d command lines in %d pages; the docs show more: is the extraction broken?", checked, len(pages))
	}
}

type commandLine struct {
	line int
	text string // from "vigil" on
}

var (
	codeSpanRe = regexp.MustCompile("`([^`]+)`")
	// shellSplit separates the commands of a shell line.
	shellSplit = regexp.MustCompile(`;|&&|\|\||\||\$\(|\(`)
)

// commandLines returns the vigil commands of a page: in fenced code blocks,
// each command of a line (after an optional "$ " prompt and "sudo"); in prose,
// each code span that starts with "vigil ".
func commandLines(page string) ([]commandLine, error) {
	f, err := os.Open(page)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []commandLine
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	fenced := false
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		var cmds []string
		if fenced {
			cmds = shellSplit.Split(strings.TrimPrefix(strings.TrimSpace(line), "$ "), -1)
		} else {
			for _, m := range codeSpanRe.FindAllStringSubmatch(line, -1) {
				cmds = append(cmds, m[1])
			}
		}
		for _, c := range cmds {
			c = strings.TrimPrefix(strings.TrimSpace(c), "sudo ")
			if strings.HasPrefix(c, "vigil ") {
				out = append(out, commandLine{line: n, text: c})
			}
		}
	}
	return out, s.Err()
}

// checkCommand checks the subcommands and flags of one command line: its
// words up to a comment, a redirection, "&" or "--" (CMD of vigil run).
// "a|b" alternatives must all exist; other words are arguments.
func checkCommand(root *cobra.Command, text string) error {
	var args []string
	for _, w := range strings.Fields(text)[1:] {
		if w == "--" || w == "&" || strings.HasPrefix(w, "#") || strings.ContainsAny(w[:1], "<>") || strings.HasPrefix(w, "2>") {
			break
		}
		if w = strings.Trim(w, "[]().,"); w != "" {
			args = append(args, w)
		}
	}
	cmd := root
	for len(args) > 0 {
		w := args[0]
		if !cmd.HasSubCommands() {
			break
		}
		if strings.HasPrefix(w, "-") {
			// A flag before the subcommand: the parent's, and its value.
			if err := checkFlags(cmd, args[:1]); err != nil {
				return err
			}
			name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			args = args[1:]
			if f := lookupFlag(cmd, name); !hasValue && f != nil && f.NoOptDefVal == "" && len(args) > 0 {
				args = args[1:]
			}
			continue
		}
		alts := strings.Split(w, "|")
		next, rest := (*cobra.Command)(nil), args[1:]
		for _, a := range alts {
			sub := subcommand(cmd, a)
			if sub == nil {
				return fmt.Errorf("%q has no subcommand %q", cmd.CommandPath(), a)
			}
			if next == nil {
				next = sub
			} else if err := checkFlags(sub, rest); err != nil {
				return err
			}
		}
		cmd, args = next, rest
	}
	return checkFlags(cmd, args)
}

func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds a flag of cmd by name or shorthand: its own, its
// persistent ones or those it inherits.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
		if f := fs.Lookup(name); f != nil {
			return f
		}
		if len(name) == 1 {
			if f := fs.ShorthandLookup(name); f != nil {
				return f
			}
		}
	}
	return nil
}

func checkFlags(cmd *cobra.Command, args []string) error {
	for _, w := range args {
		if !strings.HasPrefix(w, "-") || w == "-" {
			continue
		}
		for _, f := range strings.Split(w, "|") {
			name, _, _ := strings.Cut(f, "=")
			var found bool
			switch {
			case name == "--help" || name == "-h":
				found = true
			case strings.HasPrefix(name, "--"):
				found = lookupFlag(cmd, name[2:]) != nil
			case len(name) == 2:
				found = lookupFlag(cmd, name[1:]) != nil
			}
			if !found {
				return fmt.Errorf("%q has no flag %s", cmd.CommandPath(), name)
			}
		}
	}
	return nil
}

func TestCheckCommand(t *testing.T) {
	root := newRootCmd()
	for _, tc := range []struct {
		text string
		bad  string // part of the error; empty: no error
	}{
		{"vigil run -o m.model --trajectory t.json -- sh -c 'cat /etc/hostname'", ""},
		{"vigil run [--name NAME] [--model MODEL [--enforce]] -- CMD [ARGS...]", ""},
		{"vigil ns --socket /tmp/x/vigil.sock list", ""},
		{"vigil ns trajectory|forensics|model", ""},
		{"vigil ns forensics NS  [--coefficients|--counts]", ""},
		{"vigil verify --log events.log --register \"", ""},
		{"vigil agent --print-config > config.yaml", ""},
		{"vigil model build --log-level debug -o x.model", ""},
		{"vigil run --no-such-flag -- true", "no flag --no-such-flag"},
		{"vigil run -x", "no flag -x"},
		{"vigil ns frobnicate NS", "no subcommand \"frobnicate\""},
		{"vigil model show|frob", "no subcommand \"frob\""},
		{"vigil ns trajectory|forensics --counts|--json", "no flag --json"},
	} {
		err := checkCommand(root, tc.text)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("checkCommand(%q) = %v; want nil", tc.text, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("checkCommand(%q) = %v; want an error with %q", tc.text, err, tc.bad)
		}
	}
}
