package routing

import (
	"sort"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
)

// onAddRoute handles ADD_ROUTE from a direct child: a new context exists below
// it. The route is added and the announcement passed up before the reader
// goroutine takes the child's next frame, so no message from the new context
// can overtake its announcement anywhere up the tree.
func (r *Router) onAddRoute(m *wire.Message, in *broker.Stream) {
	if m.IsDead() {
		return
	}
	var rt wire.Route
	if err := wire.Unmarshal(m.Body, &rt); err != nil {
		r.log.Error("bad ADD_ROUTE body", "stream", in.Name(), "err", err)
		return
	}
	r.mu.Lock()
	if old, ok := r.routes[rt.ID]; ok && old != in {
		r.mu.Unlock()
		r.log.Error("ADD_ROUTE for an ID already routed elsewhere", "id", rt.ID, "stream", in.Name(), "existing", old.Name())
		return
	}
	if rt.ID == r.id || containsID(r.parentIDs, rt.ID) {
		r.mu.Unlock()
		r.log.Error("ADD_ROUTE for an ancestor's ID", "id", rt.ID, "stream", in.Name())
		return
	}
	r.routes[rt.ID] = in
	in.Data().(*peer).routed[rt.ID] = struct{}{}
	if rt.Name != "" {
		r.names[rt.ID] = rt.Name
	}
	parent := r.parent
	r.mu.Unlock()
	if parent != nil {
		if err := r.sendRoute(r.b.Context(), parent, wire.HandleAddRoute, rt.ID, rt.Name); err != nil {
			r.log.Warn("propagating ADD_ROUTE", "id", rt.ID, "err", err)
		}
	}
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
		r.log.Error("DEL_ROUTE not from an immediate child", "stream", in.Name(), "src", m.Src)
		return
	}
	r.mu.Lock()
	if r.routes[rt.ID] != in || rt.ID == p.remote {
		r.mu.Unlock()
		r.log.Error("DEL_ROUTE for an ID not routed via its sender", "id", rt.ID, "stream", in.Name())
		return
	}
	delete(r.routes, rt.ID)
	delete(p.routed, rt.ID)
	r.mu.Unlock()
	r.gone(in, []uint32{rt.ID})
}

// onStreamClose runs when a stream closes: every ID reachable through it is
// gone.
func (r *Router) onStreamClose(s *broker.Stream, err error) {
	p := s.Data().(*peer)
	<-p.ready
	r.mu.Lock()
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
	r.gone(s, ids)
}

// gone announces that ids (already removed from the route table) have
// vanished: DEL_ROUTE up to the parent (unless it came from there), DEL_ROUTE
// down every other stream that has sent to them, then the disconnect events.
// Routes go first, events second, always: a caller woken by the event and
// calling again gets "no route", never a half-removed route.
func (r *Router) gone(from *broker.Stream, ids []uint32) {
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
		if parent != nil && !fromParent {
			_ = r.sendRoute(ctx, parent, wire.HandleDelRoute, id, "")
		}
		for _, s := range streams {
			p, ok := s.Data().(*peer)
			if !ok || s == from || p.isParent || !p.sentTo(id) {
				continue
			}
			_ = r.sendRoute(ctx, s, wire.HandleDelRoute, id, "")
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

// Disconnected returns a channel closed when context id is known to have
// gone. In the master, where every route is explicit, an ID with no route is
// already gone. The channel is also closed when the broker exits.
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
