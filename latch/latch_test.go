package latch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitSleepers waits until l has exactly n goroutines asleep in Get.
func waitSleepers[T any](t *testing.T, l *Latch[T], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.sleepers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("sleepers() = %d, want %d", l.sleepers(), n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

type result[T any] struct {
	v   T
	err error
}

// goGet runs l.Get(ctx) in a goroutine and returns where its result lands.
func goGet[T any](ctx context.Context, wg *sync.WaitGroup, l *Latch[T]) <-chan result[T] {
	ch := make(chan result[T], 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, err := l.Get(ctx)
		ch <- result[T]{v, err}
	}()
	return ch
}

func TestLatchEmpty(t *testing.T) {
	var l Latch[int]
	if !l.Empty() || l.Len() != 0 {
		t.Fatalf("new latch: Empty() = %v, Len() = %d, want true, 0", l.Empty(), l.Len())
	}
	if err := l.Put(1); err != nil {
		t.Fatalf("Put(1) = %v, want nil", err)
	}
	if l.Empty() || l.Len() != 1 {
		t.Fatalf("after Put: Empty() = %v, Len() = %d, want false, 1", l.Empty(), l.Len())
	}
	l.Close()
	if !l.Empty() || l.Len() != 0 {
		t.Fatalf("closed latch: Empty() = %v, Len() = %d, want true, 0", l.Empty(), l.Len())
	}
}

func TestLatchNonBlockingGet(t *testing.T) {
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	gets := []struct {
		name      string
		get       func(*Latch[string]) (string, error)
		wantEmpty error
	}{
		{"TryGet", (*Latch[string]).TryGet, ErrEmpty},
		{"Get(expired ctx)", func(l *Latch[string]) (string, error) { return l.Get(expired) }, context.Canceled},
	}
	for _, g := range gets {
		t.Run(g.name, func(t *testing.T) {
			var l Latch[string]
			if _, err := g.get(&l); !errors.Is(err, g.wantEmpty) {
				t.Fatalf("empty: %s = %v, want %v", g.name, err, g.wantEmpty)
			}
			l.Put("a")
			l.Put("b")
			for _, want := range []string{"a", "b"} {
				if v, err := g.get(&l); v != want || err != nil {
					t.Fatalf("%s = %q, %v, want %q, nil", g.name, v, err, want)
				}
			}
		})
	}
}

func TestLatchGetTimeout(t *testing.T) {
	var l Latch[int]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get on empty latch = %v, want %v", err, context.DeadlineExceeded)
	}
	if n := l.sleepers(); n != 0 {
		t.Fatalf("sleepers() after timeout = %d, want 0", n)
	}
}

func TestLatchOneWaiter(t *testing.T) {
	var l Latch[string]
	var wg sync.WaitGroup
	res := goGet(context.Background(), &wg, &l)
	waitSleepers(t, &l, 1)
	l.Put("hello")
	if r := <-res; r.v != "hello" || r.err != nil {
		t.Fatalf("Get = %q, %v, want %q, nil", r.v, r.err, "hello")
	}
	wg.Wait()
}

func TestLatchFiveWaiters(t *testing.T) {
	var l Latch[int]
	var wg sync.WaitGroup
	var results []<-chan result[int]
	for range 5 {
		results = append(results, goGet(context.Background(), &wg, &l))
	}
	waitSleepers(t, &l, 5)
	for i := range 5 {
		l.Put(i)
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, ch := range results {
		r := <-ch
		if r.err != nil {
			t.Fatalf("Get = %v, want nil error", r.err)
		}
		seen[r.v] = true
	}
	if len(seen) != 5 {
		t.Fatalf("waiters got %v, want {0..4}", seen)
	}
}

// TestLatchFIFOSleepers checks that the k-th goroutine to go to sleep gets
// the k-th item.
func TestLatchFIFOSleepers(t *testing.T) {
	const n = 20
	var l Latch[int]
	var wg sync.WaitGroup
	results := make([]<-chan result[int], n)
	for i := range n {
		results[i] = goGet(context.Background(), &wg, &l)
		waitSleepers(t, &l, i+1)
	}
	for i := range n {
		l.Put(i)
	}
	wg.Wait()
	for i, ch := range results {
		if r := <-ch; r.v != i || r.err != nil {
			t.Errorf("sleeper %d got %d, %v, want %d, nil", i, r.v, r.err, i)
		}
	}
}

// TestLatchHandedItemNotStolen checks that an item handed to a sleeper is
// invisible to a newcomer, even before the sleeper has run.
func TestLatchHandedItemNotStolen(t *testing.T) {
	var l Latch[int]
	var wg sync.WaitGroup
	res := goGet(context.Background(), &wg, &l)
	waitSleepers(t, &l, 1)
	l.Put(7)
	if n := l.Len(); n != 0 {
		t.Errorf("Len() after hand-off = %d, want 0", n)
	}
	if v, err := l.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Errorf("newcomer TryGet = %d, %v, want %v", v, err, ErrEmpty)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if v, err := l.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("newcomer Get = %d, %v, want %v", v, err, context.DeadlineExceeded)
	}
	if r := <-res; r.v != 7 || r.err != nil {
		t.Fatalf("sleeper Get = %d, %v, want 7, nil", r.v, r.err)
	}
	wg.Wait()
}

// TestLatchCtxEndsAsItemHanded forces the sleeper to notice its ctx before
// the hand-off it is racing with, and checks the item is returned.
func TestLatchCtxEndsAsItemHanded(t *testing.T) {
	var l Latch[int]
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := goGet(ctx, &wg, &l)
	waitSleepers(t, &l, 1)

	l.mu.Lock()
	cancel()
	// Let the sleeper see ctx.Done and block on l.mu; whichever select
	// branch it took, the outcome must be the same.
	time.Sleep(5 * time.Millisecond)
	w, _, err := l.putLocked(42)
	l.mu.Unlock()
	if err != nil || w == nil {
		t.Fatalf("putLocked(42) = %v, %v, want a waiter, nil", w, err)
	}
	w.wake <- struct{}{}

	if r := <-res; r.v != 42 || r.err != nil {
		t.Fatalf("Get = %d, %v, want 42, nil", r.v, r.err)
	}
	wg.Wait()
	if n := l.Len(); n != 0 {
		t.Fatalf("Len() = %d, want 0", n)
	}
}

// TestLatchCtxRace races cancellation against Put many times; the item
// must end up either returned by Get or still in the Latch.
func TestLatchCtxRace(t *testing.T) {
	for i := range 300 {
		var l Latch[int]
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan result[int], 1)
		go func() {
			v, err := l.Get(ctx)
			done <- result[int]{v, err}
		}()
		waitSleepers(t, &l, 1)
		go cancel()
		l.Put(i)
		r := <-done
		switch {
		case r.err == nil && r.v == i:
			if n := l.Len(); n != 0 {
				t.Fatalf("round %d: item returned and Len() = %d, want 0", i, n)
			}
		case errors.Is(r.err, context.Canceled):
			if v, err := l.TryGet(); v != i || err != nil {
				t.Fatalf("round %d: Get cancelled but TryGet = %d, %v, want %d, nil", i, v, err, i)
			}
		default:
			t.Fatalf("round %d: Get = %d, %v", i, r.v, r.err)
		}
		cancel()
	}
}

func TestLatchClosed(t *testing.T) {
	var l Latch[int]
	l.Put(1)
	l.Put(2)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	timeout, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	ops := []struct {
		name string
		do   func() error
	}{
		{"TryGet", func() error { _, err := l.TryGet(); return err }},
		{"TryGetAny", func() error { _, err := l.TryGetAny(); return err }},
		{"Get(Background)", func() error { _, err := l.Get(context.Background()); return err }},
		{"Get(expired)", func() error { _, err := l.Get(expired); return err }},
		{"Get(timeout)", func() error { _, err := l.Get(timeout); return err }},
		{"Put", func() error { return l.Put(3) }},
		{"SetNotify", func() error { return l.SetNotify(func() {}) }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s on closed latch = %v, want %v", op.name, err, ErrClosed)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if !l.Closed() {
		t.Errorf("Closed() = false, want true")
	}
	if err := l.SetNotify(nil); err != nil {
		t.Errorf("SetNotify(nil) on closed latch = %v, want nil", err)
	}
}

func TestLatchCloseWakesSleepers(t *testing.T) {
	for _, n := range []int{1, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var l Latch[int]
			var wg sync.WaitGroup
			var results []<-chan result[int]
			for range n {
				results = append(results, goGet(context.Background(), &wg, &l))
			}
			waitSleepers(t, &l, n)
			l.Close()
			wg.Wait()
			for i, ch := range results {
				if r := <-ch; !errors.Is(r.err, ErrClosed) || r.v != 0 {
					t.Errorf("sleeper %d: Get = %d, %v, want 0, %v", i, r.v, r.err, ErrClosed)
				}
			}
		})
	}
}

func TestLatchNotify(t *testing.T) {
	var l Latch[int]
	var calls int
	notify := func() {
		calls++
		// Would deadlock if notify ran with the latch lock held.
		_ = l.Len()
	}
	if err := l.SetNotify(notify); err != nil {
		t.Fatalf("SetNotify(fn) = %v, want nil", err)
	}
	if err := l.SetNotify(func() {}); !errors.Is(err, ErrOwned) {
		t.Fatalf("second SetNotify(fn) = %v, want %v", err, ErrOwned)
	}
	var wg sync.WaitGroup
	res := goGet(context.Background(), &wg, &l)
	waitSleepers(t, &l, 1)
	l.Put(1) // handed to the sleeper: still one notify
	l.Put(2) // queued
	wg.Wait()
	<-res
	if calls != 2 {
		t.Fatalf("notify calls after 2 Puts = %d, want 2", calls)
	}
	if err := l.SetNotify(nil); err != nil {
		t.Fatalf("SetNotify(nil) = %v, want nil", err)
	}
	l.Put(3)
	if calls != 2 {
		t.Fatalf("notify calls after clearing = %d, want 2", calls)
	}
	if err := l.SetNotify(func() {}); err != nil {
		t.Fatalf("SetNotify(fn) after clearing = %v, want nil", err)
	}
}

// TestLatchQueueOrder pushes the ring buffer through growth, wrap-around
// and shrinking and checks that order survives.
func TestLatchQueueOrder(t *testing.T) {
	var l Latch[int]
	next, want := 0, 0
	for _, step := range []struct{ put, get int }{
		{5, 3}, {10, 10}, {1000, 900}, {50, 150}, {3, 5}, {0, 0},
	} {
		for range step.put {
			l.Put(next)
			next++
		}
		for range step.get {
			v, err := l.TryGet()
			if v != want || err != nil {
				t.Fatalf("TryGet = %d, %v, want %d, nil", v, err, want)
			}
			want++
		}
		if l.Len() != next-want {
			t.Fatalf("Len() = %d, want %d", l.Len(), next-want)
		}
	}
	if _, err := l.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet on drained latch = %v, want %v", err, ErrEmpty)
	}
}

// hammerItem encodes a producer and its sequence number.
type hammerItem struct{ producer, seq int }

// checkHammer asserts that every item of every producer was received
// exactly once, and that each consumer saw each producer's items in order.
func checkHammer(t *testing.T, producers, perProducer int, got [][]hammerItem) {
	t.Helper()
	seen := make([][]bool, producers)
	for p := range seen {
		seen[p] = make([]bool, perProducer)
	}
	total := 0
	for c, items := range got {
		last := make([]int, producers)
		for p := range last {
			last[p] = -1
		}
		for _, it := range items {
			if seen[it.producer][it.seq] {
				t.Fatalf("item %+v received twice", it)
			}
			seen[it.producer][it.seq] = true
			if it.seq <= last[it.producer] {
				t.Fatalf("consumer %d got %+v after seq %d", c, it, last[it.producer])
			}
			last[it.producer] = it.seq
			total++
		}
	}
	if want := producers * perProducer; total != want {
		t.Fatalf("received %d items, want %d", total, want)
	}
}

// TestLatchHammer runs producers and consumers together behind a start
// barrier; nothing may be lost, duplicated or reordered per producer.
func TestLatchHammer(t *testing.T) {
	producers, consumers, perProducer := 8, 8, 5000
	if testing.Short() {
		perProducer = 500
	}
	total := producers * perProducer
	var l Latch[hammerItem]
	start := make(chan struct{})
	var wg sync.WaitGroup
	var errs atomic.Int64
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perProducer {
				if l.Put(hammerItem{p, i}) != nil {
					errs.Add(1)
				}
			}
		}()
	}
	got := make([][]hammerItem, consumers)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Half the consumers mix in TryGet to race the fast path
			// against hand-offs.
			for range total / consumers {
				var it hammerItem
				var err error
				if c%2 == 1 {
					if it, err = l.TryGet(); errors.Is(err, ErrEmpty) {
						it, err = l.Get(context.Background())
					}
				} else {
					it, err = l.Get(context.Background())
				}
				if err != nil {
					errs.Add(1)
					return
				}
				got[c] = append(got[c], it)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d Put/Get calls failed", n)
	}
	checkHammer(t, producers, perProducer, got)
	if n := l.Len(); n != 0 {
		t.Fatalf("Len() after hammer = %d, want 0", n)
	}
}

// TestLatchHammerTimeouts is the hammer with consumers whose every Get has
// a tiny deadline, so cancellations race hand-offs constantly.
func TestLatchHammerTimeouts(t *testing.T) {
	producers, consumers, perProducer := 4, 4, 2000
	if testing.Short() {
		perProducer = 200
	}
	total := producers * perProducer
	var l Latch[hammerItem]
	start := make(chan struct{})
	var wg sync.WaitGroup
	var received atomic.Int64
	var timeouts atomic.Int64
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perProducer {
				l.Put(hammerItem{p, i})
				if i%64 == 0 {
					time.Sleep(10 * time.Microsecond)
				}
			}
		}()
	}
	got := make([][]hammerItem, consumers)
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for received.Load() < int64(total) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Microsecond)
				it, err := l.Get(ctx)
				cancel()
				if err != nil {
					timeouts.Add(1)
					continue
				}
				got[c] = append(got[c], it)
				received.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	checkHammer(t, producers, perProducer, got)
	t.Logf("%d Gets timed out", timeouts.Load())
}

// TestLatchHammerClose closes the Latch while producers and consumers are
// running: every Get must end, and every item is received at most once.
func TestLatchHammerClose(t *testing.T) {
	var l Latch[hammerItem]
	start := make(chan struct{})
	var wg sync.WaitGroup
	const producers, consumers, perProducer = 4, 4, 100000
	got := make([][]hammerItem, consumers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perProducer {
				if l.Put(hammerItem{p, i}) != nil {
					return
				}
			}
		}()
	}
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				it, err := l.Get(context.Background())
				if err != nil {
					return
				}
				got[c] = append(got[c], it)
			}
		}()
	}
	close(start)
	time.Sleep(5 * time.Millisecond)
	l.Close()
	wg.Wait()
	seen := map[hammerItem]bool{}
	for _, items := range got {
		for _, it := range items {
			if seen[it] {
				t.Fatalf("item %+v received twice", it)
			}
			seen[it] = true
		}
	}
}

// BenchmarkHandoff measures one round trip between two goroutines: Put on
// one Latch wakes the echo goroutine, whose Put on the other wakes us.
func BenchmarkHandoff(b *testing.B) {
	var ping, pong Latch[int]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v, err := ping.Get(context.Background())
			if err != nil {
				return
			}
			pong.Put(v)
		}
	}()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ping.Put(i)
		if _, err := pong.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	ping.Close()
	<-done
}

// BenchmarkPutGet measures an uncontended Put followed by Get.
func BenchmarkPutGet(b *testing.B) {
	var l Latch[int]
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		l.Put(i)
		if _, err := l.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
