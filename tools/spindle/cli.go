package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Every subcommand follows one pattern (docs/RATIONALE.md says why it is
// the standard library's flag package): its usage text is a constant in
// the format of runUsage, printed to stdout with exit 0 for -h, --help or
// "spindle help CMD"; a flag error is one line on stderr, then "see
// spindle CMD -h", with exit 2.

// usages is each subcommand's usage text, for spindle help.
var usages = map[string]string{
	"run":        runUsage,
	"sh":         shUsage,
	"facts":      factsUsage,
	"stat":       statUsage,
	"copy":       copyUsage,
	"ci":         ciUsage,
	"ci bench":   ciBenchUsage,
	"exec":       execUsage,
	"toolexec":   toolexecUsage,
	"gocache":    gocacheUsage,
	"tree":       treeUsage,
	"bench":      benchUsage,
	"version":    versionUsage,
	"help":       helpUsage,
	"completion": completionUsage,
}

// helpUsage is spindle help's usage; usageOf fills in the commands.
const helpUsage = `usage: spindle help [COMMAND]

Prints the usage of COMMAND, or the list of commands. COMMAND is one of:
%s.
`

// usageOf is the usage text of the command name, as spindle help prints it.
func usageOf(name string) (string, bool) {
	u, ok := usages[name]
	if name == "help" {
		names := make([]string, 0, len(usages))
		for n := range usages {
			names = append(names, n)
		}
		sort.Strings(names)
		// One line of names, wrapped as the other usage texts are.
		var list, line string
		for i, n := range names {
			if i < len(names)-1 {
				n += ","
			}
			if line != "" && len(line)+1+len(n) > 76 {
				list += line + "\n"
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += n
		}
		u = fmt.Sprintf(u, list+line)
	}
	return u, ok
}

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
	} else if err := argError(args); strings.HasPrefix(err.Error(), "unknown flag") {
		return usageError(stderr, "help", err)
	}
	if u, ok := usageOf(name); ok {
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
			return nil, flagError(err, args)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if endedByDashes(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagError rewrites an error of the flag package in the words spindle
// run uses for the same mistakes, naming the flag as it was typed in args:
// "unknown flag --bogus" for "flag provided but not defined: -bogus",
// "flag --target needs a value" for "flag needs an argument: -target".
// A value a flag's parser refused ("invalid value "5" for flag -timeout:
// ...") becomes that parser's own message when it names the flag, as
// spindle's parsers do (--timeout "5": ...), else `--flag "value": why`:
// the flag is named once either way.
func flagError(err error, args []string) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return errUnknownFlag(typedFlag(strings.TrimLeft(name, "-"), args))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("flag %s needs a value", typedFlag(strings.TrimLeft(name, "-"), args))
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			if name, why, ok := strings.Cut(strings.TrimPrefix(rest[len(q):], " for flag "), ": "); ok {
				if strings.HasPrefix(why, "-") {
					return errors.New(why)
				}
				return fmt.Errorf("%s %s: %s", typedFlag(strings.TrimLeft(name, "-"), args), q, why)
			}
		}
	}
	return err
}

// errUnknownFlag is the one wording of a flag no command takes, named as
// it was typed.
func errUnknownFlag(typed string) error { return fmt.Errorf("unknown flag %s", typed) }

// typedFlag is the flag name as args spelt it (-x or --x), or --name
// when args do not hold it.
func typedFlag(name string, args []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		n, _, _ := strings.Cut(a, "=")
		if strings.HasPrefix(n, "-") && strings.TrimLeft(n, "-") == name {
			return n
		}
	}
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// endedByDashes reports whether the parse of done (the arguments fs took)
// stopped at a "--" that ends the flags, not at one that was a flag's
// value (--input-raw --).
func endedByDashes(fs *flag.FlagSet, done []string) bool {
	n := len(done)
	if n == 0 || done[n-1] != "--" {
		return false
	}
	if n >= 2 && strings.HasPrefix(done[n-2], "-") && !strings.Contains(done[n-2], "=") {
		if f := fs.Lookup(strings.TrimLeft(done[n-2], "-")); f != nil {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			return ok && b.IsBoolFlag() // a bool takes no value: the "--" ended the flags
		}
	}
	return true
}

// errNoArgs is the error for positional arguments a command takes none of.
func errNoArgs(pos []string) error {
	if len(pos) == 0 {
		return nil
	}
	return fmt.Errorf("unexpected argument %q", pos[0])
}

// argError is the error for arguments given to a command that takes no
// flags but -h (and no arguments, or not these): an unknown flag for the
// first that looks like one, else the first argument.
func argError(args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if len(a) > 1 && strings.HasPrefix(a, "-") {
			n, _, _ := strings.Cut(a, "=")
			return errUnknownFlag(n)
		}
	}
	return errNoArgs(args)
}

// isHelp reports whether err is the flag package's -h.
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

const completionUsage = `usage: spindle completion bash

Prints a bash completion script for spindle's commands and flags, taken
from their usage texts. Load it with
  source <(spindle completion bash)
or write it to /etc/bash_completion.d/spindle.
`

// flagsOf lists the flags a usage text documents, in order: every
// "-x" and "--name" at the start of one of its indented lines (and after
// a comma there, as in "-t, --target").
func flagsOf(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		names := f[:1]
		if strings.HasSuffix(f[0], ",") && len(f) > 1 { // "-t, --target T"
			names = f[:2]
		}
		for _, w := range names {
			w, _, _ = strings.Cut(strings.TrimSuffix(w, ","), "=")
			if len(w) > 1 && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// cmdCompletion prints the bash completion script.
func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, completionUsage)
		return 0
	case len(args) > 0 && strings.HasPrefix(argError(args).Error(), "unknown flag"):
		return usageError(stderr, "completion", argError(args))
	case len(args) != 1 || args[0] != "bash":
		return usageError(stderr, "completion", fmt.Errorf("%q: bash is the one shell supported", strings.Join(args, " ")))
	}
	names := make([]string, 0, len(usages))
	for n := range usages {
		if !strings.Contains(n, " ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# bash completion for spindle (spindle completion bash)\n_spindle() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} words\n")
	b.WriteString("\tif [ \"$COMP_CWORD\" -eq 1 ]; then words=\"" + strings.Join(names, " ") + "\"\n")
	b.WriteString("\telse\n\t\tcase $cmd in\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t\t%s) words=%q ;;\n", n, strings.Join(flagsOf(usages[n]), " "))
	}
	b.WriteString("\t\tesac\n\t\tcase $cur in -*) ;; *) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n\tfi\n")
	b.WriteString("\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -F _spindle spindle\n")
	fmt.Fprint(stdout, b.String())
	return 0
}
