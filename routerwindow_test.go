package spindle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// preloadedPipe is a stream whose peer has already written frames: Read
// returns them at once, then blocks until Close.
type preloadedPipe struct {
	r    *bytes.Reader
	once sync.Once
	done chan struct{}
}

func newPreloadedPipe(frames []byte) *preloadedPipe {
	return &preloadedPipe{r: bytes.NewReader(frames), done: make(chan struct{})}
}

func (p *preloadedPipe) Read(b []byte) (int, error) {
	if p.r.Len() > 0 {
		return p.r.Read(b)
	}
	<-p.done
	return 0, io.EOF
}

func (p *preloadedPipe) Write(b []byte) (int, error) { return len(b), nil }

func (p *preloadedPipe) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// TestStreamRoutedBeforeRead: a frame that is waiting on a new stream when
// the router starts serving it (the peer sent it right after the handshake)
// must be routed with the stream's route in place, not dropped as "bad
// auth_id".
//
// This fails: routing.Router.SetParent and AddChild call broker.NewStream,
// which starts the reader goroutine, and only then record the stream as the
// parent (r.parent = s) or as the route to the child (r.routes[id] = s). A
// frame the reader routes in between fails the auth check (lookup(Auth) is
// nil, not the stream) and is dropped. End to end this loses the first call
// to a new child now and then (a "ping" that times out right after
// StartLocal, with "bad auth_id" in the child's log); the test makes the
// window likely by keeping r.mu busy, since a writer blocked on r.mu lets
// waiting readers (the stream's lookup) in first.
func TestStreamRoutedBeforeRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		// serve starts serving rwc on r and returns the frame's header.
		cfg   routing.Config
		frame wire.Message
		serve func(r *routing.Router, rwc io.ReadWriteCloser) error
	}{
		{"SetParent", routing.Config{ID: 1, ParentIDs: []uint32{0}},
			wire.Message{Enc: wire.EncRaw, Dst: 1, Src: 0, Auth: 0, Handle: 5000},
			func(r *routing.Router, rwc io.ReadWriteCloser) error {
				_, err := r.SetParent(rwc, "parent")
				return err
			}},
		{"AddChild", routing.Config{},
			wire.Message{Enc: wire.EncRaw, Dst: 0, Src: 1, Auth: 1, Handle: 5000},
			func(r *routing.Router, rwc io.ReadWriteCloser) error {
				_, err := r.AddChild(context.Background(), rwc, 1, "child")
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			for round := range 200 {
				logs := &logCapture{}
				b := broker.New(broker.Config{Logger: logs.logger()})
				r := routing.New(b, tc.cfg)
				got := make(chan struct{}, 1)
				if _, err := r.AddHandler(func(m *wire.Message, _ *broker.Stream) {
					if !m.IsDead() {
						got <- struct{}{}
					}
				}, routing.HandlerOptions{Handle: 5000}); err != nil {
					t.Fatal(err)
				}
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
							r.Disconnected(999) // takes r.mu for writing
						}
					}
				})
				err := tc.serve(r, newPreloadedPipe(tc.frame.AppendFrame(nil)))
				if err != nil {
					t.Fatal(err)
				}
				var drop error
				select {
				case <-got:
				case <-time.After(time.Second):
					drop = fmt.Errorf("round %d: the frame was not delivered; log:%s", round, logs.dump())
				}
				close(stop)
				wg.Wait()
				b.Close()
				if drop != nil {
					t.Fatal(drop)
				}
			}
		})
	}
}
