package routing_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// TestAllocateID: the master counts from 1; another context takes blocks of
// IDBlockSize from the master's counter, asking once per block, which the
// master's own next ID shows.
func TestAllocateID(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	alloc := func(n *node) uint32 {
		t.Helper()
		id, err := n.r.AllocateID(bg(t))
		if err != nil {
			t.Fatalf("context %d: AllocateID = %v", n.id(), err)
		}
		return id
	}
	for want := uint32(1); want <= 3; want++ {
		if got := alloc(master); got != want {
			t.Fatalf("master AllocateID = %d, want %d", got, want)
		}
	}
	child := master.attach(t, 1, routing.Config{}) // its ID was chosen by hand
	for i := range uint32(routing.IDBlockSize) {
		if got, want := alloc(child), 4+i; got != want {
			t.Fatalf("child's AllocateID #%d = %d, want %d", i, got, want)
		}
	}
	if got, want := alloc(child), uint32(4+routing.IDBlockSize); got != want {
		t.Fatalf("child's first ID from its second block = %d, want %d", got, want)
	}
	if got, want := alloc(master), uint32(4+2*routing.IDBlockSize); got != want {
		t.Fatalf("master AllocateID after two blocks = %d, want %d (one request per block)", got, want)
	}

	// Concurrently, two hops from the master: every ID unique, one request
	// per block.
	grandchild := child.attach(t, 0, routing.Config{}) // the child's next ID, 5+IDBlockSize
	const goroutines, each = 8, 250                    // exactly two blocks
	ids := make(chan uint32, goroutines*each)
	errs := make(chan error, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			<-start
			for range each {
				id, err := grandchild.r.AllocateID(context.Background())
				if err != nil {
					errs <- err
					return
				}
				ids <- id
			}
		})
	}
	close(start)
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	first := uint32(5 + 2*routing.IDBlockSize)
	seen := map[uint32]bool{}
	for id := range ids {
		if seen[id] || id < first || id >= first+2*routing.IDBlockSize {
			t.Fatalf("grandchild got ID %d twice or outside [%d, %d)", id, first, first+2*routing.IDBlockSize)
		}
		seen[id] = true
	}
	if got, want := alloc(master), first+2*routing.IDBlockSize; got != want {
		t.Fatalf("master AllocateID after the grandchild's blocks = %d, want %d", got, want)
	}
}

func TestAllocateIDCancelled(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	// The master takes ALLOCATE_ID requests and never answers them.
	requests := make(chan *wire.Message, 4)
	if _, err := master.r.AddHandler(func(m *wire.Message, _ *broker.Stream) { requests <- m },
		routing.HandlerOptions{Handle: wire.HandleAllocateID, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	child := master.attach(t, 1, routing.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-requests
		cancel()
	}()
	if _, err := child.r.AllocateID(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("AllocateID with a cancelled ctx = %v, want context.Canceled", err)
	}
	// A second caller waits for the request already in flight.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := child.r.AllocateID(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AllocateID while a request is in flight = %v, want context.DeadlineExceeded", err)
	}
	if len(requests) != 0 {
		t.Fatalf("%d more ALLOCATE_ID requests, want one in flight at a time", len(requests))
	}
	child.b.Close()
	if _, err := child.r.AllocateID(bg(t)); !errors.Is(err, routing.ErrShutdown) && !errors.Is(err, broker.ErrShutdown) {
		t.Fatalf("AllocateID after the broker closed = %v, want a shutdown error", err)
	}
}
