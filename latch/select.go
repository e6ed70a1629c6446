package latch

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// errNilSource is returned by Select.Add for a nil Source.
var errNilSource = errors.New("latch: nil source")

// Source is anything a Select can wait on: a *Latch of any element type, a
// *Select, or a type in another package that wraps a Latch and forwards
// these methods to it.
//
// Sources are compared with ==, so an implementation must be comparable;
// pointer types are the natural choice.
type Source interface {
	// SetNotify installs fn, to be called once after every successful put
	// with no lock of the source held, or clears it when fn is nil. It
	// returns ErrOwned if fn is non-nil and a notify function is already
	// installed.
	SetNotify(fn func()) error

	// TryGetAny is TryGet returning the value as any. It must not block.
	TryGetAny() (any, error)

	// Len reports, advisorily, how many items TryGetAny could return now.
	Len() int
}

// Event is one item delivered by a Select: the value and the source it came
// from. For a Select nested inside another, the event of the innermost
// source is passed up unchanged, so Source is never a *Select unless the
// value really was put into one.
type Event struct {
	Source Source
	Value  any
}

// Select waits on several sources at once and delivers their items in the
// order the puts happened.
//
// Every put into a member source calls the Select's notify function, which
// queues the source as a token in an internal Latch. Get takes a token and
// then drains one item from that source with TryGetAny. A token whose item
// was taken by someone else in the meantime is skipped.
//
// Create one with NewSelect; the zero value is not usable. A Select is safe
// for concurrent use by any number of goroutines.
type Select struct {
	oneshot bool
	tokens  Latch[Source] // one token per announced item; nil tokens only wake getters

	mu      sync.Mutex
	members map[Source]struct{} // guarded by mu
	owner   *Select             // guarded by mu; the Select this one is a member of
	getters int                 // guarded by mu; Get calls that may sleep on tokens
	closed  bool                // guarded by mu
}

// NewSelect returns an empty, open Select. If oneshot is true, each source
// is removed from the Select right after the first event it delivers, which
// suits waiting for one reply from each of several calls.
func NewSelect(oneshot bool) *Select {
	return &Select{oneshot: oneshot, members: make(map[Source]struct{})}
}

// Add makes src a member, installing the Select as its notify function and
// queuing one token for each item src already holds, so items buffered
// before Add are delivered too, in their order.
//
// It returns ErrCycle if src is s or a Select that contains s, directly or
// through nested Selects; ErrOwned if src already has a notify function
// (it belongs to this or another Select); ErrClosed if s or src is closed.
func (s *Select) Add(src Source) error {
	if src == nil {
		return errNilSource
	}
	inner, nested := src.(*Select)
	if nested {
		if inner == s {
			return ErrCycle
		}
		// Claim inner before looking for a loop: of several concurrent
		// Adds that together would close one, the last to claim is
		// guaranteed to see all the other claims and refuses.
		if err := inner.claim(s); err != nil {
			return err
		}
		if s.within(inner) {
			inner.unclaim(s)
			return ErrCycle
		}
	}

	s.mu.Lock()
	err := s.addLocked(src)
	if err != nil && nested {
		inner.unclaim(s)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Notify is installed first, so an item put from here on produces a
	// token of its own; at worst an item is counted twice, and the extra
	// token is skipped as spurious. None can be missed.
	for range src.Len() {
		_ = s.tokens.Put(src)
	}
	return nil
}

func (s *Select) addLocked(src Source) error {
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.members[src]; ok {
		return ErrOwned
	}
	if err := src.SetNotify(func() { _ = s.tokens.Put(src) }); err != nil {
		return err
	}
	s.members[src] = struct{}{}
	return nil
}

// claim records parent as the owner of s, failing if s has one already.
func (s *Select) claim(parent *Select) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.owner != nil {
		return ErrOwned
	}
	s.owner = parent
	return nil
}

// unclaim drops parent's ownership of s, if parent still owns it.
func (s *Select) unclaim(parent *Select) {
	s.mu.Lock()
	if s.owner == parent {
		s.owner = nil
	}
	s.mu.Unlock()
}

// within reports whether s is target or lies inside target, following owner
// links upward. It holds one Select's lock at a time, so it cannot deadlock
// with Adds running elsewhere in the tree.
func (s *Select) within(target *Select) bool {
	var seen []*Select
	for cur := s; cur != nil; {
		if cur == target || slices.Contains(seen, cur) {
			// A repeat means racing Adds have briefly claimed a loop;
			// refusing is the safe answer.
			return true
		}
		seen = append(seen, cur)
		cur.mu.Lock()
		next := cur.owner
		cur.mu.Unlock()
		cur = next
	}
	return false
}

// Remove takes src out of the Select and clears its notify function. Tokens
// already queued for src are skipped. If src was the last member, every Get
// asleep on s returns ErrSelectEmpty. It returns ErrNotMember if src is not
// a member and ErrClosed after Close.
func (s *Select) Remove(src Source) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if _, ok := s.members[src]; !ok {
		s.mu.Unlock()
		return ErrNotMember
	}
	wake := s.removeLocked(src)
	s.mu.Unlock()
	s.wakeGetters(wake)
	return nil
}

// removeLocked drops a member and returns how many sleeping getters must be
// woken because the Select has become empty.
func (s *Select) removeLocked(src Source) (wake int) {
	delete(s.members, src)
	_ = src.SetNotify(nil)
	if inner, ok := src.(*Select); ok {
		inner.unclaim(s)
	}
	if len(s.members) == 0 {
		return s.getters
	}
	return 0
}

// wakeGetters queues n nil tokens. A getter woken by one finds the Select
// empty and returns ErrSelectEmpty instead of sleeping until its ctx ends.
func (s *Select) wakeGetters(n int) {
	for range n {
		_ = s.tokens.Put(nil)
	}
}

// Get returns the next event, sleeping until a member source delivers one.
// It returns ErrSelectEmpty at once when there are no sources, whatever the
// ctx, ErrClosed after Close, and ctx.Err() if ctx ends first.
//
// A token whose item was drained by another reader is skipped and Get goes
// back to sleep under the same ctx. In a oneshot Select the source is
// removed before its event is returned, so each source yields at most one
// event even to concurrent callers.
func (s *Select) Get(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if err := s.readyLocked(); err != nil {
			s.mu.Unlock()
			return Event{}, err
		}
		s.getters++
		s.mu.Unlock()

		tok, err := s.tokens.Get(ctx)

		s.mu.Lock()
		s.getters--
		if err != nil {
			s.mu.Unlock()
			return Event{}, err
		}
		ev, ok, wake := s.takeLocked(tok)
		s.mu.Unlock()
		s.wakeGetters(wake)
		if ok {
			return ev, nil
		}
	}
}

// TryGet returns the next event without blocking: ErrEmpty if none is
// ready, ErrSelectEmpty if there are no sources, ErrClosed after Close.
func (s *Select) TryGet() (Event, error) {
	for {
		s.mu.Lock()
		if err := s.readyLocked(); err != nil {
			s.mu.Unlock()
			return Event{}, err
		}
		tok, err := s.tokens.TryGet()
		if err != nil {
			s.mu.Unlock()
			return Event{}, err
		}
		ev, ok, wake := s.takeLocked(tok)
		s.mu.Unlock()
		s.wakeGetters(wake)
		if ok {
			return ev, nil
		}
	}
}

func (s *Select) readyLocked() error {
	if s.closed {
		return ErrClosed
	}
	if len(s.members) == 0 {
		return ErrSelectEmpty
	}
	return nil
}

// takeLocked turns a token into an event. ok is false for a spurious token:
// a wake-up token, one for a source no longer a member, or one whose item
// is gone. Holding s.mu across TryGetAny and the oneshot removal is what
// keeps a oneshot source to a single event.
func (s *Select) takeLocked(tok Source) (ev Event, ok bool, wake int) {
	if tok == nil {
		return Event{}, false, 0
	}
	if _, member := s.members[tok]; !member {
		return Event{}, false, 0
	}
	v, err := tok.TryGetAny()
	if err != nil {
		return Event{}, false, 0
	}
	if _, nested := tok.(*Select); nested {
		ev = v.(Event)
	} else {
		ev = Event{Source: tok, Value: v}
	}
	if s.oneshot {
		wake = s.removeLocked(tok)
	}
	return ev, true, wake
}

// Len reports the sum of the members' Len. It is advisory.
func (s *Select) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for src := range s.members {
		n += src.Len()
	}
	return n
}

// Sources reports how many sources are members.
func (s *Select) Sources() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members)
}

// Close removes every source, clearing their notify functions so they can
// join another Select, and closes the Select: sleeping Gets return
// ErrClosed and every later call except Close fails with it. Items still
// buffered in the sources stay there. Closing twice is harmless and returns
// nil.
func (s *Select) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for src := range s.members {
		_ = s.removeLocked(src)
	}
	s.mu.Unlock()
	return s.tokens.Close()
}

// SetNotify implements Source, so that a Select can be a member of another
// Select: fn is called once per token queued in s.
func (s *Select) SetNotify(fn func()) error {
	return s.tokens.SetNotify(fn)
}

// TryGetAny implements Source: it is TryGet with the Event returned as any.
func (s *Select) TryGetAny() (any, error) {
	ev, err := s.TryGet()
	if err != nil {
		return nil, err
	}
	return ev, nil
}
