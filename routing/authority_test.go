package routing_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// raw writes m straight onto n's stream to its parent, past the router's
// stamping: what a compromised context can do.
func (n *node) raw(t testing.TB, m *wire.Message) {
	t.Helper()
	if err := n.up.Send(bg(t), m); err != nil {
		t.Fatalf("context %d: raw send %v: %v", n.id(), m, err)
	}
}

// announce writes a forged ADD_ROUTE (or DEL_ROUTE) for id from n.
func (n *node) announce(t testing.TB, handle, id uint32) {
	t.Helper()
	body, _ := msgpack.Marshal(&wire.Route{ID: id, Name: fmt.Sprintf("forged%d", id)})
	n.raw(t, &wire.Message{Enc: wire.EncMsgpack, Dst: n.r.ParentIDs()[0], Src: n.id(), Auth: n.id(), Handle: handle, Body: body})
}

// waitLog waits for want in n's log.
func (n *node) waitLog(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(n.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("context %d: log = %q, want %q", n.id(), n.logs, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAddRouteAuthority: a child may announce only IDs from blocks granted
// to its own subtree. Squatting the master's next ID, an ID from a sibling's
// block, a routed ID or an ancestor's ID is refused, logged, and answered
// with a dead message the child logs; the master's next child and the
// sibling's next child still get working IDs.
func TestAddRouteAuthority(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	b1 := tr.b.attach(t, 0, routing.Config{}) // B now holds a block
	tests := []struct {
		name   string
		id     uint32
		reason string
	}{
		{"the master's next ID", b1.id() + routing.IDBlockSize, "never allocated below this stream"},
		{"an ID in a sibling's block", b1.id() + 1, "never allocated below this stream"},
		{"a sibling's ID", tr.c.id(), "already routed elsewhere"},
		{"the master's ID", 0, "this context's or an ancestor's ID"},
		{"an unallocated high ID", 1 << 30, "never allocated below this stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr.a.announce(t, wire.HandleAddRoute, tt.id)
			tr.master.waitLog(t, tt.reason)
			tr.a.waitLog(t, fmt.Sprintf("(ID %d)", tt.id))
			if s := tr.master.r.Stream(tt.id); s == tr.a.down {
				t.Fatalf("master routes %d via A after a forged ADD_ROUTE", tt.id)
			}
		})
	}
	if !strings.Contains(tr.a.logs.String(), "parent refused a route announcement") {
		t.Errorf("A's log = %q, want the refusal logged", tr.a.logs)
	}
	// The master's next child and B's next child get fresh, reachable IDs.
	next := tr.master.attach(t, 0, routing.Config{})
	if next.id() != tests[0].id {
		t.Fatalf("master's next child got %d, want %d", next.id(), tests[0].id)
	}
	tr.master.call(t, next.id(), "fresh")
	b2 := tr.b.attach(t, 0, routing.Config{})
	if b2.id() != tests[1].id {
		t.Fatalf("B's next child got %d, want %d", b2.id(), tests[1].id)
	}
	tr.master.call(t, b2.id(), "fresh")
	tr.a1.call(t, b2.id(), "from A's subtree")

	// An ID in A's own block is A's to announce.
	own := tr.a1.id() + 1
	tr.a.announce(t, wire.HandleAddRoute, own)
	tr.a1.sync(t)
	if s := tr.master.r.Stream(own); s != tr.a.down {
		t.Fatalf("master's route for %d (in A's block) = %v, want A's stream", own, s)
	}
}

// TestAddRouteGrandchildBlocks: an intermediate context checks the same way
// for its own children: it knows the blocks that went down each child's
// stream, so a grandchild may not announce an ID from its sibling's block,
// while the IDs it was granted pass every hop.
func TestAddRouteGrandchildBlocks(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	a2 := tr.a.attach(t, 0, routing.Config{})
	g1 := tr.a1.attach(t, 0, routing.Config{}) // A1's block, granted via A
	tr.master.call(t, g1.id(), "two hops down")
	a2.announce(t, wire.HandleAddRoute, g1.id()+1)
	tr.a.waitLog(t, "never allocated below this stream")
	g2 := tr.a1.attach(t, 0, routing.Config{})
	if g2.id() != g1.id()+1 {
		t.Fatalf("A1's next child = %d, want %d", g2.id(), g1.id()+1)
	}
	tr.master.call(t, g2.id(), "not hijacked")
	if s := tr.a.r.Stream(g2.id()); s != tr.a1.down {
		t.Fatalf("A routes %d via %v, want A1's stream", g2.id(), s.Name())
	}
}

// TestRouteBound: a stream holds at most MaxRoutesPerStream routes; past it
// ADD_ROUTE is refused with a clear log, and the rest of the tree works.
func TestRouteBound(t *testing.T) {
	testutil.VerifyNone(t)
	const max = 5
	tr := newTree(t, routing.Config{MaxRoutesPerStream: max})
	// A's stream holds A and A1; A's block holds A1 and the rest.
	for i := range uint32(10) {
		tr.a.announce(t, wire.HandleAddRoute, tr.a1.id()+1+i)
	}
	tr.master.waitLog(t, fmt.Sprintf("route limit (max %d per stream)", max))
	tr.a.sync(t)
	n := 0
	for _, id := range tr.master.r.Routes() {
		if tr.master.r.Stream(id) == tr.a.down {
			n++
		}
	}
	if n != max {
		t.Fatalf("master routes %d IDs via A, want the bound %d", n, max)
	}
	tr.master.call(t, tr.b.id(), "sibling")
	tr.master.call(t, tr.master.attach(t, 0, routing.Config{}).id(), "fresh")
}

// TestIDBlockBound: a child's subtree gets at most MaxIDBlocksPerChild ID
// blocks; the next ALLOCATE_ID fails with ErrRefused and says why, for the
// child and for its own children (same subtree), while a sibling and the
// master still allocate.
func TestIDBlockBound(t *testing.T) {
	testutil.VerifyNone(t)
	const max = 3
	tr := newTree(t, routing.Config{MaxIDBlocksPerChild: max})
	ask := func(n *node) error {
		_, err := n.r.Call(bg(t), 0, wire.HandleAllocateID, wire.EncMsgpack, nil)
		return err
	}
	// A took one block for A1; A1 and A take the rest.
	if err := ask(tr.a1); err != nil {
		t.Fatal(err)
	}
	if err := ask(tr.a); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{tr.a, tr.a1} {
		err := ask(n)
		if !errors.Is(err, routing.ErrRefused) || !strings.Contains(err.Error(), fmt.Sprintf("ID block limit reached: the subtree of context %d holds %d blocks of %d IDs (max %d)", tr.a.id(), max, routing.IDBlockSize, max)) {
			t.Fatalf("context %d: ALLOCATE_ID past the bound = %v, want ErrRefused saying so", n.id(), err)
		}
	}
	tr.master.waitLog(t, "ID block limit reached")
	if _, err := tr.b.r.AllocateID(bg(t)); err != nil {
		t.Fatalf("sibling's AllocateID = %v", err)
	}
	tr.master.call(t, tr.master.attach(t, 0, routing.Config{}).id(), "fresh")
}

// TestDeadReplySource: a dead message for a pending call is accepted only
// from a router that had the request in hand: for a call to A1, A (on the
// path) may report it dead; A's other child A2, a sibling B, or A claiming
// to fail a call to B, may not. Refused ones are logged and the call still
// gets its genuine reply.
func TestDeadReplySource(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	a2 := tr.a.attach(t, 0, routing.Config{})
	g := tr.a1.attach(t, 0, routing.Config{}) // A1's block, granted through A
	deadBody, _ := msgpack.Marshal(&wire.ErrorBody{Code: wire.CodeDisconnected, Message: "forged"})
	forge := func(from *node, handle uint32) {
		from.raw(t, &wire.Message{Enc: wire.EncError, Dst: 0, Src: from.id(), Auth: from.id(), Handle: handle, ReplyTo: wire.IsDead, Body: deadBody})
	}
	tests := []struct {
		name   string
		callee *node
		forger *node
		accept bool
	}{
		{"A fails a call to its sibling B", tr.b, tr.a, false},
		{"A2 fails a call to its sibling A1", tr.a1, a2, false},
		{"A1 fails a call to its parent A", tr.a, tr.a1, false},
		{"A reports a call to its child A1 dead", tr.a1, tr.a, true},
		{"A1 reports a call to its child G dead", g, tr.a1, true},
		{"A reports a call to its grandchild G dead", g, tr.a, true},
		{"A2 fails a call to its nephew G", g, a2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tr.master.r.CallAsync(bg(t), tt.callee.id(), hHold, wire.EncRaw, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Cancel()
			req := tt.callee.nextHeld(t)
			forge(tt.forger, p.Handle())
			if tt.accept {
				_, err := p.Wait(bg(t))
				if re := remote(t, err, routing.ErrDisconnected, tt.forger.id()); re.Message != "forged" {
					t.Fatalf("Wait = %v, want the dead message from the path", err)
				}
				return
			}
			tr.master.waitLog(t, fmt.Sprintf("src=%d auth=%d handle=%d reply_to=999", tt.forger.id(), tt.forger.id(), p.Handle()))
			if err := tt.callee.r.Reply(bg(t), req, wire.EncRaw, []byte("genuine")); err != nil {
				t.Fatal(err)
			}
			if m, err := p.Wait(bg(t)); err != nil || string(m.Body) != "genuine" {
				t.Fatalf("Wait = %v, %v, want the genuine reply", m, err)
			}
		})
	}
	if !strings.Contains(tr.master.logs.String(), "reply from unexpected context") {
		t.Errorf("master log = %q, want the forged dead messages logged", tr.master.logs)
	}
}

// TestReplyHandlesUnpredictable: dynamic handles are drawn at random, so the
// handle of one call says nothing about the next.
func TestReplyHandlesUnpredictable(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	var handles []uint32
	for range 32 {
		p, err := tr.master.r.CallAsync(bg(t), tr.a.id(), hHold, wire.EncRaw, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.a.nextHeld(t)
		handles = append(handles, p.Handle())
		p.Cancel()
	}
	near := 0
	for i := 1; i < len(handles); i++ {
		if d := int64(handles[i]) - int64(handles[i-1]); d >= -1024 && d <= 1024 {
			near++
		}
		if handles[i] < wire.FirstDynamicHandle {
			t.Fatalf("handle %d below the dynamic range", handles[i])
		}
	}
	if near > 2 {
		t.Fatalf("handles %v: %d consecutive pairs within 1024 of each other, want them random", handles, near)
	}
}

// TestRoutedBackGetsDead: a request whose only route leads back to the stream
// it came from gets a dead "no route" reply instead of vanishing.
func TestRoutedBackGetsDead(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	rc, err := tr.a.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tests := []struct {
		name string
		n    *node
		dst  uint32
	}{
		{"child to an ID routed through itself", tr.a, tr.a1.id()},
		{"child to its own ID", tr.a, tr.a.id()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.n.raw(t, &wire.Message{Enc: wire.EncRaw, Dst: tt.dst, Src: tt.n.id(), Auth: tt.n.id(), Handle: hEcho, ReplyTo: rc.Handle()})
			_, err := rc.Get(bg(t))
			if re := remote(t, err, routing.ErrNoRoute, 0); re.Message != fmt.Sprintf("no route to %d, my ID is 0", tt.dst) {
				t.Fatalf("dead reply %q", re.Message)
			}
		})
	}
}

// TestDelRouteAuthority: a child may withdraw only IDs routed through it,
// and not its own; a refused DEL_ROUTE changes nothing.
func TestDelRouteAuthority(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	for _, id := range []uint32{tr.b.id(), tr.a.id(), 0, 1 << 30} {
		tr.a.announce(t, wire.HandleDelRoute, id)
	}
	tr.a.sync(t)
	tr.master.waitLog(t, "DEL_ROUTE for an ID not routed via its sender")
	checkRoutes(t, tr.master, tr.a.id(), tr.a1.id(), tr.b.id(), tr.c.id())
	tr.master.call(t, tr.b.id(), "still there")
	tr.master.call(t, tr.a.id(), "still there")
}

// blockReader makes n's reader for its parent stream stop at the first
// message to handle hBlock, until the test ends: a context that stops
// reading.
const hBlock uint32 = 502

func (n *node) blockReader(t testing.TB) {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	if _, err := n.r.AddHandler(func(m *wire.Message, _ *broker.Stream) { <-release }, routing.HandlerOptions{Handle: hBlock}); err != nil {
		t.Fatal(err)
	}
}

// fillTowards sends messages of size bytes from n to dst until the master's
// stream toward dst holds more than want bytes, so the master's reader for
// n's stream ends up blocked forwarding into it. It returns a function that
// stops the flood.
func fillTowards(t testing.TB, master, n *node, dst uint32, size, want int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		body := make([]byte, size)
		for ctx.Err() == nil {
			if err := n.r.Send(ctx, &wire.Message{Enc: wire.EncRaw, Dst: dst, Handle: hBlock, Body: body}); err != nil {
				return
			}
		}
	}()
	out := master.r.Stream(dst)
	deadline := time.Now().Add(waitTimeout)
	for out.Queued() < want {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("master's queue toward %d holds %d bytes, want %d", dst, out.Queued(), want)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and the forward behind it blocks
	return func() { cancel(); <-done }
}

// TestDeadChildWhileForwardBlocked: the master's reader for A is blocked
// forwarding A's messages into B's full stream (B stopped reading) when A's
// stream is closed (its process was reaped): the forward is abandoned, the
// pending call to A fails with ErrDisconnected, Disconnected(A) closes, A's
// routes go, and the master still calls C.
func TestDeadChildWhileForwardBlocked(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	tr.b.blockReader(t)
	p, err := tr.master.r.CallAsync(bg(t), tr.a.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.a.nextHeld(t)
	gone := tr.master.r.Disconnected(tr.a.id())
	stop := fillTowards(t, tr.master, tr.a, tr.b.id(), 64<<10, 3<<20)
	defer stop()
	tr.a.down.CloseWithError(errors.New("child a exited: signal: killed")) // what the reaper does
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, routing.ErrDisconnected) {
		t.Fatalf("pending call to the dead child = %v, want %v", err, routing.ErrDisconnected)
	}
	wait(t, gone, "Disconnected(A)")
	if s := tr.master.r.Stream(tr.a.id()); s != nil {
		t.Errorf("master still routes A via %v", s.Name())
	}
	if slices.Contains(tr.master.r.Routes(), tr.a1.id()) {
		t.Errorf("master still routes A1: %v", tr.master.r.Routes())
	}
	tr.master.call(t, tr.c.id(), "sibling")
}

// TestStuckChildDoesNotDelayDisconnect: B has sent to A and then stopped
// reading, with its queue full. When A goes, the master's DEL_ROUTE for B is
// queued without waiting, so the master's own pending call to A fails at
// once.
func TestStuckChildDoesNotDelayDisconnect(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	tr.b.call(t, tr.a.id(), "B talks to A") // B's egress holds A
	tr.b.blockReader(t)
	// Empty messages fill the queue to within one header of its bound:
	// no DEL_ROUTE fits in what is left.
	stop := fillTowards(t, tr.master, tr.c, tr.b.id(), 0, 4<<20-wire.HeaderLen)
	defer stop()
	p, err := tr.master.r.CallAsync(bg(t), tr.a.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.a.nextHeld(t)
	tr.a.down.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, routing.ErrDisconnected) {
		t.Fatalf("pending call to A = %v, want %v", err, routing.ErrDisconnected)
	}
	tr.master.call(t, tr.master.attach(t, 0, routing.Config{}).id(), "fresh")
}

// TestSendErrorsMatchSentinels: a local send racing with the death of the
// child it goes to fails, if at all, with ErrDisconnected or ErrNoRoute (the
// stream's own error inside), never with a bare broker error.
func TestSendErrorsMatchSentinels(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	failures := 0
	for i := range 20 {
		c := master.attach(t, 0, routing.Config{})
		errs := make(chan error, 1)
		go func() {
			defer close(errs)
			body := make([]byte, 1<<10)
			for {
				err := master.r.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Dst: c.id(), Handle: hNowhere, Body: body})
				if err != nil {
					errs <- err
					return
				}
				if master.r.Stream(c.id()) == nil {
					return
				}
			}
		}()
		c.b.Close()
		if err := <-errs; err != nil {
			failures++
			if !errors.Is(err, routing.ErrDisconnected) && !errors.Is(err, routing.ErrNoRoute) {
				t.Fatalf("iteration %d: send to a dying child = %v, want ErrDisconnected or ErrNoRoute", i, err)
			}
		}
	}
	t.Logf("%d of 20 sends failed at the moment of the close", failures)
}

// TestStalledChildIsCut: B stops reading while C floods it through the
// master. After StallTimeout without B taking a byte, the master closes B's
// stream as stalled: B's pending calls fail with ErrDisconnected, and C,
// whose messages were stuck behind B, answers the master again.
func TestStalledChildIsCut(t *testing.T) {
	testutil.VerifyNone(t)
	const stall = 300 * time.Millisecond
	tr := newTree(t, routing.Config{StallTimeout: stall})
	tr.b.blockReader(t)
	p, err := tr.master.r.CallAsync(bg(t), tr.b.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.b.nextHeld(t)
	gone := tr.master.r.Disconnected(tr.b.id())
	stop := fillTowards(t, tr.master, tr.c, tr.b.id(), 64<<10, 3<<20)
	defer stop()
	wait(t, gone, "Disconnected(B)")
	if _, err := p.Wait(bg(t)); !errors.Is(err, routing.ErrDisconnected) {
		t.Fatalf("pending call to the stalled child = %v, want %v", err, routing.ErrDisconnected)
	}
	tr.master.waitLog(t, "peer stopped reading")
	stop()
	tr.master.call(t, tr.c.id(), "unblocked")
	tr.master.call(t, tr.a1.id(), "others")
}
