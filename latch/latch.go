package latch

import (
	"context"
	"sync"
)

// Latch is an unbounded FIFO queue whose consumers may block until an item
// arrives. Sleeping consumers are served strictly in the order they went to
// sleep, and a Put hands its item straight to the longest sleeper, so a
// newcomer can never take an item that a sleeper was promised.
//
// The zero value is an empty, open Latch ready to use. A Latch must not be
// copied after first use. It is safe for concurrent use by any number of
// goroutines.
type Latch[T any] struct {
	mu      sync.Mutex
	items   ring[T]     // guarded by mu; non-empty only while waiters is empty
	waiters waitList[T] // guarded by mu; sleepers in the order they slept
	closed  bool        // guarded by mu
	notify  func()      // guarded by mu; called after each Put, without mu
	pool    sync.Pool   // of *waiter[T], so a blocking Get does not allocate
}

// waiter is one goroutine sleeping in Get. It is linked into Latch.waiters
// until a Put or Close takes it out, sets state and sends exactly one signal
// on wake. A waiter that leaves on its own (ctx done) is unlinked by itself
// and gets no signal. Either way wake is empty again when the waiter goes
// back to the pool.
type waiter[T any] struct {
	wake       chan struct{} // capacity 1; one signal per hand-off or Close
	val        T             // guarded by Latch.mu until signalled
	state      waitState     // guarded by Latch.mu until signalled
	prev, next *waiter[T]    // guarded by Latch.mu
}

type waitState uint8

const (
	stateWaiting waitState = iota // linked, nothing yet
	stateHanded                   // val holds the item meant for this waiter
	stateClosed                   // the Latch was closed while it slept
)

// Put appends v to the queue, or hands it directly to the longest sleeper
// if one is waiting. It then calls the notify function, if one is
// installed, on the caller's goroutine and without any lock held. Put never
// blocks; it fails with ErrClosed after Close.
func (l *Latch[T]) Put(v T) error {
	l.mu.Lock()
	w, fn, err := l.putLocked(v)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if w != nil {
		// w is already unlinked and marked handed; the buffered send
		// cannot block because each waiter gets exactly one signal.
		w.wake <- struct{}{}
	}
	if fn != nil {
		fn()
	}
	return nil
}

// putLocked does the bookkeeping of Put. If it returns a waiter, the caller
// must signal it after releasing l.mu.
func (l *Latch[T]) putLocked(v T) (w *waiter[T], notify func(), err error) {
	if l.closed {
		return nil, nil, ErrClosed
	}
	if w = l.waiters.front(); w != nil {
		l.waiters.remove(w)
		w.val = v
		w.state = stateHanded
	} else {
		l.items.push(v)
	}
	return w, l.notify, nil
}

// Get removes and returns the oldest item, sleeping until one is put if the
// queue is empty. It returns ErrClosed if the Latch is or becomes closed,
// even when items remain queued, and ctx.Err() if ctx ends first.
//
// An item that is already queued is returned even if ctx is done. If ctx
// ends at the same moment a Put hands this caller an item, Get returns the
// item with a nil error: a handed item is never dropped and never requeued.
func (l *Latch[T]) Get(ctx context.Context) (T, error) {
	var zero T
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return zero, ErrClosed
	}
	if l.items.len() > 0 {
		v := l.items.pop()
		l.mu.Unlock()
		return v, nil
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return zero, err
	}
	w := l.getWaiter()
	w.state = stateWaiting
	l.waiters.pushBack(w)
	l.mu.Unlock()

	select {
	case <-w.wake:
	case <-ctx.Done():
		l.mu.Lock()
		if w.state == stateWaiting {
			l.waiters.remove(w)
			l.mu.Unlock()
			l.pool.Put(w)
			return zero, ctx.Err()
		}
		l.mu.Unlock()
		// A Put or Close already took w out of the list; its signal is
		// on the way and must be consumed before w can be reused.
		<-w.wake
	}
	// The signal orders the writes of val and state before these reads.
	v, st := w.val, w.state
	w.val = zero
	l.pool.Put(w)
	if st == stateClosed {
		return zero, ErrClosed
	}
	return v, nil
}

func (l *Latch[T]) getWaiter() *waiter[T] {
	if w, ok := l.pool.Get().(*waiter[T]); ok {
		return w
	}
	return &waiter[T]{wake: make(chan struct{}, 1)}
}

// TryGet removes and returns the oldest queued item without blocking. It
// returns ErrEmpty if nothing is queued (items already handed to sleepers
// do not count) and ErrClosed after Close, even when items remain.
func (l *Latch[T]) TryGet() (T, error) {
	var zero T
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return zero, ErrClosed
	}
	if l.items.len() == 0 {
		return zero, ErrEmpty
	}
	return l.items.pop(), nil
}

// TryGetAny is TryGet with the item returned as any, so that a Select can
// drain a Latch of any element type.
func (l *Latch[T]) TryGetAny() (any, error) {
	v, err := l.TryGet()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Len reports how many items are queued and not yet promised to a sleeper.
// It is advisory: the answer may be stale by the time it is used. A closed
// Latch has length 0.
func (l *Latch[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0
	}
	return l.items.len()
}

// Empty reports whether Len is 0. Like Len it is advisory.
func (l *Latch[T]) Empty() bool {
	return l.Len() == 0
}

// Close marks the Latch closed, drops any queued items and wakes every
// sleeper with ErrClosed. Items already handed to a sleeper before Close are
// still delivered to it. Later calls to Put, Get and TryGet fail with
// ErrClosed. Closing twice is harmless and returns nil.
func (l *Latch[T]) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.items.reset()
	for w := l.waiters.front(); w != nil; w = l.waiters.front() {
		l.waiters.remove(w)
		w.state = stateClosed
		w.wake <- struct{}{} // never blocks: one signal per waiter
	}
	return nil
}

// Closed reports whether Close has been called.
func (l *Latch[T]) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// SetNotify installs fn to be called once after every successful Put,
// on the putter's goroutine and with no Latch lock held, or clears it when
// fn is nil. It returns ErrOwned if a notify function is already installed
// and fn is non-nil, and ErrClosed if fn is non-nil and the Latch is closed.
// Because the function is read under the lock but called after it is
// released, a Put racing with SetNotify(nil) may still call the old one.
func (l *Latch[T]) SetNotify(fn func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fn == nil {
		l.notify = nil
		return nil
	}
	if l.closed {
		return ErrClosed
	}
	if l.notify != nil {
		return ErrOwned
	}
	l.notify = fn
	return nil
}

// sleepers reports how many goroutines are asleep in Get and not yet
// handed an item. Tests use it to know that a Get has really gone to sleep.
func (l *Latch[T]) sleepers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters.n
}

// waitList is an intrusive doubly linked FIFO of waiters, so that a waiter
// whose ctx ends can unlink itself in constant time.
type waitList[T any] struct {
	head, tail *waiter[T]
	n          int
}

func (q *waitList[T]) front() *waiter[T] { return q.head }

func (q *waitList[T]) pushBack(w *waiter[T]) {
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitList[T]) remove(w *waiter[T]) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}

// ring is a growable circular buffer whose capacity is always 0 or a power
// of two. It shrinks again after a burst so a drained Latch does not keep a
// large buffer alive.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

const (
	ringMinCap    = 8
	ringShrinkCap = 64 // never shrink below this
)

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		r.resize(max(ringMinCap, 2*len(r.buf)))
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

// pop must only be called when len() > 0.
func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the GC have it
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if len(r.buf) > ringShrinkCap && r.n < len(r.buf)/4 {
		r.resize(len(r.buf) / 2)
	}
	return v
}

func (r *ring[T]) resize(size int) {
	buf := make([]T, size)
	if r.n > 0 {
		end := r.head + r.n
		if end <= len(r.buf) {
			copy(buf, r.buf[r.head:end])
		} else {
			k := copy(buf, r.buf[r.head:])
			copy(buf[k:], r.buf[:end-len(r.buf)])
		}
	}
	r.buf, r.head = buf, 0
}

func (r *ring[T]) reset() {
	r.buf, r.head, r.n = nil, 0, 0
}
