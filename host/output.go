package host

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Stream numbers of Call.Output.
const (
	streamStdout = 1
	streamStderr = 2
)

// How the guest's stdout and stderr are coalesced (see "Output" in the
// package doc).
const (
	// OutputChunkBytes is the most a buffered stream holds before it is
	// passed on, and the most of one piece passed on.
	OutputChunkBytes = 32 << 10
	// OutputFlushInterval is the longest a written byte waits in the
	// buffer while the guest runs.
	OutputFlushInterval = 20 * time.Millisecond
	// ExitFlushTimeout bounds the flush of what is left once the guest
	// has returned (it ends sooner if the ctx of Run does).
	ExitFlushTimeout = 5 * time.Second
)

// outputBuffer coalesces a call's stdout and stderr: the guest's writes
// (often a byte each) are buffered per stream and passed on by size, by
// time and when the call ends, within the call's bytes and messages limits.
// Its methods are safe from any goroutine: the guest's goroutine writes, a
// timer flushes.
type outputBuffer struct {
	st   *callState
	emit func(ctx context.Context, stream int, p []byte) error
	// discard[s] is set for a stream nobody reads: its bytes are dropped
	// uncounted, as before coalescing.
	discard [3]bool
	// ctx is the call's, for the flushes made while the guest runs; it
	// ends when the call does.
	ctx context.Context

	mu       sync.Mutex
	bufs     [3][]byte   // guarded by mu; by stream
	used     int64       // bytes taken; guarded by mu
	messages int64       // pieces passed on; guarded by mu
	limitHit string      // the limit passed, if one was; guarded by mu
	failed   error       // the first error of emit; guarded by mu
	timer    *time.Timer // guarded by mu
	armed    bool        // the timer will run tick; guarded by mu
	closed   bool        // finish has run: nothing is passed on; guarded by mu
	ticks    sync.WaitGroup
}

// newOutputBuffer returns the output buffer of call for st, or nil if the
// call reads neither stream.
func newOutputBuffer(ctx context.Context, st *callState, call *Call) *outputBuffer {
	if call.Output == nil && call.Stdout == nil && call.Stderr == nil {
		return nil
	}
	b := &outputBuffer{st: st, ctx: ctx, emit: call.Output}
	if b.emit == nil {
		b.discard[streamStdout] = call.Stdout == nil
		b.discard[streamStderr] = call.Stderr == nil
		w := [3]io.Writer{nil, call.Stdout, call.Stderr}
		b.emit = func(_ context.Context, stream int, p []byte) error {
			_, err := w[stream].Write(p)
			return err
		}
	}
	return b
}

// write takes p, written by the guest to stream.
func (b *outputBuffer) write(stream int, p []byte) error {
	if b.discard[stream] {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return errOutputFailed
	case b.limitHit != "":
		return errOutputLimit
	case b.failed != nil:
		return errOutputFailed
	}
	if b.used+int64(len(p)) > b.st.limits.OutputBytes {
		return b.overLocked(fmt.Sprintf("stdout and stderr passed %d bytes", b.st.limits.OutputBytes))
	}
	b.used += int64(len(p))
	b.bufs[stream] = append(b.bufs[stream], p...)
	if len(b.bufs[stream]) >= OutputChunkBytes {
		return b.flushLocked(b.ctx, stream, false)
	}
	if !b.armed {
		b.armed = true
		b.ticks.Add(1)
		if b.timer == nil {
			b.timer = time.AfterFunc(OutputFlushInterval, b.tick)
		} else {
			b.timer.Reset(OutputFlushInterval)
		}
	}
	return nil
}

// tick flushes what waited OutputFlushInterval, on the timer's goroutine.
func (b *outputBuffer) tick() {
	defer b.ticks.Done()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	if !b.closed {
		_ = b.flushAllLocked(b.ctx)
	}
}

// overLocked records that a limit was passed, drops what is buffered and
// ends the call.
func (b *outputBuffer) overLocked(what string) error {
	b.limitHit = what
	b.bufs = [3][]byte{}
	b.st.stop(errOutputLimit)
	return errOutputLimit
}

// flushLocked passes on stream's buffer in pieces of at most
// OutputChunkBytes: all of it, or (all false) only whole pieces.
func (b *outputBuffer) flushLocked(ctx context.Context, stream int, all bool) error {
	buf := b.bufs[stream]
	for len(buf) >= OutputChunkBytes || (all && len(buf) > 0) {
		if b.messages >= b.st.limits.OutputMessages {
			return b.overLocked(fmt.Sprintf("stdout and stderr passed %d messages", b.st.limits.OutputMessages))
		}
		b.messages++
		piece := buf[:min(len(buf), OutputChunkBytes)]
		if err := b.emit(ctx, stream, piece); err != nil {
			b.bufs = [3][]byte{}
			if b.ctx.Err() != nil {
				// The call is ending for a reason of its own (timeout,
				// the caller's cancel, the host's close), which is what
				// it reports; the rest of its output is dropped.
				b.closed = true
				return errOutputFailed
			}
			b.failed = err
			b.st.stop(errOutputFailed)
			return errOutputFailed
		}
		buf = buf[:copy(buf, buf[len(piece):])]
	}
	b.bufs[stream] = buf
	return nil
}

func (b *outputBuffer) flushAllLocked(ctx context.Context) error {
	if b.limitHit != "" || b.failed != nil {
		return nil
	}
	for _, s := range []int{streamStdout, streamStderr} {
		if err := b.flushLocked(ctx, s, true); err != nil {
			return err
		}
	}
	return nil
}

// finish passes on what is left, with ctx (that of Run) bounded by
// ExitFlushTimeout, and returns once nothing more will be passed on: no
// timer runs after it. It is idempotent.
func (b *outputBuffer) finish(ctx context.Context) {
	if b == nil {
		return
	}
	b.mu.Lock()
	if b.armed && b.timer.Stop() {
		b.armed = false
		b.ticks.Done()
	}
	if !b.closed {
		ctx, cancel := context.WithTimeout(ctx, ExitFlushTimeout)
		_ = b.flushAllLocked(ctx)
		cancel()
		b.closed = true
	}
	b.mu.Unlock()
	b.ticks.Wait()
}

// failure returns the *TaskError for a call whose output passed a limit or
// could not be passed on, or nil.
func (b *outputBuffer) failure() *TaskError {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.limitHit != "":
		return taskErr(KindOutputLimit, "%s", b.limitHit)
	case b.failed != nil:
		return taskErr(KindCancelled, "output not delivered: %v", b.failed)
	}
	return nil
}
