package routing

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// IDBlockSize is how many context IDs the master hands out per ALLOCATE_ID.
const IDBlockSize = 1000

// idAllocator hands out context IDs. In the master it owns the counter; in
// any other context it owns a block from the master and asks for the next
// block when that one is used up. IDs are never reused within a run.
type idAllocator struct {
	r *Router

	mu        sync.Mutex
	next, end uint32        // guarded by mu: the block [next, end) left to hand out
	refill    chan struct{} // guarded by mu: closed when an in-flight request ends
	refillErr error         // guarded by mu: the outcome of the last request
}

// AllocateID returns a fresh context ID for a new child of this context. In
// the master it never blocks; elsewhere it asks the master for a block only
// when its own block is used up (one request in flight at a time).
func (r *Router) AllocateID(ctx context.Context) (uint32, error) {
	return r.ids.allocate(ctx)
}

func (a *idAllocator) allocate(ctx context.Context) (uint32, error) {
	for {
		a.mu.Lock()
		if a.r.IsMaster() {
			id := a.next
			if id == 0 || id == ^uint32(0) {
				a.mu.Unlock()
				return 0, fmt.Errorf("routing: context IDs exhausted")
			}
			a.next++
			a.mu.Unlock()
			return id, nil
		}
		if a.next < a.end {
			id := a.next
			a.next++
			a.mu.Unlock()
			return id, nil
		}
		wait := a.refill
		if wait == nil {
			wait = make(chan struct{})
			a.refill = wait
			a.mu.Unlock()
			if err := a.r.b.Go(func(context.Context) { a.fetch(wait) }); err != nil {
				a.mu.Lock()
				a.refill = nil
				a.mu.Unlock()
				return 0, fmt.Errorf("routing: allocate ID: %w", err)
			}
		} else {
			a.mu.Unlock()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		a.mu.Lock()
		err := a.refillErr
		a.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
}

func (a *idAllocator) fetch(done chan struct{}) {
	ctx := a.r.b.Context()
	reply, err := a.r.Call(ctx, 0, wire.HandleAllocateID, wire.EncMsgpack, nil)
	var blk wire.IDBlock
	if err == nil {
		err = wire.Unmarshal(reply.Body, &blk)
	}
	if err == nil && (blk.Start == 0 || blk.End <= blk.Start) {
		err = fmt.Errorf("bad block [%d, %d)", blk.Start, blk.End)
	}
	a.mu.Lock()
	if err != nil {
		a.refillErr = fmt.Errorf("routing: allocate ID block from master: %w", err)
	} else {
		a.refillErr = nil
		a.next, a.end = blk.Start, blk.End
	}
	a.refill = nil
	a.mu.Unlock()
	close(done)
}

// idBlock is an ID block granted by the master to owner, a context below the
// stream whose peer keeps the record.
type idBlock struct {
	start, end, owner uint32
}

// allocKey names an ALLOCATE_ID request passed up: its requester and reply
// handle, which the master's answer is addressed to.
type allocKey struct{ src, handle uint32 }

// ownerLocked returns the context that was granted the block holding id.
// p.blocks is sorted by start and the blocks never overlap.
func (p *peer) ownerLocked(id uint32) (uint32, bool) {
	i := sort.Search(len(p.blocks), func(i int) bool { return p.blocks[i].end > id })
	if i < len(p.blocks) && p.blocks[i].start <= id {
		return p.blocks[i].owner, true
	}
	return 0, false
}

// onPathLocked reports whether src is dst or one of dst's ancestors below
// this router, on the stream of p: the contexts that may report a message to
// dst as dead. A context's parent is the owner of the block its ID came
// from; the direct child at the other end of the stream allocated from this
// router's own counter or block, and ends the walk. Owners are older than
// the blocks they own, so the walk only goes down in ID and ends.
func (p *peer) onPathLocked(dst, src uint32) bool {
	cur := dst
	for range len(p.blocks) + 1 {
		if src == cur {
			return true
		}
		if cur == p.remote {
			return false
		}
		owner, ok := p.ownerLocked(cur)
		if !ok || owner >= cur {
			return false
		}
		cur = owner
	}
	return false
}

// grantLocked records blk as granted to owner below the stream of p; false
// when p is closed or already holds the maximum.
func (r *Router) grantLocked(p *peer, blk wire.IDBlock, owner uint32) bool {
	if p.closed || len(p.blocks) >= r.maxBlocks {
		return false
	}
	// Grants arrive in the master's counter order, so this appends; the
	// search keeps the order whatever happens.
	i := sort.Search(len(p.blocks), func(i int) bool { return p.blocks[i].start >= blk.Start })
	if i < len(p.blocks) && p.blocks[i].start < blk.End || i > 0 && p.blocks[i-1].end > blk.Start {
		return false // overlaps a block already recorded: not a grant of the master's
	}
	p.blocks = slices.Insert(p.blocks, i, idBlock{start: blk.Start, end: blk.End, owner: owner})
	return true
}

// noteForward follows, in a router between a child and the master, the
// ALLOCATE_ID requests going up and their answers coming down, so the router
// knows which IDs each child's subtree was granted (it accepts ADD_ROUTE only
// for those). It reports false when m must not be forwarded (it has been
// answered with a dead message).
//
// Going up, a request is refused when its requester already has
// MaxAllocsInFlight requests passed up and unanswered, when it repeats one
// in flight, or when the child's subtree holds, with the requests in flight,
// its share of ID blocks (MaxIDBlocksPerChild). Coming down, whatever the
// parent's side sends to the request's reply handle ends it: the master's
// grant (the only one recorded), the master's refusal, or a dead message
// made by any router above (its own bound, no route, a disconnection).
func (r *Router) noteForward(m *wire.Message, in *peer, out *broker.Stream) bool {
	switch {
	case !in.isParent && m.Dst == 0 && m.Handle == wire.HandleAllocateID && m.ReplyTo != 0 && !m.IsDead():
		r.mu.Lock()
		if in.closed {
			r.mu.Unlock()
			return true // its routes are gone; nothing to record
		}
		key := allocKey{m.Src, m.ReplyTo}
		_, dup := r.allocs[key]
		var why, reason string
		var args []any
		switch {
		case dup:
			why = "ALLOCATE_ID repeating a request in flight"
			reason = "refused by policy: ALLOCATE_ID repeats a request in flight (same src_id and reply_to)"
			args = []any{"src", m.Src, "reply_to", m.ReplyTo}
		case in.allocsBySrc[m.Src] >= MaxAllocsInFlight:
			why = "too many ALLOCATE_ID requests in flight"
			reason = fmt.Sprintf("refused by policy: more than %d ALLOCATE_ID requests in flight from context %d", MaxAllocsInFlight, m.Src)
			args = []any{"src", m.Src, "max", MaxAllocsInFlight}
		case len(in.blocks)+in.allocs >= r.maxBlocks:
			why = "ID block limit reached"
			reason = fmt.Sprintf("refused by policy: ID block limit reached: the subtree of context %d holds %d blocks of %d IDs and has asked for %d more (max %d per child of context %d)",
				in.remote, len(in.blocks), IDBlockSize, in.allocs, r.maxBlocks, r.id)
			args = []any{"src", m.Src, "child", in.remote, "blocks", len(in.blocks), "in_flight", in.allocs, "max_blocks", r.maxBlocks}
		}
		if why != "" {
			r.mu.Unlock()
			r.refuse(in, why, args...)
			r.sendDead(r.b.Context(), m, wire.CodeRefused, reason, true)
			return false
		}
		r.allocs[key] = in
		r.allocsInFlight.Add(1)
		in.allocs++
		if in.allocsBySrc == nil {
			in.allocsBySrc = make(map[uint32]int)
		}
		in.allocsBySrc[m.Src]++
		r.mu.Unlock()
	case in.isParent && r.allocsInFlight.Load() > 0 && !out.Data().(*peer).isParent:
		key := allocKey{m.Dst, m.Handle}
		r.mu.RLock()
		_, hit := r.allocs[key]
		r.mu.RUnlock()
		if !hit {
			// The usual case: traffic down while some request is in
			// flight. Only an answer to one takes the write lock.
			break
		}
		r.mu.Lock()
		if p, ok := r.allocs[key]; ok {
			r.forgetAllocLocked(key, p)
			var blk wire.IDBlock
			if m.Src == 0 && m.Enc == wire.EncMsgpack && !m.IsDead() && wire.Unmarshal(m.Body, &blk) == nil && blk.Start != 0 && blk.End > blk.Start {
				r.grantLocked(p, blk, m.Dst)
			}
		}
		r.mu.Unlock()
	}
	return true
}

// unnoteForward ends the record noteForward made for m, a request from the
// stream of in that could not be passed up: it was answered here.
func (r *Router) unnoteForward(m *wire.Message, in *peer) {
	if in.isParent || m.Dst != 0 || m.Handle != wire.HandleAllocateID || m.IsDead() {
		return
	}
	r.mu.Lock()
	key := allocKey{m.Src, m.ReplyTo}
	if p, ok := r.allocs[key]; ok && p == in {
		r.forgetAllocLocked(key, p)
	}
	r.mu.Unlock()
}

// forgetAllocLocked removes the request key, passed up from the stream of p.
func (r *Router) forgetAllocLocked(key allocKey, p *peer) {
	delete(r.allocs, key)
	r.allocsInFlight.Add(-1)
	p.allocs--
	if p.allocsBySrc[key.src]--; p.allocsBySrc[key.src] <= 0 {
		delete(p.allocsBySrc, key.src)
	}
}

// block reserves IDBlockSize IDs in the master.
func (a *idAllocator) block() (wire.IDBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := a.next
	if uint64(start)+IDBlockSize >= uint64(^uint32(0)) {
		return wire.IDBlock{}, fmt.Errorf("routing: context IDs exhausted: %w", ErrRefused)
	}
	a.next += IDBlockSize
	return wire.IDBlock{Start: start, End: start + IDBlockSize}, nil
}

// onAllocateID answers ALLOCATE_ID in the master. The block is recorded
// against the stream of the direct child whose subtree asked: ADD_ROUTE from
// that stream is accepted only for IDs in its blocks, and the subtree may
// hold at most MaxIDBlocksPerChild of them.
func (r *Router) onAllocateID(m *wire.Message, in *broker.Stream) {
	if m.IsDead() {
		return
	}
	ctx := r.b.Context()
	if in == nil {
		_ = r.ReplyError(ctx, m, fmt.Errorf("routing: ALLOCATE_ID from the master itself: %w", ErrBadRequest))
		return
	}
	p := in.Data().(*peer)
	r.mu.Lock()
	if p.closed {
		r.mu.Unlock()
		return
	}
	if len(p.blocks) >= r.maxBlocks {
		r.mu.Unlock()
		r.refuse(p, "ID block limit reached", "stream", in.Name(), "src", m.Src, "max_blocks", r.maxBlocks)
		_ = r.ReplyError(ctx, m, fmt.Errorf("routing: ID block limit reached: the subtree of context %d holds %d blocks of %d IDs (max %d): %w",
			p.remote, len(p.blocks), IDBlockSize, r.maxBlocks, ErrRefused))
		return
	}
	blk, err := r.ids.block() // lock order: Router.mu, then idAllocator.mu
	if err == nil {
		r.grantLocked(p, blk, m.Src)
	}
	r.mu.Unlock()
	if err != nil {
		_ = r.ReplyError(ctx, m, err)
		return
	}
	body, _ := msgpack.Marshal(&blk)
	_ = r.Reply(ctx, m, wire.EncMsgpack, body)
	r.log.Debug("allocated ID block", "to", m.Src, "start", blk.Start, "end", blk.End)
}
