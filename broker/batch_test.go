package broker_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

// writeSyscalls returns how many write-like system calls this process has
// made so far (syscw in /proc/self/io: write, writev and the like).
func writeSyscalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io to count write calls: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("syscw %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no syscw in /proc/self/io:\n%s", b)
	return 0
}

// Frames that arrive together are answered together: while the reader holds
// more frames, replies queue (corked) and leave in a few writes, not one
// each.
func TestStreamCorksRepliesToABatch(t *testing.T) {
	testutil.VerifyNone(t)
	const frames = 500
	a, b := socketPair(t)
	newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "echo", Handler: func(s *broker.Stream, m *wire.Message) {
		if err := s.Send(context.Background(), m); err != nil {
			t.Errorf("reply: %v", err)
		}
	}})
	// All requests in one write, so the echo's reader finds them buffered
	// together.
	var batch []byte
	for i := range frames {
		batch = (&wire.Message{Enc: wire.EncRaw, Handle: uint32(i + 1), Body: []byte("ping")}).AppendFrame(batch)
	}
	before := writeSyscalls(t)
	if _, err := a.Write(batch); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, wire.HeaderLen)
	for i := range frames {
		m, err := wire.ReadMessage(a, hdr, 0)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if m.Handle != uint32(i+1) || string(m.Body) != "ping" {
			t.Fatalf("reply %d = %v %q, want handle %d, in order", i, m, m.Body, i+1)
		}
	}
	writes := writeSyscalls(t) - before - 1 // our own write of the batch
	t.Logf("%d replies in %d write calls", frames, writes)
	if writes > frames/10 {
		t.Errorf("%d replies to one batch took %d write calls: not batched", frames, writes)
	}
}

// A frame corked behind a handler that then blocks is not held for the
// handler's sake: the cork lets go within its bound.
func TestStreamCorkedReplyNotHeldByABlockedHandler(t *testing.T) {
	testutil.VerifyNone(t)
	a, b := socketPair(t)
	release := make(chan struct{})
	var once sync.Once
	newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "echo", Handler: func(s *broker.Stream, m *wire.Message) {
		if m.Handle == 2 {
			<-release // the second request's handler is stuck
			return
		}
		if err := s.Send(context.Background(), m); err != nil {
			t.Errorf("reply: %v", err)
		}
	}})
	// Registered after the broker's Close, so it runs first: the stuck
	// handler lets go before the broker waits for its reader.
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	batch := (&wire.Message{Enc: wire.EncRaw, Handle: 1, Body: []byte("first")}).AppendFrame(nil)
	batch = (&wire.Message{Enc: wire.EncRaw, Handle: 2, Body: []byte("stuck")}).AppendFrame(batch)
	if _, err := a.Write(batch); err != nil {
		t.Fatal(err)
	}
	got := make(chan *wire.Message, 1)
	go func() {
		m, err := wire.ReadMessage(a, make([]byte, wire.HeaderLen), 0)
		if err != nil {
			t.Errorf("read reply: %v", err)
		}
		got <- m
	}()
	select {
	case m := <-got:
		if m == nil || m.Handle != 1 || !bytes.Equal(m.Body, []byte("first")) {
			t.Fatalf("reply = %v, want the first request's", m)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the reply to the first request is held while the second's handler is stuck")
	}
	once.Do(func() { close(release) })
}

// Calls pipelined by one goroutine go out in a few writes, not one each,
// and in order.
func TestStreamBurstIsBatched(t *testing.T) {
	testutil.VerifyNone(t)
	const frames = 2000
	a, b := socketPair(t)
	recv := make(collector, frames)
	newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "sink", Handler: recv.handle})
	s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "source"})
	before := writeSyscalls(t)
	for i := range frames {
		if err := s.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Handle: uint32(i + 1), Body: []byte("call")}); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := range frames {
		if m := recv.next(t); m.Handle != uint32(i+1) {
			t.Fatalf("frame %d has handle %d: out of order", i, m.Handle)
		}
	}
	writes := writeSyscalls(t) - before
	t.Logf("%d sends in %d write calls", frames, writes)
	if writes > frames/4 {
		t.Errorf("%d sends in a burst took %d write calls: not batched", frames, writes)
	}
}
