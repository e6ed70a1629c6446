package broker_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

// goroutineID returns the runtime's number for the calling goroutine.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

func TestDeferOrderOneGoroutine(t *testing.T) {
	testutil.VerifyNone(t)
	b := newBroker(t, broker.Config{})
	const n = 200
	var got []int            // owned by the loop goroutine
	gids := map[uint64]int{} // owned by the loop goroutine
	start := make(chan struct{})
	var wg sync.WaitGroup
	// Two goroutines defer concurrently; each one's functions must run in
	// the order it deferred them, all on the same goroutine.
	for g := range 2 {
		wg.Go(func() {
			<-start
			for i := range n {
				v := g*n + i
				if err := b.Defer(func() { got = append(got, v); gids[goroutineID()]++ }); err != nil {
					t.Errorf("Defer: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := b.DeferSync(bg(t), func() error { return nil }); err != nil {
		t.Fatalf("DeferSync = %v", err)
	}
	if len(got) != 2*n {
		t.Fatalf("%d deferred functions ran, want %d", len(got), 2*n)
	}
	last := [2]int{-1, -1}
	for _, v := range got {
		g, i := v/n, v%n
		if i != last[g]+1 {
			t.Fatalf("goroutine %d's function %d ran after its function %d; order = %v", g, i, last[g], got)
		}
		last[g] = i
	}
	if len(gids) != 1 {
		t.Fatalf("deferred functions ran on goroutines %v, want one", gids)
	}
}

func TestDeferSyncReturnsError(t *testing.T) {
	testutil.VerifyNone(t)
	b := newBroker(t, broker.Config{})
	want := errors.New("from fn")
	if err := b.DeferSync(bg(t), func() error { return want }); err != want {
		t.Fatalf("DeferSync = %v, want %v", err, want)
	}
	if err := b.DeferSync(bg(t), func() error { return nil }); err != nil {
		t.Fatalf("DeferSync = %v, want nil", err)
	}
	// A cancelled ctx ends the wait even while the loop is busy.
	release := make(chan struct{})
	if err := b.Defer(func() { <-release }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.DeferSync(ctx, func() error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("DeferSync with a cancelled ctx = %v, want context.Canceled", err)
	}
	close(release)
}

func TestDeferPanicStartsShutdown(t *testing.T) {
	testutil.VerifyNone(t)
	var logs logBuffer
	b := newBroker(t, broker.Config{Logger: logs.Logger()})
	if err := b.Defer(func() { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	wait(t, b.ShuttingDown(), "ShuttingDown after a panicking deferred function")
	wait(t, b.Done(), "Done after a panicking deferred function")
	if out := logs.String(); !strings.Contains(out, "deferred function panicked") || !strings.Contains(out, "boom") {
		t.Fatalf("log = %q, want the panic logged", out)
	}
}

func TestAfterFunc(t *testing.T) {
	testutil.VerifyNone(t)
	b := newBroker(t, broker.Config{})
	stopped := make(chan struct{})
	tm := b.AfterFunc(10*time.Millisecond, func() { close(stopped) })
	if !tm.Stop() {
		t.Fatal("Stop on a pending timer = false, want true")
	}
	fired := make(chan uint64, 1)
	loopID := make(chan uint64, 1)
	if err := b.Defer(func() { loopID <- goroutineID() }); err != nil {
		t.Fatal(err)
	}
	// A later timer fires: had the stopped one fired, it would have run first
	// on the same loop.
	b.AfterFunc(20*time.Millisecond, func() { fired <- goroutineID() })
	select {
	case id := <-fired:
		if want := <-loopID; id != want {
			t.Errorf("AfterFunc callback ran on goroutine %d, want the loop's %d", id, want)
		}
	case <-time.After(waitTimeout):
		t.Fatal("AfterFunc callback never ran")
	}
	select {
	case <-stopped:
		t.Fatal("a stopped timer fired")
	default:
	}
	if tm.Stop() {
		t.Error("second Stop = true, want false")
	}
}

func TestWorkAfterShutdownFails(t *testing.T) {
	testutil.VerifyNone(t)
	b := newBroker(t, broker.Config{})
	b.Shutdown(0)
	a, _ := socketPair(t)
	_, streamErr := b.NewStream(a, broker.StreamConfig{Name: "late", Handler: func(*broker.Stream, *wire.Message) {}})
	tests := []struct {
		name string
		err  error
	}{
		{"Go", b.Go(func(context.Context) {})},
		{"Defer", b.Defer(func() {})},
		{"DeferSync", b.DeferSync(bg(t), func() error { return nil })},
		{"NewStream", streamErr},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, broker.ErrShutdown) {
			t.Errorf("%s after Shutdown = %v, want %v", tt.name, tt.err, broker.ErrShutdown)
		}
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Error("NewStream after Shutdown left its pipe open")
	}
	wait(t, b.Done(), "Done")
}

// TestShutdownSequence follows a graceful shutdown with a grace far longer
// than the test: the OnShutdown hooks run first; the broker then waits for
// its keep-alive stream, and only once that stream's peer has closed does it
// close the other streams, run OnExit and cancel Go goroutines.
func TestShutdownSequence(t *testing.T) {
	testutil.VerifyNone(t)
	b := newBroker(t, broker.Config{Grace: time.Hour})
	events := make(chan string, 16)
	closeErrs := make(map[string]error) // written by OnClose before its event is sent
	var mu sync.Mutex
	onClose := func(s *broker.Stream, err error) {
		mu.Lock()
		closeErrs[s.Name()] = err
		mu.Unlock()
		events <- "close " + s.Name()
	}
	ka, kaPeer := socketPair(t)
	other, _ := socketPair(t)
	kaStream := newStream(t, b, ka, broker.StreamConfig{Name: "child", KeepAlive: true, OnClose: onClose})
	otherStream := newStream(t, b, other, broker.StreamConfig{Name: "parent", OnClose: onClose})
	b.OnShutdown(func() { events <- "shutdown hook 1" })
	b.OnShutdown(func() { events <- "shutdown hook 2" })
	b.OnExit(func() { events <- "exit hook 1" })
	b.OnExit(func() { events <- "exit hook 2" })
	if err := b.Go(func(ctx context.Context) { <-ctx.Done(); events <- "go ctx done" }); err != nil {
		t.Fatal(err)
	}

	next := func() string {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(waitTimeout):
			t.Fatalf("no event within %v", waitTimeout)
			return ""
		}
	}
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if e := next(); e != w {
				t.Fatalf("event %q, want %q", e, w)
			}
		}
	}

	b.Shutdown(0)
	wait(t, b.ShuttingDown(), "ShuttingDown")
	expect("shutdown hook 1", "shutdown hook 2")
	// The sequence now waits for the keep-alive stream: nothing else may
	// happen until its peer closes. A wrong sequence gets a moment to show
	// itself.
	if err := b.Go(func(context.Context) {}); !errors.Is(err, broker.ErrShutdown) {
		t.Fatalf("Go during shutdown = %v, want %v", err, broker.ErrShutdown)
	}
	select {
	case e := <-events:
		t.Fatalf("event %q while a keep-alive stream is open within the grace", e)
	case <-otherStream.Done():
		t.Fatal("non-keep-alive stream closed while a keep-alive stream is open within the grace")
	case <-time.After(50 * time.Millisecond):
	}

	kaPeer.Close()
	expect("close child", "close parent", "exit hook 1", "exit hook 2", "go ctx done")
	wait(t, b.Done(), "Done")
	mu.Lock()
	defer mu.Unlock()
	if err := closeErrs["child"]; err != broker.ErrPeerClosed || kaStream.Err() != err {
		t.Errorf("keep-alive stream closed with %v (Err %v), want %v", err, kaStream.Err(), broker.ErrPeerClosed)
	}
	if err := closeErrs["parent"]; !errors.Is(err, broker.ErrShutdown) {
		t.Errorf("other stream closed with %v, want %v", err, broker.ErrShutdown)
	}
	if n := len(b.Streams()); n != 0 {
		t.Errorf("Streams() after Done has %d streams, want 0", n)
	}
}

// TestShutdownGraceOver: a keep-alive stream still open at the end of the
// grace is closed by the broker.
func TestShutdownGraceOver(t *testing.T) {
	testutil.VerifyNone(t)
	var logs logBuffer
	b := newBroker(t, broker.Config{Logger: logs.Logger(), Grace: time.Hour})
	ka, _ := socketPair(t)
	closed := make(chan error, 1)
	newStream(t, b, ka, broker.StreamConfig{Name: "child", KeepAlive: true, OnClose: func(_ *broker.Stream, err error) { closed <- err }})
	b.Shutdown(time.Millisecond) // overrides the configured grace
	wait(t, b.Done(), "Done")
	if err := <-closed; !errors.Is(err, broker.ErrShutdown) {
		t.Errorf("keep-alive stream closed with %v, want %v", err, broker.ErrShutdown)
	}
	if out := logs.String(); !strings.Contains(out, "grace period over") {
		t.Errorf("log = %q, want \"grace period over\"", out)
	}
}

// TestCloseWaitsForGoroutines: Close is idempotent, safe from many
// goroutines, and returns only after every goroutine the broker started has
// exited.
func TestCloseWaitsForGoroutines(t *testing.T) {
	testutil.VerifyNone(t)
	b := broker.New(broker.Config{})
	a, peer := socketPair(t)
	newStream(t, b, a, broker.StreamConfig{Name: "s", KeepAlive: true})
	newStream(t, newBroker(t, broker.Config{}), peer, broker.StreamConfig{Name: "peer"})
	exited := make(chan struct{})
	if err := b.Go(func(ctx context.Context) {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // a goroutine slow to return
		close(exited)
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			select {
			case <-exited:
			default:
				t.Error("Close returned before a Go goroutine exited")
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := b.Wait(bg(t)); err != nil {
		t.Errorf("Wait after Close = %v", err)
	}
}
