package routing

import (
	"context"
	"fmt"
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

// block reserves IDBlockSize IDs in the master.
func (a *idAllocator) block() (wire.IDBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := a.next
	if uint64(start)+IDBlockSize >= uint64(^uint32(0)) {
		return wire.IDBlock{}, fmt.Errorf("routing: context IDs exhausted")
	}
	a.next += IDBlockSize
	return wire.IDBlock{Start: start, End: start + IDBlockSize}, nil
}

// onAllocateID answers ALLOCATE_ID in the master.
func (r *Router) onAllocateID(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	blk, err := r.ids.block()
	if err != nil {
		_ = r.ReplyError(r.b.Context(), m, err)
		return
	}
	body, _ := msgpack.Marshal(&blk)
	_ = r.Reply(r.b.Context(), m, wire.EncMsgpack, body)
	r.log.Debug("allocated ID block", "to", m.Src, "start", blk.Start, "end", blk.End)
}
