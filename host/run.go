package host

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero/sys"
)

// Run runs call on m and returns its result. Every failure of the task is a
// *TaskError of a kind of docs/abi.md; the instance it ran on is closed and
// never reused, and the Host keeps serving. Other errors mean the call did
// not start: ErrClosed, or an error wrapping ErrInvalidCall.
//
// A reactor call runs the task's export, or spindle_call, on a fresh
// instance (initialized with _initialize first), or with call.Pooled on a
// warm one. A command runs _start on a fresh instance; its exit code is
// Result.ExitCode, and a non-zero one is not an error.
//
// The call ends with kind timeout when call.Limits.Timeout passes, and with
// kind cancelled when ctx ends or the Host closes.
func (h *Host) Run(ctx context.Context, m *Module, call Call) (*Result, error) {
	if m == nil || m.host != h {
		return nil, fmt.Errorf("%w: module of another Host", ErrInvalidCall)
	}
	if err := call.check(m); err != nil {
		return nil, err
	}
	limits := call.Limits.or(h.limits)
	runCtx := ctx // the caller's: it bounds the last output flush
	ctx, cancel := context.WithTimeoutCause(ctx, limits.Timeout, errTimeout)
	defer cancel()
	st := &callState{
		host:     h,
		module:   m,
		limits:   limits,
		task:     call.Task,
		input:    call.Input,
		cancel:   cancel,
		logFn:    call.Log,
		send:     call.Send,
		channels: call.Grants.Channels,

		execGrants: call.Grants.Exec,
	}
	if err := h.enter(st); err != nil {
		return nil, err
	}
	defer h.leave(st)
	var export string
	if m.kind == Reactor {
		if export = m.export(call.Task); export == "" {
			return nil, taskErr(KindNotFound, "module %s has no task %q", m.hash, call.Task)
		}
	}
	if m.minPages > limits.MemoryPages {
		return nil, taskErr(KindMemory, "module needs %d pages of memory, the limit is %d", m.minPages, limits.MemoryPages)
	}
	if uint64(m.minPages)*pageSize+m.tableBytes > limits.memoryBytes() {
		return nil, taskErr(KindMemory, "module needs %d pages of memory and %d bytes of tables, the limit is %d pages",
			m.minPages, m.tableBytes, limits.MemoryPages)
	}

	ctx = context.WithValue(ctx, stateKey{}, st)
	st.out = newOutputBuffer(ctx, st, &call)
	defer st.out.finish(runCtx) // on every path; a no-op after the first
	var inst *instance
	if call.Pooled {
		inst = h.warm(m, limits)
	}
	if inst == nil {
		var err error
		if inst, err = h.instantiate(ctx, m, st, &call, call.Pooled); err != nil {
			if errors.Is(err, ErrInvalidCall) {
				return nil, err
			}
			st.out.finish(runCtx)
			_, te := st.classify(ctx, inst, err, false)
			if inst != nil {
				inst.close(ctx)
			}
			if te == nil { // proc_exit(0) in _initialize
				te = taskErr(KindExit, "%s exited", exportInitialize)
			}
			return nil, te
		}
	} else {
		inst.bind(st)
		inst.mem.limit = limits.memoryBytes() - m.tableBytes
		inst.mem.refused = false
	}
	inst.setStack(limits)

	if m.kind == Command {
		export = exportStart
	}
	err := inst.call(ctx, export)
	inst.bind(nil)
	st.out.finish(runCtx)
	res, te := st.classify(ctx, inst, err, m.kind == Command)
	if te != nil || !call.Pooled || inst.mod.IsClosed() || len(inst.mem.buf) > maxPooledBuffer {
		inst.close(ctx)
	} else {
		m.pool.put(ctx, inst, h.poolSize)
	}
	if te != nil {
		return nil, te
	}
	return res, nil
}

// warm takes an idle instance of m that fits limits, or returns nil.
func (h *Host) warm(m *Module, limits Limits) *instance {
	for {
		inst := m.pool.get()
		if inst == nil {
			return nil
		}
		if uint64(len(inst.mem.buf)) <= limits.memoryBytes()-m.tableBytes {
			h.poolHits.Add(1)
			return inst
		}
		// It grew past this call's limit under an earlier one.
		inst.close(context.Background())
	}
}

// classify turns how a call ended into its Result or *TaskError. inst is
// nil if the instance could not be made; err is what wazero returned.
func (st *callState) classify(ctx context.Context, inst *instance, err error, command bool) (*Result, *TaskError) {
	exit := exitError(err)
	exited := exit != nil
	status := int32(0)
	if inst != nil && err == nil {
		status = int32(inst.stack[0])
	}
	if command && exited {
		status = int32(exit.ExitCode())
	}
	failed := (err != nil && !(command && exited)) || status != 0
	refused := false
	if inst != nil {
		refused = inst.mem.refused
	}
	switch {
	case st.outputOverflow:
		return nil, taskErr(KindOutputLimit, "output passed %d bytes", st.limits.OutputBytes)
	case st.sendOverflow:
		return nil, taskErr(KindOutputLimit, "channel sends passed %d bytes or %d messages", st.limits.SendBytes, st.limits.SendMessages)
	case st.out.failure() != nil:
		return nil, st.out.failure()
	case (err != nil || failed) && ctx.Err() != nil:
		// A guest whose host call failed because the call ended may
		// return a status before wazero notices: the end is the cause.
		switch cause := st.cause(ctx); cause {
		case errTimeout:
			return nil, taskErr(KindTimeout, "no result after %v", st.limits.Timeout)
		case ErrClosed:
			return nil, taskErr(KindCancelled, "the host closed")
		default:
			return nil, taskErr(KindCancelled, "%v", cause)
		}
	case err != nil && instantiateFailure(err) != nil:
		return nil, taskErr(KindInvalidModule, "instantiate module %s: %v", st.module.hash, instantiateFailure(err).err)
	case failed && refused:
		return nil, st.withStderr(taskErr(KindMemory, "memory limit of %d pages reached", st.limits.MemoryPages))
	case command && exited:
		return &Result{Output: st.output, ExitCode: int(status)}, nil
	case exited && exit.ExitCode() != 0:
		te := st.withStderr(taskErr(KindExit, "proc_exit(%d)", exit.ExitCode()))
		te.ExitCode = int(exit.ExitCode())
		return nil, te
	case exited:
		// proc_exit(0) from a reactor: a success, but the instance is
		// closed.
		return &Result{Output: st.output}, nil
	case err != nil && inst != nil && inst.stackSpent():
		return nil, taskErr(KindStackOverflow, "the call stack passed %d bytes (Limits.StackBytes)", st.limits.stackBudget())
	case err != nil && strings.Contains(err.Error(), "stack overflow"):
		return nil, taskErr(KindStackOverflow, "%v", err)
	case err != nil:
		return nil, st.withStderr(taskErr(KindTrap, "%s", trapMessage(err, st.stderr.goCrash())))
	case status != 0:
		kind := KindGuest
		if status == statusNotFound && st.module.export(st.task) == exportDispatch {
			kind = KindNotFound
		}
		if st.errSet {
			return nil, taskErr(kind, "%s", st.errMsg)
		}
		return nil, taskErr(kind, "task returned status %d", status)
	}
	return &Result{Output: st.output, ExitCode: int(status)}, nil
}

// exitError returns err's *sys.ExitError, or nil. A function of its own
// so that a call without an error allocates nothing for errors.As's
// target.
func exitError(err error) *sys.ExitError {
	if err == nil {
		return nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return exit
	}
	return nil
}

// instantiateFailure returns err's *instantiateError, or nil.
func instantiateFailure(err error) *instantiateError {
	var ie *instantiateError
	if errors.As(err, &ie) {
		return ie
	}
	return nil
}

// withStderr appends what the guest's stderr says of its end to te's
// message (stderrLog): where a Go guest says why it died.
func (st *callState) withStderr(te *TaskError) *TaskError {
	if s := st.stderr.summary(); s != "" {
		te.Message += "; stderr: " + s
	}
	return te
}

// statusNotFound is the status spindle_call returns when the module has no
// task of the name asked for (docs/abi.md).
const statusNotFound = 2
