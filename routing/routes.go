package routing

import (
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// onAddRoute handles ADD_ROUTE from a direct child: a new context exists below
// it. The route is added and the announcement passed up before the reader
// goroutine takes the child's next frame, so no message from the new context
// can overtake its announcement anywhere up the tree.
//
// The child's word is checked against what this router knows: the ID must
// lie in an ID block granted to a context below that child's stream (the
// master hands them out, and every router on the way down records them), it
// must not be routed elsewhere or be ours or an ancestor's, and the stream
// may hold at most MaxRoutesPerStream routes. A refusal is logged
// (rate-limited) and, when it was logged, answered with a dead message to
// the sender's ADD_ROUTE handle.
func (r *Router) onAddRoute(m *wire.Message, in *broker.Stream) {
	if m.IsDead() {
		if in != nil && in.Data().(*peer).isParent {
			r.refuse(in.Data().(*peer), "parent refused a route announcement", "err", ErrorOf(m))
		}
		return
	}
	var rt wire.Route
	if err := wire.Unmarshal(m.Body, &rt); err != nil {
		r.log.Error("bad ADD_ROUTE body", "stream", in.Name(), "err", err)
		return
	}
	if len(rt.Name) > MaxRouteName {
		rt.Name = rt.Name[:MaxRouteName]
	}
	p := in.Data().(*peer)
	r.mu.Lock()
	reason := ""
	old, routed := r.routes[rt.ID]
	switch {
	case p.closed:
		r.mu.Unlock()
		return
	case rt.ID == r.id || containsID(r.parentIDs, rt.ID):
		reason = "ADD_ROUTE for this context's or an ancestor's ID"
	case routed && old != in:
		reason = "ADD_ROUTE for an ID already routed elsewhere"
	case routed:
		// Already known via this stream: nothing to add or pass up.
		r.mu.Unlock()
		return
	case !p.ownsLocked(rt.ID):
		reason = "ADD_ROUTE for an ID never allocated below this stream"
	case len(p.routed) >= r.maxRoutes:
		reason = fmt.Sprintf("ADD_ROUTE past the route limit (max %d per stream)", r.maxRoutes)
	}
	if reason != "" {
		r.mu.Unlock()
		if r.refuse(p, reason, "id", rt.ID, "stream", in.Name()) {
			r.refuseRoute(m, rt.ID, reason)
		}
		return
	}
	r.routes[rt.ID] = in
	p.routed[rt.ID] = struct{}{}
	if rt.Name != "" {
		r.names[rt.ID] = rt.Name
	}
	parent := r.parent
	if parent != nil {
		p.announcing = rt.ID
	}
	r.mu.Unlock()
	if parent == nil {
		return
	}
	if h := announceHook.Load(); h != nil {
		(*h)(r, rt.ID, false)
	}
	// Under the child's stream context: if the child goes while the parent
	// applies back-pressure, the announcement is abandoned (and then needs
	// no withdrawal) instead of holding the reader.
	err := r.sendRoute(in.Context(), parent, wire.HandleAddRoute, rt.ID, rt.Name)
	if err != nil && !isClosed(in) {
		r.log.Warn("propagating ADD_ROUTE", "id", rt.ID, "err", err)
	}
	// The stream may have closed during the send. Its close hook runs on
	// another goroutine and does not wait for this one; it has left the
	// upward DEL_ROUTE for rt.ID to us, so that it follows the ADD_ROUTE
	// on the parent's stream instead of racing it (a parent that saw the
	// withdrawal first would refuse it, then keep a stale route).
	r.mu.Lock()
	p.announcing = 0
	closed := p.closed
	r.mu.Unlock()
	if closed && err == nil {
		if err := r.sendRoute(r.b.Context(), parent, wire.HandleDelRoute, rt.ID, ""); err != nil {
			r.log.Warn("propagating DEL_ROUTE", "id", rt.ID, "err", err)
		}
	}
	if h := announceHook.Load(); h != nil {
		(*h)(r, rt.ID, true)
	}
}

// announceHook, when set (by tests), is called by onAddRoute before it
// passes an announcement up (done false) and once it is done with it (done
// true).
var announceHook atomic.Pointer[func(r *Router, id uint32, done bool)]

// ownsLocked reports whether id lies in a block granted below p's stream.
func (p *peer) ownsLocked(id uint32) bool {
	_, ok := p.ownerLocked(id)
	return ok
}

// refuseRoute answers a refused ADD_ROUTE or DEL_ROUTE with a dead message to
// the sender's handle of the same kind. Only the refusals that are logged
// are answered: a flood of bad announcements must not become a flood of
// answers, which a sender that writes without reading would never drain.
func (r *Router) refuseRoute(m *wire.Message, id uint32, reason string) {
	dead := &wire.Message{Enc: wire.EncError, Dst: m.Src, Handle: m.Handle, ReplyTo: wire.IsDead,
		Body: errorBody(wire.CodeRefused, fmt.Sprintf("refused by policy: %s (ID %d)", reason, id))}
	dead.Src, dead.Auth = r.id, r.id
	_ = r.route(r.b.Context(), dead, nil)
}

// refuse logs a refused announcement or request, rate-limited per stream: the
// first 16, then every 1024th with the count, so a flood cannot flood the
// log too. It reports whether this one was logged.
func (r *Router) refuse(p *peer, msg string, args ...any) bool {
	n := p.refusals.Add(1)
	if n <= 16 || n%1024 == 0 {
		r.log.Error(msg, append(args, "refusals", n)...)
		return true
	}
	return false
}

// onDelRoute handles DEL_ROUTE. From a child it is authoritative for IDs
// routed via that child; from the parent it only tells us a context we may
// have talked to has gone.
func (r *Router) onDelRoute(m *wire.Message, in *broker.Stream) {
	if m.IsDead() || in == nil {
		return
	}
	var rt wire.Route
	if err := wire.Unmarshal(m.Body, &rt); err != nil {
		r.log.Error("bad DEL_ROUTE body", "stream", in.Name(), "err", err)
		return
	}
	p := in.Data().(*peer)
	if p.isParent {
		r.gone(in, []uint32{rt.ID})
		return
	}
	if m.Src != p.remote {
		r.refuse(p, "DEL_ROUTE not from an immediate child", "stream", in.Name(), "src", m.Src)
		return
	}
	r.mu.Lock()
	if r.routes[rt.ID] != in || rt.ID == p.remote {
		r.mu.Unlock()
		reason := "DEL_ROUTE for an ID not routed via its sender"
		if r.refuse(p, reason, "id", rt.ID, "stream", in.Name()) {
			r.refuseRoute(m, rt.ID, reason)
		}
		return
	}
	delete(r.routes, rt.ID)
	delete(p.routed, rt.ID)
	r.mu.Unlock()
	r.gone(in, []uint32{rt.ID})
}

// onStreamClose runs as soon as a stream closes, whatever closed it (the
// broker calls it without waiting for the stream's reader): every ID
// reachable through it is gone.
func (r *Router) onStreamClose(s *broker.Stream, err error) {
	p := s.Data().(*peer)
	<-p.ready
	r.mu.Lock()
	p.closed = true
	for key, q := range r.allocs {
		if q == p {
			r.forgetAllocLocked(key, p)
		}
	}
	// The reader may be passing up an ADD_ROUTE for one of the stream's
	// IDs: it sends that ID's DEL_ROUTE itself, after it (see onAddRoute).
	announcing := p.announcing
	var ids []uint32
	if p.isParent {
		if r.parent == s {
			r.parent = nil
		}
	} else {
		for id := range p.routed {
			if r.routes[id] == s {
				delete(r.routes, id)
			}
			ids = append(ids, id)
		}
		p.routed = map[uint32]struct{}{}
	}
	r.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if p.isParent {
		r.log.Debug("parent stream closed", "err", err)
		if r.onParentGone != nil {
			r.onParentGone(err)
		}
		return
	}
	r.log.Debug("child stream closed", "stream", s.Name(), "ids", ids, "err", err)
	r.goneExcept(s, ids, announcing)
}

// gone announces that ids (already removed from the route table) have
// vanished: DEL_ROUTE up to the parent (unless it came from there), DEL_ROUTE
// down every other stream that has sent to them, then the disconnect events.
// Routes go first, events second, always: a caller woken by the event and
// calling again gets "no route", never a half-removed route.
func (r *Router) gone(from *broker.Stream, ids []uint32) { r.goneExcept(from, ids, 0) }

// goneExcept is gone, but sends no DEL_ROUTE up for the ID notUp (0: none).
func (r *Router) goneExcept(from *broker.Stream, ids []uint32, notUp uint32) {
	if len(ids) == 0 {
		return
	}
	ctx := r.b.Context()
	fromParent := from != nil && from.Data().(*peer).isParent
	r.mu.RLock()
	parent := r.parent
	r.mu.RUnlock()
	streams := r.b.Streams()
	for _, id := range ids {
		if parent != nil && !fromParent && id != notUp {
			_ = r.sendRoute(ctx, parent, wire.HandleDelRoute, id, "")
		}
		for _, s := range streams {
			p, ok := s.Data().(*peer)
			if !ok || s == from || p.isParent || !p.forgetEgress(id) {
				continue
			}
			// Posted, not sent: a child that has stopped reading must
			// not hold up the news for everyone else. Each ID goes once
			// per stream and a stream remembers at most MaxRoutesPerStream
			// of them, which bounds what a stuck child's queue can hold.
			_ = r.postRoute(s, wire.HandleDelRoute, id)
		}
	}
	for _, id := range ids {
		// Pending calls first, watchers second: whoever a watcher wakes
		// and calls again registers after this sweep and gets "no route".
		r.respondentGone(id)
		r.mu.Lock()
		ch := r.watchers[id]
		delete(r.watchers, id)
		delete(r.names, id)
		r.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	}
}

func (r *Router) postRoute(s *broker.Stream, handle, id uint32) error {
	body, err := msgpack.Marshal(&wire.Route{ID: id})
	if err != nil {
		return err
	}
	dst := s.Data().(*peer).remote
	return s.Post(&wire.Message{Enc: wire.EncMsgpack, Dst: dst, Src: r.id, Auth: r.id, Handle: handle, Body: body})
}

// Disconnected returns a channel closed when context id is known to have
// gone. In the master, where every route is explicit, an ID with no route is
// already gone. A child keeps no record of IDs that went: ask before id may
// go, or the channel waits for the broker's exit. The channel is also
// closed when the broker exits.
func (r *Router) Disconnected(id uint32) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.watchers[id]; ok {
		return ch
	}
	ch := make(chan struct{})
	_, routed := r.routes[id]
	if (r.IsMaster() && !routed) || r.exitedLocked() {
		close(ch)
		return ch
	}
	r.watchers[id] = ch
	return ch
}

func (r *Router) exitedLocked() bool {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return r.exited
}

// Routes returns the IDs with explicit routes, sorted.
func (r *Router) Routes() []uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]uint32, 0, len(r.routes))
	for id := range r.routes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Egress returns the IDs that messages arriving on the stream to child id
// were addressed to, sorted (for tests and diagnostics).
func (r *Router) Egress(id uint32) []uint32 {
	r.mu.RLock()
	s := r.routes[id]
	r.mu.RUnlock()
	if s == nil {
		return nil
	}
	p := s.Data().(*peer)
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint32, 0, len(p.egress))
	for id := range p.egress {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Stream returns the stream that leads to id (its route, or the parent).
func (r *Router) Stream(id uint32) *broker.Stream { return r.lookup(id) }

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// NextHop returns the ID of the direct child whose stream leads to id, or
// false when id is not below this context.
func (r *Router) NextHop(id uint32) (uint32, bool) {
	r.mu.RLock()
	s, ok := r.routes[id]
	r.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return s.Data().(*peer).remote, true
}
