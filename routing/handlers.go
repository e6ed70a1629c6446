package routing

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
)

// HandlerFunc receives a message addressed to its handle. in is the stream
// the message arrived on, nil for a local message. It runs on the goroutine
// that routed the message (usually a stream's reader): it must not block for
// long, and it owns m.
type HandlerFunc func(m *wire.Message, in *broker.Stream)

// Policy decides whether a message may reach a handler. It must be fast and
// must not block.
type Policy func(m *wire.Message, in *broker.Stream) bool

// HandlerOptions configures AddHandler. The zero value allocates a fresh
// persistent handle with no policy.
type HandlerOptions struct {
	// Handle to listen on; 0 allocates an unused dynamic handle.
	Handle uint32
	// Policy, if set, must accept a message before the handler sees it;
	// a refused message gets a dead "refused by policy" reply.
	Policy Policy
	// Respondent, when HasRespondent is set, is the only context whose
	// non-dead messages are accepted, and its disconnection delivers a dead
	// message to the handler and removes it. A dead message is accepted
	// only from a router that could have routed a message to Respondent:
	// this router itself, or, arriving on the stream that led to
	// Respondent when the handler was added, the parent's side of the tree
	// or a context on the path down to Respondent.
	Respondent    uint32
	HasRespondent bool
	// Once removes the handler after its first message.
	Once bool
	// Overwrite replaces an existing handler instead of failing.
	Overwrite bool
}

type handler struct {
	fn   HandlerFunc
	p    *Pending // instead of fn: a call's reply handler
	opts HandlerOptions
	via  *broker.Stream // with a respondent: the stream toward it when added (nil: local)
}

// call runs the handler on m.
func (h *handler) call(m *wire.Message, in *broker.Stream) {
	if h.p != nil {
		h.p.deliver(m)
		return
	}
	h.fn(m, in)
}

// AddHandler registers fn and returns its handle. It fails with
// ErrDuplicateHandle for a handle in use (unless Overwrite) and with
// ErrShutdown once the broker has exited.
//
// A handle allocated here is drawn at random from the dynamic range, so a
// context cannot guess the reply handles of calls it did not receive.
func (r *Router) AddHandler(fn HandlerFunc, opts HandlerOptions) (uint32, error) {
	return r.addHandler(&handler{fn: fn, opts: opts})
}

// addHandler registers h, whose via it sets, under h.opts.Handle or a fresh
// handle, which it returns (and leaves in h.opts.Handle).
func (r *Router) addHandler(h *handler) (uint32, error) {
	opts := &h.opts
	if opts.HasRespondent && opts.Respondent != r.id {
		h.via = r.lookup(opts.Respondent) // before hmu: lock order is mu, then hmu
	}
	r.hmu.Lock()
	defer r.hmu.Unlock()
	if r.exited {
		return 0, fmt.Errorf("routing: add handler: %w", ErrShutdown)
	}
	if opts.Handle == 0 {
		for {
			opts.Handle = wire.FirstDynamicHandle + rand.Uint32N(^uint32(0)-wire.FirstDynamicHandle)
			if _, used := r.handlers[opts.Handle]; !used {
				break
			}
		}
	} else if old, ok := r.handlers[opts.Handle]; ok {
		if !opts.Overwrite {
			return 0, fmt.Errorf("routing: add handler %d: %w", opts.Handle, ErrDuplicateHandle)
		}
		r.forgetLocked(opts.Handle, old)
	}
	r.handlers[opts.Handle] = h
	if opts.HasRespondent {
		set := r.byRespondent[opts.Respondent]
		if set == nil {
			if set = r.spareSet; set != nil {
				r.spareSet = nil
			} else {
				set = make(map[uint32]struct{})
			}
			r.byRespondent[opts.Respondent] = set
		}
		set[opts.Handle] = struct{}{}
	}
	return opts.Handle, nil
}

// DelHandler unregisters handle. It returns ErrUnknownHandle if nothing
// listens there.
func (r *Router) DelHandler(handle uint32) error {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	h, ok := r.handlers[handle]
	if !ok {
		return fmt.Errorf("routing: del handler %d: %w", handle, ErrUnknownHandle)
	}
	r.forgetLocked(handle, h)
	return nil
}

func (r *Router) forgetLocked(handle uint32, h *handler) {
	delete(r.handlers, handle)
	if h.opts.HasRespondent {
		if set := r.byRespondent[h.opts.Respondent]; set != nil {
			delete(set, handle)
			if len(set) == 0 {
				// Dropped at once, so that no respondent keeps a set
				// (calls to IDs that are gone or never were must not
				// pile them up); kept as the spare, so that calls one
				// at a time do not make a map each.
				delete(r.byRespondent, h.opts.Respondent)
				if r.spareSet == nil {
					r.spareSet = set
				}
			}
		}
	}
}

// invoke delivers m, addressed to this context, to its handler.
func (r *Router) invoke(ctx context.Context, m *wire.Message, in *broker.Stream) {
	r.hmu.Lock()
	h, ok := r.handlers[m.Handle]
	if ok && h.opts.Once && h.opts.Policy == nil && h.opts.HasRespondent && !m.IsDead() && m.Src == h.opts.Respondent {
		// A call's reply, the common case: the checks below would all
		// pass, so take it out in the same critical section.
		r.forgetLocked(m.Handle, h)
		r.hmu.Unlock()
		h.call(m, in)
		return
	}
	r.hmu.Unlock()
	if !ok {
		if !m.IsDead() {
			r.log.Debug("message to invalid handle", "msg", m.String())
		}
		r.sendDead(ctx, m, wire.CodeInvalidHandle, "invalid handle", false)
		return
	}
	if h.opts.HasRespondent && !r.mayAnswer(h, m, in) {
		r.logRefusal(in, "reply from unexpected context", "msg", m.String(), "want", h.opts.Respondent)
		r.sendDead(ctx, m, wire.CodeUnexpectedSrc, "reply from unexpected context", true)
		return
	}
	if h.opts.Policy != nil && !h.opts.Policy(m, in) {
		r.logRefusal(in, "refused by policy", "msg", m.String())
		r.sendDead(ctx, m, wire.CodeRefused, "refused by policy", true)
		return
	}
	if h.opts.Once {
		r.hmu.Lock()
		cur, still := r.handlers[m.Handle]
		if still && cur == h {
			r.forgetLocked(m.Handle, h)
		}
		r.hmu.Unlock()
		if !still || cur != h {
			return // another message consumed it first
		}
	}
	h.call(m, in)
}

// mayAnswer reports whether m may reach h, a handler bound to a respondent:
// a reply only from the respondent, a dead message only from a router that
// could have had the request in hand. Those are this router (a local dead
// message), and on the stream the request went out on: anything from the
// parent's side (parents are trusted), or, below us, the respondent and the
// contexts on the path down to it, told apart by the ID blocks each was
// granted (see onPathLocked).
func (r *Router) mayAnswer(h *handler, m *wire.Message, in *broker.Stream) bool {
	want := h.opts.Respondent
	if !m.IsDead() {
		return m.Src == want
	}
	if in == nil {
		return m.Src == r.id
	}
	if in != h.via {
		return false
	}
	p := in.Data().(*peer)
	if p.isParent {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return p.onPathLocked(want, m.Src)
}

// deliverDead hands each handler a dead message made locally.
func (r *Router) deliverDead(hs map[uint32]*handler, src uint32, code wire.Code, reason string) {
	body := errorBody(code, reason)
	for handle, h := range hs {
		h.call(&wire.Message{Enc: wire.EncError, Dst: r.id, Src: src, Auth: r.id, Handle: handle, ReplyTo: wire.IsDead, Body: body}, nil)
	}
}

// respondentGone removes every handler bound to id and gives each a dead
// message. It runs after id's routes are gone, so a call made once the
// handler has fired gets "no route", never a stale route.
func (r *Router) respondentGone(id uint32) {
	r.hmu.Lock()
	hs := make(map[uint32]*handler)
	for handle := range r.byRespondent[id] {
		h := r.handlers[handle]
		hs[handle] = h
		r.forgetLocked(handle, h) // the last one drops the set
	}
	r.hmu.Unlock()
	r.deliverDead(hs, id, wire.CodeDisconnected, "the respondent context has disconnected")
}

// onBrokerExit gives every remaining handler a dead message: nothing waits
// on a router that is gone.
func (r *Router) onBrokerExit() {
	r.hmu.Lock()
	r.exited = true
	hs := r.handlers
	r.handlers = make(map[uint32]*handler)
	r.byRespondent = make(map[uint32]map[uint32]struct{})
	r.hmu.Unlock()
	r.deliverDead(hs, r.id, wire.CodeShutdown, "broker has exited")
	r.mu.Lock()
	for id, ch := range r.watchers {
		close(ch)
		delete(r.watchers, id)
	}
	r.mu.Unlock()
}
