package host

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Compile and Run once Close has begun.
	ErrClosed = errors.New("host: closed")
	// ErrInvalidCall is wrapped by the errors of Run for a call that cannot
	// start as described: a pooled call with grants or on a command module,
	// a mount that cannot be opened, a nil module.
	ErrInvalidCall = errors.New("host: invalid call")
)

// Kind classifies a task failure. The values are the kinds of docs/abi.md,
// "Errors the caller sees", spelled as there.
type Kind string

// The kinds of task failure.
const (
	KindGuest         Kind = "guest"          // the task returned non-zero
	KindTrap          Kind = "trap"           // a wasm trap
	KindStackOverflow Kind = "stack_overflow" // the call stack overflowed
	KindMemory        Kind = "memory"         // a memory.grow beyond the limit was refused
	KindTimeout       Kind = "timeout"        // the wall-time limit passed
	KindOutputLimit   Kind = "output_limit"   // output, or a command's stdout and stderr, passed the limit
	KindExit          Kind = "exit"           // a reactor called proc_exit with a non-zero code
	KindNotFound      Kind = "not_found"      // no such task export
	KindInvalidModule Kind = "invalid_module" // the module failed to compile or instantiate
	KindCancelled     Kind = "cancelled"      // the caller cancelled, or the Host closed
)

// TaskError is the error of a task that failed: every failure of a started
// task is reported as one. A TaskError is a plain value, safe to share once
// returned.
type TaskError struct {
	Kind    Kind
	Message string
	// ExitCode is the code a reactor passed to proc_exit (kind exit), else 0.
	ExitCode int
}

// Error returns "task <kind>: <message>".
func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s: %s", e.Kind, e.Message)
}

// KindOf returns the Kind of the *TaskError in err's chain, or "" if there is
// none.
func KindOf(err error) Kind {
	var te *TaskError
	if errors.As(err, &te) {
		return te.Kind
	}
	return ""
}

func taskErr(k Kind, format string, args ...any) *TaskError {
	return &TaskError{Kind: k, Message: fmt.Sprintf(format, args...)}
}
