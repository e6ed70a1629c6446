package routing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Config configures a Router. The zero value is a master (ID 0) with the
// default limits.
type Config struct {
	// ID is this context's ID; 0 is the master.
	ID uint32
	// ParentIDs lists this context's ancestors, parent first, the master
	// last. Empty for the master. Messages acting with the authority of any
	// of them (or of ID) pass the parent-authority policy.
	ParentIDs []uint32
	// MaxMessageSize bounds every message this router routes or reads.
	// 0 means wire.DefaultMaxMessageSize.
	MaxMessageSize uint32
	// Unidirectional forbids forwarding between two streams neither of which
	// leads to the parent: siblings cannot talk through this context.
	Unidirectional bool
	// OnParentGone, if set, is called when the stream to the parent closes,
	// from its close hook (on the stream's writer goroutine, once the
	// writer has stopped; the reader may still be in a handler).
	OnParentGone func(err error)
	// OnParentUp, if set, is called by SetParent once the parent is the
	// default route and before any frame from the parent is routed: what is
	// sent from it reaches the parent ahead of any reply (early logs).
	OnParentUp func()
	// Logger receives routing records; nil means the broker's logger.
	Logger *slog.Logger
	// MaxRoutesPerStream bounds the routes a child's stream may announce
	// (ADD_ROUTE) and the IDs remembered as the destinations of its messages.
	// 0 means DefaultMaxRoutesPerStream.
	MaxRoutesPerStream int
	// MaxIDBlocksPerChild bounds the ID blocks (of IDBlockSize) one direct
	// child's subtree may take with ALLOCATE_ID through this router: the
	// master refuses to grant more, and every other router refuses to pass
	// up a request from a child's stream that holds (or has asked for) that
	// many. 0 means DefaultMaxIDBlocksPerChild halved once per level below
	// the master, at least 1 (see IDBlockShare): each child of a router may
	// take at most half of what the router's own subtree may, so a hostile
	// descendant uses up only its own share.
	MaxIDBlocksPerChild int
	// StallTimeout is how long a send into a child's stream may wait for
	// room while the child takes no bytes at all; past it the child's
	// stream is closed as stalled (its contexts are gone, its pending calls
	// fail with ErrDisconnected), so a child that stops reading holds up
	// the traffic of others, such as a sibling's messages to it, at most
	// this long. The clock restarts each time the child takes a chunk (up
	// to 1 MiB), so a child that reads slowly is not cut: it holds others
	// up at its own rate. 0 means DefaultStallTimeout; negative means no
	// limit. The stream to the parent (trusted) has none.
	StallTimeout time.Duration
}

// Defaults of the bounds in Config, and the fixed bounds (see the package
// documentation).
const (
	DefaultMaxRoutesPerStream  = 16384
	DefaultMaxIDBlocksPerChild = 4096
	DefaultStallTimeout        = 30 * time.Second
	// MaxRouteName bounds the name an ADD_ROUTE may give a context; a
	// longer one is cut.
	MaxRouteName = 256
	// MaxAllocsInFlight bounds the ALLOCATE_ID requests of one requester
	// (one context, by src_id) that a router has passed up and not yet seen
	// answered. AllocateID asks one at a time. The bound is per requester,
	// not per stream, so that a hostile context below a child cannot use up
	// the allowance of its cousins behind the same stream; a stream holds at
	// most MaxAllocsInFlight for each ID routed via it.
	MaxAllocsInFlight = 2
)

// IDBlockShare returns the default MaxIDBlocksPerChild of a router depth
// levels below the master (len(Config.ParentIDs)):
// DefaultMaxIDBlocksPerChild >> depth, at least 1.
func IDBlockShare(depth int) int {
	return max(1, DefaultMaxIDBlocksPerChild>>min(depth, 31))
}

// Router routes messages between the local handlers and the streams of one
// broker. It is safe for concurrent use.
//
// Lock order: mu, then hmu, then peer.mu.
type Router struct {
	b              *broker.Broker
	id             uint32
	parentIDs      []uint32
	max            uint32
	unidirectional bool
	onParentGone   func(error)
	onParentUp     func()
	log            *slog.Logger
	ids            idAllocator
	maxRoutes      int
	maxBlocks      int
	stall          time.Duration

	mu       sync.RWMutex
	parent   *broker.Stream            // guarded by mu: nil in the master or once lost
	routes   map[uint32]*broker.Stream // guarded by mu: explicit routes, children included
	names    map[uint32]string         // guarded by mu: names learned from ADD_ROUTE
	watchers map[uint32]chan struct{}  // guarded by mu: closed when the ID disconnects
	allocs   map[allocKey]*peer        // guarded by mu: ALLOCATE_ID requests passed up, not yet answered

	allocsInFlight atomic.Int32 // len(allocs), read without mu on the forwarding path

	hmu          sync.Mutex
	handlers     map[uint32]*handler            // guarded by hmu
	byRespondent map[uint32]map[uint32]struct{} // guarded by hmu: respondent ID -> handles (never empty)
	spareSet     map[uint32]struct{}            // guarded by hmu: an empty set to reuse, or nil
	exited       bool                           // guarded by hmu: the broker has exited
}

// peer is the router's record of one stream, kept in the stream's Data.
type peer struct {
	remote   uint32 // ID of the context at the other end
	isParent bool
	// ready is closed once AddChild or SetParent has registered the stream
	// (and queued a child's ADD_ROUTE). The reader waits for it before
	// routing a frame or cleaning up, since the peer may have written
	// before the stream was registered.
	ready chan struct{}

	routed map[uint32]struct{} // guarded by Router.mu: IDs routed via this stream
	closed bool                // guarded by Router.mu: its close has been handled; nothing may be added
	blocks []idBlock           // guarded by Router.mu: ID blocks granted to contexts below this stream
	allocs int                 // guarded by Router.mu: its entries in Router.allocs
	// allocsBySrc counts allocs per requester. Guarded by Router.mu.
	allocsBySrc map[uint32]int
	// announcing is the ID whose ADD_ROUTE the stream's reader is passing
	// up, 0 if none. Guarded by Router.mu. The close hook leaves the
	// upward DEL_ROUTE for it to the reader, which sends it after the
	// ADD_ROUTE (see onAddRoute).
	announcing uint32

	refusals atomic.Uint64 // announcements and requests refused, for rate-limited logging

	mu     sync.Mutex
	egress map[uint32]struct{} // guarded by mu: IDs this stream has sent to
	full   bool                // guarded by mu: egress reached its bound once
}

// noteEgress records that the stream sent to id, up to max IDs. Past the
// bound the stream is no longer told when further IDs disappear: only the
// context that sent to so many pays for it. It reports whether this call
// found the set full for the first time.
func (p *peer) noteEgress(id uint32, max int) (nowFull bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.egress[id]; ok {
		return false
	}
	if len(p.egress) < max {
		p.egress[id] = struct{}{}
		return false
	}
	nowFull = !p.full
	p.full = true
	return nowFull
}

// forgetEgress removes id from the egress set and reports whether it was
// there.
func (p *peer) forgetEgress(id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.egress[id]
	delete(p.egress, id)
	return ok
}

// New returns a router for b and registers its built-in handlers
// (ADD_ROUTE, DEL_ROUTE, and in the master ALLOCATE_ID).
func New(b *broker.Broker, cfg Config) *Router {
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	if cfg.MaxRoutesPerStream <= 0 {
		cfg.MaxRoutesPerStream = DefaultMaxRoutesPerStream
	}
	if cfg.MaxIDBlocksPerChild <= 0 {
		cfg.MaxIDBlocksPerChild = IDBlockShare(len(cfg.ParentIDs))
	}
	switch {
	case cfg.StallTimeout == 0:
		cfg.StallTimeout = DefaultStallTimeout
	case cfg.StallTimeout < 0:
		cfg.StallTimeout = 0
	}
	log := cfg.Logger
	if log == nil {
		log = b.Logger()
	}
	r := &Router{
		b:              b,
		id:             cfg.ID,
		parentIDs:      slices.Clone(cfg.ParentIDs),
		max:            cfg.MaxMessageSize,
		unidirectional: cfg.Unidirectional,
		onParentGone:   cfg.OnParentGone,
		onParentUp:     cfg.OnParentUp,
		log:            log,
		maxRoutes:      cfg.MaxRoutesPerStream,
		maxBlocks:      cfg.MaxIDBlocksPerChild,
		stall:          cfg.StallTimeout,
		allocs:         make(map[allocKey]*peer),
		routes:         make(map[uint32]*broker.Stream),
		names:          make(map[uint32]string),
		watchers:       make(map[uint32]chan struct{}),
		handlers:       make(map[uint32]*handler),
		byRespondent:   make(map[uint32]map[uint32]struct{}),
	}
	r.ids.r = r
	if r.IsMaster() {
		r.ids.next = 1
	}
	must := func(_ uint32, err error) {
		if err != nil {
			panic(err)
		}
	}
	must(r.AddHandler(r.onAddRoute, HandlerOptions{Handle: wire.HandleAddRoute, Policy: r.addRoutePolicy}))
	must(r.AddHandler(r.onDelRoute, HandlerOptions{Handle: wire.HandleDelRoute}))
	if r.IsMaster() {
		must(r.AddHandler(r.onAllocateID, HandlerOptions{Handle: wire.HandleAllocateID}))
	}
	b.OnExit(r.onBrokerExit)
	return r
}

// ID returns this context's ID.
func (r *Router) ID() uint32 { return r.id }

// ParentIDs returns a copy of the ancestors' IDs, parent first.
func (r *Router) ParentIDs() []uint32 { return slices.Clone(r.parentIDs) }

// IsMaster reports whether this router is the root of the tree.
func (r *Router) IsMaster() bool { return r.id == 0 && len(r.parentIDs) == 0 }

// MaxMessageSize returns the message size limit.
func (r *Router) MaxMessageSize() uint32 { return r.max }

// Unidirectional reports whether sibling forwarding is refused.
func (r *Router) Unidirectional() bool { return r.unidirectional }

// Broker returns the broker the router serves.
func (r *Router) Broker() *broker.Broker { return r.b }

// Name returns the name an ADD_ROUTE gave id, or "".
func (r *Router) Name(id uint32) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.names[id]
}

// StreamConfig returns the broker configuration the router needs for a
// stream to the context remote: its handler, close hook and peer record.
func (r *Router) streamConfig(name string, remote uint32, isParent bool) broker.StreamConfig {
	stall := r.stall
	if isParent {
		stall = 0
	}
	return broker.StreamConfig{
		StallTimeout:   stall,
		Name:           name,
		MaxMessageSize: r.max,
		KeepAlive:      !isParent,
		Handler:        r.onFrame,
		OnClose:        r.onStreamClose,
		Data: &peer{
			remote:   remote,
			isParent: isParent,
			ready:    make(chan struct{}),
			routed:   map[uint32]struct{}{remote: {}},
			egress:   make(map[uint32]struct{}),
		},
	}
}

// SetParent serves rwc as the stream to this context's parent, whose ID is
// ParentIDs[0]. The handshake must already be done.
func (r *Router) SetParent(rwc io.ReadWriteCloser, name string) (*broker.Stream, error) {
	if len(r.parentIDs) == 0 {
		rwc.Close()
		return nil, fmt.Errorf("routing: SetParent on the master")
	}
	cfg := r.streamConfig(name, r.parentIDs[0], true)
	// The parent is not an explicit route: it is the default one.
	cfg.Data.(*peer).routed = map[uint32]struct{}{}
	s, err := r.b.NewStream(rwc, cfg)
	if err != nil {
		return nil, err
	}
	defer close(cfg.Data.(*peer).ready)
	r.mu.Lock()
	r.parent = s
	r.mu.Unlock()
	if r.onParentUp != nil {
		r.onParentUp()
	}
	return s, nil
}

// AddChild serves rwc as the stream to the new direct child id (handshake
// done), adds its route and sends ADD_ROUTE to the parent before returning,
// so every ancestor knows id before any message from it can arrive there.
func (r *Router) AddChild(ctx context.Context, rwc io.ReadWriteCloser, id uint32, name string) (*broker.Stream, error) {
	r.mu.Lock()
	if old, ok := r.routes[id]; ok {
		r.mu.Unlock()
		rwc.Close()
		return nil, fmt.Errorf("routing: add child %d (%s): already routed via %s", id, name, old.Name())
	}
	r.mu.Unlock()
	cfg := r.streamConfig(name, id, false)
	s, err := r.b.NewStream(rwc, cfg)
	if err != nil {
		return nil, err
	}
	defer close(cfg.Data.(*peer).ready)
	r.mu.Lock()
	if old, ok := r.routes[id]; ok { // a concurrent AddChild won
		r.mu.Unlock()
		err := fmt.Errorf("routing: add child %d (%s): already routed via %s", id, name, old.Name())
		s.CloseWithError(err)
		return nil, err
	}
	r.routes[id] = s
	r.names[id] = name
	parent := r.parent
	r.mu.Unlock()
	if parent != nil {
		if err := r.sendRoute(ctx, parent, wire.HandleAddRoute, id, name); err != nil {
			s.CloseWithError(err)
			return nil, fmt.Errorf("routing: announce child %d (%s): %w", id, name, err)
		}
	}
	return s, nil
}

func (r *Router) sendRoute(ctx context.Context, s *broker.Stream, handle, id uint32, name string) error {
	body, err := msgpack.Marshal(&wire.Route{ID: id, Name: name})
	if err != nil {
		return err
	}
	dst := s.Data().(*peer).remote
	return s.Send(ctx, &wire.Message{Enc: wire.EncMsgpack, Dst: dst, Src: r.id, Auth: r.id, Handle: handle, Body: body})
}

// lookup returns the stream toward id: its explicit route, else the parent
// (nil in the master).
func (r *Router) lookup(id uint32) *broker.Stream {
	r.mu.RLock()
	s, ok := r.routes[id]
	if !ok {
		s = r.parent
	}
	r.mu.RUnlock()
	return s
}

// Send routes m as a message of this context: Src and Auth are set to the
// local ID. It blocks only on back-pressure. Every failure is reported as a
// dead message to m.ReplyTo (or, without one, to the intended receiver when
// it is reachable). Send also returns an error when m was refused before
// leaving this context (too large) or its stream failed under it; a failure
// further on (no route, invalid handle, refused) only reaches ReplyTo.
func (r *Router) Send(ctx context.Context, m *wire.Message) error {
	m.Src, m.Auth = r.id, r.id
	return r.route(ctx, m, nil)
}

// onFrame is the Handler of every stream the router serves.
// Everything done for a frame (forwarding it, answering it) runs under the
// stream's context, so it ends when the stream closes: a dead peer's reader
// never stays blocked on back-pressure elsewhere.
func (r *Router) onFrame(s *broker.Stream, m *wire.Message) {
	<-s.Data().(*peer).ready
	select {
	case <-s.Done():
		// Read before the close, handed over after it: the stream's routes
		// are gone, so is its sender.
		r.log.Debug("dropping frame from a closed stream", "stream", s.Name(), "msg", m.String())
		return
	default:
	}
	_ = r.route(s.Context(), m, s)
}

func isClosed(s *broker.Stream) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

func (r *Router) route(ctx context.Context, m *wire.Message, in *broker.Stream) error {
	if uint64(len(m.Body)) > uint64(r.max) {
		reason := fmt.Sprintf("message too large (max %d bytes)", r.max)
		r.logRefusal(in, "refusing message", "reason", reason, "msg", m.String())
		r.sendDead(ctx, m, wire.CodeTooLarge, reason, false)
		return fmt.Errorf("routing: %s: %w", reason, ErrTooLarge)
	}
	var inPeer *peer
	if in != nil {
		inPeer = in.Data().(*peer)
		if r.lookup(m.Auth) != in {
			r.dropForged(in, "bad auth_id: dropping message", m)
			return nil
		}
		if m.Src != m.Auth && r.lookup(m.Src) != in {
			r.dropForged(in, "bad src_id: dropping message", m)
			return nil
		}
	}
	if m.Dst == r.id {
		r.invoke(ctx, m, in)
		return nil
	}
	out := r.lookup(m.Dst)
	if out == nil || out == in {
		// Nowhere to go but back where it came from (a child's message for
		// an ID routed through that child, a parent's for an ID we do not
		// have): the sender learns it at once.
		r.sendDead(ctx, m, wire.CodeNoRoute, fmt.Sprintf("no route to %d, my ID is %d", m.Dst, r.id), true)
		return nil
	}
	if r.unidirectional && in != nil && !inPeer.isParent && !out.Data().(*peer).isParent {
		reason := fmt.Sprintf("routing mode prevents forward of message from context %d to context %d via context %d", m.Src, m.Dst, r.id)
		r.logRefusal(in, "refusing message", "reason", reason)
		r.sendDead(ctx, m, wire.CodeUnidirectional, reason, true)
		return nil
	}
	if in != nil {
		if inPeer.noteEgress(m.Dst, r.maxRoutes) {
			r.log.Warn("stream sent to more contexts than the route bound; it will not be told when the others disappear",
				"stream", in.Name(), "max", r.maxRoutes)
		}
		if !r.noteForward(m, inPeer, out) {
			return nil
		}
	}
	if err := out.Send(ctx, m); err != nil {
		if in != nil {
			r.unnoteForward(m, inPeer)
		}
		if in != nil && isClosed(in) {
			return nil // the sender's own stream closed under it: nobody to tell
		}
		if in == nil && ctx.Err() != nil {
			return fmt.Errorf("routing: send to %d: %w", m.Dst, err) // the caller gave up
		}
		if in == nil && errors.Is(err, broker.ErrShutdown) {
			return fmt.Errorf("routing: send to %d: %w (%w)", m.Dst, ErrShutdown, err)
		}
		r.sendDead(ctx, m, wire.CodeDisconnected, fmt.Sprintf("the respondent context has disconnected: %v", err), true)
		if in == nil {
			return fmt.Errorf("routing: send to %d: %w (%w)", m.Dst, ErrDisconnected, err)
		}
	}
	return nil
}

// dropForged logs a message dropped by the reverse-path check. One read
// before its stream closed is no forgery: the stream's routes are already
// gone.
func (r *Router) dropForged(in *broker.Stream, what string, m *wire.Message) {
	if isClosed(in) {
		r.log.Debug(what, "stream", in.Name(), "msg", m.String(), "closed", true)
		return
	}
	r.logRefusal(in, what, "stream", in.Name(), "msg", m.String())
}

// logRefusal logs a message refused on its way in. One that came in on a
// stream is logged rate-limited per stream (refuse), so that a child's flood
// of bad messages does not become a flood of log records; a local one always.
func (r *Router) logRefusal(in *broker.Stream, what string, args ...any) {
	if in != nil {
		if p, ok := in.Data().(*peer); ok {
			r.refuse(p, what, args...)
			return
		}
	}
	r.log.Error(what, args...)
}

// sendDead reports a failure about m: to m.ReplyTo when set, otherwise (unless
// the destination is unreachable) to the intended receiver. A dead message is
// never answered.
func (r *Router) sendDead(ctx context.Context, m *wire.Message, code wire.Code, reason string, unreachable bool) {
	if m.IsDead() {
		return
	}
	dead := &wire.Message{Enc: wire.EncError, Src: r.id, Auth: r.id, ReplyTo: wire.IsDead, Body: errorBody(code, reason)}
	switch {
	case m.ReplyTo != 0:
		dead.Dst, dead.Handle = m.Src, m.ReplyTo
	case !unreachable:
		dead.Dst, dead.Handle = m.Dst, m.Handle
	default:
		return
	}
	_ = r.route(ctx, dead, nil)
}

// Reply sends body as the answer to request m, to m.Src on m.ReplyTo. A
// request with no ReplyTo gets nothing.
func (r *Router) Reply(ctx context.Context, m *wire.Message, enc wire.Encoding, body []byte) error {
	if m.ReplyTo == 0 || m.IsDead() {
		return nil
	}
	return r.Send(ctx, &wire.Message{Enc: enc, Dst: m.Src, Handle: m.ReplyTo, Body: body})
}

// ReplyError answers request m with err, carrying its code so the caller's
// errors.Is matches the same sentinel.
func (r *Router) ReplyError(ctx context.Context, m *wire.Message, err error) error {
	return r.Reply(ctx, m, wire.EncError, errorBody(CodeOf(err), err.Error()))
}

// HasParentAuthority is the policy of handles only ancestors may use: the
// message acts with the authority of this context or one of its ancestors.
func (r *Router) HasParentAuthority(m *wire.Message, _ *broker.Stream) bool {
	return m.Auth == r.id || slices.Contains(r.parentIDs, m.Auth)
}

// addRoutePolicy lets ADD_ROUTE in from a direct child, and a dead message
// from the parent (its refusal of one we sent) in to be logged.
func (r *Router) addRoutePolicy(m *wire.Message, in *broker.Stream) bool {
	if in != nil && m.IsDead() && in.Data().(*peer).isParent {
		return true
	}
	return r.IsImmediateChild(m, in)
}

// IsImmediateChild is the policy of handles only direct children may use.
func (r *Router) IsImmediateChild(m *wire.Message, in *broker.Stream) bool {
	if in == nil {
		return false
	}
	p := in.Data().(*peer)
	return !p.isParent && p.remote == m.Src
}
