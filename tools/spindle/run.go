package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spindle-hq/spindle"
)

const usage = `usage: spindle <command> [flags]

commands:
  run         run a wasm task in one or more contexts (spindle run -h)
  sh          run one program on targets, granted exactly that argv (spindle sh -h)
  facts       gather targets' facts: hostname, OS, kernel, CPUs, memory, disks, network (spindle facts -h)
  stat        stat and hash paths on targets, read-only (spindle stat -h)
  copy        copy a local file or tree to targets, writing only what differs (spindle copy -h)
  ci          run a job file's steps as sandboxed, cached wasm actions (spindle ci -h)
  exec        run a wasip1 Go test binary in the sandbox: go test -exec 'spindle exec' (spindle exec -h)
  toolexec    run go build's compile, asm and link as wasm in the sandbox: go build -toolexec (spindle toolexec -h)
  gocache     serve go's build cache, checked, trimmed, shareable through a context: GOCACHEPROG (spindle gocache -h)
  tree        start a demo tree of local contexts, ping each, print it, shut it down
  bench       measure spawn, round trips, throughput and memory (--json for one JSON object)
  version     the versions of spindle, Go, wazero, the protocol and the CI platform (also --version)
  help        spindle help COMMAND: the usage of a command (as spindle COMMAND -h)
  completion  spindle completion bash: a bash completion script
`

const treeUsage = `usage: spindle tree [--depth N] [--width N] [-v]

Starts a tree of local contexts below the master, N levels deep and N wide,
pings each through the tree, prints the tree with each ping's round trip,
and shuts the whole tree down.

flags:
  --depth N   levels of contexts below the master, 1 to 10 (default 2)
  --width N   children of each context, 1 to 10 (default 2)
  -v          the tree's debug log records on stderr
`

// run is the whole command, testable without exec.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "tree":
		return cmdTree(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "ci":
		return cmdCI(args[1:], stdout, stderr)
	case "exec":
		return cmdExec(args[1:], stdout, stderr)
	case "toolexec":
		return cmdToolexec(args[1:], stdout, stderr)
	case "gocache":
		return cmdGocache(args[1:], os.Stdin, stdout, stderr)
	case "sh":
		return cmdSh(args[1:], stdout, stderr)
	case "facts":
		return cmdFacts(args[1:], stdout, stderr)
	case "stat":
		return cmdStat(args[1:], stdout, stderr)
	case "copy":
		return cmdCopy(args[1:], stdout, stderr)
	case "completion":
		return cmdCompletion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		return cmdHelp(args[1:], stdout, stderr)
	case "version", "--version":
		if len(args) > 1 {
			if args[1] == "-h" || args[1] == "--help" {
				fmt.Fprint(stdout, versionUsage)
				return 0
			}
			return usageError(stderr, "version", argError(args[1:]))
		}
		printVersion(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "spindle: unknown command %q (see spindle help)\n", args[0])
	return exitUsage
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdTree(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tree", flag.ContinueOnError)
	depth := fs.Int("depth", 2, "levels of contexts below the master (1-10)")
	width := fs.Int("width", 2, "children per context (1-10)")
	verbose := fs.Bool("v", false, "log debug records from the whole tree to stderr")
	pos, err := parseFlags(fs, args)
	switch {
	case isHelp(err):
		fmt.Fprint(stdout, treeUsage)
		return 0
	case err == nil && (*depth < 1 || *depth > 10 || *width < 1 || *width > 10):
		err = errors.New("--depth and --width must be between 1 and 10")
	case err == nil:
		err = errNoArgs(pos)
	}
	if err != nil {
		return usageError(stderr, "tree", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	m, err := spindle.NewMaster(spindle.Config{Logger: newLogger(stderr, *verbose), LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "spindle tree: %v\n", err)
		return 1
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	fmt.Fprintf(stdout, "master (id 0, pid %d)\n", os.Getpid())
	// indent is what the lines of a level start with: "│  " below each
	// ancestor that has siblings after it, "   " below a last one.
	var walk func(parent *spindle.Context, level int, prefix, indent string) error
	walk = func(parent *spindle.Context, level int, prefix, indent string) error {
		for i := 0; i < *width; i++ {
			name := fmt.Sprintf("%sc%d", prefix, i)
			var c *spindle.Context
			var err error
			if parent == nil {
				c, err = m.StartLocal(ctx, spindle.LocalOptions{Name: name})
			} else {
				c, err = parent.StartLocal(ctx, spindle.LocalOptions{Name: name})
			}
			if err != nil {
				return err
			}
			t0 := time.Now()
			var pong spindle.PingResult
			if err := c.Call(ctx, "ping", nil, &pong); err != nil {
				return err
			}
			rtt := time.Since(t0)
			branch, hops, below := "├─", "hops", "│  "
			if i == *width-1 {
				branch, below = "└─", "   "
			}
			if level == 0 {
				hops = "hop"
			}
			fmt.Fprintf(stdout, "%s%s %s (id %d, pid %d, %d %s, ping %v)\n",
				indent, branch, pong.Name, pong.ID, pong.PID, level+1, hops, rtt.Round(time.Microsecond))
			if level+1 < *depth {
				if err := walk(c, level+1, name+".", indent+below); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(nil, 0, "", ""); err != nil {
		fmt.Fprintf(stderr, "spindle tree: %v\n", err)
		return 1
	}
	built := time.Since(start)
	t0 := time.Now()
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "spindle tree: shutdown: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "started and pinged in %v; whole tree shut down in %v\n", built.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	return 0
}
