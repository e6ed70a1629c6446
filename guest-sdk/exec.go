package guest

import (
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ExecOptions tune one Exec. The zero value streams the program's output
// and takes the time limit of its grant.
type ExecOptions struct {
	// Timeout, if set, ends the run sooner than its grant's time limit
	// (never later).
	Timeout time.Duration
	// Capture returns the program's stdout and stderr in the result
	// instead of streaming them to the task's stdout and stderr.
	Capture bool
	// MaxCapture bounds what a captured run returns (default 1 MiB, the
	// default output bound of a grant).
	MaxCapture int
}

// ExecResult is how a program that ran ended.
type ExecResult struct {
	Path     string // the program run (a granted path)
	Pid      int
	ExitCode int    // -1 when killed by a signal
	Signal   string // e.g. "SIGKILL"
	TimedOut bool   // its time limit passed and its process group was killed
	Stdout   []byte // with ExecOptions.Capture
	Stderr   []byte
	Bytes    int64 // output bytes the program wrote
	Dropped  int64 // of them, past the grant's output bound (or MaxCapture)
	Duration time.Duration
}

// ErrNotInstalled is an Exec of a granted program name that exists at none
// of its granted paths on this machine.
var ErrNotInstalled = errors.New("guest: granted program not installed here")

// execResultWire is the host's result (docs/abi.md, exec).
type execResultWire struct {
	Path       string `msgpack:"path,omitempty"`
	Pid        int    `msgpack:"pid,omitempty"`
	Exit       int    `msgpack:"exit"`
	Signal     string `msgpack:"signal,omitempty"`
	TimedOut   bool   `msgpack:"timed_out,omitempty"`
	Stdout     []byte `msgpack:"stdout,omitempty"`
	Stderr     []byte `msgpack:"stderr,omitempty"`
	Bytes      int64  `msgpack:"bytes"`
	Dropped    int64  `msgpack:"dropped,omitempty"`
	DurationNs int64  `msgpack:"duration_ns"`
	Denied     bool   `msgpack:"denied,omitempty"`
	NotFound   bool   `msgpack:"not_found,omitempty"`
	Error      string `msgpack:"error,omitempty"`
}

type execRequestWire struct {
	Argv      []string `msgpack:"argv"`
	TimeoutMs int64    `msgpack:"timeout_ms,omitempty"`
	Capture   bool     `msgpack:"capture,omitempty"`
}

// execMinResult is the host's MinExecResult.
const execMinResult = 4096

// Exec runs a host program, which the task's caller must have granted
// (Task.Exec on the host side): argv[0] is its absolute path or, for
// short, its base name. It returns when the program has ended and its
// process group has been killed. A program that ran returns a result and
// a nil error whatever its exit status; an error means it did not run:
// ErrDenied (wrapped, with the host's message naming the grant) when the
// caller did not grant it, ErrNotInstalled, ErrLimit past the call's runs,
// ErrFailed when it could not be started.
//
// Exec works in commands and reactors alike; from a reactor's task, Ctx's
// Exec is the same.
func Exec(argv []string, opts ExecOptions) (*ExecResult, error) {
	return execWith(defaultABI(), argv, opts)
}

// Exec is the package function Exec, for the task this Ctx serves.
func (c Ctx) Exec(argv []string, opts ExecOptions) (*ExecResult, error) {
	if c.c == nil {
		return execWith(defaultABI(), argv, opts)
	}
	if c.c.done.Load() {
		return nil, ErrReturned
	}
	return execWith(c.c.h, argv, opts)
}

func execWith(h abi, argv []string, opts ExecOptions) (*ExecResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: exec of an empty argv", ErrInvalid)
	}
	req := execRequestWire{Argv: argv, Capture: opts.Capture}
	if opts.Timeout > 0 {
		req.TimeoutMs = max(1, opts.Timeout.Milliseconds())
	}
	b, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	n := execMinResult
	if opts.Capture {
		c := opts.MaxCapture
		if c <= 0 {
			c = 1 << 20
		}
		n += c
	}
	buf := make([]byte, n)
	rc := h.exec(b, buf)
	if rc < 0 {
		return nil, fmt.Errorf("exec %s: %w", argv[0], codeErr(rc))
	}
	var w execResultWire
	if err := msgpack.Unmarshal(buf[:rc], &w); err != nil {
		return nil, fmt.Errorf("exec %s: %w: result: %v", argv[0], ErrFailed, err)
	}
	switch {
	case w.Denied:
		return nil, fmt.Errorf("%w: exec %s", ErrDenied, w.Error)
	case w.NotFound:
		return nil, fmt.Errorf("%w: exec %s", ErrNotInstalled, w.Error)
	case w.Pid == 0 && w.Error != "":
		return nil, fmt.Errorf("exec %s: %w: %s", argv[0], ErrFailed, w.Error)
	}
	res := &ExecResult{Path: w.Path, Pid: w.Pid, ExitCode: w.Exit, Signal: w.Signal, TimedOut: w.TimedOut,
		Stdout: w.Stdout, Stderr: w.Stderr, Bytes: w.Bytes, Dropped: w.Dropped, Duration: time.Duration(w.DurationNs)}
	if w.Error != "" && !w.TimedOut {
		return res, fmt.Errorf("exec %s: %w: %s", argv[0], ErrFailed, w.Error)
	}
	return res, nil
}
