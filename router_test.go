package spindle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// quiet is how long a test waits to be sure a message does not arrive.
const quiet = 200 * time.Millisecond

func TestPingEcho(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "worker")

	var pong spindle.PingResult
	if err := c.Call(ctx, "ping", nil, &pong); err != nil {
		t.Fatalf("ping: %v", err)
	}
	want := spindle.PingResult{ID: c.ID(), Name: "worker", PID: c.PID()}
	if pong != want {
		t.Errorf("ping = %+v, want %+v", pong, want)
	}
	if c.PID() == 0 || c.PID() == syscall.Getpid() {
		t.Errorf("PID() = %d, want the child's own PID", c.PID())
	}
	for _, in := range []any{"hello", 42, []byte{0, 1, 2}, map[string]int{"a": 1}} {
		var got any
		if err := c.Call(ctx, "echo", in, &got); err != nil {
			t.Fatalf("echo(%v): %v", in, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(in) {
			t.Errorf("echo(%v) = %v", in, got)
		}
	}
	err := c.Call(ctx, "no-such-function", nil, nil)
	if !errors.Is(err, routing.ErrNotFound) || !strings.Contains(err.Error(), `no function "no-such-function"`) {
		t.Errorf("unknown function: error = %v, want ErrNotFound naming it", err)
	}
}

// TestChain10 starts each context through the previous one and pings the
// deepest (Mitogen's nested_test).
func TestChain10(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "chain.1")
	chain := []*spindle.Context{c}
	for i := 2; i <= 10; i++ {
		c = startVia(t, ctx, c, fmt.Sprintf("chain.%d", i))
		if c.Parent() != chain[len(chain)-1].ID() {
			t.Errorf("%v.Parent() = %d, want %d", c, c.Parent(), chain[len(chain)-1].ID())
		}
		chain = append(chain, c)
	}
	var pong spindle.PingResult
	if err := c.Call(ctx, "ping", nil, &pong); err != nil {
		t.Fatalf("ping deepest: %v", err)
	}
	if pong.ID != c.ID() || pong.Name != "chain.10" || pong.PID != c.PID() {
		t.Errorf("ping deepest = %+v, want ID %d name chain.10 PID %d", pong, c.ID(), c.PID())
	}
	var ids []uint32
	for _, c := range chain {
		ids = append(ids, c.ID())
	}
	slices.Sort(ids)
	if got := m.Router().Routes(); !slices.Equal(got, ids) {
		t.Errorf("master routes = %v, want %v", got, ids)
	}
}

// TestIDAllocation is Mitogen's worked example: the master hands out 1, a
// child's first allocation fetches the block [2, 1002), and the master's
// next ID is 1002.
func TestIDAllocation(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c1 := startLocal(t, ctx, m, "")
	g2 := startVia(t, ctx, c1, "")
	g3 := startVia(t, ctx, c1, "")
	c4 := startLocal(t, ctx, m, "")
	for _, tc := range []struct {
		c      *spindle.Context
		id     uint32
		parent uint32
	}{{c1, 1, 0}, {g2, 2, 1}, {g3, 3, 1}, {c4, 1002, 0}} {
		if tc.c.ID() != tc.id || tc.c.Parent() != tc.parent {
			t.Errorf("%v: ID %d parent %d, want ID %d parent %d", tc.c, tc.c.ID(), tc.c.Parent(), tc.id, tc.parent)
		}
		if want := fmt.Sprintf("local.%d", tc.id); tc.c.Name() != want {
			t.Errorf("context %d: Name() = %q, want %q", tc.id, tc.c.Name(), want)
		}
	}
}

// TestSpoofDropped injects messages with a forged Auth or Src on child1's
// stream: the master drops them and logs why; a well-formed one passes.
func TestSpoofDropped(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	logs.allowDrops()
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startLocal(t, ctx, m, "c2")
	rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	for _, tc := range []struct {
		name      string
		src, auth uint32
		dropLog   string // "" when the message must arrive
	}{
		{"well-formed", c1.ID(), c1.ID(), ""},
		{"auth of sibling", c1.ID(), c2.ID(), "bad auth_id: dropping message"},
		{"auth of master", c1.ID(), 0, "bad auth_id: dropping message"},
		{"src of sibling", c2.ID(), c1.ID(), "bad src_id: dropping message"},
		{"src and auth of sibling", c2.ID(), c2.ID(), "bad auth_id: dropping message"},
		{"src and auth of master", 0, 0, "bad auth_id: dropping message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := spoofArgs{Dst: 0, Src: tc.src, Auth: tc.auth, Handle: rc.Handle(), ReplyTo: 4242}
			if err := c1.Call(ctx, "spoof", a, nil); err != nil {
				t.Fatalf("spoof: %v", err)
			}
			gctx, cancel := context.WithTimeout(ctx, quiet)
			got, err := rc.Get(gctx)
			cancel()
			if tc.dropLog == "" {
				if err != nil {
					t.Fatalf("well-formed message not delivered: %v", err)
				}
				if got.Src != tc.src || got.Auth != tc.auth {
					t.Errorf("delivered src=%d auth=%d, want %d %d", got.Src, got.Auth, tc.src, tc.auth)
				}
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("spoofed message: Get = %v, %v; want nothing delivered", got, err)
			}
			hdr := fmt.Sprintf("dst=0 src=%d auth=%d handle=%d", tc.src, tc.auth, rc.Handle())
			if _, ok := logs.waitFor(time.Second, func(r logRecord) bool {
				return r.Msg == tc.dropLog && strings.Contains(r.Attrs["msg"], hdr)
			}); !ok {
				t.Errorf("no %q record for %s in the master's log:%s", tc.dropLog, hdr, logs.dump())
			}
		})
	}

	// A forged SHUTDOWN to c2 with the master's authority never reaches c2.
	a := spoofArgs{Dst: c2.ID(), Src: 0, Auth: 0, Handle: wire.HandleShutdown}
	if err := c1.Call(ctx, "spoof", a, nil); err != nil {
		t.Fatalf("spoof SHUTDOWN: %v", err)
	}
	select {
	case <-c2.Disconnected():
		t.Fatalf("c2 obeyed a SHUTDOWN forged by c1")
	case <-time.After(quiet):
	}
	if err := c2.Ping(ctx); err != nil {
		t.Errorf("c2 after forged SHUTDOWN: %v", err)
	}
	// Likewise a forged CALL to c2 with c2's own authority.
	a = spoofArgs{Dst: c2.ID(), Src: c2.ID(), Auth: c2.ID(), Handle: wire.HandleCall}
	if err := c1.Call(ctx, "spoof", a, nil); err != nil {
		t.Fatalf("spoof CALL: %v", err)
	}
	if n := len(logs.find(func(r logRecord) bool {
		return r.Msg == "bad auth_id: dropping message" && strings.Contains(r.Attrs["msg"], fmt.Sprintf("dst=%d src=%d auth=%d", c2.ID(), c2.ID(), c2.ID()))
	})); n != 1 {
		t.Errorf("forged CALL to c2: %d bad auth_id records, want 1:%s", n, logs.dump())
	}
}

// TestDeadMessages checks each dead-message reason end to end.
func TestDeadMessages(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startLocal(t, ctx, m, "c2")
	g := startVia(t, ctx, c1, "g")

	t.Run("no route", func(t *testing.T) {
		_, err := m.Router().Call(ctx, 1234, wire.HandleCall, wire.EncMsgpack, nil)
		checkRemote(t, err, routing.ErrNoRoute, 0, "no route to 1234, my ID is 0")
	})

	t.Run("no route from a child", func(t *testing.T) {
		err := c1.Call(ctx, "call", callArgs{Dst: 1234, Fn: "ping"}, nil)
		if !errors.Is(err, routing.ErrNoRoute) || !strings.Contains(err.Error(), "context 0: no route to 1234, my ID is 0") {
			t.Errorf("c1 calling 1234: %v, want ErrNoRoute from the master", err)
		}
	})

	t.Run("no route after shutdown", func(t *testing.T) {
		c := startLocal(t, ctx, m, "doomed")
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		err := c.Ping(ctx)
		checkRemote(t, err, routing.ErrNoRoute, 0, fmt.Sprintf("no route to %d, my ID is 0", c.ID()))
		if !strings.Contains(err.Error(), "call ping on doomed(") {
			t.Errorf("error %q does not name the call", err)
		}
	})

	t.Run("invalid handle", func(t *testing.T) {
		for _, c := range []*spindle.Context{c1, g} {
			_, err := m.Router().Call(ctx, c.ID(), 77777, wire.EncMsgpack, nil)
			checkRemote(t, err, routing.ErrInvalidHandle, c.ID(), "invalid handle")
		}
	})

	t.Run("refused by policy", func(t *testing.T) {
		// CALL, SHUTDOWN, START_CHILD and STOP_CHILD need parent authority:
		// a child cannot use them on the master, a sibling or its parent.
		for _, tc := range []struct {
			name   string
			from   *spindle.Context
			dst    uint32
			handle uint32
		}{
			{"CALL to master", c1, 0, wire.HandleCall},
			{"SHUTDOWN to master", c1, 0, wire.HandleShutdown},
			{"CALL to sibling", c1, c2.ID(), wire.HandleCall},
			{"SHUTDOWN to sibling", c1, c2.ID(), wire.HandleShutdown},
			{"START_CHILD to sibling", c1, c2.ID(), wire.HandleStartChild},
			{"STOP_CHILD to sibling", c1, c2.ID(), wire.HandleStopChild},
			{"CALL to far sibling", c2, g.ID(), wire.HandleCall},
			{"CALL to parent", g, c1.ID(), wire.HandleCall},
			{"SHUTDOWN to parent", g, c1.ID(), wire.HandleShutdown},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.from.Call(ctx, "send", sendArgs{Dst: tc.dst, Handle: tc.handle, Reply: true}, nil)
				if !errors.Is(err, routing.ErrRefused) {
					t.Fatalf("error = %v, want ErrRefused", err)
				}
				if want := fmt.Sprintf("context %d: refused by policy", tc.dst); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			})
		}
		for _, c := range []*spindle.Context{c1, c2, g} {
			if err := c.Ping(ctx); err != nil {
				t.Errorf("%v after refused SHUTDOWNs: %v", c, err)
			}
		}
		select {
		case <-m.Done():
			t.Errorf("master shut down by a child's SHUTDOWN")
		default:
		}
		if got := logs.find(func(r logRecord) bool {
			return r.Msg == "refused by policy" && strings.Contains(r.Attrs["msg"], fmt.Sprintf("dst=0 src=%d", c1.ID()))
		}); len(got) != 2 {
			t.Errorf("master logged %d refusals of c1's messages, want 2:%s", len(got), logs.dump())
		}
	})
}

// TestTooLarge checks the message size limit, locally and down the tree.
func TestTooLarge(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	const max = 4096
	const reason = "message too large (max 4096 bytes)"
	m, _ := newMaster(t, spindle.Config{MaxMessageSize: max})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	if got := m.Router().MaxMessageSize(); got != max {
		t.Errorf("MaxMessageSize() = %d, want %d", got, max)
	}

	t.Run("call with big arg", func(t *testing.T) {
		err := c.Call(ctx, "echo", make([]byte, 8192), nil)
		if !errors.Is(err, routing.ErrTooLarge) || !strings.Contains(err.Error(), reason) {
			t.Errorf("error = %v, want ErrTooLarge with %q", err, reason)
		}
		var got []byte
		if err := c.Call(ctx, "echo", make([]byte, 3000), &got); err != nil || len(got) != 3000 {
			t.Errorf("echo of 3000 bytes = %d bytes, %v", len(got), err)
		}
	})

	t.Run("no reply_to: the receiver gets the dead message", func(t *testing.T) {
		rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		// Locally...
		err = m.Router().Send(ctx, &wire.Message{Enc: wire.EncRaw, Dst: 0, Handle: rc.Handle(), Body: make([]byte, 8192)})
		if !errors.Is(err, routing.ErrTooLarge) {
			t.Errorf("local Send = %v, want ErrTooLarge", err)
		}
		_, err = rc.Get(ctx)
		checkRemote(t, err, routing.ErrTooLarge, 0, reason)
		// ...and from the grandchild, which holds the master's limit.
		err = g.Call(ctx, "send", sendArgs{Dst: 0, Handle: rc.Handle(), Size: 8192}, nil)
		if !errors.Is(err, routing.ErrTooLarge) {
			t.Errorf("grandchild's Send = %v, want ErrTooLarge", err)
		}
		_, err = rc.Get(ctx)
		checkRemote(t, err, routing.ErrTooLarge, g.ID(), reason)
		// A message under the limit still arrives.
		if err := g.Call(ctx, "send", sendArgs{Dst: 0, Handle: rc.Handle(), Size: 100}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := rc.Get(ctx); err != nil || len(got.Body) != 100 || got.Src != g.ID() {
			t.Errorf("small message: %v, %v", got, err)
		}
	})

	t.Run("big reply refused where it is made", func(t *testing.T) {
		for _, c := range []*spindle.Context{c, g} {
			err := c.Call(ctx, "big_reply", 8192, nil)
			checkRemote(t, err, routing.ErrTooLarge, c.ID(), reason)
			var got []byte
			if err := c.Call(ctx, "big_reply", 3000, &got); err != nil || len(got) != 3000 {
				t.Errorf("%v: big_reply(3000) = %d bytes, %v", c, len(got), err)
			}
		}
	})
}

// TestRespondentDisconnected: a pending call fails when its respondent is
// killed.
func TestRespondentDisconnected(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "victim")
	p, err := c.CallAsync(ctx, "hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the call reach the child
	if err := syscall.Kill(c.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.Wait(ctx, nil)
	checkRemote(t, err, routing.ErrDisconnected, c.ID(), "the respondent context has disconnected")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pending call failed %v after the kill", d)
	}
	waitClosed(t, c.Disconnected(), time.Second, "Disconnected()")
	processGone(t, c.PID(), 5*time.Second)
}

// TestCloseFailsPendingCalls: calls pending when the master closes fail.
// The child leaves first (its stream closes during the grace period), so a
// call bound to it gets ErrDisconnected, not ErrShutdown; only handlers
// bound to no context get the broker's ErrShutdown (TestBrokerExit), and a
// call started after Close fails locally with ErrShutdown.
func TestCloseFailsPendingCalls(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{Grace: 5 * time.Second, ChildGrace: 300 * time.Millisecond})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	pc, err := c.CallAsync(ctx, "hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := g.CallAsync(ctx, "hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil { // the hang call is in c by now
		t.Fatal(err)
	}
	if err := g.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.Close()
	t.Logf("Close took %v", time.Since(start))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	for _, tc := range []struct {
		p  *spindle.PendingCall
		id uint32
	}{{pc, c.ID()}, {pg, g.ID()}} {
		err := tc.p.Wait(ctx, nil)
		checkRemote(t, err, routing.ErrDisconnected, tc.id, "the respondent context has disconnected")
	}
	err = c.Ping(ctx)
	if !errors.Is(err, routing.ErrShutdown) {
		t.Errorf("call after Close: %v, want ErrShutdown", err)
	}
	processGone(t, c.PID(), 0)
	processGone(t, g.PID(), 5*time.Second)
}

func TestDuplicateHandle(t *testing.T) {
	testutil.VerifyNone(t)
	m, _ := newMaster(t, spindle.Config{})
	r := m.Router()
	fn := func(*wire.Message, *broker.Stream) {}
	h, err := r.AddHandler(fn, routing.HandlerOptions{Handle: 5000})
	if err != nil || h != 5000 {
		t.Fatalf("AddHandler(5000) = %d, %v", h, err)
	}
	for _, handle := range []uint32{5000, wire.HandleCall, wire.HandleForwardLog, wire.HandleAddRoute, wire.HandleAllocateID} {
		if _, err := r.AddHandler(fn, routing.HandlerOptions{Handle: handle}); !errors.Is(err, routing.ErrDuplicateHandle) {
			t.Errorf("AddHandler(%d) again: %v, want ErrDuplicateHandle", handle, err)
		}
	}
	if err := r.DelHandler(5000); err != nil {
		t.Fatalf("DelHandler: %v", err)
	}
	if err := r.DelHandler(5000); !errors.Is(err, routing.ErrUnknownHandle) {
		t.Errorf("second DelHandler: %v, want ErrUnknownHandle", err)
	}
	if h, err := r.AddHandler(fn, routing.HandlerOptions{Handle: 5000}); err != nil || h != 5000 {
		t.Errorf("AddHandler(5000) after DelHandler = %d, %v", h, err)
	}
	if _, err := r.AddHandler(fn, routing.HandlerOptions{Handle: 5000, Overwrite: true}); err != nil {
		t.Errorf("AddHandler(5000, Overwrite) = %v", err)
	}
}

// TestBrokerExit: every handler still registered when the master closes
// gets a dead message.
func TestBrokerExit(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "c")
	var rcs []*routing.Receiver
	for i := range 5 {
		opts := routing.HandlerOptions{}
		if i == 4 {
			opts.Handle = 6000 // a fixed handle too
		}
		rc, err := m.Router().NewReceiver(opts)
		if err != nil {
			t.Fatal(err)
		}
		rcs = append(rcs, rc)
	}
	// One receiver already holds a message: it is delivered first.
	if err := c.Call(ctx, "send", sendArgs{Dst: 0, Handle: rcs[0].Handle(), Size: 3}, nil); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if got, err := rcs[0].Get(ctx); err != nil || len(got.Body) != 3 {
		t.Errorf("queued message: %v, %v", got, err)
	}
	for _, rc := range rcs {
		_, err := rc.Get(ctx)
		checkRemote(t, err, routing.ErrShutdown, 0, "broker has exited")
	}
	if _, err := m.Router().NewReceiver(routing.HandlerOptions{}); !errors.Is(err, routing.ErrShutdown) {
		t.Errorf("NewReceiver after Close: %v, want ErrShutdown", err)
	}
	for _, rc := range rcs {
		rc.Close()
		if _, err := rc.Get(ctx); !errors.Is(err, routing.ErrReceiverClosed) {
			t.Errorf("Get after Close: %v, want ErrReceiverClosed", err)
		}
	}
}

// TestUnidirectional: with Config.Unidirectional no context forwards between
// two of its children.
func TestUnidirectional(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{Unidirectional: true})
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startLocal(t, ctx, m, "c2")
	a := startVia(t, ctx, c1, "a")
	b := startVia(t, ctx, c1, "b")
	far := startVia(t, ctx, c2, "far")
	for _, tc := range []struct {
		name     string
		from, to *spindle.Context
		via      uint32
	}{
		{"siblings under the master", c1, c2, 0},
		{"siblings under a child", a, b, c1.ID()},
		{"far siblings", a, far, 0},
		{"uncle", a, c2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.from.Call(ctx, "call", callArgs{Dst: tc.to.ID(), Fn: "ping"}, nil)
			if !errors.Is(err, routing.ErrUnidirectional) {
				t.Fatalf("error = %v, want ErrUnidirectional", err)
			}
			want := fmt.Sprintf("context %d: routing mode prevents forward of message from context %d to context %d via context %d",
				tc.via, tc.from.ID(), tc.to.ID(), tc.via)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
	// Up and down the tree still works.
	for _, c := range []*spindle.Context{c1, c2, a, b, far} {
		if err := c.Ping(ctx); err != nil {
			t.Errorf("ping %v: %v", c, err)
		}
	}
	// A parent may still call its own child: that is not a forward.
	var pong spindle.PingResult
	if err := c1.Call(ctx, "call", callArgs{Dst: a.ID(), Fn: "ping"}, &pong); err != nil || pong.ID != a.ID() {
		t.Errorf("c1 calling its child a: %+v, %v", pong, err)
	}
}

// TestSiblingCallRefusedByPolicy: without the unidirectional mode a sibling
// call is forwarded by the parent, then refused by the callee's CALL
// policy, which requires parent authority.
func TestSiblingCallRefusedByPolicy(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startLocal(t, ctx, m, "c2")
	a := startVia(t, ctx, c1, "a")
	b := startVia(t, ctx, c1, "b")
	for _, tc := range []struct {
		from, to *spindle.Context
	}{{c1, c2}, {a, b}, {a, c2}} {
		err := tc.from.Call(ctx, "call", callArgs{Dst: tc.to.ID(), Fn: "ping"}, nil)
		if !errors.Is(err, routing.ErrRefused) || errors.Is(err, routing.ErrUnidirectional) {
			t.Errorf("%v calling %v: %v, want ErrRefused", tc.from, tc.to, err)
		} else if want := fmt.Sprintf("context %d: refused by policy", tc.to.ID()); !strings.Contains(err.Error(), want) {
			t.Errorf("%v calling %v: %q does not contain %q", tc.from, tc.to, err, want)
		}
	}
	// A parent may call its own child.
	var pong spindle.PingResult
	if err := c1.Call(ctx, "call", callArgs{Dst: a.ID(), Fn: "ping"}, &pong); err != nil || pong.ID != a.ID() {
		t.Errorf("c1 calling its child a: %+v, %v", pong, err)
	}
}

// TestKillMiddle kills a context with a child while calls cross it.
func TestKillMiddle(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	a := startLocal(t, ctx, m, "a")
	b := startLocal(t, ctx, m, "b")
	g := startVia(t, ctx, b, "g")
	gg := startVia(t, ctx, g, "gg")
	// A far sibling waiting on g: a sends, with a reply handle bound to g,
	// to a receiver in g that never answers (the built-in sink).
	var sink routing.Sender
	if err := g.Call(ctx, "sink", spindle.SinkArgs{Bytes: 1 << 40}, &sink); err != nil {
		t.Fatalf("sink: %v", err)
	}
	type pending struct {
		name string
		p    *spindle.PendingCall
	}
	var ps []pending
	for _, tc := range []struct {
		name string
		c    *spindle.Context
		fn   string
		args any
	}{
		{"call to the killed context", b, "hang", nil},
		{"call to its child", g, "hang", nil},
		{"call to its grandchild", gg, "hang", nil},
		{"far sibling waiting on its child", a, "send", sendArgs{Dst: sink.Context, Handle: sink.Handle, Size: 1, Reply: true}},
	} {
		p, err := tc.c.CallAsync(ctx, tc.fn, tc.args)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, pending{tc.name, p})
	}
	time.Sleep(100 * time.Millisecond) // let every call arrive
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, p := range ps {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.p.Wait(wctx, nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || !(errors.Is(err, routing.ErrDisconnected) || errors.Is(err, routing.ErrNoRoute)) {
			t.Errorf("%s: %v, want ErrDisconnected or ErrNoRoute", p.name, err)
		}
	}
	t.Logf("pending calls failed within %v", time.Since(start))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pending calls took %v to fail", d)
	}
	for _, c := range []*spindle.Context{b, g, gg} {
		waitClosed(t, c.Disconnected(), time.Second, c.String()+".Disconnected()")
	}
	if got, want := m.Router().Routes(), []uint32{a.ID()}; !slices.Equal(got, want) {
		t.Errorf("master routes after the kill = %v, want %v", got, want)
	}
	for _, c := range []*spindle.Context{b, g, gg} {
		err := c.Ping(ctx)
		checkRemote(t, err, routing.ErrNoRoute, 0, fmt.Sprintf("no route to %d, my ID is 0", c.ID()))
	}
	if err := a.Call(ctx, "call", callArgs{Dst: g.ID(), Fn: "ping"}, nil); !errors.Is(err, routing.ErrNoRoute) {
		t.Errorf("a calling g after the kill: %v, want ErrNoRoute", err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Errorf("a after the kill: %v", err)
	}
	for _, c := range []*spindle.Context{b, g, gg} {
		processGone(t, c.PID(), 5*time.Second)
	}
}

// TestSenderStream: a child sends five messages on a Sender it was given,
// then closes it.
func TestSenderStream(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	for _, c := range []*spindle.Context{c, g} {
		rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := rc.Sender(); s.Context != 0 || s.Handle != rc.Handle() || s.Handle < wire.FirstDynamicHandle {
			t.Errorf("Sender() = %+v, want context 0 and handle %d >= %d", s, rc.Handle(), wire.FirstDynamicHandle)
		}
		var n int
		if err := c.Call(ctx, "stream", streamArgs{To: rc.Sender(), N: 5}, &n); err != nil || n != 5 {
			t.Fatalf("stream = %d, %v", n, err)
		}
		for i := range 5 {
			got, err := rc.Get(ctx)
			if err != nil {
				t.Fatalf("%v: message %d: %v", c, i, err)
			}
			var v int
			if err := msgpack.Unmarshal(got.Body, &v); err != nil || v != i || got.Src != c.ID() {
				t.Errorf("%v: message %d = %d from %d (%v), want %d from %d", c, i, v, got.Src, err, i, c.ID())
			}
		}
		_, err = rc.Get(ctx)
		checkRemote(t, err, routing.ErrSenderClosed, c.ID(), "sender was explicitly closed")
		if got, err := rc.TryGet(); err == nil {
			t.Errorf("after the close: %v", got)
		}
		rc.Close()
	}
}

// TestReceiverClose: Close wakes every blocked Get, and a message to the
// closed handle gets a dead "invalid handle".
func TestReceiverClose(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "c")
	rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := rc.Get(ctx)
			errs <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	rc.Close()
	for range 5 {
		if err := <-errs; !errors.Is(err, routing.ErrReceiverClosed) {
			t.Errorf("blocked Get after Close: %v, want ErrReceiverClosed", err)
		}
	}
	err = c.Call(ctx, "send", sendArgs{Dst: 0, Handle: rc.Handle(), Reply: true}, nil)
	if !errors.Is(err, routing.ErrInvalidHandle) || !strings.Contains(err.Error(), "context 0: invalid handle") {
		t.Errorf("send to a closed receiver: %v, want ErrInvalidHandle from context 0", err)
	}
}
