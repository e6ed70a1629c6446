package spindle

import (
	"errors"
	"fmt"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/wire"
)

// ExecGrant grants a task one program of the machine it runs on (Task.Exec;
// the guest calls exec, docs/abi.md). The grant is the caller's decision:
// it travels in the RUN_TASK, which only a parent may send, and the context
// that runs the task checks every exec against it where the program runs.
// Nothing is granted by default.
type ExecGrant struct {
	// Path is the program's absolute path on the target machine.
	Path string
	// Args are patterns for the arguments after argv[0], one each ("*"
	// any run of characters, "?" any one, "\" quotes the next; a last
	// "..." any further arguments). None: no arguments. host.QuoteArg
	// makes a pattern of a literal argument.
	Args []string
	// Env is the program's whole environment (none by default: not even
	// PATH).
	Env map[string]string
	// Dir is its working directory (default "/").
	Dir string
	// Timeout bounds each run (default 30s, never past the task's end).
	Timeout time.Duration
	// OutputBytes bounds each run's stdout and stderr together (default
	// 1 MiB); the rest is dropped and counted.
	OutputBytes int64
}

// execGrantsWire converts the grants for RUN_TASK; a Workspace action
// (a CI step) takes none.
func execGrantsWire(gs []ExecGrant, workspace bool) ([]wire.ExecGrant, error) {
	if len(gs) == 0 {
		return nil, nil
	}
	if workspace {
		return nil, errWorkspaceExec
	}
	out := make([]wire.ExecGrant, len(gs))
	for i, g := range gs {
		out[i] = wire.ExecGrant{Path: g.Path, Args: g.Args, Env: g.Env, Dir: g.Dir,
			TimeoutNs: int64(g.Timeout), OutputBytes: g.OutputBytes}
	}
	return out, nil
}

var errWorkspaceExec = errors.New("a Workspace action (a CI step) takes no exec grant: its cache key assumes no subprocess")

// hostExecGrants converts the grants of a RUN_TASK for the host, which
// checks them (host.Call's check) before the task starts.
func hostExecGrants(gs []wire.ExecGrant) []host.ExecGrant {
	out := make([]host.ExecGrant, len(gs))
	for i, g := range gs {
		out[i] = host.ExecGrant{Path: g.Path, Args: g.Args, Env: g.Env, Dir: g.Dir,
			Timeout: time.Duration(g.TimeoutNs), OutputBytes: g.OutputBytes}
	}
	return out
}

// execAllowed refuses an exec grant this context will not honour,
// whatever its parent asked: in a sandboxed context (it has given up
// executing anything) and for a Workspace action.
func (n *node) execAllowed(req *wire.RunTask) error {
	switch {
	case n.sandbox != nil:
		return fmt.Errorf("context %s is sandboxed: it runs no host programs (exec grant refused)", n.name)
	case req.Workspace != nil:
		return errWorkspaceExec
	}
	return nil
}
