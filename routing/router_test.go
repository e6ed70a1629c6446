package routing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// tree is the topology most tests use, with the IDs a real master gives
// out (A1's is the first of the block A asks for):
//
//	master 0
//	├── A 1
//	│   └── A1 2
//	├── B 1002
//	└── C 1003
type tree struct{ master, a, a1, b, c *node }

func newTree(t testing.TB, cfg routing.Config) *tree {
	t.Helper()
	tr := &tree{master: newMaster(t, cfg)}
	tr.a = tr.master.attach(t, 0, routing.Config{})
	tr.a1 = tr.a.attach(t, 0, routing.Config{})
	tr.b = tr.master.attach(t, 0, routing.Config{})
	tr.c = tr.master.attach(t, 0, routing.Config{})
	return tr
}

func TestCall(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	tests := []struct {
		name     string
		from, to *node
	}{
		{"master to child", tr.master, tr.a},
		{"master to grandchild", tr.master, tr.a1},
		{"child to master", tr.a, tr.master},
		{"grandchild to master", tr.a1, tr.master},
		{"grandchild to parent", tr.a1, tr.a},
		{"child to sibling", tr.a, tr.b},
		{"grandchild to uncle", tr.a1, tr.c},
		{"local", tr.b, tr.b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.from.call(t, tt.to.id(), tt.name)

			// Pipelined: many calls in flight, collected in reverse order.
			var ps []*routing.Pending
			for i := range 10 {
				p, err := tt.from.r.CallAsync(bg(t), tt.to.id(), hEcho, wire.EncRaw, fmt.Appendf(nil, "%d", i))
				if err != nil {
					t.Fatalf("CallAsync #%d = %v", i, err)
				}
				ps = append(ps, p)
			}
			for i := len(ps) - 1; i >= 0; i-- {
				m, err := ps[i].Wait(bg(t))
				if want := fmt.Sprintf("%d:%d", tt.to.id(), i); err != nil || string(m.Body) != want {
					t.Fatalf("Wait #%d = %v, %v, want body %q", i, m, err, want)
				}
			}
		})
	}
}

func TestPendingWaitCtx(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	p, err := tr.master.r.CallAsync(bg(t), tr.a1.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := tr.a1.nextHeld(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled ctx = %v, want context.Canceled", err)
	}
	// The abandoned call's late reply gets a dead "invalid handle".
	rc, err := tr.a1.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := tr.a1.r.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Dst: req.Src, Handle: req.ReplyTo, ReplyTo: rc.Handle()}); err != nil {
		t.Fatal(err)
	}
	_, err = rc.Get(bg(t))
	remote(t, err, routing.ErrInvalidHandle, 0)
}

// TestAddRouteOrdering: a context may talk the moment its parent's AddChild
// has returned, before anything was heard back from the master: ADD_ROUTE
// travels ahead of its messages on every hop.
func TestAddRouteOrdering(t *testing.T) {
	testutil.VerifyNone(t)
	for i := range 20 {
		master := newMaster(t, routing.Config{})
		n1 := master.link(t, 0, routing.Config{})
		n2 := n1.link(t, 0, routing.Config{})
		n3 := n2.link(t, 0, routing.Config{})
		n3.call(t, 0, fmt.Sprint("iteration ", i))
		id1, id2, id3 := n1.id(), n2.id(), n3.id()
		checkRoutes(t, master, id1, id2, id3)
		checkRoutes(t, n1, id2, id3)
		checkRoutes(t, n2, id3)
		checkRoutes(t, n3)
		if got, want := master.r.Name(id3), fmt.Sprintf("ctx%d", id3); got != want {
			t.Fatalf("master Name(%d) = %q, want %q", id3, got, want)
		}
		if s := master.r.Stream(id3); s != n1.down {
			t.Fatalf("master Stream(%d) = %v, want the stream to %d", id3, s.Name(), id1)
		}
		for _, n := range []*node{n3, n2, n1, master} {
			n.b.Close()
		}
	}
}

// TestAddChildFramesAlreadyWaiting: a child may send as soon as it has
// written its handshake reply, so its first frames can be waiting in the
// socket when the parent calls AddChild. They must be routed, not dropped
// for want of a route.
func TestAddChildFramesAlreadyWaiting(t *testing.T) {
	testutil.VerifyNone(t)
	for i := range 50 {
		master := newMaster(t, routing.Config{})
		child := newNode(t, routing.Config{ID: 1, ParentIDs: []uint32{0}})
		pc, cc := socketPair(t)
		up, err := child.r.SetParent(cc, "parent")
		if err != nil {
			t.Fatal(err)
		}
		p, err := child.r.CallAsync(bg(t), 0, hEcho, wire.EncRaw, []byte("early"))
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Flush(bg(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := master.r.AddChild(bg(t), pc, 1, "child"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := p.Wait(ctx)
		cancel()
		if err != nil || string(m.Body) != "0:early" {
			t.Fatalf("iteration %d: call sent before AddChild = %v, %v; master log:\n%s", i, m, err, master.logs)
		}
		child.b.Close()
		master.b.Close()
	}
}

// TestSetParentFramesAlreadyWaiting is the same on the child's side: the
// parent's first frames may be waiting when the child calls SetParent.
func TestSetParentFramesAlreadyWaiting(t *testing.T) {
	testutil.VerifyNone(t)
	for i := range 50 {
		master := newMaster(t, routing.Config{})
		child := newNode(t, routing.Config{ID: 1, ParentIDs: []uint32{0}})
		pc, cc := socketPair(t)
		down, err := master.r.AddChild(bg(t), pc, 1, "child")
		if err != nil {
			t.Fatal(err)
		}
		p, err := master.r.CallAsync(bg(t), 1, hEcho, wire.EncRaw, []byte("early"))
		if err != nil {
			t.Fatal(err)
		}
		if err := down.Flush(bg(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := child.r.SetParent(cc, "parent"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := p.Wait(ctx)
		cancel()
		if err != nil || string(m.Body) != "1:early" {
			t.Fatalf("iteration %d: call sent before SetParent = %v, %v; child log:\n%s", i, m, err, child.logs)
		}
		child.b.Close()
		master.b.Close()
	}
}

// TestAddChildPeerAlreadyGone: a child whose end is closed before AddChild
// leaves no route behind.
func TestAddChildPeerAlreadyGone(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	for i := range 50 {
		id := uint32(1 + i)
		pc, cc := socketPair(t)
		cc.Close()
		if _, err := master.r.AddChild(bg(t), pc, id, "gone"); err != nil {
			t.Fatal(err)
		}
		wait(t, master.r.Disconnected(id), fmt.Sprintf("iteration %d: Disconnected(%d)", i, id))
		checkRoutes(t, master)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := master.r.Call(ctx, id, hEcho, wire.EncRaw, nil)
		cancel()
		if !errors.Is(err, routing.ErrNoRoute) {
			t.Fatalf("iteration %d: Call to a child gone before AddChild = %v, want %v", i, err, routing.ErrNoRoute)
		}
	}
}

func TestAddChildDuplicate(t *testing.T) {
	testutil.VerifyNone(t)
	master := newMaster(t, routing.Config{})
	master.attach(t, 1, routing.Config{})
	pc, _ := socketPair(t)
	if _, err := master.r.AddChild(bg(t), pc, 1, "again"); err == nil {
		t.Fatal("AddChild with an ID already routed = nil error")
	}
	if _, err := pc.Write([]byte{0}); err == nil {
		t.Error("failed AddChild left its pipe open")
	}
	if _, err := master.r.SetParent(pc, "x"); err == nil {
		t.Error("SetParent on the master = nil error")
	}
}

func TestNoRoute(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	for _, from := range []*node{tr.master, tr.a, tr.a1} {
		_, err := from.r.Call(bg(t), 1234, hEcho, wire.EncRaw, nil)
		re := remote(t, err, routing.ErrNoRoute, 0)
		if want := "no route to 1234, my ID is 0"; re.Message != want {
			t.Errorf("Call from %d: message %q, want %q", from.id(), re.Message, want)
		}
	}
}

func TestInvalidHandle(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	for _, tt := range []struct{ from, to *node }{{tr.master, tr.a}, {tr.master, tr.a1}, {tr.a1, tr.master}, {tr.a, tr.a}} {
		_, err := tt.from.r.Call(bg(t), tt.to.id(), hNowhere, wire.EncRaw, nil)
		re := remote(t, err, routing.ErrInvalidHandle, tt.to.id())
		if re.Message != "invalid handle" {
			t.Errorf("Call from %d to %d: message %q, want %q", tt.from.id(), tt.to.id(), re.Message, "invalid handle")
		}
	}
}

func TestPolicies(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	const hParentOnly, hChildOnly = 600, 601
	if _, err := tr.a.r.AddHandler(tr.a.echo, routing.HandlerOptions{Handle: hParentOnly, Policy: tr.a.r.HasParentAuthority}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.master.r.AddHandler(tr.master.echo, routing.HandlerOptions{Handle: hChildOnly, Policy: tr.master.r.IsImmediateChild}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		from   *node
		to     *node
		handle uint32
		want   error
	}{
		{"parent authority: master", tr.master, tr.a, hParentOnly, nil},
		{"parent authority: self", tr.a, tr.a, hParentOnly, nil},
		{"parent authority: sibling", tr.b, tr.a, hParentOnly, routing.ErrRefused},
		{"parent authority: own child", tr.a1, tr.a, hParentOnly, routing.ErrRefused},
		{"immediate child: child", tr.a, tr.master, hChildOnly, nil},
		{"immediate child: other child", tr.c, tr.master, hChildOnly, nil},
		{"immediate child: grandchild", tr.a1, tr.master, hChildOnly, routing.ErrRefused},
		{"immediate child: local", tr.master, tr.master, hChildOnly, routing.ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.from.r.Call(bg(t), tt.to.id(), tt.handle, wire.EncRaw, []byte("x"))
			if tt.want == nil {
				if err != nil || string(m.Body) != fmt.Sprintf("%d:x", tt.to.id()) {
					t.Fatalf("Call = %v, %v, want the echo", m, err)
				}
				return
			}
			re := remote(t, err, tt.want, tt.to.id())
			if re.Message != "refused by policy" {
				t.Errorf("message %q, want %q", re.Message, "refused by policy")
			}
		})
	}
	if !strings.Contains(tr.a.logs.String(), "refused by policy") {
		t.Errorf("A's log = %q, want the refusal logged", tr.a.logs)
	}
}

func TestTooLarge(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{MaxMessageSize: 4096}) // children inherit it
	const reason = "message too large (max 4096 bytes)"
	for _, n := range []*node{tr.master, tr.a, tr.a1} {
		if got := n.r.MaxMessageSize(); got != 4096 {
			t.Fatalf("context %d: MaxMessageSize() = %d, want 4096", n.id(), got)
		}
	}
	tests := []struct {
		name     string
		from, to *node
	}{
		{"master to child", tr.master, tr.a},
		{"grandchild to master", tr.a1, tr.master},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/with reply_to", func(t *testing.T) {
			rc, err := tt.from.r.NewReceiver(routing.HandlerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			err = tt.from.r.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Dst: tt.to.id(), Handle: hHold, ReplyTo: rc.Handle(), Body: make([]byte, 4097)})
			if !errors.Is(err, routing.ErrTooLarge) {
				t.Errorf("Send = %v, want %v", err, routing.ErrTooLarge)
			}
			_, err = rc.Get(bg(t))
			if re := remote(t, err, routing.ErrTooLarge, tt.from.id()); re.Message != reason {
				t.Errorf("dead message %q, want %q", re.Message, reason)
			}
			if _, err := tt.from.r.Call(bg(t), tt.to.id(), hEcho, wire.EncRaw, make([]byte, 4097)); !errors.Is(err, routing.ErrTooLarge) {
				t.Errorf("Call = %v, want %v", err, routing.ErrTooLarge)
			}
		})
		t.Run(tt.name+"/without reply_to", func(t *testing.T) {
			rc, err := tt.to.r.NewReceiver(routing.HandlerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			err = tt.from.r.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Dst: tt.to.id(), Handle: rc.Handle(), Body: make([]byte, 4097)})
			if !errors.Is(err, routing.ErrTooLarge) {
				t.Errorf("Send = %v, want %v", err, routing.ErrTooLarge)
			}
			_, err = rc.Get(bg(t))
			if re := remote(t, err, routing.ErrTooLarge, tt.from.id()); re.Message != reason {
				t.Errorf("dead message %q, want %q", re.Message, reason)
			}
			// At the limit, the message goes through.
			if err := tt.from.r.SendTo(bg(t), rc.Sender(), wire.EncRaw, make([]byte, 4096)); err != nil {
				t.Fatalf("SendTo with 4096 bytes = %v", err)
			}
			if m, err := rc.Get(bg(t)); err != nil || len(m.Body) != 4096 {
				t.Fatalf("Get = %v, %v, want 4096 bytes", m, err)
			}
		})
	}
}

func TestUnidirectional(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{Unidirectional: true})
	if !tr.master.r.Unidirectional() {
		t.Fatal("Unidirectional() = false")
	}
	tr.a.call(t, 0, "up")
	tr.master.call(t, tr.b.id(), "down")
	tr.a1.call(t, tr.a.id(), "up one") // A itself is not unidirectional
	for _, tt := range []struct{ from, to *node }{{tr.a, tr.b}, {tr.a1, tr.c}} {
		_, err := tt.from.r.Call(bg(t), tt.to.id(), hEcho, wire.EncRaw, nil)
		re := remote(t, err, routing.ErrUnidirectional, 0)
		if want := fmt.Sprintf("routing mode prevents forward of message from context %d to context %d via context 0", tt.from.id(), tt.to.id()); re.Message != want {
			t.Errorf("message %q, want %q", re.Message, want)
		}
	}
}

// TestRespondentDisconnected: a pending call fails when the stream toward
// its respondent closes, one hop away or two.
func TestRespondentDisconnected(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	for _, n := range []*node{tr.a1, tr.b} { // the grandchild first: B's loss must not touch it
		p, err := tr.master.r.CallAsync(bg(t), n.id(), hHold, wire.EncRaw, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.nextHeld(t)
		n.down.Close()
		_, err = p.Wait(bg(t))
		if re := remote(t, err, routing.ErrDisconnected, n.id()); !strings.Contains(re.Message, "disconnected") {
			t.Errorf("message %q, want it to say disconnected", re.Message)
		}
	}
	checkRoutes(t, tr.master, tr.a.id(), tr.c.id())
	checkRoutes(t, tr.a)
}

// TestUnexpectedSource: only the called context may answer a call; a
// message from another context to the reply handle is refused and the call
// stays pending.
func TestUnexpectedSource(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	p, err := tr.master.r.CallAsync(bg(t), tr.a.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := tr.a.nextHeld(t)
	rc, err := tr.b.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := tr.b.r.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Dst: req.Src, Handle: req.ReplyTo, ReplyTo: rc.Handle(), Body: []byte("forged")}); err != nil {
		t.Fatal(err)
	}
	_, err = rc.Get(bg(t))
	if re := remote(t, err, routing.ErrUnexpectedSource, 0); re.Message != "reply from unexpected context" {
		t.Errorf("message %q, want %q", re.Message, "reply from unexpected context")
	}
	if err := tr.a.r.Reply(bg(t), req, wire.EncRaw, []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	if m, err := p.Wait(bg(t)); err != nil || string(m.Body) != "genuine" {
		t.Fatalf("Wait = %v, %v, want the genuine reply", m, err)
	}
	if !strings.Contains(tr.master.logs.String(), "reply from unexpected context") {
		t.Errorf("master log = %q, want the forged reply logged", tr.master.logs)
	}
}

// TestDeadNeverAnswered sends dead messages that cannot be delivered: none
// may produce a dead message of its own.
func TestDeadNeverAnswered(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	// An answer to a dead message would go to its ReplyTo, IsDead, in the
	// sender; listen there.
	caught := make(chan *wire.Message, 16)
	for _, n := range []*node{tr.master, tr.a, tr.a1} {
		if _, err := n.r.AddHandler(func(m *wire.Message, _ *broker.Stream) { caught <- m }, routing.HandlerOptions{Handle: wire.IsDead}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		from *node
		to   routing.Sender
	}{
		{"invalid handle in child", tr.master, routing.Sender{Context: tr.a.id(), Handle: hNowhere}},
		{"invalid handle two hops up", tr.a1, routing.Sender{Context: 0, Handle: hNowhere}},
		{"invalid handle locally", tr.a, routing.Sender{Context: tr.a.id(), Handle: hNowhere}},
		{"no route from master", tr.master, routing.Sender{Context: 1234, Handle: hEcho}},
		{"no route from grandchild", tr.a1, routing.Sender{Context: 1234, Handle: hEcho}},
	}
	for _, tt := range tests {
		if err := tt.from.r.CloseSender(bg(t), tt.to); err != nil {
			t.Fatalf("%s: CloseSender = %v", tt.name, err)
		}
	}
	// Round trips over the same streams: anything sent in answer would be
	// ahead of their replies.
	tr.master.call(t, tr.a1.id(), "flush")
	tr.a1.call(t, 0, "flush")
	tr.a.call(t, tr.a.id(), "flush")
	select {
	case m := <-caught:
		t.Fatalf("a dead message was answered with %v", m)
	default:
	}
}

// TestSpoofedIDs: a child that writes frames claiming another context's
// authority or source has them dropped and logged.
func TestSpoofedIDs(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	rc, err := tr.master.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tests := []struct {
		name      string
		src, auth uint32
		log       string
	}{
		{"master's authority", tr.a.id(), 0, "bad auth_id"},
		{"sibling's authority", tr.b.id(), tr.b.id(), "bad auth_id"},
		{"unknown authority", tr.a.id(), 99, "bad auth_id"},
		{"sibling as source", tr.b.id(), tr.a.id(), "bad src_id"},
		{"unknown source", 99, tr.a.id(), "bad src_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spoof := &wire.Message{Enc: wire.EncRaw, Dst: 0, Src: tt.src, Auth: tt.auth, Handle: rc.Handle(), Body: []byte("spoofed")}
			text := spoof.String()
			if err := tr.a.up.Send(bg(t), spoof); err != nil {
				t.Fatal(err)
			}
			legit := &wire.Message{Enc: wire.EncRaw, Dst: 0, Src: tr.a.id(), Auth: tr.a.id(), Handle: rc.Handle(), Body: []byte("legit")}
			if err := tr.a.up.Send(bg(t), legit); err != nil {
				t.Fatal(err)
			}
			if m, err := rc.Get(bg(t)); err != nil || string(m.Body) != "legit" {
				t.Fatalf("receiver got %v, %v, want only the legit message", m, err)
			}
			log := tr.master.logs.String()
			if !strings.Contains(log, tt.log) || !strings.Contains(log, text) {
				t.Fatalf("master log = %q, want %q for %s", log, tt.log, text)
			}
		})
	}
	// A grandchild's frames, relayed by its parent, keep their IDs and pass.
	if err := tr.a1.r.SendTo(bg(t), rc.Sender(), wire.EncRaw, []byte("relayed")); err != nil {
		t.Fatal(err)
	}
	if m, err := rc.Get(bg(t)); err != nil || string(m.Body) != "relayed" || m.Src != tr.a1.id() || m.Auth != tr.a1.id() {
		t.Fatalf("receiver got %v, %v, want the grandchild's message", m, err)
	}
}

func TestHandlerRegistration(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	r := tr.a.r
	const h = 700
	noop := func(*wire.Message, *broker.Stream) {}
	if got, err := r.AddHandler(noop, routing.HandlerOptions{Handle: h}); err != nil || got != h {
		t.Fatalf("AddHandler(%d) = %d, %v", h, got, err)
	}
	if _, err := r.AddHandler(noop, routing.HandlerOptions{Handle: h}); !errors.Is(err, routing.ErrDuplicateHandle) {
		t.Fatalf("second AddHandler(%d) = %v, want %v", h, err, routing.ErrDuplicateHandle)
	}
	if _, err := r.NewReceiver(routing.HandlerOptions{Handle: h}); !errors.Is(err, routing.ErrDuplicateHandle) {
		t.Fatalf("NewReceiver on handle %d = %v, want %v", h, err, routing.ErrDuplicateHandle)
	}
	if _, err := r.AddHandler(noop, routing.HandlerOptions{Handle: wire.HandleAddRoute}); !errors.Is(err, routing.ErrDuplicateHandle) {
		t.Fatalf("AddHandler(ADD_ROUTE) = %v, want %v", err, routing.ErrDuplicateHandle)
	}
	if err := r.DelHandler(h); err != nil {
		t.Fatalf("DelHandler(%d) = %v", h, err)
	}
	if err := r.DelHandler(h); !errors.Is(err, routing.ErrUnknownHandle) {
		t.Fatalf("second DelHandler(%d) = %v, want %v", h, err, routing.ErrUnknownHandle)
	}
	_, err := tr.master.r.Call(bg(t), tr.a.id(), h, wire.EncRaw, nil)
	remote(t, err, routing.ErrInvalidHandle, tr.a.id())
	if _, err := r.AddHandler(tr.a.echo, routing.HandlerOptions{Handle: h}); err != nil {
		t.Fatalf("AddHandler(%d) after DelHandler = %v", h, err)
	}
	if m, err := tr.master.r.Call(bg(t), tr.a.id(), h, wire.EncRaw, []byte("again")); err != nil || string(m.Body) != "1:again" {
		t.Fatalf("Call to the re-registered handle = %v, %v", m, err)
	}
	// Overwrite replaces.
	if _, err := r.AddHandler(func(m *wire.Message, _ *broker.Stream) {
		_ = r.Reply(context.Background(), m, wire.EncRaw, []byte("new"))
	}, routing.HandlerOptions{Handle: h, Overwrite: true}); err != nil {
		t.Fatalf("AddHandler with Overwrite = %v", err)
	}
	if m, err := tr.master.r.Call(bg(t), tr.a.id(), h, wire.EncRaw, nil); err != nil || string(m.Body) != "new" {
		t.Fatalf("Call to the overwritten handle = %v, %v", m, err)
	}
	// Dynamic handles are unique and in the dynamic range.
	seen := map[uint32]bool{}
	for range 100 {
		got, err := r.AddHandler(noop, routing.HandlerOptions{})
		if err != nil || got < wire.FirstDynamicHandle || seen[got] {
			t.Fatalf("AddHandler() = %d, %v: want a fresh handle >= %d", got, err, wire.FirstDynamicHandle)
		}
		seen[got] = true
	}
}

// TestExitDeliversShutdown: when the broker exits every handler still
// registered gets a dead ErrShutdown, and nothing new can be registered.
func TestExitDeliversShutdown(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	n := tr.a
	rc, err := n.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	if _, err := n.r.AddHandler(func(m *wire.Message, _ *broker.Stream) { got <- routing.ErrorOf(m) }, routing.HandlerOptions{Handle: 800}); err != nil {
		t.Fatal(err)
	}
	p, err := n.r.CallAsync(bg(t), 0, hHold, wire.EncRaw, nil) // answered by nobody
	if err != nil {
		t.Fatal(err)
	}
	tr.master.nextHeld(t)
	gone := n.r.Disconnected(4321)
	if isClosed(gone) {
		t.Fatal("Disconnected(4321) in a child closed before exit")
	}
	n.b.Close()

	_, err = rc.Get(bg(t))
	remote(t, err, routing.ErrShutdown, n.id())
	select {
	case err := <-got:
		remote(t, err, routing.ErrShutdown, n.id())
	default:
		t.Error("handler 800 got nothing by the time Close returned")
	}
	_, err = p.Wait(bg(t))
	remote(t, err, routing.ErrShutdown, n.id())
	if !isClosed(gone) {
		t.Error("Disconnected(4321) still open after exit")
	}
	if !isClosed(n.r.Disconnected(5)) {
		t.Error("Disconnected after exit returned an open channel")
	}
	if _, err := n.r.AddHandler(func(*wire.Message, *broker.Stream) {}, routing.HandlerOptions{}); !errors.Is(err, routing.ErrShutdown) {
		t.Errorf("AddHandler after exit = %v, want %v", err, routing.ErrShutdown)
	}
	if _, err := n.r.Call(bg(t), 0, hEcho, wire.EncRaw, nil); !errors.Is(err, routing.ErrShutdown) {
		t.Errorf("Call after exit = %v, want %v", err, routing.ErrShutdown)
	}
}

// TestDelRoute: when a context goes, DEL_ROUTE goes up to the master and
// down every stream that sent to it, and nowhere else; pending calls to it
// fail wherever they are.
func TestDelRoute(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	tr.a1.call(t, tr.b.id(), "hello B")
	for _, e := range []struct {
		n    *node
		id   uint32
		want bool
	}{{tr.master, tr.a.id(), true}, {tr.a, tr.a1.id(), true}, {tr.master, tr.c.id(), false}} {
		if got := slices.Contains(e.n.r.Egress(e.id), tr.b.id()); got != e.want {
			t.Fatalf("context %d: Egress(%d) = %v, holds B: %v, want %v", e.n.id(), e.id, e.n.r.Egress(e.id), got, e.want)
		}
	}
	watch := map[string]<-chan struct{}{
		"master": tr.master.r.Disconnected(tr.b.id()),
		"A":      tr.a.r.Disconnected(tr.b.id()),
		"A1":     tr.a1.r.Disconnected(tr.b.id()),
		"C":      tr.c.r.Disconnected(tr.b.id()),
	}
	for name, ch := range watch {
		if isClosed(ch) {
			t.Fatalf("%s: Disconnected(B) closed while B is up", name)
		}
	}
	if again := tr.master.r.Disconnected(tr.b.id()); again != watch["master"] {
		t.Error("a second Disconnected(B) returned a different channel")
	}
	p, err := tr.a1.r.CallAsync(bg(t), tr.b.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.b.nextHeld(t)

	tr.b.b.Close() // B exits; the master's stream to it sees EOF
	_, err = p.Wait(bg(t))
	remote(t, err, routing.ErrDisconnected, tr.b.id())
	for _, name := range []string{"master", "A", "A1"} {
		wait(t, watch[name], name+": Disconnected(B)")
	}
	checkRoutes(t, tr.master, tr.a.id(), tr.a1.id(), tr.c.id())
	// C never sent to B: it must not hear of its going. Anything the master
	// sent C about B is ahead of this call's request.
	tr.master.call(t, tr.c.id(), "sync")
	if isClosed(watch["C"]) {
		t.Error("C: Disconnected(B) closed, but C never sent to B")
	}
	if !isClosed(tr.master.r.Disconnected(tr.b.id())) {
		t.Error("master: Disconnected(B) after B is gone returned an open channel")
	}

	// Upward: A1 goes; A tells the master.
	gone := tr.master.r.Disconnected(tr.a1.id())
	p, err = tr.master.r.CallAsync(bg(t), tr.a1.id(), hHold, wire.EncRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.a1.nextHeld(t)
	tr.a1.down.Close()
	_, err = p.Wait(bg(t))
	remote(t, err, routing.ErrDisconnected, tr.a1.id())
	wait(t, gone, "master: Disconnected(A1)")
	checkRoutes(t, tr.master, tr.a.id(), tr.c.id())
	checkRoutes(t, tr.a)
	if got := tr.master.r.Name(tr.a1.id()); got != "" {
		t.Errorf("master Name(A1) after it went = %q, want \"\"", got)
	}
}

// TestDisconnectThenNoRoute: once a pending call has failed because its
// respondent went, a new call to it fails at once with ErrNoRoute: it never
// hangs and never finds a stale route.
func TestDisconnectThenNoRoute(t *testing.T) {
	testutil.VerifyNone(t)
	iterations := 200
	if testing.Short() {
		iterations = 20
	}
	tr := newTree(t, routing.Config{})
	tests := []struct {
		name   string
		caller *node
		parent *node // of the short-lived respondent
	}{
		{"master to child", tr.master, tr.master},
		{"master to grandchild", tr.master, tr.a},
		{"grandchild to far sibling", tr.a1, tr.master},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range iterations {
				n := tt.parent.attach(t, 0, routing.Config{})
				id := n.id()
				p, err := tt.caller.r.CallAsync(bg(t), id, hHold, wire.EncRaw, nil)
				if err != nil {
					t.Fatal(err)
				}
				n.nextHeld(t)
				n.b.Close()
				if _, err := p.Wait(bg(t)); !errors.Is(err, routing.ErrDisconnected) {
					t.Fatalf("iteration %d: Wait = %v, want %v", i, err, routing.ErrDisconnected)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err = tt.caller.r.Call(ctx, id, hEcho, wire.EncRaw, nil)
				cancel()
				if !errors.Is(err, routing.ErrNoRoute) {
					t.Fatalf("iteration %d: Call right after the disconnect = %v, want %v", i, err, routing.ErrNoRoute)
				}
			}
		})
	}
}

func TestCallHammer(t *testing.T) {
	testutil.VerifyNone(t)
	const callers = 16
	perCaller := 500
	if testing.Short() {
		perCaller = 50
	}
	tr := newTree(t, routing.Config{})
	start := make(chan struct{})
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			<-start
			for i := range perCaller {
				body := fmt.Appendf(nil, "%d/%d", c, i)
				m, err := tr.master.r.Call(context.Background(), tr.a1.id(), hEcho, wire.EncRaw, body)
				if err == nil && !bytes.Equal(m.Body, append(fmt.Appendf(nil, "%d:", tr.a1.id()), body...)) {
					err = fmt.Errorf("reply %q", m.Body)
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkCall1Hop(b *testing.B) {
	master := newMaster(b, routing.Config{})
	child := master.attach(b, 0, routing.Config{})
	ctx := context.Background()
	body := []byte("ping")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := master.r.Call(ctx, child.id(), hEcho, wire.EncRaw, body); err != nil {
			b.Fatal(err)
		}
	}
}
