package routing_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/spindle-hq/spindle/internal/testutil"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// waitTimeout bounds every wait on the code under test.
const waitTimeout = 20 * time.Second

// Fixed handles the tests listen on: above the well-known ones, below the
// dynamic range, so they never collide with either.
const (
	hEcho    uint32 = 500 // replies "<id>:" + body
	hHold    uint32 = 501 // reports each request on node.held, never replies
	hNowhere uint32 = 599 // nothing ever listens here
)

// node is one context of an in-process tree: a broker and its router,
// connected to its parent by a socketpair.
type node struct {
	b    *broker.Broker
	r    *routing.Router
	logs *logBuffer
	up   *broker.Stream // this node's stream to its parent; nil in the master
	down *broker.Stream // the parent's stream to this node; nil in the master
	held chan *wire.Message
}

func (n *node) id() uint32 { return n.r.ID() }

// newNode starts a broker and router, both closed when the test ends, with
// the echo and hold handlers registered.
func newNode(t testing.TB, cfg routing.Config) *node {
	t.Helper()
	n := &node{logs: &logBuffer{}, held: make(chan *wire.Message, 64)}
	n.b = broker.New(broker.Config{Logger: n.logs.Logger(), Grace: time.Millisecond})
	t.Cleanup(func() { n.b.Close() })
	n.r = routing.New(n.b, cfg)
	if _, err := n.r.AddHandler(n.echo, routing.HandlerOptions{Handle: hEcho}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.r.AddHandler(func(m *wire.Message, _ *broker.Stream) {
		if !m.IsDead() {
			n.held <- m
		}
	}, routing.HandlerOptions{Handle: hHold}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) echo(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	_ = n.r.Reply(n.b.Context(), m, wire.EncRaw, append(fmt.Appendf(nil, "%d:", n.id()), m.Body...))
}

func newMaster(t testing.TB, cfg routing.Config) *node {
	t.Helper()
	return newNode(t, cfg)
}

// attach starts a child of p with the given ID and returns once every
// ancestor up to the master has its route.
func (p *node) attach(t testing.TB, id uint32, cfg routing.Config) *node {
	t.Helper()
	c := p.link(t, id, cfg)
	c.sync(t)
	return c
}

// link starts a child of p: the parent's AddChild, then the child's
// SetParent. It does not wait for the routes to reach the master. id 0
// takes the parent's next ID (AllocateID), as a real parent does; a non-zero
// id is used as given (a master may pick its children's IDs by hand, but
// elsewhere an ID that no block covers is refused by the ancestors).
func (p *node) link(t testing.TB, id uint32, cfg routing.Config) *node {
	t.Helper()
	if id == 0 {
		var err error
		if id, err = p.r.AllocateID(bg(t)); err != nil {
			t.Fatalf("context %d: AllocateID = %v", p.id(), err)
		}
	}
	cfg.ID = id
	cfg.ParentIDs = append([]uint32{p.id()}, p.r.ParentIDs()...)
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = p.r.MaxMessageSize()
	}
	c := newNode(t, cfg)
	pc, cc := socketPair(t)
	var err error
	if c.down, err = p.r.AddChild(context.Background(), pc, id, fmt.Sprintf("ctx%d", id)); err != nil {
		t.Fatalf("AddChild(%d): %v", id, err)
	}
	if c.up, err = c.r.SetParent(cc, "parent"); err != nil {
		t.Fatalf("SetParent in %d: %v", id, err)
	}
	return c
}

// sync makes a round trip from n to the master: once it is back, every
// ADD_ROUTE n's ancestors sent before has been handled by the master.
func (n *node) sync(t testing.TB) {
	t.Helper()
	if n.r.IsMaster() {
		return
	}
	if _, err := n.r.Call(bg(t), 0, hNowhere, wire.EncRaw, nil); !errors.Is(err, routing.ErrInvalidHandle) {
		t.Fatalf("sync %d with the master: %v, want %v", n.id(), err, routing.ErrInvalidHandle)
	}
}

// call calls hEcho in dst and checks the reply.
func (n *node) call(t testing.TB, dst uint32, body string) {
	t.Helper()
	m, err := n.r.Call(bg(t), dst, hEcho, wire.EncRaw, []byte(body))
	if err != nil {
		t.Fatalf("Call from %d to %d = %v", n.id(), dst, err)
	}
	if want := fmt.Sprintf("%d:%s", dst, body); string(m.Body) != want || m.Src != dst {
		t.Fatalf("Call from %d to %d = %v %q, want src %d body %q", n.id(), dst, m, m.Body, dst, want)
	}
}

// nextHeld returns the next request the hold handler got.
func (n *node) nextHeld(t testing.TB) *wire.Message {
	t.Helper()
	select {
	case m := <-n.held:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("context %d: no request on the hold handle within %v", n.id(), waitTimeout)
		return nil
	}
}

// remote checks that err is a *RemoteError matching want, made by context
// from, and returns it.
func remote(t testing.TB, err, want error, from uint32) *routing.RemoteError {
	t.Helper()
	var re *routing.RemoteError
	if !errors.Is(err, want) || !errors.As(err, &re) {
		t.Fatalf("error = %v, want a *RemoteError matching %v", err, want)
	}
	if re.Context != from {
		t.Fatalf("error %v made by context %d, want %d", err, re.Context, from)
	}
	return re
}

func socketPair(t testing.TB) (net.Conn, net.Conn) { return testutil.SocketPair(t) }

type logBuffer = testutil.LogBuffer

func bg(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func wait(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: not done within %v", what, waitTimeout)
	}
}

func checkRoutes(t testing.TB, n *node, want ...uint32) {
	t.Helper()
	if got := n.r.Routes(); !slices.Equal(got, want) {
		t.Fatalf("context %d: Routes() = %v, want %v", n.id(), got, want)
	}
}
