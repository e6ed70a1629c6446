package broker_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

// A relay forwards the very messages it reads (pooled bodies, sent by
// reference) to a second stream, whose far end reads them slowly. A pooled
// buffer given back before its bytes were written would be reused by a later
// read and reach the far end with another message's pattern; each body
// carries its own index and a pattern derived from it, so that shows.
func TestStreamForwardsPooledBodies(t *testing.T) {
	for _, kind := range connKinds {
		t.Run(kind.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			const frames = 96
			sizes := []int{wire.PoolMin, wire.PoolMin + 1, 200 << 10, 1 << 20, 16<<10 + 1}

			srcEnd, relayIn := kind.pair(t)
			relayOut, dstEnd := kind.pair(t)
			relayB := newBroker(t, broker.Config{})
			out := newStream(t, relayB, relayOut, broker.StreamConfig{Name: "relay-out", MaxQueued: 3 << 20})
			newStream(t, relayB, relayIn, broker.StreamConfig{Name: "relay-in", Handler: func(_ *broker.Stream, m *wire.Message) {
				if err := out.Send(bg(t), m); err != nil {
					t.Errorf("forward: %v", err)
				}
			}})

			errs := make(chan error, frames)
			done := make(chan struct{})
			seen := 0
			newStream(t, newBroker(t, broker.Config{}), dstEnd, broker.StreamConfig{Name: "dst", Handler: func(_ *broker.Stream, m *wire.Message) {
				if seen%8 == 0 {
					time.Sleep(2 * time.Millisecond) // let the relay's queue fill, so its writer goroutine runs too
				}
				errs <- checkPattern(seen, sizes[seen%len(sizes)], m.Body)
				m.Release() // back to the pool the relay reads from: reuse is the point
				seen++
				if seen == frames {
					close(done)
				}
			}})

			src := newStream(t, newBroker(t, broker.Config{}), srcEnd, broker.StreamConfig{Name: "src"})
			for i := range frames {
				if err := src.Send(bg(t), &wire.Message{Enc: wire.EncRaw, Handle: 1, Body: pattern(i, sizes[i%len(sizes)])}); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			wait(t, done, "all forwarded frames")
			for range frames {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// pattern returns n bytes that start with i and go on with bytes derived
// from i and their offset.
func pattern(i, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	for j := 4; j < n; j++ {
		b[j] = byte(i*131 + j*7 + j>>8)
	}
	return b
}

func checkPattern(i, n int, got []byte) error {
	if len(got) != n {
		return fmt.Errorf("frame %d: %d bytes, want %d", i, len(got), n)
	}
	if at := binary.BigEndian.Uint32(got); at != uint32(i) {
		return fmt.Errorf("frame %d arrived carrying frame %d's index", i, at)
	}
	want := pattern(i, n)
	for j := range got {
		if got[j] != want[j] {
			return fmt.Errorf("frame %d: byte %d is %#x, want %#x (the body was overwritten while queued)", i, j, got[j], want[j])
		}
	}
	return nil
}
