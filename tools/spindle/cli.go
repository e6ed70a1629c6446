package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Every subcommand follows one pattern (docs/RATIONALE.md says why it is
// the standard library's flag package): its usage text is a constant in
// the format of runUsage, printed to stdout with exit 0 for -h, --help or
// "spindle help CMD"; a flag error is one line on stderr, then "see
// spindle CMD -h", with exit 2.

// usages is each subcommand's usage text, for spindle help.
var usages = map[string]string{
	"run":      runUsage,
	"ci":       ciUsage,
	"ci bench": ciBenchUsage,
	"tree":     treeUsage,
	"bench":    benchUsage,
	"version":  versionUsage,
	"help":     helpUsage,
}

const helpUsage = `usage: spindle help [COMMAND]

Prints the usage of COMMAND (run, ci, ci bench, tree, bench, version), or
the list of commands.
`

const versionUsage = `usage: spindle version (or spindle --version)

Prints spindle's version and commit, the Go toolchain, the wazero that runs
guests, the protocol version contexts speak and the CI action-key platform:
what a bug report needs.
`

// cmdHelp is spindle help [COMMAND...].
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	name := strings.Join(args, " ")
	if name == "-h" || name == "--help" {
		name = "help"
	}
	if u, ok := usages[name]; ok {
		fmt.Fprint(stdout, u)
		return 0
	}
	names := make([]string, 0, len(usages))
	for n := range usages {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(stderr, "spindle help: no command %q (commands: %s)\n", name, strings.Join(names, ", "))
	return exitUsage
}

// usageError prints a flag or argument error of spindle cmd in the one
// format, and returns the exit status for it.
func usageError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "spindle %s: %v\nsee spindle %s -h\n", cmd, err, cmd)
	return exitUsage
}

// parseFlags parses args with fs, allowing flags before, between and
// after the positional arguments, and returns those in order; everything
// after "--" is positional. fs prints nothing: errors come back, and
// flag.ErrHelp for -h and --help.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errNoArgs is the error for positional arguments a command takes none of.
func errNoArgs(pos []string) error {
	if len(pos) == 0 {
		return nil
	}
	return fmt.Errorf("unexpected argument %q", pos[0])
}

// isHelp reports whether err is the flag package's -h.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
