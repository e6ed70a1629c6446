package modules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Bounds of the blob protocol (see the package doc).
const (
	// MaxBatchBytes bounds the reply to one GET_BLOBS or PULL_BLOBS: the
	// blobs' bytes plus BlobOverhead for each hash the reply names. A blob
	// larger than that goes alone (GET_MODULE, or a PULL_BLOBS of one
	// hash). It is lowered to half the router's max message size when that
	// is smaller.
	MaxBatchBytes = 8 << 20
	// MaxBatchHashes bounds the hashes of one GET_BLOBS or PULL_BLOBS.
	MaxBatchHashes = 4096
	// BlobCallTimeout bounds one GET_MODULE or GET_BLOBS asked of the
	// parent, and one PULL_BLOBS asked of a descendant, so a context that
	// stops answering (but keeps its stream) costs a flight that long, not
	// forever. One reply is at most one message (128 MiB in it is 220 KB/s).
	BlobCallTimeout = 10 * time.Minute
	// BlobOverhead is what each hash named in a reply counts for besides
	// its bytes: its hex, the msgpack framing, with room to spare.
	BlobOverhead = 100
	// MaxInflightPerChild bounds the GET_MODULE and GET_BLOBS requests of
	// one direct child being served at once; one more is refused (code 3).
	// A context sends at most as many to its parent at once, so a
	// well-behaved child never meets the bound.
	MaxInflightPerChild = 8
)

// Service moves blobs between a Store and the rest of the tree through a
// router. It is safe for concurrent use.
type Service struct {
	r   *routing.Router
	st  *Store
	log *slog.Logger

	up chan struct{} // slots for requests to the parent in flight

	mu       sync.Mutex
	inflight map[string]*flight             // guarded by mu: fetches from the parent in progress
	sent     map[string]map[uint32]struct{} // guarded by mu: hash -> direct children known to hold it
	serving  map[uint32]int                 // guarded by mu: child -> its requests being served
	edges    map[uint32]*edge               // guarded by mu: child -> what was sent to it
	stats    Stats                          // guarded by mu
}

// edge counts the blobs sent down one edge.
type edge struct{ blobs, bytes int64 }

// flight is one fetch from the parent; concurrent askers of its hash wait
// on done and share b and err.
type flight struct {
	h    string
	done chan struct{}
	b    []byte
	err  error
}

// Stats counts what crossed this context's edges. Blob counts include
// modules: a module is a blob.
type Stats struct {
	// Fetches and FetchedBytes count the blobs received from the parent
	// (GET_MODULE, GET_BLOBS); FetchRequests the requests that took.
	Fetches       int64
	FetchedBytes  int64
	FetchRequests int64
	// Served and ServedBytes count the blobs sent to direct children
	// (GET_MODULE and GET_BLOBS replies, LOAD_MODULE pushes); see
	// Service.ServedTo for each child's share.
	Served      int64
	ServedBytes int64
	// Pulled and PulledBytes count the blobs this context pulled from
	// descendants (PULL_BLOBS); Uploaded and UploadedBytes those it sent
	// to ancestors that pulled from it.
	Pulled        int64
	PulledBytes   int64
	Uploaded      int64
	UploadedBytes int64
}

// NewService serves st over r: it registers GET_MODULE and GET_BLOBS
// (direct children only), and LOAD_MODULE and PULL_BLOBS (parent authority
// only).
func NewService(r *routing.Router, st *Store, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = r.Broker().Logger()
	}
	s := &Service{
		r: r, st: st, log: log,
		up:       make(chan struct{}, MaxInflightPerChild),
		inflight: make(map[string]*flight),
		sent:     make(map[string]map[uint32]struct{}),
		serving:  make(map[uint32]int),
		edges:    make(map[uint32]*edge),
	}
	for _, h := range []struct {
		handle uint32
		fn     routing.HandlerFunc
		policy routing.Policy
	}{
		{wire.HandleGetModule, s.onGetModule, r.IsImmediateChild},
		{wire.HandleLoadModule, s.onLoadModule, r.HasParentAuthority},
		{wire.HandleGetBlobs, s.onGetBlobs, r.IsImmediateChild},
		{wire.HandlePullBlobs, s.onPullBlobs, r.HasParentAuthority},
	} {
		if _, err := r.AddHandler(h.fn, routing.HandlerOptions{Handle: h.handle, Policy: h.policy}); err != nil {
			for _, d := range []uint32{wire.HandleGetModule, wire.HandleLoadModule, wire.HandleGetBlobs, wire.HandlePullBlobs} {
				if d == h.handle {
					break
				}
				_ = r.DelHandler(d)
			}
			return nil, err
		}
	}
	return s, nil
}

// Store returns the service's store.
func (s *Service) Store() *Store { return s.st }

// Stats returns the transfer counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ServedTo returns the blobs and bytes sent to the direct child with ID
// child so far.
func (s *Service) ServedTo(child uint32) (blobs, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.edges[child]; e != nil {
		return e.blobs, e.bytes
	}
	return 0, 0
}

// noteServed counts blobs sent to child (or, with up set, to an ancestor).
func (s *Service) noteServed(child uint32, up bool, blobs, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up {
		s.stats.Uploaded += blobs
		s.stats.UploadedBytes += bytes
		return
	}
	s.stats.Served += blobs
	s.stats.ServedBytes += bytes
	e := s.edges[child]
	if e == nil {
		e = &edge{}
		s.edges[child] = e
	}
	e.blobs += blobs
	e.bytes += bytes
}

func (s *Service) noteFetched(requests, blobs, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.FetchRequests += requests
	s.stats.Fetches += blobs
	s.stats.FetchedBytes += bytes
}

// batchBytes is the bound on one batch reply: MaxBatchBytes, or half the
// max message size when that is smaller.
func (s *Service) batchBytes() int64 {
	return min(MaxBatchBytes, int64(s.r.MaxMessageSize())/2)
}

// acquireUp takes a slot for a request to the parent.
func (s *Service) acquireUp(ctx context.Context) error {
	select {
	case s.up <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) releaseUp() { <-s.up }

// acquireChild takes one of child's serving slots, or reports that it has
// none left.
func (s *Service) acquireChild(child uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving[child] >= MaxInflightPerChild {
		return false
	}
	s.serving[child]++
	return true
}

// releaseChild gives the slot back. It is called before the reply is sent,
// so that a child that sends its next request once it has the reply never
// finds the slot still taken.
func (s *Service) releaseChild(child uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving[child]--; s.serving[child] <= 0 {
		delete(s.serving, child)
	}
}

// Ensure returns the module (or any blob) with hash h, fetching it from
// the parent (which may fetch it from its own) when this context lacks it.
// Concurrent calls for one hash share one request.
func (s *Service) Ensure(ctx context.Context, h string) ([]byte, error) {
	if !ValidHash(h) {
		return nil, fmt.Errorf("%w: %q is not a sha256 hex digest", ErrBadHash, h)
	}
	if b, ok := s.st.Get(h); ok {
		return b, nil
	}
	parents := s.r.ParentIDs()
	if len(parents) == 0 {
		return nil, fmt.Errorf("%w: no context in the tree has blob %s", ErrNotFound, short(h))
	}
	f, own := s.join(h)
	if own {
		// The fetch runs under the broker's lifetime, not ctx, and on a
		// goroutine of its own: other callers may be waiting on the same
		// flight, and this one may give up before it lands.
		err := s.r.Broker().Go(func(bctx context.Context) {
			b, err := s.fetchOne(bctx, parents[0], h)
			s.finish(f, b, err)
		})
		if err != nil {
			s.finish(f, nil, fmt.Errorf("modules: fetch: %w", routing.ErrShutdown))
		}
	}
	select {
	case <-f.done:
		return f.b, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// join returns the flight for h, starting one (own) when none is in
// progress. An owner must finish it.
func (s *Service) join(h string) (f *flight, own bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joinLocked(h)
}

func (s *Service) joinLocked(h string) (*flight, bool) {
	if f := s.inflight[h]; f != nil {
		return f, false
	}
	f := &flight{h: h, done: make(chan struct{})}
	s.inflight[h] = f
	return f, true
}

// finish completes a flight this goroutine owns.
func (s *Service) finish(f *flight, b []byte, err error) {
	f.b, f.err = b, err
	s.mu.Lock()
	delete(s.inflight, f.h)
	s.mu.Unlock()
	close(f.done)
}

// fetchOne asks the parent for h with GET_MODULE and stores it cached.
func (s *Service) fetchOne(ctx context.Context, parent uint32, h string) ([]byte, error) {
	// A flight started just after another one finished finds the blob.
	if b, ok := s.st.Get(h); ok {
		return b, nil
	}
	if err := s.acquireUp(ctx); err != nil {
		return nil, err
	}
	body, _ := msgpack.Marshal(&wire.GetModule{Hash: h})
	cctx, cancel := context.WithTimeout(ctx, BlobCallTimeout)
	reply, err := s.r.Call(cctx, parent, wire.HandleGetModule, wire.EncMsgpack, body)
	cancel()
	s.releaseUp()
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("modules: fetch %s from context %d: %w", short(h), parent, err)
	}
	if err := s.st.PutVerified(h, reply.Body); err != nil {
		return nil, err
	}
	s.noteFetched(1, 1, int64(len(reply.Body)))
	return reply.Body, nil
}

// onGetModule answers a direct child's GET_MODULE, fetching upward first if
// needed (never on the reader goroutine).
func (s *Service) onGetModule(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	ctx := s.r.Broker().Context()
	var req wire.GetModule
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("decode GET_MODULE: %w: %v", routing.ErrBadRequest, err))
		return
	}
	if !ValidHash(req.Hash) {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("GET_MODULE: %w: %q is not a sha256 hex digest", routing.ErrBadRequest, req.Hash))
		return
	}
	if !s.acquireChild(m.Src) {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("GET_MODULE: %w: context %d has %d requests in flight", routing.ErrRefused, m.Src, MaxInflightPerChild))
		return
	}
	err := s.r.Broker().Go(func(ctx context.Context) {
		b, err := s.Ensure(ctx, req.Hash)
		s.releaseChild(m.Src)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%v: %w", err, routing.ErrNotFound)
			}
			_ = s.r.ReplyError(ctx, m, err)
			return
		}
		// Counted before the reply leaves: once the child has it, the
		// count already says so.
		s.noteServed(m.Src, false, 1, int64(len(b)))
		s.markSent(req.Hash, m.Src)
		if err := s.r.Reply(ctx, m, wire.EncRaw, b); err != nil {
			s.noteServed(m.Src, false, -1, -int64(len(b)))
		}
	})
	if err != nil {
		s.releaseChild(m.Src)
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("get module: %w", routing.ErrShutdown))
	}
}

func (s *Service) markSent(h string, child uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.sent[h]
	if set == nil {
		set = make(map[uint32]struct{})
		s.sent[h] = set
	}
	set[child] = struct{}{}
}

func (s *Service) hasSent(h string, child uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sent[h][child]
	return ok
}

// Push loads the module h (which this context must hold) into every context
// on the path from here to target, ahead of use. It returns once target
// holds it. Each edge carries the bytes at most once per run.
func (s *Service) Push(ctx context.Context, h string, target uint32) error {
	b, ok := s.st.Get(h)
	if !ok {
		return fmt.Errorf("%w: push %s: not held by context %d", ErrNotFound, short(h), s.r.ID())
	}
	if target == s.r.ID() {
		return nil
	}
	next, ok := s.r.NextHop(target)
	if !ok {
		return fmt.Errorf("modules: push %s to context %d: %w", short(h), target, routing.ErrNoRoute)
	}
	withData := !s.hasSent(h, next)
	err := s.load(ctx, next, wire.LoadModule{Hash: h, Target: target}, b, withData)
	if !withData && errors.Is(err, routing.ErrNotFound) {
		// The next hop had it once, and has evicted it since.
		withData = true
		err = s.load(ctx, next, wire.LoadModule{Hash: h, Target: target}, b, true)
	}
	if err != nil {
		return fmt.Errorf("modules: push %s to context %d via %d: %w", short(h), target, next, err)
	}
	if withData {
		s.noteServed(next, false, 1, int64(len(b)))
		s.markSent(h, next)
	}
	return nil
}

// load sends one LOAD_MODULE to next, with the bytes b when withData.
func (s *Service) load(ctx context.Context, next uint32, req wire.LoadModule, b []byte, withData bool) error {
	if withData {
		req.Data = b
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return err
	}
	_, err = s.r.Call(ctx, next, wire.HandleLoadModule, wire.EncMsgpack, body)
	return err
}

// onLoadModule stores a module pushed by the parent and passes it on.
func (s *Service) onLoadModule(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	ctx := s.r.Broker().Context()
	var req wire.LoadModule
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("decode LOAD_MODULE: %w: %v", routing.ErrBadRequest, err))
		return
	}
	err := s.r.Broker().Go(func(ctx context.Context) {
		var err error
		if req.Data != nil {
			err = s.st.PutVerified(req.Hash, req.Data)
		} else if !s.st.Has(req.Hash) {
			err = fmt.Errorf("%w: %s was not sent and is not held here: %w", ErrNotFound, short(req.Hash), routing.ErrNotFound)
		}
		if err == nil {
			err = s.Push(ctx, req.Hash, req.Target)
		}
		if err != nil {
			_ = s.r.ReplyError(ctx, m, err)
			return
		}
		_ = s.r.Reply(ctx, m, wire.EncMsgpack, nil)
	})
	if err != nil {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("load module: %w", routing.ErrShutdown))
	}
}
