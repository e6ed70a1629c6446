package modules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Service moves modules between a Store and the rest of the tree through a
// router. It is safe for concurrent use.
type Service struct {
	r   *routing.Router
	st  *Store
	log *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight             // guarded by mu: fetches from the parent in progress
	sent     map[string]map[uint32]struct{} // guarded by mu: hash -> direct children known to hold it

	fetches atomic.Int64 // GET_MODULE requests sent to the parent
	served  atomic.Int64 // module bodies sent to children
}

type flight struct {
	done chan struct{}
	b    []byte
	err  error
}

// Stats counts what crossed this context's edges.
type Stats struct {
	// Fetches is the number of modules requested from the parent.
	Fetches int64
	// Served is the number of module bodies sent to children.
	Served int64
}

// NewService serves st over r: it registers GET_MODULE (direct children
// only) and LOAD_MODULE (parent authority only).
func NewService(r *routing.Router, st *Store, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = r.Broker().Logger()
	}
	s := &Service{r: r, st: st, log: log, inflight: make(map[string]*flight), sent: make(map[string]map[uint32]struct{})}
	if _, err := r.AddHandler(s.onGetModule, routing.HandlerOptions{Handle: wire.HandleGetModule, Policy: r.IsImmediateChild}); err != nil {
		return nil, err
	}
	if _, err := r.AddHandler(s.onLoadModule, routing.HandlerOptions{Handle: wire.HandleLoadModule, Policy: r.HasParentAuthority}); err != nil {
		return nil, err
	}
	return s, nil
}

// Store returns the service's store.
func (s *Service) Store() *Store { return s.st }

// Stats returns the transfer counters.
func (s *Service) Stats() Stats {
	return Stats{Fetches: s.fetches.Load(), Served: s.served.Load()}
}

// Ensure returns the module with hash h, fetching it from the parent (which
// may fetch it from its own) when this context lacks it. Concurrent calls
// for one hash share one request.
func (s *Service) Ensure(ctx context.Context, h string) ([]byte, error) {
	if !ValidHash(h) {
		return nil, fmt.Errorf("%w: %q is not a sha256 hex digest", ErrBadHash, h)
	}
	if b, ok := s.st.Get(h); ok {
		return b, nil
	}
	parents := s.r.ParentIDs()
	if len(parents) == 0 {
		return nil, fmt.Errorf("%w: no context in the tree has module %s", ErrNotFound, short(h))
	}
	s.mu.Lock()
	f, ok := s.inflight[h]
	if !ok {
		f = &flight{done: make(chan struct{})}
		s.inflight[h] = f
		s.mu.Unlock()
		f.b, f.err = s.fetch(parents[0], h)
		s.mu.Lock()
		delete(s.inflight, h)
		s.mu.Unlock()
		close(f.done)
	} else {
		s.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.b, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch asks the parent for h. It runs under the broker's lifetime, not a
// caller's ctx: other callers may be waiting on the same flight.
func (s *Service) fetch(parent uint32, h string) ([]byte, error) {
	s.fetches.Add(1)
	body, _ := msgpack.Marshal(&wire.GetModule{Hash: h})
	reply, err := s.r.Call(s.r.Broker().Context(), parent, wire.HandleGetModule, wire.EncMsgpack, body)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("modules: fetch %s from context %d: %w", short(h), parent, err)
	}
	if err := s.st.PutVerified(h, reply.Body); err != nil {
		return nil, err
	}
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
	err := s.r.Broker().Go(func(ctx context.Context) {
		b, err := s.Ensure(ctx, req.Hash)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("%v: %w", err, routing.ErrNotFound)
			}
			_ = s.r.ReplyError(ctx, m, err)
			return
		}
		// Counted before the reply leaves: once the child has it, the
		// count already says so.
		s.served.Add(1)
		s.markSent(req.Hash, m.Src)
		if err := s.r.Reply(ctx, m, wire.EncRaw, b); err != nil {
			s.served.Add(-1)
		}
	})
	if err != nil {
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
	req := wire.LoadModule{Hash: h, Target: target}
	withData := !s.hasSent(h, next)
	if withData {
		req.Data = b
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return err
	}
	if _, err := s.r.Call(ctx, next, wire.HandleLoadModule, wire.EncMsgpack, body); err != nil {
		return fmt.Errorf("modules: push %s to context %d via %d: %w", short(h), target, next, err)
	}
	if withData {
		s.served.Add(1)
		s.markSent(h, next)
	}
	return nil
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
			err = fmt.Errorf("%w: %s was not sent and is not held here", ErrNotFound, short(req.Hash))
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
