package broker_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

// TestStreamCloseWhileHandlerStuck: a stream whose reader is stuck in its
// Handler still runs OnClose at once when it is closed, and its Context
// ends, so work done for the peer can stop.
func TestStreamCloseWhileHandlerStuck(t *testing.T) {
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, b := kind.pair(t)
			release := make(chan struct{})
			entered := make(chan struct{})
			closed := make(chan error, 1)
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{
				Name: "stuck-reader",
				Handler: func(*broker.Stream, *wire.Message) {
					select {
					case <-entered:
					default:
						close(entered)
					}
					<-release
				},
				OnClose: func(_ *broker.Stream, err error) { closed <- err },
			})
			defer close(release)
			go b.Write((&wire.Message{Enc: wire.EncRaw, Body: []byte("x")}).AppendFrame(nil))
			wait(t, entered, "Handler entered")
			errGone := errors.New("test: the peer's process was reaped")
			s.CloseWithError(errGone)
			select {
			case err := <-closed:
				if err != errGone {
					t.Errorf("OnClose got %v, want %v", err, errGone)
				}
			case <-time.After(waitTimeout):
				t.Fatal("OnClose did not run while the Handler was stuck")
			}
			wait(t, s.Context().Done(), "stream Context")
		})
	}
}

// TestStreamStall: a Send waiting for room on a stream whose peer takes no
// bytes for StallTimeout closes the stream with ErrStalled; without a
// StallTimeout it would wait for ever.
func TestStreamStall(t *testing.T) {
	const stall = 100 * time.Millisecond
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, _ := kind.pair(t) // never read
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "stalled", MaxQueued: 64 << 10, StallTimeout: stall})
			var err error
			for i := 0; err == nil; i++ {
				if i > 100_000 {
					t.Fatalf("Send never failed; Queued() = %d", s.Queued())
				}
				err = s.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Body: body(i, 4096)})
			}
			if !errors.Is(err, broker.ErrStalled) || !errors.Is(s.Err(), broker.ErrStalled) {
				t.Fatalf("Send = %v, Err() = %v, want ErrStalled", err, s.Err())
			}
		})
	}
}

// TestStreamSlowReaderNotStalled: a peer that reads slowly but steadily is
// not taken for a stalled one, even for a frame that takes several
// StallTimeouts to write: a large queue is written in chunks, each of which
// shows progress.
func TestStreamSlowReaderNotStalled(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 32 MiB at 10 MB/s")
	}
	testutil.VerifyNone(t)
	const stall = 400 * time.Millisecond
	a, b := socketPair(t)
	s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "slow", MaxQueued: 64 << 10, StallTimeout: stall})
	const size = 16 << 20 // about 1.6 s at the reader's 10 MB/s
	done := make(chan int64, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var n int64
		for n < 2*(size+wire.HeaderLen) {
			k, err := b.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
			time.Sleep(6 * time.Millisecond)
		}
		done <- n
		io.Copy(io.Discard, b)
	}()
	for i := range 2 {
		if err := s.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Body: make([]byte, size)}); err != nil {
			t.Fatalf("Send #%d to a slow reader = %v", i, err)
		}
	}
	select {
	case n := <-done:
		if want := int64(2 * (size + wire.HeaderLen)); n != want {
			t.Fatalf("reader got %d bytes, want %d (stream error %v)", n, want, s.Err())
		}
	case <-time.After(waitTimeout):
		t.Fatal("slow reader did not get everything")
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream closed: %v", err)
	}
}

// TestStreamPost: Post queues a frame at once even when Send would block,
// and the frame arrives in order once the peer reads again.
func TestStreamPost(t *testing.T) {
	testutil.VerifyNone(t)
	a, b := socketPair(t)
	s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "full", MaxQueued: 64 << 10})
	sent := 0
	for ; ; sent++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := s.Send(ctx, &wire.Message{Enc: wire.EncRaw, Handle: uint32(sent), Body: body(sent, 4096)})
		cancel()
		if err != nil {
			break
		}
	}
	if err := s.Post(&wire.Message{Enc: wire.EncRaw, Handle: 1 << 30}); err != nil {
		t.Fatalf("Post on a full stream = %v", err)
	}
	recv := make(collector, sent+2)
	newStream(t, newBroker(t, broker.Config{}), b, broker.StreamConfig{Name: "reader", Handler: recv.handle})
	for i := range sent {
		if m := recv.next(t); m.Handle != uint32(i) {
			t.Fatalf("frame %d has handle %d", i, m.Handle)
		}
	}
	if m := recv.next(t); m.Handle != 1<<30 {
		t.Fatalf("posted frame arrived as %v", m)
	}
}

// TestStreamPostStall: frames posted to a peer that has stopped reading,
// with nobody Sending, do not pile up for ever: once a Post finds bytes
// waiting, StallTimeout without the peer taking any closes the stream with
// ErrStalled. A peer that keeps reading is never cut, however much is
// posted.
func TestStreamPostStall(t *testing.T) {
	const stall = 100 * time.Millisecond
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			a, _ := kind.pair(t) // never read
			s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "stalled", StallTimeout: stall})
			// 8 MiB: more than any pipe buffers, less than nothing
			// being cut at all would make this test notice.
			for i := 0; i < 2048 && s.Err() == nil; i++ {
				if err := s.Post(&wire.Message{Enc: wire.EncRaw, Body: body(i, 4096)}); err != nil && !errors.Is(err, broker.ErrStalled) {
					t.Fatalf("Post = %v", err)
				}
			}
			wait(t, s.Done(), "stream closed as stalled")
			if !errors.Is(s.Err(), broker.ErrStalled) {
				t.Fatalf("Err() = %v, want ErrStalled", s.Err())
			}
			if err := s.Post(&wire.Message{Enc: wire.EncRaw}); !errors.Is(err, broker.ErrStalled) {
				t.Fatalf("Post after the stall = %v, want ErrStalled", err)
			}
		})
	}
	t.Run("reading peer", func(t *testing.T) {
		testutil.VerifyNone(t)
		a, b := socketPair(t)
		go io.Copy(io.Discard, b)
		s := newStream(t, newBroker(t, broker.Config{}), a, broker.StreamConfig{Name: "read", StallTimeout: stall})
		deadline := time.Now().Add(5 * stall)
		for i := 0; time.Now().Before(deadline); i++ {
			if err := s.Post(&wire.Message{Enc: wire.EncRaw, Body: body(i, 64<<10)}); err != nil {
				t.Fatalf("Post #%d to a reading peer = %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
		if err := s.Flush(bg(t)); err != nil {
			t.Fatalf("Flush = %v", err)
		}
	})
}
