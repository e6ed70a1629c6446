package routing_test

import (
	"context"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// The routing hot paths. Their allocs/op are checked against
// docs/bench-allocs.txt by `make bench-allocs` (tools/benchallocs); their
// times are for people, never compared. BenchmarkCall1Hop (router_test.go)
// is the call round trip to a child.

// BenchmarkForward is one message forwarded by a router between two of its
// children, nothing else on the path: the children are bare broker streams
// over socketpairs, one writing frames from context 1 to context 2, the
// other taking them in. It measures the router's reverse-path check, route
// lookup and Send, plus one stream write and two stream reads (the router's
// and the sink's); compare with BenchmarkStreamPingPong (broker), which is
// two of each.
func BenchmarkForward(b *testing.B) {
	r := newMaster(b, routing.Config{})
	far := broker.New(broker.Config{Grace: time.Millisecond})
	b.Cleanup(func() { far.Close() })
	arrived := make(chan struct{}, 1)
	streams := make([]*broker.Stream, 3)
	for id := uint32(1); id <= 2; id++ {
		near, end := socketPair(b)
		if _, err := r.r.AddChild(context.Background(), near, id, "child"); err != nil {
			b.Fatal(err)
		}
		s, err := far.NewStream(end, broker.StreamConfig{Name: "far", Handler: func(_ *broker.Stream, m *wire.Message) {
			if m.Handle == hHold {
				arrived <- struct{}{}
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		streams[id] = s
	}
	ctx := context.Background()
	body := []byte("ping")
	b.ReportAllocs()
	for b.Loop() {
		m := &wire.Message{Enc: wire.EncRaw, Dst: 2, Src: 1, Auth: 1, Handle: hHold, Body: body}
		if err := streams[1].Send(ctx, m); err != nil {
			b.Fatal(err)
		}
		<-arrived
	}
}

// BenchmarkCall2Hop is a call round trip from the master to a grandchild:
// the child between them forwards the request down and the reply up.
func BenchmarkCall2Hop(b *testing.B) {
	master := newMaster(b, routing.Config{})
	grandchild := master.attach(b, 0, routing.Config{}).attach(b, 0, routing.Config{})
	ctx := context.Background()
	body := []byte("ping")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := master.r.Call(ctx, grandchild.id(), hEcho, wire.EncRaw, body); err != nil {
			b.Fatal(err)
		}
	}
}
