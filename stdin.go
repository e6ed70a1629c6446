package spindle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// A command's stdin is pulled, not pushed: the context that runs the task
// asks the caller for each piece (a request to RunTask.Stdin, answered with
// a wire.StdinChunk) only once the guest reads, with at most
// wire.StdinWindow requests unanswered. So the caller reads Task.Stdin no
// faster than the guest consumes it, nothing is read for a guest that never
// reads, and what any context holds of one task's stdin is bounded by
// StdinWindow chunks of StdinChunkBytes (256 KiB), however fast the
// producer.

// stdinSource is the caller's end of one Run's stdin: a bounded queue of
// read requests, fed by the stream's reader (put), and one pump goroutine
// that answers each in order with what one Read of src gives. It is owned
// by Run, which starts the pump and stops it with close.
type stdinSource struct {
	r      *routing.Router
	handle uint32
	src    io.Reader
	q      chan *wire.Message
	ctx    context.Context // the pump's: ends at close or when Run's ends
	cancel context.CancelFunc
	done   chan struct{} // closed when the pump has returned

	mu      sync.Mutex
	reading bool // the pump is inside src.Read; guarded by mu
	closed  bool // guarded by mu
}

func newStdinSource(ctx context.Context, r *routing.Router, from uint32, src io.Reader) (*stdinSource, error) {
	s := &stdinSource{r: r, src: src, q: make(chan *wire.Message, wire.StdinQueue), done: make(chan struct{})}
	h, err := r.AddHandler(s.put, routing.HandlerOptions{Respondent: from, HasRespondent: true})
	if err != nil {
		return nil, err
	}
	s.handle = h
	s.ctx, s.cancel = context.WithCancel(ctx)
	go s.pump()
	return s, nil
}

// put queues a read request, on the reader goroutine of the stream it came
// in on; one past the bound (only a context that ignores the window sends
// it) is refused with an error to its sender.
func (s *stdinSource) put(m *wire.Message, in *broker.Stream) {
	if m.IsDead() {
		return // the context went away: Run's call fails as well
	}
	// The body means nothing: a queued request costs its header only,
	// whatever a hostile context puts in it.
	m.Release()
	select {
	case s.q <- m:
	default:
		_ = s.r.ReplyError(s.r.StreamContext(in), m, fmt.Errorf("%w: stdin read queue full (%d reads)", routing.ErrRefused, wire.StdinQueue))
	}
}

// maxEmptyReads is how many reads in a row may return nothing and no error
// before the source counts as broken (io.ErrNoProgress), as bufio does.
const maxEmptyReads = 100

// pump answers the queued requests in order until the source ends (then
// every later request gets EOF) or the stream is closed.
func (s *stdinSource) pump() {
	defer close(s.done)
	buf := make([]byte, wire.StdinChunkBytes)
	var end *wire.StdinChunk // set once the source has ended
	for {
		var m *wire.Message
		select {
		case m = <-s.q:
		case <-s.ctx.Done():
			return
		}
		ch := end
		if ch == nil {
			n, err := s.read(buf)
			if s.ctx.Err() != nil {
				return
			}
			ch = &wire.StdinChunk{Data: buf[:n]}
			switch {
			case err == io.EOF:
				ch.EOF = true
			case err != nil:
				ch.EOF, ch.Error = true, err.Error()
			}
			if ch.EOF {
				end = &wire.StdinChunk{EOF: true, Error: ch.Error}
			}
		}
		body, err := msgpack.Marshal(ch)
		if err != nil {
			_ = s.r.ReplyError(s.ctx, m, err)
			continue
		}
		_ = s.r.Reply(s.ctx, m, wire.EncMsgpack, body)
	}
}

// read is one Read of the source that gives bytes or an error, with reading
// set around it for close.
func (s *stdinSource) read(buf []byte) (int, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, io.EOF
	}
	s.reading = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.reading = false
		s.mu.Unlock()
	}()
	for range maxEmptyReads {
		n, err := s.src.Read(buf)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// close unregisters the handle and stops the pump. It waits for the pump
// unless the pump is inside a Read of the source, which nothing can end
// from here: that Read's bytes are dropped and the pump returns after it.
// It is idempotent.
func (s *stdinSource) close() {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	reading := s.reading
	s.mu.Unlock()
	if first {
		_ = s.r.DelHandler(s.handle)
		s.cancel()
	}
	if !reading {
		<-s.done
	}
}

// stdinStream is a running task's stdin in the context that runs it: the
// io.Reader of host.Call.Stdin, which pulls chunks from the caller's
// stdinSource. Read is called by the guest's goroutine only;
// SetReadDeadline, by which the host ends a Read when the call ends, from
// any goroutine.
type stdinStream struct {
	r      *routing.Router
	src    routing.Sender
	ctx    context.Context // the task's, cancelled by a passed deadline too
	cancel context.CancelCauseFunc

	// Owned by Read.
	inflight []*routing.Pending // oldest first
	buf      []byte             // what is left of the last chunk
	last     bool               // a chunk with EOF has been asked for and seen
	err      error              // what every later Read returns

	mu    sync.Mutex
	timer *time.Timer // a deadline in the future; guarded by mu
}

func newStdinStream(ctx context.Context, r *routing.Router, src routing.Sender) *stdinStream {
	s := &stdinStream{r: r, src: src}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	return s
}

// errStdinClosed is what a Read after the task's end returns.
var errStdinClosed = errors.New("spindle: stdin closed: the task has ended")

// Read returns what the guest's stdin holds next, waiting for the caller
// to send some; io.EOF once the caller's stdin has ended.
func (s *stdinStream) Read(p []byte) (int, error) {
	if len(s.buf) > 0 {
		n := copy(p, s.buf)
		s.buf = s.buf[n:]
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	for s.err == nil {
		for !s.last && len(s.inflight) < wire.StdinWindow {
			pd, err := s.r.CallAsync(s.ctx, s.src.Context, s.src.Handle, wire.EncRaw, nil)
			if err != nil {
				s.fail(err)
				return 0, s.err
			}
			s.inflight = append(s.inflight, pd)
		}
		if len(s.inflight) == 0 {
			s.err = io.EOF
			break
		}
		pd := s.inflight[0]
		s.inflight = s.inflight[1:]
		reply, err := pd.Wait(s.ctx)
		if err != nil {
			s.fail(err)
			break
		}
		var ch wire.StdinChunk
		if err := wire.Unmarshal(reply.Body, &ch); err != nil {
			s.fail(fmt.Errorf("stdin chunk: %w", err))
			break
		}
		if ch.EOF {
			// The requests behind this one can only get EOF.
			s.last = true
			s.abandon()
			if ch.Error != "" {
				s.err = fmt.Errorf("spindle: the caller's stdin: %s", ch.Error)
			} else {
				s.err = io.EOF
			}
		}
		if len(ch.Data) > 0 {
			n := copy(p, ch.Data)
			s.buf = ch.Data[n:]
			return n, nil
		}
	}
	return 0, s.err
}

// fail ends the stream with err, or with why its ctx ended.
func (s *stdinStream) fail(err error) {
	s.abandon()
	if cause := context.Cause(s.ctx); cause != nil {
		err = cause
	}
	s.err = err
}

// abandon gives up on the requests in flight.
func (s *stdinStream) abandon() {
	for _, pd := range s.inflight {
		pd.Cancel()
	}
	s.inflight = nil
}

// SetReadDeadline ends a Read in progress and every later one, with
// os.ErrDeadlineExceeded, once t has passed; the zero time clears a
// deadline that has not passed. The host sets one in the past when the
// call ends (host.Call.Stdin): a passed deadline ends the stream for good.
func (s *stdinStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		s.cancel(os.ErrDeadlineExceeded)
		return nil
	}
	s.timer = time.AfterFunc(d, func() { s.cancel(os.ErrDeadlineExceeded) })
	return nil
}

// close ends the stream once the task has returned: the requests in
// flight are abandoned (their late answers get a dead "invalid handle").
// It must not race a Read.
func (s *stdinStream) close() {
	s.abandon()
	if s.err == nil {
		s.err = errStdinClosed
	}
	_ = s.SetReadDeadline(time.Time{})
	s.cancel(errStdinClosed)
}
