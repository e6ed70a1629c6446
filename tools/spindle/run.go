package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spindle-hq/spindle"
)

const usage = `usage: spindle <command> [flags]

commands:
  run     run a wasm task in one or more contexts (spindle run -h)
  ci      run a job file's steps as sandboxed, cached wasm actions (spindle ci -h)
  tree    start a demo tree of local contexts, ping each, print it, shut it down
  bench   measure spawn, round trips, throughput and memory (--json for one JSON object)
  version the versions of spindle, Go, wazero, the protocol and the CI platform (also --version)
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		printVersion(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "spindle: unknown command %q\n\n%s", args[0], usage)
	return 2
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
	fs.SetOutput(stderr)
	depth := fs.Int("depth", 2, "levels of contexts below the master (1-10)")
	width := fs.Int("width", 2, "children per context (1-10)")
	verbose := fs.Bool("v", false, "log debug records from the whole tree to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *depth < 1 || *depth > 10 || *width < 1 || *width > 10 {
		fmt.Fprintln(stderr, "spindle tree: -depth and -width must be between 1 and 10")
		return 2
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
	var walk func(parent *spindle.Context, level int, prefix string) error
	walk = func(parent *spindle.Context, level int, prefix string) error {
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
			branch, hops := "├─", "hops"
			if i == *width-1 {
				branch = "└─"
			}
			if level == 0 {
				hops = "hop"
			}
			fmt.Fprintf(stdout, "%s%s %s (id %d, pid %d, %d %s, ping %v)\n",
				strings.Repeat("   ", level), branch, pong.Name, pong.ID, pong.PID, level+1, hops, rtt.Round(time.Microsecond))
			if level+1 < *depth {
				if err := walk(c, level+1, name+"."); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(nil, 0, ""); err != nil {
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
