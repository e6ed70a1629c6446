package broker_test

import (
	"context"
	"errors"
	"github.com/spindle-hq/spindle/internal/testutil"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/wire"
)

// waitTimeout bounds every wait on the code under test, so a bug hangs one
// test for a while instead of the whole binary until -timeout.
const waitTimeout = 20 * time.Second

// connKind makes a connected pair of byte pipes. Both ends are closed when
// the test ends, whoever else closed them first.
type connKind struct {
	name string
	pair func(t testing.TB) (a, b io.ReadWriteCloser)
}

var connKinds = []connKind{
	{"socketpair", socketPair},
	{"os.Pipe", pipePair},
	{"net.Pipe", netPipe},
}

// socketPair returns the two ends of a Unix socketpair as net.Conns, so the
// stream's writer uses writev.
func socketPair(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
	return testutil.SocketPair(t)
}

// pipeRWC is one end of a bidirectional connection made of two os.Pipes. It
// is not a net.Conn, so the stream writes its buffers one by one.
type pipeRWC struct{ r, w *os.File }

func (p pipeRWC) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeRWC) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeRWC) Close() error                { return errors.Join(p.r.Close(), p.w.Close()) }

func pipePair(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
	t.Helper()
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		r1.Close()
		w1.Close()
		t.Fatalf("pipe: %v", err)
	}
	a, b := pipeRWC{r: r2, w: w1}, pipeRWC{r: r1, w: w2}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

func netPipe(t testing.TB) (io.ReadWriteCloser, io.ReadWriteCloser) {
	a, b := net.Pipe()
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

type logBuffer = testutil.LogBuffer

// newBroker returns a broker closed when the test ends.
func newBroker(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	b := broker.New(cfg)
	t.Cleanup(func() { b.Close() })
	return b
}

func newStream(t testing.TB, b *broker.Broker, rwc io.ReadWriteCloser, cfg broker.StreamConfig) *broker.Stream {
	t.Helper()
	if cfg.Handler == nil {
		cfg.Handler = func(*broker.Stream, *wire.Message) {}
	}
	s, err := b.NewStream(rwc, cfg)
	if err != nil {
		t.Fatalf("NewStream(%s): %v", cfg.Name, err)
	}
	return s
}

// collector is a Handler that passes each frame on to a channel.
type collector chan *wire.Message

func (c collector) handle(_ *broker.Stream, m *wire.Message) { c <- m }

func (c collector) next(t testing.TB) *wire.Message {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("no frame within %v", waitTimeout)
		return nil
	}
}

// wait fails t if ch is not closed within waitTimeout.
func wait(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: not done within %v", what, waitTimeout)
	}
}

// body returns a recognisable body of n bytes for frame i.
func body(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7)
	}
	return b
}

func bg(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}
