package routing_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// askBlock sends one ALLOCATE_ID from n to the master and returns the
// outcome.
func (n *node) askBlock(t testing.TB) error {
	t.Helper()
	_, err := n.r.Call(bg(t), 0, wire.HandleAllocateID, wire.EncMsgpack, nil)
	return err
}

// TestIDBlockShare: the default block bound halves with each level below
// the master, down to one block.
func TestIDBlockShare(t *testing.T) {
	for _, tt := range []struct{ depth, want int }{
		{0, routing.DefaultMaxIDBlocksPerChild},
		{1, routing.DefaultMaxIDBlocksPerChild / 2},
		{2, routing.DefaultMaxIDBlocksPerChild / 4},
		{12, 1},
		{13, 1},
		{1000, 1},
	} {
		if got := routing.IDBlockShare(tt.depth); got != tt.want {
			t.Errorf("IDBlockShare(%d) = %d, want %d", tt.depth, got, tt.want)
		}
	}
}

// TestIDBlockShareBelowMaster: a router between a child and the master
// bounds the blocks of each child's subtree. Grandchild G asks A for blocks
// through A1 until A's bound for A1's stream (2, A1's first block included)
// refuses it with a dead ErrRefused that names the bound; every later
// request gets the same refusal from A, never a refusal from A1 for
// requests in flight (A's refusals end A1's records of them). A and A's
// other child A2 can still take blocks: G used up only A1's share.
func TestIDBlockShareBelowMaster(t *testing.T) {
	testutil.VerifyNone(t)
	const share = 2
	master := newMaster(t, routing.Config{})
	a := master.attach(t, 0, routing.Config{MaxIDBlocksPerChild: share})
	a1 := a.attach(t, 0, routing.Config{})
	g := a1.attach(t, 0, routing.Config{}) // A1's first block
	if err := g.askBlock(t); err != nil {
		t.Fatalf("G's first ALLOCATE_ID = %v", err)
	}
	want := fmt.Sprintf("ID block limit reached: the subtree of context %d holds %d blocks of %d IDs and has asked for 0 more (max %d per child of context %d)",
		a1.id(), share, routing.IDBlockSize, share, a.id())
	for i := range 4 * routing.MaxAllocsInFlight {
		err := g.askBlock(t)
		if re := remote(t, err, routing.ErrRefused, a.id()); !strings.Contains(re.Message, want) {
			t.Fatalf("request %d past the share: %v, want A's refusal %q", i, err, want)
		}
	}
	a.waitLog(t, "ID block limit reached")
	if err := a.askBlock(t); err != nil {
		t.Fatalf("A's own ALLOCATE_ID = %v", err)
	}
	a2 := a.attach(t, 0, routing.Config{})
	if err := a2.askBlock(t); err != nil {
		t.Fatalf("A2's ALLOCATE_ID = %v", err)
	}
	blk, err := a2.r.AllocateID(bg(t))
	if err != nil {
		t.Fatalf("A2's AllocateID = %v", err)
	}
	master.call(t, a2.attach(t, blk, routing.Config{}).id(), "A2's child")
}

// TestAllocInFlightPerRequester: ALLOCATE_ID requests in flight are bounded
// per requester, not per stream. The master holds every request unanswered;
// X, a child of I2, floods requests from its own ID and from four IDs it
// announced in its block. I2 passes up MaxAllocsInFlight per requester and
// refuses the rest; its cousin Y's request, behind the same stream at I1,
// still reaches the master.
func TestAllocInFlightPerRequester(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	i1 := master.attach(t, 0, routing.Config{})
	i2 := i1.attach(t, 0, routing.Config{})
	x := i2.attach(t, 0, routing.Config{})
	y := i2.attach(t, 0, routing.Config{})
	blk, err := x.r.AllocateID(bg(t)) // X's block, for its fake children
	if err != nil {
		t.Fatal(err)
	}
	srcs := []uint32{x.id()}
	for i := range uint32(4) {
		x.announce(t, wire.HandleAddRoute, blk+i)
		srcs = append(srcs, blk+i)
	}
	x.sync(t)
	held := make(chan *wire.Message, 256)
	if _, err := master.r.AddHandler(func(m *wire.Message, _ *broker.Stream) { held <- m },
		routing.HandlerOptions{Handle: wire.HandleAllocateID, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	const perSrc = 3 * routing.MaxAllocsInFlight
	handle := wire.FirstDynamicHandle
	for _, src := range srcs {
		for range perSrc {
			handle++
			x.raw(t, &wire.Message{Enc: wire.EncMsgpack, Dst: 0, Src: src, Auth: x.id(), Handle: wire.HandleAllocateID, ReplyTo: handle})
		}
	}
	x.sync(t) // behind the flood on every hop: the master has what passed
	fromX := map[uint32]int{}
	for len(held) > 0 {
		fromX[(<-held).Src]++
	}
	for _, src := range srcs {
		if fromX[src] != routing.MaxAllocsInFlight {
			t.Errorf("master got %d requests from %d, want %d", fromX[src], src, routing.MaxAllocsInFlight)
		}
	}
	i2.waitLog(t, "too many ALLOCATE_ID requests in flight")
	p, err := y.r.CallAsync(bg(t), 0, wire.HandleAllocateID, wire.EncMsgpack, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Cancel()
	ended := make(chan error, 1)
	go func() {
		_, err := p.Wait(bg(t))
		ended <- err
	}()
	select {
	case m := <-held:
		if m.Src != y.id() {
			t.Fatalf("master got %v, want Y's request", m)
		}
	case err := <-ended:
		t.Fatalf("Y's ALLOCATE_ID ended with %v, want it at the master", err)
	case <-time.After(waitTimeout):
		t.Fatal("Y's ALLOCATE_ID never reached the master")
	}
}

// TestAnnounceRacingClose: A passes up A1's ADD_ROUTE for G while A1's
// stream closes. The close runs at once (it does not wait for the
// announcement), and the master ends with no route to G: the withdrawal
// follows the announcement, never the other way round (which the master
// would refuse, then keep a stale route).
func TestAnnounceRacingClose(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	g, err := tr.a1.r.AllocateID(bg(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	defer routing.SetAnnounceHook(func(r *routing.Router, id uint32, finished bool) {
		if r != tr.a.r || id != g {
			return
		}
		if finished {
			close(done)
			return
		}
		gone := r.Disconnected(g)
		tr.a1.down.Close() // A1 dies as A is about to pass G up
		select {
		case <-gone: // A's close hook is done, while A's reader is held here
		case <-time.After(waitTimeout):
			errs <- errors.New("A's close hook waited for the announcement")
		}
	})()
	tr.a1.announce(t, wire.HandleAddRoute, g)
	wait(t, done, "A's announcement")
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	tr.a.sync(t)
	if s := tr.master.r.Stream(g); s != nil {
		t.Fatalf("master routes %d via %s after its stream closed", g, s.Name())
	}
	checkRoutes(t, tr.master, tr.a.id(), tr.b.id(), tr.c.id())
	wait(t, tr.master.r.Disconnected(g), "master's Disconnected(G)")
	if strings.Contains(tr.master.logs.String(), "DEL_ROUTE for an ID not routed") {
		t.Errorf("master log = %q, want no refused withdrawal", tr.master.logs)
	}
}
