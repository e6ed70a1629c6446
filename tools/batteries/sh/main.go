//go:build wasip1

// Command sh is the battery behind spindle sh: a WASI command that runs
// one host program through the exec capability (docs/abi.md, exec) and
// exits with its status. It can run only what its caller granted.
//
//	sh [--capture] [--timeout DURATION] -- PROGRAM [ARGS...]
//
// The program's stdout and stderr stream out as the module's own; with
// --capture they are collected and printed at the end, as one JSON object
// on stdout ({"path", "pid", "exit_code", "signal", "timed_out",
// "stdout", "stderr", "bytes", "dropped", "duration_ns"}).
//
// Exit status: the program's; 124 when its time limit passed (its process
// group was killed); 125 when it was killed by a signal or could not be
// started; 126 when the caller did not grant it; 127 when no granted
// program of that name is installed; 2 for bad usage.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	guest "github.com/spindle-hq/spindle/guest-sdk"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var opts guest.ExecOptions
	for len(args) > 0 && args[0] != "--" {
		switch a := args[0]; {
		case a == "--capture":
			opts.Capture = true
		case a == "--timeout" && len(args) > 1:
			d, err := time.ParseDuration(args[1])
			if err != nil || d <= 0 {
				fmt.Fprintf(os.Stderr, "sh: --timeout %q: want a positive duration\n", args[1])
				return 2
			}
			opts.Timeout = d
			args = args[1:]
		default:
			fmt.Fprintf(os.Stderr, "sh: unknown flag %q (usage: sh [--capture] [--timeout D] -- PROGRAM [ARGS...])\n", a)
			return 2
		}
		args = args[1:]
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "sh: no program given (usage: sh [--capture] [--timeout D] -- PROGRAM [ARGS...])")
		return 2
	}
	argv := args[1:]
	res, err := guest.Exec(argv, opts)
	switch {
	case errors.Is(err, guest.ErrDenied):
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 126
	case errors.Is(err, guest.ErrNotInstalled):
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 127
	case err != nil:
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 125
	}
	if opts.Capture {
		b, _ := json.Marshal(map[string]any{
			"path": res.Path, "pid": res.Pid, "exit_code": res.ExitCode, "signal": res.Signal,
			"timed_out": res.TimedOut, "stdout": string(res.Stdout), "stderr": string(res.Stderr),
			"bytes": res.Bytes, "dropped": res.Dropped, "duration_ns": int64(res.Duration),
		})
		fmt.Printf("%s\n", b)
	}
	if res.Dropped > 0 {
		fmt.Fprintf(os.Stderr, "sh: %d of %d bytes of output dropped past the grant's bound\n", res.Dropped, res.Bytes)
	}
	switch {
	case res.TimedOut:
		fmt.Fprintf(os.Stderr, "sh: %s timed out after %v: its process group was killed\n", res.Path, res.Duration.Round(time.Millisecond))
		return 124
	case res.Signal != "":
		fmt.Fprintf(os.Stderr, "sh: %s was killed by %s\n", res.Path, res.Signal)
		return 125
	}
	return res.ExitCode
}
