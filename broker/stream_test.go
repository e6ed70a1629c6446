package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

func TestStreamDelivery(t *testing.T) {
	sizes := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"small", 100},
		{"scratch limit", 4<<10 - wire.HeaderLen}, // the largest frame built in the stream's scratch buffer
		{"just over scratch limit", 4<<10 - wire.HeaderLen + 1},
		{"copy limit", 16 << 10},
		{"just over copy limit", 16<<10 + 1},
		{"1MiB", 1 << 20},
	}
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, b := kind.pair(t)
			recv := make(collector, 64)
			sa := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "a"})
			newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "b", Handler: recv.handle})

			// Every size twice, interleaved, so that small frames sit in the
			// same batch as large ones.
			var want []*wire.Message
			for round := range 2 {
				for i, sz := range sizes {
					n := round*len(sizes) + i
					want = append(want, &wire.Message{Enc: wire.EncRaw, Dst: uint32(n), Src: 2, Auth: 3, Handle: 1000 + uint32(n), ReplyTo: 7, Body: body(n, sz.n)})
				}
			}
			for _, m := range want {
				sent := *m
				sent.Body = bytes.Clone(m.Body) // Send owns the body it is given
				if err := sa.Send(bg(t), &sent); err != nil {
					t.Fatalf("Send(%v) = %v", m, err)
				}
			}
			for _, w := range want {
				got := recv.next(t)
				if got.String() != w.String() || !bytes.Equal(got.Body, w.Body) {
					t.Fatalf("received %v, want %v (in order, body intact)", got, w)
				}
			}
		})
	}
}

func TestStreamBackPressure(t *testing.T) {
	const maxQueued = 64 << 10
	frame := func(i int) *wire.Message {
		return &wire.Message{Enc: wire.EncRaw, Handle: uint32(i), Body: body(i, 4096)}
	}
	n := wire.HeaderLen + 4096
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, _ := kind.pair(t) // the other end is held open and never read
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "stuck", MaxQueued: maxQueued})

			// Fill the pipe, then the queue, until Send blocks.
			for i := 0; ; i++ {
				if i > 100_000 {
					t.Fatalf("Send never blocked after %d frames; Queued() = %d", i, s.Queued())
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				err := s.Send(ctx, frame(i))
				cancel()
				if q := s.Queued(); q > maxQueued+n {
					t.Fatalf("after %d sends Queued() = %d, want <= %d", i+1, q, maxQueued+n)
				}
				if err == nil {
					continue
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("blocked Send = %v, want context.DeadlineExceeded", err)
				}
				break
			}
			if q := s.Queued(); q+n <= maxQueued {
				t.Fatalf("Send blocked with Queued() = %d, room for a %d-byte frame under %d", q, n, maxQueued)
			}

			// A cancelled ctx ends a blocked Send.
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- s.Send(ctx, frame(-1)) }()
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("Send after cancel = %v, want context.Canceled", err)
			}

			// Closing the stream unblocks every blocked sender with its error.
			errClosed := errors.New("test: closed while senders blocked")
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i := range 4 {
				wg.Go(func() { errs <- s.Send(context.Background(), frame(i)) })
			}
			s.CloseWithError(errClosed)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != errClosed {
					t.Errorf("blocked Send after CloseWithError = %v, want %v", err, errClosed)
				}
			}
			if q := s.Queued(); q > maxQueued+n {
				t.Errorf("Queued() = %d, want <= %d", q, maxQueued+n)
			}
		})
	}
}

func TestStreamBadFrameClosesOnlyThatStream(t *testing.T) {
	good := &wire.Message{Enc: wire.EncRaw, Handle: 1, Body: []byte("ok")}
	badEnc := good.AppendFrame(nil)
	badEnc[0], badEnc[1] = 'X', 'Y'
	oversize := (&wire.Message{Enc: wire.EncRaw, Handle: 1}).AppendHeader(nil)
	binary.BigEndian.PutUint32(oversize[22:], 1025)
	tests := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"bad encoding", badEnc, "corruption detected"},
		{"oversize", oversize, "maximum message size exceeded: 1025 > 1024"},
	}
	for _, kind := range connKinds {
		for _, tt := range tests {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				testutil.VerifyNone(t)
				var logs logBuffer
				b := newBroker(t, broker.Config{Logger: logs.Logger()})
				bad, badPeer := kind.pair(t)
				var closeErr error
				closed := make(chan struct{})
				s1 := newStream(t, b, bad, broker.StreamConfig{Name: "victim", MaxMessageSize: 1024,
					OnClose: func(_ *broker.Stream, err error) { closeErr = err; close(closed) }})
				recv := make(collector, 4)
				other, otherPeer := kind.pair(t)
				s2 := newStream(t, b, other, broker.StreamConfig{Name: "bystander", MaxMessageSize: 1024, Handler: recv.handle})
				peerRecv := make(collector, 4)
				p2 := newStream(t, newBroker(t, broker.Config{}), otherPeer, broker.StreamConfig{Name: "peer", Handler: peerRecv.handle})

				go badPeer.Write(tt.frame) // net.Pipe blocks until read
				wait(t, closed, "OnClose of the stream fed a bad frame")
				var de *wire.DecodeError
				if err := s1.Err(); !errors.As(err, &de) || !strings.Contains(de.Reason, tt.reason) {
					t.Errorf("Err() = %v, want a *wire.DecodeError with reason %q", err, tt.reason)
				}
				if closeErr != s1.Err() {
					t.Errorf("OnClose got %v, Err() = %v, want the same error", closeErr, s1.Err())
				}
				if out := logs.String(); !strings.Contains(out, "closing stream") || !strings.Contains(out, "stream=victim") || !strings.Contains(out, tt.reason) {
					t.Errorf("log = %q, want a \"closing stream\" record for victim with reason %q", out, tt.reason)
				}

				// The other stream of the same broker still works both ways.
				if err := p2.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Handle: 2, Body: []byte("in")}); err != nil {
					t.Fatal(err)
				}
				if m := recv.next(t); string(m.Body) != "in" {
					t.Fatalf("bystander received %v, want body \"in\"", m)
				}
				if err := s2.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Handle: 3, Body: []byte("out")}); err != nil {
					t.Fatal(err)
				}
				if m := peerRecv.next(t); string(m.Body) != "out" {
					t.Fatalf("bystander's peer received %v, want body \"out\"", m)
				}
				if err := s2.Err(); err != nil {
					t.Fatalf("bystander Err() = %v, want nil", err)
				}
			})
		}
	}
}

func TestStreamFirstErrorKept(t *testing.T) {
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, peer := kind.pair(t)
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "s"})
			if err := s.Err(); err != nil {
				t.Fatalf("Err() on an open stream = %v, want nil", err)
			}
			peer.Close()
			wait(t, s.Done(), "stream after peer close")
			if err := s.Err(); err != broker.ErrPeerClosed {
				t.Fatalf("Err() after peer close = %v, want %v", err, broker.ErrPeerClosed)
			}
			s.CloseWithError(errors.New("later"))
			s.Close()
			for i := range 3 {
				if err := s.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Body: body(i, 10<<10*i)}); err != broker.ErrPeerClosed {
					t.Errorf("Send #%d after peer close = %v, want %v", i, err, broker.ErrPeerClosed)
				}
			}
			if err := s.Flush(bg(t)); err != broker.ErrPeerClosed {
				t.Errorf("Flush after peer close = %v, want %v", err, broker.ErrPeerClosed)
			}
			if err := s.Err(); err != broker.ErrPeerClosed {
				t.Errorf("Err() after later closes = %v, want %v", err, broker.ErrPeerClosed)
			}
		})
	}
}

func TestStreamLocalCloseError(t *testing.T) {
	testutil.VerifyNone(t)
	a, _ := socketPair(t)
	s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "s"})
	s.Close()
	wait(t, s.Done(), "stream after Close")
	if err := s.Send(bg(t), &wire.Message{}); err != broker.ErrStreamClosed {
		t.Fatalf("Send after Close = %v, want %v", err, broker.ErrStreamClosed)
	}
}

// TestStreamOnCloseOnce closes a stream from several goroutines while its
// peer is still sending: OnClose runs once, and at most one Handler call
// (the frame already decoded at the close) starts after it.
func TestStreamOnCloseOnce(t *testing.T) {
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, b := kind.pair(t)
			var handled, afterClose, closes atomic.Int32
			var closedFlag atomic.Bool
			enough := make(chan struct{})
			onClose := make(chan error, 2)
			bk := newBroker(t, broker.Config{})
			s := newStream(t, bk, a, broker.StreamConfig{
				Name: "s",
				Handler: func(*broker.Stream, *wire.Message) {
					if closedFlag.Load() {
						afterClose.Add(1)
					}
					if handled.Add(1) == 100 {
						close(enough)
					}
				},
				OnClose: func(_ *broker.Stream, err error) {
					closedFlag.Store(true)
					closes.Add(1)
					onClose <- err
				},
			})
			peer := newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "peer"})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if peer.Send(context.Background(), &wire.Message{Enc: wire.EncRaw, Body: body(i, 64)}) != nil {
						return
					}
				}
			})
			wait(t, enough, "100 frames handled")
			for range 4 {
				wg.Go(func() { s.Close() })
			}
			wg.Go(func() { s.CloseWithError(errors.New("other")) })
			var err error
			select {
			case err = <-onClose:
			case <-time.After(waitTimeout):
				t.Fatal("OnClose not called")
			}
			close(stop)
			wg.Wait()
			bk.Close() // closing the broker must not run OnClose again
			if err != s.Err() || s.Err() == nil {
				t.Errorf("OnClose got %v, Err() = %v, want the same non-nil error", err, s.Err())
			}
			if n := closes.Load(); n != 1 {
				t.Errorf("OnClose ran %d times, want 1", n)
			}
			if n := afterClose.Load(); n > 1 {
				t.Errorf("Handler ran %d times after OnClose, want at most 1", n)
			}
		})
	}
}

// TestStreamOnCloseAfterLastFrame: frames the peer wrote before closing are
// all handed to Handler before OnClose runs.
func TestStreamOnCloseAfterLastFrame(t *testing.T) {
	const frames = 500
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, b := kind.pair(t)
			handled := 0 // owned by the reader goroutine until OnClose
			var seenAtClose int
			var closes atomic.Int32
			closed := make(chan struct{})
			newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{
				Name:    "s",
				Handler: func(*broker.Stream, *wire.Message) { handled++ },
				OnClose: func(*broker.Stream, error) {
					seenAtClose = handled
					if closes.Add(1) == 1 {
						close(closed)
					}
				},
			})
			go func() {
				defer b.Close()
				var buf []byte
				for i := range frames {
					buf = (&wire.Message{Enc: wire.EncRaw, Body: body(i, i%50)}).AppendFrame(buf)
				}
				b.Write(buf)
			}()
			wait(t, closed, "OnClose")
			if seenAtClose != frames {
				t.Errorf("OnClose saw %d frames handled, want %d", seenAtClose, frames)
			}
			if n := closes.Load(); n != 1 {
				t.Errorf("OnClose ran %d times, want 1", n)
			}
		})
	}
}

func TestStreamFlush(t *testing.T) {
	const big = 4 << 20 // more than a socket or pipe buffer holds
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, peer := kind.pair(t)
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "s"})
			if err := s.Flush(bg(t)); err != nil {
				t.Fatalf("Flush on an idle stream = %v, want nil", err)
			}
			want := &wire.Message{Enc: wire.EncRaw, Handle: 9, Body: body(1, big)}
			if err := s.Send(bg(t), &wire.Message{Enc: want.Enc, Handle: want.Handle, Body: bytes.Clone(want.Body)}); err != nil {
				t.Fatal(err)
			}
			// Nobody reads yet: the frame cannot all be written.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := s.Flush(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Flush with the peer not reading = %v, want context.DeadlineExceeded", err)
			}
			if q := s.Queued(); q == 0 {
				t.Fatalf("Queued() = 0 while the peer is not reading")
			}
			got := make(chan *wire.Message, 1)
			go func() {
				m, err := wire.ReadMessage(peer, make([]byte, wire.HeaderLen), 0)
				if err != nil {
					m = &wire.Message{Body: []byte(err.Error())}
				}
				got <- m
			}()
			if err := s.Flush(bg(t)); err != nil {
				t.Fatalf("Flush = %v, want nil", err)
			}
			if q := s.Queued(); q != 0 {
				t.Fatalf("Queued() after Flush = %d, want 0", q)
			}
			select {
			case m := <-got:
				if m.String() != want.String() || !bytes.Equal(m.Body, want.Body) {
					t.Fatalf("peer read %v, want %v", m, want)
				}
			case <-time.After(waitTimeout):
				t.Fatal("peer never read the flushed frame")
			}
		})
	}
}

// TestStreamHammer sends from many goroutines at once on one stream: the
// peer gets every frame exactly once, each sender's in order.
func TestStreamHammer(t *testing.T) {
	const senders = 8
	perSender := 2000
	if testing.Short() {
		perSender = 200
	}
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, b := kind.pair(t)
			var next [senders]uint32 // owned by the peer's reader
			var bad []string         // owned by the peer's reader until done
			total := 0
			done := make(chan struct{})
			newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "peer", Handler: func(_ *broker.Stream, m *wire.Message) {
				id, seq := binary.BigEndian.Uint32(m.Body), binary.BigEndian.Uint32(m.Body[4:])
				if id >= senders || seq != next[id] {
					bad = append(bad, fmt.Sprintf("frame %d from sender %d, want %d", seq, id, next[min(id, senders-1)]))
				} else {
					next[id]++
				}
				if total++; total == senders*perSender {
					close(done)
				}
			}})
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "s", MaxQueued: 64 << 10})
			start := make(chan struct{})
			errs := make(chan error, senders)
			var wg sync.WaitGroup
			for id := range senders {
				wg.Go(func() {
					<-start
					for seq := range perSender {
						b := binary.BigEndian.AppendUint32(nil, uint32(id))
						b = binary.BigEndian.AppendUint32(b, uint32(seq))
						if err := s.Send(context.Background(), &wire.Message{Enc: wire.EncRaw, Body: b}); err != nil {
							errs <- fmt.Errorf("sender %d frame %d: %w", id, seq, err)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			wait(t, done, fmt.Sprintf("receipt of %d frames", senders*perSender))
			if len(bad) > 0 {
				t.Fatalf("%d frames out of order, first: %s", len(bad), bad[0])
			}
		})
	}
}

func TestNewStreamNoHandler(t *testing.T) {
	testutil.VerifyNone(t)
	a, _ := socketPair(t)
	b := newBroker(t, broker.Config{})
	if _, err := b.NewStream(a, broker.StreamConfig{Name: "x"}); err == nil {
		t.Fatal("NewStream without a Handler = nil error")
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Error("NewStream failed but left its pipe open")
	}
}

func BenchmarkStreamPingPong(b *testing.B) {
	x, y := socketPair(b)
	bx, by := newBroker(b, broker.Config{}), newBroker(b, broker.Config{})
	newStream(b, by, y, broker.StreamConfig{Name: "echo", Handler: func(s *broker.Stream, m *wire.Message) {
		_ = s.Send(context.Background(), m)
	}})
	pong := make(collector, 1)
	s := newStream(b, bx, x, broker.StreamConfig{Name: "ping", Handler: pong.handle})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(ctx, &wire.Message{Enc: wire.EncRaw, Handle: 1, Body: []byte("ping")}); err != nil {
			b.Fatal(err)
		}
		<-pong
	}
}

// BenchmarkStreamSmall pipelines 64-byte messages one way, as calls under
// load do: the writer may batch them, the reader allocates per message. It
// keeps at most window messages in flight, so that the reader's work (and
// allocations) stay inside the measured loop: the tail left when the loop
// ends is at most window messages.
func BenchmarkStreamSmall(b *testing.B) {
	const window = 64
	x, y := socketPair(b)
	var got atomic.Int64
	arrived := make(chan struct{}, 1)
	newStream(b, newBroker(b, broker.Config{}), y, broker.StreamConfig{Name: "sink", Handler: func(_ *broker.Stream, m *wire.Message) {
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	}})
	s := newStream(b, newBroker(b, broker.Config{}), x, broker.StreamConfig{Name: "source"})
	payload := make([]byte, 64)
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		if err := s.Send(ctx, &wire.Message{Enc: wire.EncRaw, Handle: 1, Body: payload}); err != nil {
			b.Fatal(err)
		}
		n++
		for got.Load() < n-window {
			<-arrived
		}
	}
	for got.Load() < n {
		<-arrived
	}
}

func BenchmarkStreamThroughput(b *testing.B) {
	const size = 1 << 20
	x, y := socketPair(b)
	var got atomic.Int64
	arrived := make(chan struct{}, 1)
	newStream(b, newBroker(b, broker.Config{}), y, broker.StreamConfig{Name: "sink", Handler: func(_ *broker.Stream, m *wire.Message) {
		got.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
	}})
	s := newStream(b, newBroker(b, broker.Config{}), x, broker.StreamConfig{Name: "source"})
	payload := body(0, size)
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		if err := s.Send(ctx, &wire.Message{Enc: wire.EncRaw, Handle: 1, Body: payload}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for got.Load() < n {
		<-arrived
	}
}
