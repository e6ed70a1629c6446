package latch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wrapper stands in for a type in another package, such as a Receiver, that
// wraps a Latch and forwards the Source methods to it.
type wrapper struct{ l Latch[string] }

func (w *wrapper) SetNotify(fn func()) error { return w.l.SetNotify(fn) }
func (w *wrapper) TryGetAny() (any, error)   { return w.l.TryGetAny() }
func (w *wrapper) Len() int                  { return w.l.Len() }

// mustAdd adds each source to s, failing the test on error.
func mustAdd(t *testing.T, s *Select, srcs ...Source) {
	t.Helper()
	for _, src := range srcs {
		if err := s.Add(src); err != nil {
			t.Fatalf("Add(%T) = %v, want nil", src, err)
		}
	}
}

// wantEvent gets one event from s and checks its source and value.
func wantEvent(t *testing.T, s *Select, src Source, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := s.Get(ctx)
	if err != nil {
		t.Fatalf("Get = %v, want event %v", err, v)
	}
	if ev.Source != src || ev.Value != v {
		t.Fatalf("Get = {%p %v}, want {%p %v}", ev.Source, ev.Value, src, v)
	}
}

// waitSelectSleepers waits until n goroutines are asleep in s.Get.
func waitSelectSleepers(t *testing.T, s *Select, n int) {
	t.Helper()
	waitSleepers(t, &s.tokens, n)
}

func TestSelectAddKinds(t *testing.T) {
	l := new(Latch[string])
	w := new(wrapper)
	innerLatch := new(Latch[string])
	inner := NewSelect(false)
	mustAdd(t, inner, innerLatch)

	tests := []struct {
		name    string
		src     Source
		put     func(string) error
		wantSrc Source
	}{
		{"Latch", l, l.Put, l},
		{"wrapper", w, w.l.Put, w},
		{"nested Select", inner, innerLatch.Put, innerLatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSelect(false)
			defer s.Close()
			mustAdd(t, s, tt.src)
			if n := s.Sources(); n != 1 {
				t.Fatalf("Sources() = %d, want 1", n)
			}
			if err := tt.put("x"); err != nil {
				t.Fatalf("put = %v", err)
			}
			wantEvent(t, s, tt.wantSrc, "x")
			if err := s.Remove(tt.src); err != nil {
				t.Fatalf("Remove = %v, want nil", err)
			}
		})
	}
	inner.Close()
}

func TestSelectCycle(t *testing.T) {
	t.Run("self", func(t *testing.T) {
		s := NewSelect(false)
		defer s.Close()
		if err := s.Add(s); !errors.Is(err, ErrCycle) {
			t.Fatalf("s.Add(s) = %v, want %v", err, ErrCycle)
		}
	})
	for _, depth := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			// chain[0] contains chain[1] contains ... chain[depth-1].
			chain := make([]*Select, depth)
			for i := range chain {
				chain[i] = NewSelect(false)
				defer chain[i].Close()
			}
			for i := range depth - 1 {
				mustAdd(t, chain[i], chain[i+1])
			}
			last := chain[depth-1]
			if err := last.Add(chain[0]); !errors.Is(err, ErrCycle) {
				t.Fatalf("depth %d: closing the loop = %v, want %v", depth, err, ErrCycle)
			}
			// The refused Add must leave chain[0] unowned.
			other := NewSelect(false)
			defer other.Close()
			if err := other.Add(chain[0]); err != nil {
				t.Fatalf("depth %d: Add after refused cycle = %v, want nil", depth, err)
			}
		})
	}
}

// TestSelectConcurrentCycle races a.Add(b) against b.Add(a): at most one
// may succeed.
func TestSelectConcurrentCycle(t *testing.T) {
	for range 200 {
		a, b := NewSelect(false), NewSelect(false)
		var errA, errB error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; errA = a.Add(b) }()
		go func() { defer wg.Done(); <-start; errB = b.Add(a) }()
		close(start)
		wg.Wait()
		if errA == nil && errB == nil {
			t.Fatalf("a.Add(b) and b.Add(a) both succeeded")
		}
		a.Close()
		b.Close()
	}
}

func TestSelectOwned(t *testing.T) {
	l := new(Latch[int])
	inner := NewSelect(false)
	defer inner.Close()
	s1, s2 := NewSelect(false), NewSelect(false)
	defer s1.Close()
	defer s2.Close()
	mustAdd(t, s1, l, inner)

	for _, tt := range []struct {
		name string
		s    *Select
		src  Source
	}{
		{"latch in other select", s2, l},
		{"latch twice", s1, l},
		{"select in other select", s2, inner},
		{"select twice", s1, inner},
	} {
		if err := tt.s.Add(tt.src); !errors.Is(err, ErrOwned) {
			t.Errorf("%s: Add = %v, want %v", tt.name, err, ErrOwned)
		}
	}
	if n := s1.Sources(); n != 2 {
		t.Errorf("s1.Sources() = %d, want 2", n)
	}
	if err := s1.Remove(l); err != nil {
		t.Fatalf("Remove(l) = %v, want nil", err)
	}
	if err := s2.Add(l); err != nil {
		t.Fatalf("Add after Remove = %v, want nil", err)
	}
}

func TestSelectAddNil(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	if err := s.Add(nil); err == nil {
		t.Fatalf("Add(nil) = nil, want an error")
	}
}

func TestSelectRemove(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	a, b, never := new(Latch[int]), new(Latch[int]), new(Latch[int])
	mustAdd(t, s, a, b)
	if err := s.Remove(never); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Remove(absent) = %v, want %v", err, ErrNotMember)
	}
	if err := s.Remove(a); err != nil {
		t.Fatalf("Remove(a) = %v, want nil", err)
	}
	if err := s.Remove(a); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Remove(a) twice = %v, want %v", err, ErrNotMember)
	}
	// Remove cleared a's notify: it can be installed again.
	if err := a.SetNotify(func() {}); err != nil {
		t.Fatalf("a.SetNotify after Remove = %v, want nil", err)
	}
	a.SetNotify(nil)
	// A put into a removed source produces no event.
	a.Put(1)
	if ev, err := s.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet after put into removed source = %+v, %v, want %v", ev, err, ErrEmpty)
	}
	if n := s.Sources(); n != 1 {
		t.Fatalf("Sources() = %d, want 1", n)
	}
}

// TestSelectStaleToken checks that tokens queued for a source before its
// removal are skipped.
func TestSelectStaleToken(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	a, b := new(Latch[int]), new(Latch[int])
	mustAdd(t, s, a, b)
	a.Put(1) // token for a queued
	if err := s.Remove(a); err != nil {
		t.Fatalf("Remove(a) = %v", err)
	}
	b.Put(2)
	wantEvent(t, s, b, 2)
	if v, err := a.TryGet(); v != 1 || err != nil {
		t.Fatalf("a.TryGet = %d, %v, want 1, nil", v, err)
	}
}

func TestSelectClose(t *testing.T) {
	s := NewSelect(false)
	l := new(Latch[int])
	inner := NewSelect(false)
	defer inner.Close()
	innerLatch := new(Latch[int])
	mustAdd(t, inner, innerLatch)
	mustAdd(t, s, l, inner)
	l.Put(1)

	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
	if n := s.Sources(); n != 0 {
		t.Errorf("Sources() after Close = %d, want 0", n)
	}
	if n := s.Len(); n != 0 {
		t.Errorf("Len() after Close = %d, want 0", n)
	}
	if n := l.Len(); n != 1 {
		t.Errorf("l.Len() after Close = %d, want 1 (items stay in the source)", n)
	}
	// Every source, the nested one included, is free to join another.
	other := NewSelect(false)
	defer other.Close()
	mustAdd(t, other, l, inner)
	if n := inner.Sources(); n != 1 {
		t.Errorf("inner.Sources() = %d, want 1", n)
	}

	ops := []struct {
		name string
		do   func() error
	}{
		{"Get", func() error { _, err := s.Get(context.Background()); return err }},
		{"TryGet", func() error { _, err := s.TryGet(); return err }},
		{"TryGetAny", func() error { _, err := s.TryGetAny(); return err }},
		{"Add", func() error { return s.Add(new(Latch[int])) }},
		{"Remove", func() error { return s.Remove(l) }},
		{"SetNotify", func() error { return s.SetNotify(func() {}) }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want %v", op.name, err, ErrClosed)
		}
	}
	// A closed Select cannot be added to another.
	if err := other.Add(s); !errors.Is(err, ErrClosed) {
		t.Errorf("Add(closed select) = %v, want %v", err, ErrClosed)
	}
}

// TestSelectAddWhilePutting adds a latch while a producer fills it: every
// item, whether counted by Add or announced by notify, must come out once
// and in order.
func TestSelectAddWhilePutting(t *testing.T) {
	const n = 2000
	l := new(Latch[int])
	s := NewSelect(false)
	defer s.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			l.Put(i)
		}
	}()
	for l.Len() == 0 {
		time.Sleep(10 * time.Microsecond)
	}
	mustAdd(t, s, l)
	for i := range n {
		wantEvent(t, s, l, i)
	}
	wg.Wait()
	if ev, err := s.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet after all items = %+v, %v, want %v", ev, err, ErrEmpty)
	}
}

func TestSelectCloseWakesGetters(t *testing.T) {
	s := NewSelect(false)
	mustAdd(t, s, new(Latch[int]))
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Get(context.Background())
			errs <- err
		}()
	}
	waitSelectSleepers(t, s, 3)
	s.Close()
	wg.Wait()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("Get = %v, want %v", err, ErrClosed)
		}
	}
}

func TestSelectEmpty(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	deadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ops := []struct {
		name string
		do   func() error
	}{
		{"Get(Background)", func() error { _, err := s.Get(context.Background()); return err }},
		{"Get(deadline)", func() error { _, err := s.Get(deadline); return err }},
		{"TryGet", func() error { _, err := s.TryGet(); return err }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, ErrSelectEmpty) {
			t.Errorf("%s on empty select = %v, want %v", op.name, err, ErrSelectEmpty)
		}
	}
}

func TestSelectNothingReady(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	mustAdd(t, s, new(Latch[int]))
	if _, err := s.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Errorf("TryGet = %v, want %v", err, ErrEmpty)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestSelectLen(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	a, b := new(Latch[int]), new(Latch[int])
	a.Put(1)
	a.Put(2)
	mustAdd(t, s, a, b) // buffered before Add
	b.Put(3)            // buffered after Add
	if n := s.Len(); n != 3 {
		t.Fatalf("Len() = %d, want 3", n)
	}
	for range 3 {
		if _, err := s.TryGet(); err != nil {
			t.Fatalf("TryGet = %v", err)
		}
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("Len() after draining = %d, want 0", n)
	}
}

func TestSelectBufferedBeforeAdd(t *testing.T) {
	for _, tt := range []struct {
		name    string
		oneshot bool
		want    []string
		left    int
	}{
		{"persistent", false, []string{"a", "b", "c"}, 0},
		{"oneshot", true, []string{"a"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := new(Latch[string])
			for _, v := range []string{"a", "b", "c"} {
				l.Put(v)
			}
			s := NewSelect(tt.oneshot)
			defer s.Close()
			mustAdd(t, s, l)
			for _, v := range tt.want {
				wantEvent(t, s, l, v)
			}
			if n := l.Len(); n != tt.left {
				t.Fatalf("l.Len() = %d, want %d", n, tt.left)
			}
			wantSources := 1
			if tt.oneshot {
				wantSources = 0
			}
			if n := s.Sources(); n != wantSources {
				t.Fatalf("Sources() = %d, want %d", n, wantSources)
			}
		})
	}
}

func TestSelectOneshot(t *testing.T) {
	for _, oneshot := range []bool{false, true} {
		a, b := new(Latch[int]), new(Latch[int])
		s := NewSelect(oneshot)
		mustAdd(t, s, a, b)
		a.Put(1)
		b.Put(2)
		a.Put(3)
		b.Put(4)
		wantEvent(t, s, a, 1)
		wantEvent(t, s, b, 2)
		if oneshot {
			if _, err := s.Get(context.Background()); !errors.Is(err, ErrSelectEmpty) {
				t.Fatalf("oneshot: third Get = %v, want %v", err, ErrSelectEmpty)
			}
			if a.Len() != 1 || b.Len() != 1 {
				t.Fatalf("oneshot: Len = %d, %d, want 1, 1", a.Len(), b.Len())
			}
		} else {
			wantEvent(t, s, a, 3)
			wantEvent(t, s, b, 4)
			if n := s.Sources(); n != 2 {
				t.Fatalf("persistent: Sources() = %d, want 2", n)
			}
		}
		s.Close()
	}
}

// TestSelectOneshotConcurrent checks that a oneshot source yields one
// event even to concurrent getters, and that the others learn the Select
// is empty rather than sleeping on.
func TestSelectOneshotConcurrent(t *testing.T) {
	const getters = 8
	s := NewSelect(true)
	defer s.Close()
	l := new(Latch[int])
	mustAdd(t, s, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, getters)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range getters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Get(ctx)
			errs <- err
		}()
	}
	close(start)
	for i := range 10 {
		l.Put(i)
	}
	wg.Wait()
	close(errs)
	events := 0
	for err := range errs {
		switch {
		case err == nil:
			events++
		case !errors.Is(err, ErrSelectEmpty):
			t.Errorf("Get = %v, want nil or %v", err, ErrSelectEmpty)
		}
	}
	if events != 1 {
		t.Fatalf("%d events from one oneshot source, want 1", events)
	}
	if n := l.Len(); n != 9 {
		t.Fatalf("l.Len() = %d, want 9", n)
	}
}

func TestSelectLastRemoveWakesGetters(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	l := new(Latch[int])
	mustAdd(t, s, l)
	errs := make(chan error, 1)
	go func() {
		_, err := s.Get(context.Background())
		errs <- err
	}()
	waitSelectSleepers(t, s, 1)
	s.Remove(l)
	if err := <-errs; !errors.Is(err, ErrSelectEmpty) {
		t.Fatalf("Get after last Remove = %v, want %v", err, ErrSelectEmpty)
	}
}

func TestSelectArrivalOrder(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	a, b, c := new(Latch[string]), new(Latch[string]), new(Latch[string])
	mustAdd(t, s, a, b, c)
	puts := []struct {
		l *Latch[string]
		v string
	}{{a, "a1"}, {b, "b1"}, {a, "a2"}, {c, "c1"}, {b, "b2"}}
	for _, p := range puts {
		p.l.Put(p.v)
	}
	for _, p := range puts {
		wantEvent(t, s, p.l, p.v)
	}
}

func TestSelectNested(t *testing.T) {
	t.Run("persistent", func(t *testing.T) {
		l1, l2, l3 := new(Latch[string]), new(Latch[string]), new(Latch[string])
		inner := NewSelect(false)
		defer inner.Close()
		outer := NewSelect(false)
		defer outer.Close()
		mustAdd(t, inner, l1, l2)
		l1.Put("before") // buffered in inner before inner joins outer
		mustAdd(t, outer, inner, l3)
		if n := outer.Len(); n != 1 {
			t.Fatalf("outer.Len() = %d, want 1", n)
		}
		l3.Put("y")
		l2.Put("z")
		wantEvent(t, outer, l1, "before")
		wantEvent(t, outer, l3, "y")
		wantEvent(t, outer, l2, "z")
	})
	t.Run("oneshot inner", func(t *testing.T) {
		l1, l2 := new(Latch[int]), new(Latch[int])
		inner := NewSelect(true)
		defer inner.Close()
		outer := NewSelect(false)
		defer outer.Close()
		mustAdd(t, inner, l1, l2)
		mustAdd(t, outer, inner)
		l1.Put(1)
		l1.Put(2)
		l2.Put(3)
		wantEvent(t, outer, l1, 1)
		wantEvent(t, outer, l2, 3)
		if n := inner.Sources(); n != 0 {
			t.Fatalf("inner.Sources() = %d, want 0", n)
		}
		if _, err := outer.TryGet(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("outer.TryGet = %v, want %v", err, ErrEmpty)
		}
	})
}

// TestSelectSpuriousToken drains the item behind a token elsewhere: Get
// must skip the token and wait out its ctx rather than hang or fail.
func TestSelectSpuriousToken(t *testing.T) {
	s := NewSelect(false)
	defer s.Close()
	l := new(Latch[int])
	mustAdd(t, s, l)
	l.Put(1)
	if v, err := l.TryGet(); v != 1 || err != nil {
		t.Fatalf("l.TryGet = %d, %v, want 1, nil", v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want %v", err, context.DeadlineExceeded)
	}
	if _, err := s.TryGet(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet = %v, want %v", err, ErrEmpty)
	}
}

// TestSelectHammer has producers filling several latches while Select
// consumers and a thief that drains the latches directly compete; every
// item must be received exactly once.
func TestSelectHammer(t *testing.T) {
	const latches, perLatch, consumers = 4, 2000, 4
	total := int64(latches * perLatch)
	s := NewSelect(false)
	defer s.Close()
	ls := make([]*Latch[hammerItem], latches)
	for i := range ls {
		ls[i] = new(Latch[hammerItem])
		mustAdd(t, s, ls[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received atomic.Int64
	got := make([][]hammerItem, consumers+1)
	record := func(c int, it hammerItem) {
		got[c] = append(got[c], it)
		if received.Add(1) == total {
			cancel()
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perLatch {
				l.Put(hammerItem{p, i})
			}
		}()
	}
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				ev, err := s.Get(ctx)
				if err != nil {
					return
				}
				record(c, ev.Value.(hammerItem))
			}
		}()
	}
	wg.Add(1)
	go func() { // the thief
		defer wg.Done()
		<-start
		for i := 0; ctx.Err() == nil; i++ {
			if it, err := ls[i%latches].TryGet(); err == nil {
				record(consumers, it)
			}
			if i%16 == 0 {
				time.Sleep(time.Microsecond)
			}
		}
	}()
	close(start)
	wg.Wait()
	checkHammer(t, latches, perLatch, got)
	t.Logf("thief took %d of %d", len(got[consumers]), total)
}

// BenchmarkSelectGet measures one Put into a member latch followed by a
// Select.Get on the same goroutine.
func BenchmarkSelectGet(b *testing.B) {
	s := NewSelect(false)
	defer s.Close()
	l := new(Latch[int])
	if err := s.Add(l); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		l.Put(i)
		if _, err := s.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
