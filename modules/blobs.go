package modules

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// want is a blob wanted, with its size when known (from a tree entry; -1:
// unknown). Sizes only shape batches: a wrong one costs a round trip.
type want struct {
	h    string
	size int64
}

// wants checks hashes and drops repeats.
func wants(hashes []string) ([]want, error) {
	ws := make([]want, 0, len(hashes))
	seen := make(map[string]struct{}, len(hashes))
	for _, h := range hashes {
		if !ValidHash(h) {
			return nil, fmt.Errorf("%w: %q is not a sha256 hex digest", ErrBadHash, h)
		}
		if _, ok := seen[h]; ok {
			continue
		}
		seen[h] = struct{}{}
		ws = append(ws, want{h: h, size: -1})
	}
	return ws, nil
}

// notFound is the error for blobs nobody could give.
func notFound(what string, missing []string) error {
	names := make([]string, 0, 3)
	for _, h := range missing[:min(3, len(missing))] {
		names = append(names, short(h))
	}
	more := ""
	if len(missing) > 3 {
		more = fmt.Sprintf(" and %d more", len(missing)-3)
	}
	return fmt.Errorf("%w: %s: %d blobs (%s%s)", ErrNotFound, what, len(missing), strings.Join(names, ", "), more)
}

// EnsureAll makes every blob of hashes present in this context's store,
// asking the parent for the missing ones with GET_BLOBS, in batches of at
// most MaxBatchHashes hashes (the parent answers at most MaxBatchBytes a
// reply: the rest is asked again; a blob larger than that comes alone, by
// GET_MODULE). Each arriving blob is verified and stored cached. Concurrent
// requests for one hash, here or through Ensure, share one fetch. A hash
// nobody has makes it fail with ErrNotFound, once every other hash has been
// dealt with.
func (s *Service) EnsureAll(ctx context.Context, hashes []string) error {
	ws, err := wants(hashes)
	if err != nil {
		return err
	}
	return s.ensureWants(ctx, ws)
}

func (s *Service) ensureWants(ctx context.Context, ws []want) error {
	var missing []string
	err := s.ensure(ctx, ws, false, func(h string, _ []byte, err error) error {
		if err != nil {
			missing = append(missing, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return notFound(fmt.Sprintf("context %d and its ancestors lack", s.r.ID()), missing)
	}
	return nil
}

// ensure makes the blobs of ws (distinct, valid) present, fetching what is
// missing from the parent. fn is called on the calling goroutine once for
// each, in no set order: with its bytes (nil when the blob was already here
// and need is false), or with an ErrNotFound error for a blob nobody has.
// Any other failure, or fn's error, ends ensure with that error; fetches
// already started carry on for whoever else waits on them.
func (s *Service) ensure(ctx context.Context, ws []want, need bool, fn func(h string, b []byte, err error) error) error {
	var missing []want
	for _, w := range ws {
		var b []byte
		ok := false
		if need {
			b, ok = s.st.Get(w.h)
		} else {
			ok = s.st.Has(w.h)
		}
		if !ok {
			missing = append(missing, w)
			continue
		}
		if err := fn(w.h, b, nil); err != nil {
			return err
		}
	}
	if len(missing) == 0 {
		return nil
	}
	parents := s.r.ParentIDs()
	if len(parents) == 0 {
		for _, w := range missing {
			if err := fn(w.h, nil, fmt.Errorf("%w: no context in the tree has blob %s", ErrNotFound, short(w.h))); err != nil {
				return err
			}
		}
		return nil
	}
	waits := make([]*flight, 0, len(missing))
	var own []want
	var ownF []*flight
	s.mu.Lock()
	for _, w := range missing {
		f, mine := s.joinLocked(w.h)
		waits = append(waits, f)
		if mine {
			own, ownF = append(own, w), append(ownF, f)
		}
	}
	s.mu.Unlock()
	// A flight that ended between the look above and the join stored its
	// blob first: take it from the store instead of fetching it again.
	kept := own[:0]
	keptF := ownF[:0]
	for i, w := range own {
		if b, ok := s.st.Get(w.h); ok {
			s.finish(ownF[i], b, nil)
			continue
		}
		kept, keptF = append(kept, w), append(keptF, ownF[i])
	}
	own, ownF = kept, keptF
	if len(own) > 0 {
		// Under the broker's lifetime, not ctx: others may join these
		// flights.
		err := s.r.Broker().Go(func(ctx context.Context) { s.fetchBatches(ctx, parents[0], own, ownF) })
		if err != nil {
			for _, f := range ownF {
				s.finish(f, nil, fmt.Errorf("modules: fetch: %w", routing.ErrShutdown))
			}
		}
	}
	var again []want
	for i, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		waits[i] = nil // let the bytes go once used
		if errors.Is(f.err, errNotFetched) {
			again = append(again, want{h: f.h, size: -1}) // a one-round fetch left it: ask again
			continue
		}
		if f.err != nil && !errors.Is(f.err, ErrNotFound) {
			return f.err
		}
		if err := fn(f.h, f.b, f.err); err != nil {
			return err
		}
	}
	if len(again) > 0 {
		return s.ensure(ctx, again, need, fn)
	}
	return nil
}

// errNotFetched ends a flight that a one-round fetch (fetchRound) did not
// fill: the parent named the blob large, or its reply had no room for it.
// A caller of ensure that joined that flight asks again.
var errNotFetched = errors.New("modules: not fetched in this round")

// fetchRound gets what it can of ws from the parent for a GET_BLOBS reply:
// blobs being fetched already are waited for; the rest are asked for in
// one GET_BLOBS, whose reply the parent bounds, so one child's request
// costs the edge above at most one reply, whatever it names. on sees
// each blob got, each hash missing up the tree (missingBlob) and each the
// parent named large (largeBlob); a hash the round did not answer is not
// seen (the asker asks again).
func (s *Service) fetchRound(ctx context.Context, ws []want, on func(h string, b []byte, kind int)) error {
	parents := s.r.ParentIDs()
	if len(parents) == 0 {
		for _, w := range ws {
			on(w.h, nil, missingBlob)
		}
		return nil
	}
	waits := make([]*flight, 0, len(ws))
	var own []*flight
	s.mu.Lock()
	for _, w := range ws {
		f, mine := s.joinLocked(w.h)
		waits = append(waits, f)
		if mine {
			own = append(own, f)
		}
	}
	s.mu.Unlock()
	if len(own) > 0 {
		err := s.r.Broker().Go(func(ctx context.Context) { s.fetchOneRound(ctx, parents[0], own) })
		if err != nil {
			for _, f := range own {
				s.finish(f, nil, fmt.Errorf("modules: fetch: %w", routing.ErrShutdown))
			}
		}
	}
	seen := 0
	var firstErr error
	for _, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		seen++
		switch {
		case f.err == nil:
			on(f.h, f.b, gotBlob)
		case errors.Is(f.err, ErrNotFound):
			on(f.h, nil, missingBlob)
		case errors.Is(f.err, errLargeBlob):
			on(f.h, nil, largeBlob)
		default:
			seen--
			if f.err != errNotFetched {
				firstErr = firstErrOf(firstErr, f.err)
			}
		}
	}
	if seen == 0 {
		return firstErr // nothing to answer with: say why, if something failed
	}
	return nil
}

// errLargeBlob (an errNotFetched) ends a flight whose blob the parent
// named too large for a batch.
var errLargeBlob = fmt.Errorf("%w: too large for a batch", errNotFetched)

// fetchOneRound asks the parent once for the blobs of fs and finishes every
// flight: with the blob, ErrNotFound, errLargeBlob, or errNotFetched.
func (s *Service) fetchOneRound(ctx context.Context, parent uint32, fs []*flight) {
	fl := s.flights(fs)
	defer fl.abandon(func(string) error { return errNotFetched }) // nothing may be left waiting
	// A flight started just after another one finished finds the blob.
	var pending []string
	for _, f := range fs {
		if b, ok := s.st.Get(f.h); ok {
			fl.done(f.h, b, nil)
		} else {
			pending = append(pending, f.h)
		}
	}
	call := func(ctx context.Context, hashes []string) (*wire.Blobs, error) {
		return s.callBlobs(ctx, parent, wire.HandleGetBlobs, hashes)
	}
	done := fl.done
	left, err := exchange(ctx, pending, 1, call, func(h string, b []byte, kind int) {
		s.fetched(h, b, kind, done, func(h string) { done(h, nil, errLargeBlob) })
	})
	for _, h := range left {
		if err != nil {
			done(h, nil, fmt.Errorf("%w: %w", errNotFetched, err))
		}
	}
}

// splitBatches cuts ws into batches of at most MaxBatchHashes hashes and,
// by the sizes known, bound bytes of reply; alone are the blobs known to be
// larger than a batch.
func splitBatches(ws []want, bound int64) (batches [][]want, alone []want) {
	var cur []want
	var used int64
	for _, w := range ws {
		n := BlobOverhead + max(w.size, 0)
		if n > bound {
			alone = append(alone, w)
			continue
		}
		if len(cur) == MaxBatchHashes || (len(cur) > 0 && used+n > bound) {
			batches, cur, used = append(batches, cur), nil, 0
		}
		cur, used = append(cur, w), used+n
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, alone
}

// Kinds of answer in a Blobs reply, for exchange's callback.
const (
	gotBlob = iota
	missingBlob
	largeBlob
)

// exchange asks for pending (by call) until the replies have named each
// hash once, or for at most rounds replies when rounds > 0; on sees each
// answer. It returns the hashes left unanswered: by the last round, or
// when a call fails or a reply breaks the rules (a hash not asked for, one
// named twice, no progress), with the error.
func exchange(ctx context.Context, pending []string, rounds int, call func(context.Context, []string) (*wire.Blobs, error), on func(h string, b []byte, kind int)) ([]string, error) {
	for round := 1; len(pending) > 0; round++ {
		rep, err := call(ctx, pending)
		if err != nil {
			return pending, err
		}
		left := make(map[string]bool, len(pending))
		for _, h := range pending {
			left[h] = true
		}
		rest := func() []string {
			var out []string
			for _, h := range pending {
				if left[h] {
					out = append(out, h)
				}
			}
			return out
		}
		answer := func(h string, b []byte, kind int) error {
			if !left[h] {
				return fmt.Errorf("modules: reply names blob %s, which was not asked for or was named already: %w", short(h), routing.ErrBadRequest)
			}
			delete(left, h)
			on(h, b, kind)
			return nil
		}
		for _, bl := range rep.Blobs {
			if err := answer(bl.Hash, bl.Data, gotBlob); err != nil {
				return rest(), err
			}
		}
		for _, h := range rep.Missing {
			if err := answer(h, nil, missingBlob); err != nil {
				return rest(), err
			}
		}
		for _, h := range rep.Large {
			if err := answer(h, nil, largeBlob); err != nil {
				return rest(), err
			}
		}
		if len(left) == len(pending) {
			return pending, fmt.Errorf("modules: a reply of %d blobs answered none of %d hashes: %w", len(rep.Blobs), len(pending), routing.ErrBadRequest)
		}
		pending = rest()
		if round == rounds {
			return pending, nil
		}
	}
	return nil, nil
}

func hashesOf(ws []want) []string {
	hs := make([]string, len(ws))
	for i, w := range ws {
		hs[i] = w.h
	}
	return hs
}

// fetchBatches fetches the blobs of own from the parent and finishes their
// flights, every one, whatever happens.
func (s *Service) fetchBatches(ctx context.Context, parent uint32, own []want, fs []*flight) {
	fl := s.flights(fs)
	done := fl.done
	defer fl.abandon(func(h string) error { // nothing may be left waiting
		return fmt.Errorf("modules: fetch %s from context %d: abandoned", short(h), parent)
	})
	one := func(h string) {
		b, err := s.fetchOne(ctx, parent, h)
		done(h, b, err)
	}
	batches, alone := splitBatches(own, s.batchBytes())
	for _, w := range alone {
		one(w.h)
	}
	call := func(ctx context.Context, hashes []string) (*wire.Blobs, error) {
		return s.callBlobs(ctx, parent, wire.HandleGetBlobs, hashes)
	}
	for _, batch := range batches {
		var large []string
		left, err := exchange(ctx, hashesOf(batch), 0, call, func(h string, b []byte, kind int) {
			s.fetched(h, b, kind, done, func(h string) { large = append(large, h) })
		})
		for _, h := range left {
			done(h, nil, fmt.Errorf("modules: fetch %s from context %d: %w", short(h), parent, err))
		}
		for _, h := range large {
			one(h)
		}
	}
}

// flightSet is the flights one fetch owns, by hash; each is finished once.
// It is used by the fetch's own goroutine only.
type flightSet struct {
	s      *Service
	byHash map[string]*flight
}

func (s *Service) flights(fs []*flight) *flightSet {
	fl := &flightSet{s: s, byHash: make(map[string]*flight, len(fs))}
	for _, f := range fs {
		fl.byHash[f.h] = f
	}
	return fl
}

// done finishes h's flight, if it is still open.
func (fl *flightSet) done(h string, b []byte, err error) {
	if f := fl.byHash[h]; f != nil {
		delete(fl.byHash, h)
		fl.s.finish(f, b, err)
	}
}

// abandon finishes every flight still open with the error why gives.
func (fl *flightSet) abandon(why func(h string) error) {
	for h := range fl.byHash {
		fl.done(h, nil, why(h))
	}
}

// fetched takes one answer of the parent to a GET_BLOBS: a blob is stored
// (verified) and its flight finished, a hash missing up the tree finishes
// with ErrNotFound, and one named large goes to large.
func (s *Service) fetched(h string, b []byte, kind int, done func(string, []byte, error), large func(string)) {
	switch kind {
	case gotBlob:
		if err := s.st.PutVerified(h, b); err != nil {
			done(h, nil, err)
			return
		}
		s.noteFetched(0, 1, int64(len(b)))
		done(h, b, nil)
	case missingBlob:
		done(h, nil, fmt.Errorf("%w: no context up the tree from %d has blob %s", ErrNotFound, s.r.ID(), short(h)))
	case largeBlob:
		large(h)
	}
}

// callBlobs sends one GET_BLOBS or PULL_BLOBS and decodes the reply.
func (s *Service) callBlobs(ctx context.Context, dst, handle uint32, hashes []string) (*wire.Blobs, error) {
	body, err := msgpack.Marshal(&wire.GetBlobs{Hashes: hashes})
	if err != nil {
		return nil, err
	}
	up := handle == wire.HandleGetBlobs
	if up {
		if err := s.acquireUp(ctx); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, BlobCallTimeout)
	reply, err := s.r.Call(cctx, dst, handle, wire.EncMsgpack, body)
	cancel()
	if up {
		s.releaseUp()
		s.noteFetched(1, 0, 0)
	}
	if err != nil {
		return nil, err
	}
	var rep wire.Blobs
	if err := wire.Unmarshal(reply.Body, &rep); err != nil {
		return nil, fmt.Errorf("modules: blobs reply from context %d: %w", dst, err)
	}
	return &rep, nil
}

// decodeGetBlobs decodes and checks a GET_BLOBS or PULL_BLOBS body: at
// most MaxBatchHashes hashes, each valid and named once.
func decodeGetBlobs(body []byte) ([]string, error) {
	var req wire.GetBlobs
	if err := wire.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: %v", routing.ErrBadRequest, err)
	}
	if len(req.Hashes) > MaxBatchHashes {
		return nil, fmt.Errorf("%w: %d hashes (max %d)", routing.ErrBadRequest, len(req.Hashes), MaxBatchHashes)
	}
	seen := make(map[string]struct{}, len(req.Hashes))
	for _, h := range req.Hashes {
		if !ValidHash(h) {
			return nil, fmt.Errorf("%w: %q is not a sha256 hex digest", routing.ErrBadRequest, h)
		}
		if _, ok := seen[h]; ok {
			return nil, fmt.Errorf("%w: %s asked for twice", routing.ErrBadRequest, short(h))
		}
		seen[h] = struct{}{}
	}
	return req.Hashes, nil
}

// onGetBlobs answers a direct child's GET_BLOBS, fetching upward first what
// this context lacks (never on the reader goroutine).
func (s *Service) onGetBlobs(m *wire.Message, _ *broker.Stream) {
	s.onBlobs(m, true)
}

// onPullBlobs answers an ancestor's PULL_BLOBS from this context's store.
func (s *Service) onPullBlobs(m *wire.Message, _ *broker.Stream) {
	s.onBlobs(m, false)
}

func (s *Service) onBlobs(m *wire.Message, getBlobs bool) {
	if m.IsDead() {
		return
	}
	name := "PULL_BLOBS"
	if getBlobs {
		name = "GET_BLOBS"
	}
	ctx := s.r.Broker().Context()
	hashes, err := decodeGetBlobs(m.Body)
	if err != nil {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("decode %s: %w", name, err))
		return
	}
	if getBlobs && !s.acquireChild(m.Src) {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("%s: %w: context %d has %d requests in flight", name, routing.ErrRefused, m.Src, MaxInflightPerChild))
		return
	}
	err = s.r.Broker().Go(func(ctx context.Context) {
		rep, blobs, bytes, err := s.serveBlobs(ctx, hashes, getBlobs)
		if getBlobs {
			s.releaseChild(m.Src)
		}
		var body []byte
		if err == nil {
			body, err = msgpack.Marshal(rep)
		}
		if err != nil {
			_ = s.r.ReplyError(ctx, m, fmt.Errorf("%s: %w", name, err))
			return
		}
		s.noteServed(m.Src, !getBlobs, blobs, bytes)
		if err := s.r.Reply(ctx, m, wire.EncMsgpack, body); err != nil {
			s.noteServed(m.Src, !getBlobs, -blobs, -bytes)
		}
	})
	if err != nil {
		if getBlobs {
			s.releaseChild(m.Src)
		}
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("%s: %w", name, routing.ErrShutdown))
	}
}

// serveBlobs makes the reply to a batch request: the blobs held here that
// fit, in order, then (upward: GET_BLOBS) those fetched from the parent
// that fit. A blob larger than a batch is named Large; one that does not
// fit in what is left of this reply is not named (the asker asks again).
// A PULL_BLOBS of one hash may take a whole message.
func (s *Service) serveBlobs(ctx context.Context, hashes []string, upward bool) (rep *wire.Blobs, blobs, bytes int64, err error) {
	rep = &wire.Blobs{}
	bound := s.batchBytes()
	single := !upward && len(hashes) == 1
	var used int64
	room := func(n int64) bool { return used+n <= bound }
	// place decides what the reply does with a blob of size bytes.
	const (
		include = iota
		large
		skip
	)
	place := func(size int64) int {
		n := size + BlobOverhead
		switch {
		case single && n <= int64(s.r.MaxMessageSize())-4096:
			return include
		case n > bound:
			if room(BlobOverhead) {
				return large
			}
			return skip
		case !room(n):
			return skip
		}
		return include
	}
	add := func(h string, size int64, b []byte) {
		switch place(size) {
		case include:
			rep.Blobs = append(rep.Blobs, wire.Blob{Hash: h, Data: b})
			used += int64(len(b)) + BlobOverhead
			blobs++
			bytes += int64(len(b))
		case large:
			rep.Large = append(rep.Large, h)
			used += BlobOverhead
		}
	}
	var missing []want
	for _, h := range hashes {
		if !room(BlobOverhead) {
			break
		}
		size, ok := s.st.size(h)
		if ok && place(size) != include {
			add(h, size, nil) // named Large, or left for next time: not read
			continue
		}
		var b []byte
		if ok {
			b, ok = s.st.Get(h)
		}
		if !ok {
			missing = append(missing, want{h: h, size: -1})
			continue
		}
		add(h, int64(len(b)), b)
	}
	if len(missing) == 0 || !room(BlobOverhead) {
		return rep, blobs, bytes, nil
	}
	if !upward {
		for _, w := range missing {
			if room(BlobOverhead) {
				rep.Missing = append(rep.Missing, w.h)
				used += BlobOverhead
			}
		}
		return rep, blobs, bytes, nil
	}
	// From the parent, one round: what it sends fits one of its replies,
	// and what does not fit this one is left out (the asker asks again).
	err = s.fetchRound(ctx, missing, func(h string, b []byte, kind int) {
		switch {
		case kind == gotBlob:
			add(h, int64(len(b)), b)
		case !room(BlobOverhead):
		case kind == missingBlob:
			rep.Missing = append(rep.Missing, h)
			used += BlobOverhead
		case kind == largeBlob:
			rep.Large = append(rep.Large, h)
			used += BlobOverhead
		}
	})
	return rep, blobs, bytes, err
}

// Pull copies the blobs of hashes that context from (a descendant) holds
// into this context's store, pinned: this context is their origin now. It
// asks with PULL_BLOBS (which needs parent authority: a context cannot
// pull from its parent or a sibling), in batches like EnsureAll, and
// verifies each blob. A blob already held here is pinned without a
// transfer. A blob that context lacks is are an ErrNotFound error.
func (s *Service) Pull(ctx context.Context, from uint32, hashes []string) error {
	ws, err := wants(hashes)
	if err != nil {
		return err
	}
	return s.pullWants(ctx, from, ws)
}

func (s *Service) pullWants(ctx context.Context, from uint32, ws []want) error {
	var need []want
	sizes := make(map[string]int64, len(ws))
	for _, w := range ws {
		if !s.st.pinLocal(w.h) {
			need = append(need, w)
			sizes[w.h] = w.size
		}
	}
	var missing []string
	var firstErr error
	call := func(ctx context.Context, hashes []string) (*wire.Blobs, error) {
		return s.callBlobs(ctx, from, wire.HandlePullBlobs, hashes)
	}
	round := func(hashes []string) []string {
		var large []string
		single := len(hashes) == 1
		left, err := exchange(ctx, hashes, 0, call, func(h string, b []byte, kind int) {
			switch kind {
			case gotBlob:
				if got := Hash(b); got != h {
					firstErr = firstErrOf(firstErr, fmt.Errorf("%w: blob %s pulled from context %d has sha256 %s", ErrBadHash, short(h), from, short(got)))
					return
				}
				if n := sizes[h]; n >= 0 && int64(len(b)) != n {
					firstErr = firstErrOf(firstErr, fmt.Errorf("%w: blob %s pulled from context %d has %d bytes, its entry says %d", ErrBadTree, short(h), from, len(b), n))
					return
				}
				if err := s.st.pin(h, b); err != nil {
					firstErr = firstErrOf(firstErr, err)
					return
				}
				s.mu.Lock()
				s.stats.Pulled++
				s.stats.PulledBytes += int64(len(b))
				s.mu.Unlock()
			case missingBlob:
				missing = append(missing, h)
			case largeBlob:
				if single {
					firstErr = firstErrOf(firstErr, fmt.Errorf("modules: blob %s in context %d is too large for a message (max %d bytes): %w", short(h), from, s.r.MaxMessageSize(), routing.ErrTooLarge))
					return
				}
				if n := sizes[h]; n >= 0 && n+BlobOverhead <= s.batchBytes() {
					// Its entry says it fits a batch: a lie, refused before
					// the blob is pulled alone.
					firstErr = firstErrOf(firstErr, fmt.Errorf("%w: context %d named blob %s too large for a batch, its entry says %d bytes", ErrBadTree, from, short(h), n))
					return
				}
				large = append(large, h)
			}
		})
		if err != nil {
			firstErr = firstErrOf(firstErr, fmt.Errorf("modules: pull %d blobs from context %d: %w", len(left), from, err))
		}
		return large
	}
	batches, alone := splitBatches(need, s.batchBytes())
	for _, b := range batches {
		for _, h := range round(hashesOf(b)) {
			alone = append(alone, want{h: h})
		}
		if firstErr != nil {
			return firstErr
		}
	}
	for _, w := range alone {
		round([]string{w.h})
		if firstErr != nil {
			return firstErr
		}
	}
	if len(missing) > 0 {
		return notFound(fmt.Sprintf("context %d lacks", from), missing)
	}
	return nil
}

func firstErrOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
