package spindle

import (
	"errors"
	"fmt"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/wire"
)

// ExecGrant grants a task one program of the machine it runs on (Task.Exec;
// the guest calls exec, docs/abi.md): host.ExecGrant, whose fields say
// what each bounds. The grant is the caller's decision: it travels in the
// RUN_TASK, which only a parent may send, and the context that runs the
// task checks every exec against it where the program runs. Nothing is
// granted by default; host.QuoteArg makes an Args pattern of a literal
// argument.
type ExecGrant = host.ExecGrant

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
