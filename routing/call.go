package routing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/latch"
	"github.com/spindle-hq/spindle/wire"
)

// Pending is a call whose reply has not been collected yet. Wait may be
// called from one goroutine at a time.
//
// A Pending is its own reply handler (h, registered under handle with
// h.p = p), and a channel is made only for a Wait that comes before the
// reply, so a pipelined call allocates the Pending alone on its way out.
type Pending struct {
	h      handler
	r      *Router
	dst    uint32
	handle uint32

	req wire.Message // the request to another context, sent from here (one allocation fewer)

	ready atomic.Bool   // msg is set (and stays so)
	mu    sync.Mutex    // orders deliver against a Wait making wake
	msg   *wire.Message // the reply (or dead message); set once, before ready
	wake  chan struct{} // guarded by mu: made by a waiting Wait, closed by deliver
}

// CallAsync sends a request to handle in context dst and returns at once.
// The reply handle is bound to dst: if dst disconnects before answering,
// Wait fails with ErrDisconnected. Many calls may be in flight at once
// (pipelining); each must be collected with Wait, or abandoned with Cancel.
func (r *Router) CallAsync(ctx context.Context, dst, handle uint32, enc wire.Encoding, body []byte) (*Pending, error) {
	p := &Pending{r: r, dst: dst}
	p.h = handler{p: p, opts: HandlerOptions{Respondent: dst, HasRespondent: true, Once: true}}
	var err error
	p.handle, err = r.addHandler(&p.h)
	if err != nil {
		return nil, err
	}
	if dst == r.id {
		// A call to this context hands the message itself to the handler,
		// which owns it: it must be a message of its own.
		err = r.Send(ctx, &wire.Message{Enc: enc, Dst: dst, Handle: handle, ReplyTo: p.handle, Body: body})
	} else {
		// A stream copies a small body and takes a large one by
		// reference; neither keeps the message, so p can hold it.
		p.req = wire.Message{Enc: enc, Dst: dst, Handle: handle, ReplyTo: p.handle, Body: body}
		err = r.Send(ctx, &p.req)
		p.req.Body = nil // not kept alive by p
	}
	if err != nil {
		_ = r.DelHandler(p.handle)
		return nil, err
	}
	return p, nil
}

// Handle returns the reply handle the call waits on (for diagnostics and
// tests: it is drawn at random, and only the called context learns it).
func (p *Pending) Handle() uint32 { return p.handle }

// deliver hands the reply to Wait. The router calls it at most once (the
// handler is Once, and every path that fires it first removes it under
// hmu); a second message would be ignored.
func (p *Pending) deliver(m *wire.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready.Load() {
		return
	}
	p.msg = m
	p.ready.Store(true)
	if p.wake != nil {
		close(p.wake)
	}
}

// Wait returns the reply. A dead message or an error reply becomes a
// *RemoteError; ctx ending abandons the call. Once a reply has come, every
// Wait returns it (the same message).
func (p *Pending) Wait(ctx context.Context) (*wire.Message, error) {
	if p.ready.Load() {
		return p.reply()
	}
	p.mu.Lock()
	if p.ready.Load() {
		p.mu.Unlock()
		return p.reply()
	}
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	wake := p.wake
	p.mu.Unlock()
	select {
	case <-wake:
		return p.reply()
	case <-ctx.Done():
		p.Cancel()
		if p.ready.Load() { // the reply won the race: do not lose it
			return p.reply()
		}
		return nil, fmt.Errorf("routing: call to context %d: %w", p.dst, ctx.Err())
	}
}

func (p *Pending) reply() (*wire.Message, error) {
	if err := ErrorOf(p.msg); err != nil {
		return nil, err
	}
	return p.msg, nil
}

// Cancel abandons the call; a late reply gets a dead "invalid handle".
func (p *Pending) Cancel() { _ = p.r.DelHandler(p.handle) }

// Call sends a request and waits for its reply (see CallAsync).
func (r *Router) Call(ctx context.Context, dst, handle uint32, enc wire.Encoding, body []byte) (*wire.Message, error) {
	p, err := r.CallAsync(ctx, dst, handle, enc, body)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Sender is the address of a handle in a context: a capability to send to
// it. It is a plain value that can itself be sent in a message.
type Sender struct {
	Context uint32 `msgpack:"ctx"`
	Handle  uint32 `msgpack:"handle"`
}

// SendTo sends body to s.
func (r *Router) SendTo(ctx context.Context, s Sender, enc wire.Encoding, body []byte) error {
	return r.Send(ctx, &wire.Message{Enc: enc, Dst: s.Context, Handle: s.Handle, Body: body})
}

// CloseSender tells the receiver behind s that nothing more will come: it
// gets a dead message with ErrSenderClosed.
func (r *Router) CloseSender(ctx context.Context, s Sender) error {
	return r.Send(ctx, &wire.Message{Enc: wire.EncError, Dst: s.Context, Handle: s.Handle, ReplyTo: wire.IsDead,
		Body: errorBody(wire.CodeClosed, "sender was explicitly closed")})
}

// Receiver is a handle whose messages queue in a latch until taken. It is
// safe for concurrent use; it is a latch.Source, so it can join a
// latch.Select.
type Receiver struct {
	r       *Router
	handle  uint32
	l       latch.Latch[*wire.Message]
	lim     ReceiverLimits
	queued  atomic.Int64 // body bytes in l, when bounded
	dropped atomic.Int64
	// deadOver counts dead messages queued past the limits (at most
	// deadSlack); one is forgiven as each dead message is taken.
	deadOver atomic.Int64
}

// ReceiverLimits bounds what a Receiver queues; a zero field is no bound.
// The bound is checked as each message arrives, so concurrent arrivals on
// several streams may pass it by one message each.
type ReceiverLimits struct {
	// Messages caps the messages queued. Dead messages (a sender's close,
	// a respondent's disconnection) may pass the limits by deadSlack
	// messages, so that a reader behind on a full queue still learns of
	// them.
	Messages int
	// Bytes caps the body bytes queued.
	Bytes int64
}

// deadSlack is how far dead messages may pass ReceiverLimits.Messages.
const deadSlack = 16

// DefaultReceiverLimits bound the queue of a receiver made by NewReceiver:
// whoever holds its Sender (a child, a guest's channel) can make it hold no
// more than this while its reader lags.
var DefaultReceiverLimits = ReceiverLimits{Messages: 1 << 20, Bytes: 256 << 20}

// NewReceiver registers a receiver on a handle (a fresh one unless
// opts.Handle is set), bounded by DefaultReceiverLimits.
func (r *Router) NewReceiver(opts HandlerOptions) (*Receiver, error) {
	return r.NewBoundedReceiver(opts, DefaultReceiverLimits)
}

// NewBoundedReceiver is NewReceiver with a bound on the queue: a message
// past it is dropped (Dropped counts them, and the router logs the first
// drop and every 1024th) and, if it asks for a reply, answered with an error
// matching ErrRefused. A zero ReceiverLimits is no bound at all: only for a
// receiver that no child or guest can send to.
func (r *Router) NewBoundedReceiver(opts HandlerOptions, lim ReceiverLimits) (*Receiver, error) {
	rc := &Receiver{r: r, lim: lim}
	h, err := r.AddHandler(rc.put, opts)
	if err != nil {
		return nil, err
	}
	rc.handle = h
	return rc, nil
}

// put queues m, within the limits; on the goroutine that routed m.
func (rc *Receiver) put(m *wire.Message, in *broker.Stream) {
	if rc.lim == (ReceiverLimits{}) {
		_ = rc.l.Put(m)
		return
	}
	n := int64(len(m.Body))
	over := (rc.lim.Bytes > 0 && rc.queued.Add(n) > rc.lim.Bytes) || (rc.lim.Messages > 0 && rc.l.Len() >= rc.lim.Messages)
	if over && m.IsDead() {
		if rc.deadOver.Add(1) <= deadSlack {
			over = false
		} else {
			rc.deadOver.Add(-1)
		}
	}
	if over {
		if rc.lim.Bytes > 0 {
			rc.queued.Add(-n)
		}
		if d := rc.dropped.Add(1); d%1024 == 1 {
			rc.r.log.Warn("receiver queue full, message dropped", "handle", m.Handle, "src", m.Src,
				"dropped", d, "max_messages", rc.lim.Messages, "max_bytes", rc.lim.Bytes)
		}
		// A request is answered, as every request is: at most one answer
		// for each, on the sender's own stream and no longer than it lives
		// (a sender that stops reading its answers stalls only itself).
		if m.ReplyTo != 0 && !m.IsDead() {
			_ = rc.r.ReplyError(rc.r.StreamContext(in), m, fmt.Errorf("%w: receiver queue full (%d messages, %d bytes)", ErrRefused, rc.lim.Messages, rc.lim.Bytes))
		}
		return
	}
	if rc.lim.Bytes <= 0 {
		_ = rc.l.Put(m)
		return
	}
	if rc.l.Put(m) != nil {
		rc.queued.Add(-n)
	}
}

// taken accounts for m leaving the queue.
func (rc *Receiver) taken(m *wire.Message) {
	if m == nil || rc.lim == (ReceiverLimits{}) {
		return
	}
	if rc.lim.Bytes > 0 {
		rc.queued.Add(-int64(len(m.Body)))
	}
	if m.IsDead() {
		for {
			d := rc.deadOver.Load()
			if d <= 0 || rc.deadOver.CompareAndSwap(d, d-1) {
				break
			}
		}
	}
}

// Dropped returns how many messages the receiver's limits dropped.
func (rc *Receiver) Dropped() int64 { return rc.dropped.Load() }

// Queued returns the body bytes queued, for a receiver with a bytes
// limit; 0 for any other.
func (rc *Receiver) Queued() int64 { return rc.queued.Load() }

// Handle returns the receiver's handle.
func (rc *Receiver) Handle() uint32 { return rc.handle }

// Sender returns the address of the receiver.
func (rc *Receiver) Sender() Sender { return Sender{Context: rc.r.id, Handle: rc.handle} }

// Get returns the next message. A dead message becomes a *RemoteError (the
// receiver stays open); a closed receiver gives ErrReceiverClosed.
func (rc *Receiver) Get(ctx context.Context) (*wire.Message, error) {
	m, err := rc.l.Get(ctx)
	return rc.result(m, err)
}

// TryGet is Get without blocking; latch.ErrEmpty when nothing is queued.
func (rc *Receiver) TryGet() (*wire.Message, error) {
	m, err := rc.l.TryGet()
	return rc.result(m, err)
}

func (rc *Receiver) result(m *wire.Message, err error) (*wire.Message, error) {
	rc.taken(m)
	if err != nil {
		if err == latch.ErrClosed {
			return nil, ErrReceiverClosed
		}
		return nil, err
	}
	if err := ErrorOf(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Close unregisters the handle and wakes every waiter with
// ErrReceiverClosed. Later messages to the handle get a dead "invalid
// handle". It is idempotent.
func (rc *Receiver) Close() error {
	_ = rc.r.DelHandler(rc.handle)
	return rc.l.Close()
}

// SetNotify implements latch.Source.
func (rc *Receiver) SetNotify(fn func()) error { return rc.l.SetNotify(fn) }

// TryGetAny implements latch.Source: the next message, or for a dead
// message its *RemoteError, as the value. A Select treats a returned error
// as "nothing there", so a dead message must not become one.
func (rc *Receiver) TryGetAny() (any, error) {
	m, err := rc.l.TryGet()
	if err != nil {
		return nil, err
	}
	rc.taken(m)
	if err := ErrorOf(m); err != nil {
		return err, nil
	}
	return m, nil
}

// Len implements latch.Source.
func (rc *Receiver) Len() int { return rc.l.Len() }

// StreamContext is the context for work done on behalf of a message that
// came in on in (as a handler is given it): in's own, which ends when that
// stream closes, or the broker's for a message from this context (in nil).
func (r *Router) StreamContext(in *broker.Stream) context.Context {
	if in == nil {
		return r.b.Context()
	}
	return in.Context()
}
