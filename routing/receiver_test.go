package routing_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/latch"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

func TestCloseSender(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	rc, err := tr.master.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rc.Sender(); s.Context != 0 || s.Handle != rc.Handle() {
		t.Fatalf("Sender() = %+v, want {0 %d}", s, rc.Handle())
	}
	if err := tr.a1.r.CloseSender(bg(t), rc.Sender()); err != nil {
		t.Fatal(err)
	}
	_, err = rc.Get(bg(t))
	remote(t, err, routing.ErrSenderClosed, tr.a1.id())

	// The receiver stays open.
	if err := tr.a.r.SendTo(bg(t), rc.Sender(), wire.EncRaw, []byte("more")); err != nil {
		t.Fatal(err)
	}
	if m, err := rc.Get(bg(t)); err != nil || string(m.Body) != "more" {
		t.Fatalf("Get after a closed sender = %v, %v, want \"more\"", m, err)
	}
	if _, err := rc.TryGet(); !errors.Is(err, latch.ErrEmpty) {
		t.Fatalf("TryGet on an empty receiver = %v, want %v", err, latch.ErrEmpty)
	}

	// Close wakes a waiter, and the handle is gone.
	got := make(chan error, 1)
	go func() {
		_, err := rc.Get(context.Background())
		got <- err
	}()
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, routing.ErrReceiverClosed) {
		t.Fatalf("Get woken by Close = %v, want %v", err, routing.ErrReceiverClosed)
	}
	if _, err := rc.TryGet(); !errors.Is(err, routing.ErrReceiverClosed) {
		t.Fatalf("TryGet after Close = %v, want %v", err, routing.ErrReceiverClosed)
	}
	rc.Close()
	_, err = tr.a.r.Call(bg(t), 0, rc.Handle(), wire.EncRaw, nil)
	remote(t, err, routing.ErrInvalidHandle, 0)
}

// TestReceiverSelect waits on two receivers with latch.Select: events come
// in arrival order, dead messages included (as errors).
func TestReceiverSelect(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	var rcs [2]*routing.Receiver
	sel := latch.NewSelect(false)
	defer sel.Close()
	for i := range rcs {
		rc, err := tr.master.r.NewReceiver(routing.HandlerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if err := sel.Add(rc); err != nil {
			t.Fatal(err)
		}
		rcs[i] = rc
	}
	// A learns where to send from a message: a Sender is plain data.
	const hSendTo = 660
	var mu sync.Mutex
	var sendErrs []error
	if _, err := tr.a.r.AddHandler(func(m *wire.Message, _ *broker.Stream) {
		var req struct {
			To    routing.Sender `msgpack:"to"`
			Body  string         `msgpack:"body"`
			Close bool           `msgpack:"close"`
		}
		err := msgpack.Unmarshal(m.Body, &req)
		if err == nil && req.Close {
			err = tr.a.r.CloseSender(tr.a.b.Context(), req.To)
		} else if err == nil {
			err = tr.a.r.SendTo(tr.a.b.Context(), req.To, wire.EncRaw, []byte(req.Body))
		}
		if err != nil {
			mu.Lock()
			sendErrs = append(sendErrs, err)
			mu.Unlock()
		}
	}, routing.HandlerOptions{Handle: hSendTo}); err != nil {
		t.Fatal(err)
	}
	script := []struct {
		rc    int
		body  string
		close bool
	}{{0, "first", false}, {1, "second", false}, {0, "third", false}, {1, "", true}, {0, "last", false}}
	for _, s := range script {
		body, err := msgpack.Marshal(map[string]any{"to": rcs[s.rc].Sender(), "body": s.body, "close": s.close})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.master.r.SendTo(bg(t), routing.Sender{Context: tr.a.id(), Handle: hSendTo}, wire.EncMsgpack, body); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range script {
		ev, err := sel.Get(bg(t))
		if err != nil {
			t.Fatalf("Select.Get #%d = %v", i, err)
		}
		if ev.Source != rcs[s.rc] {
			t.Fatalf("event #%d from receiver %v, want receiver %d", i, ev.Source, s.rc)
		}
		switch v := ev.Value.(type) {
		case *wire.Message:
			if s.close || string(v.Body) != s.body {
				t.Fatalf("event #%d = message %q, want %+v", i, v.Body, s)
			}
		case error:
			if !s.close || !errors.Is(v, routing.ErrSenderClosed) {
				t.Fatalf("event #%d = error %v, want %+v", i, v, s)
			}
		default:
			t.Fatalf("event #%d has value %T %v", i, v, v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range sendErrs {
		t.Error(err)
	}
}

// TestBoundedReceiver: senders on several streams at once, past the bound:
// the queue never holds more than its limits (plus one per concurrent
// stream), the rest is dropped and counted, a sender that asks for a reply
// gets ErrRefused, and a dead message still gets through a full queue.
func TestBoundedReceiver(t *testing.T) {
	testutil.VerifyNone(t)
	tr := newTree(t, routing.Config{})
	tests := []struct {
		name string
		lim  routing.ReceiverLimits
		size int
	}{
		{"messages", routing.ReceiverLimits{Messages: 10}, 100},
		{"bytes", routing.ReceiverLimits{Bytes: 10_000}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := tr.master.r.NewBoundedReceiver(routing.HandlerOptions{}, tt.lim)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			senders := []*node{tr.a, tr.a1, tr.b, tr.c}
			const each = 50
			var wg sync.WaitGroup
			for _, s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						_ = s.r.SendTo(bg(t), rc.Sender(), wire.EncRaw, make([]byte, tt.size))
					}
				}()
			}
			wg.Wait()
			// One call per sender: each follows its stream's sends, so
			// every send has been routed once it is answered.
			for _, s := range senders {
				_, err := s.r.Call(bg(t), 0, rc.Handle(), wire.EncRaw, make([]byte, tt.size))
				remote(t, err, routing.ErrRefused, 0)
			}
			queued, size := 0, 0
			for {
				m, err := rc.TryGet()
				if err != nil {
					break
				}
				queued++
				size += len(m.Body)
			}
			slack := len(senders)
			if tt.lim.Messages > 0 && queued > tt.lim.Messages+slack {
				t.Errorf("%d messages queued, bound %d", queued, tt.lim.Messages)
			}
			if tt.lim.Bytes > 0 && int64(size) > tt.lim.Bytes {
				t.Errorf("%d bytes queued, bound %d", size, tt.lim.Bytes)
			}
			if got, want := int(rc.Dropped())+queued, len(senders)*(each+1); got != want {
				t.Errorf("dropped %d + queued %d = %d, want every one of %d counted", rc.Dropped(), queued, got, want)
			}
			if rc.Queued() != 0 {
				t.Errorf("Queued() = %d after draining", rc.Queued())
			}
			// Full again, a close still arrives.
			for range tt.lim.Messages + int(tt.lim.Bytes)/tt.size {
				_ = tr.a.r.SendTo(bg(t), rc.Sender(), wire.EncRaw, make([]byte, tt.size))
			}
			if err := tr.a.r.CloseSender(bg(t), rc.Sender()); err != nil {
				t.Fatal(err)
			}
			for {
				_, err := rc.Get(bg(t))
				if errors.Is(err, routing.ErrSenderClosed) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestCallToSelfKeepsTheRequest: a call to the router's own context hands
// the request message itself to the handler, which may keep it (a
// receiver queues it): the caller must not reuse or clear it after.
func TestCallToSelfKeepsTheRequest(t *testing.T) {
	n := newMaster(t, routing.Config{})
	rc, err := n.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var pends []*routing.Pending
	for i := range 3 {
		p, err := n.r.CallAsync(bg(t), n.id(), rc.Handle(), wire.EncRaw, []byte{byte('a' + i)})
		if err != nil {
			t.Fatal(err)
		}
		pends = append(pends, p)
	}
	for i := range 3 {
		m, err := rc.Get(bg(t))
		if err != nil {
			t.Fatal(err)
		}
		if want := string(rune('a' + i)); string(m.Body) != want || m.ReplyTo != pends[i].Handle() {
			t.Fatalf("request %d: body %q reply_to %d, want %q and %d", i, m.Body, m.ReplyTo, want, pends[i].Handle())
		}
		if err := n.r.Reply(bg(t), m, wire.EncRaw, m.Body); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range pends {
		m, err := p.Wait(bg(t))
		if err != nil || string(m.Body) != string(rune('a'+i)) {
			t.Fatalf("reply %d: %v %v", i, m, err)
		}
	}
}

// TestNoRespondentSetOutlivesItsCalls: the handles of calls are kept per
// respondent, and nothing of it stays once the calls are over, whatever the
// respondent: a child calling IDs that never existed (its lookup sends them
// up to the parent, which answers no route), or a sibling that has gone.
func TestNoRespondentSetOutlivesItsCalls(t *testing.T) {
	m := newMaster(t, routing.Config{})
	c := m.attach(t, 1, routing.Config{})
	s := m.attach(t, 2, routing.Config{})
	c.call(t, 2, "to the sibling")
	for i := range 200 {
		if _, err := c.r.Call(bg(t), uint32(100000+i), hEcho, wire.EncRaw, nil); !errors.Is(err, routing.ErrNoRoute) {
			t.Fatalf("call %d to an ID that does not exist: %v, want ErrNoRoute", i, err)
		}
	}
	// Watched before it goes: a child does not remember an ID that went
	// before it asked (under load the news could beat a later call).
	gone := c.r.Disconnected(2)
	s.up.Close()
	wait(t, gone, "the sibling's disconnection")
	if _, err := c.r.Call(bg(t), 2, hEcho, wire.EncRaw, nil); err == nil {
		t.Fatal("a call to the sibling that went was answered")
	}
	if n := routing.RespondentSets(c.r); n != 0 {
		t.Errorf("the child keeps handle sets for %d respondents after every call ended", n)
	}
}
