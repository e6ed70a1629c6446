package modules_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// putBlobs pins n blobs of size bytes in st and returns their hashes.
func putBlobs(t *testing.T, st *modules.Store, first, n, size int) []string {
	t.Helper()
	hs := make([]string, n)
	for i := range n {
		h, err := st.Put(blob(first+i, size))
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	return hs
}

func TestEnsureAllBatches(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	m, leaf := ns[0], ns[3]
	// 5000 small blobs: more than one batch of hashes; 5 of 3 MiB: more
	// than one batch of bytes; one of 9 MiB: alone, by GET_MODULE.
	small := putBlobs(t, m.svc.Store(), 0, 5000, 100)
	mid := putBlobs(t, m.svc.Store(), 10000, 5, 3<<20)
	large := putBlobs(t, m.svc.Store(), 20000, 1, 9<<20)
	all := append(append(append([]string{}, small...), mid...), large...)
	ctx := ctxT(t)

	// Concurrent askers (EnsureAll of overlapping sets, Ensure of one)
	// share the fetches.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- leaf.svc.EnsureAll(ctx, append(all[i*100:], all[:i*100]...))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		b, err := leaf.svc.Ensure(ctx, large[0])
		if err == nil && !bytes.Equal(b, blob(20000, 9<<20)) {
			err = errors.New("Ensure returned the wrong bytes")
		}
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, h := range all {
		b, ok := leaf.svc.Store().Get(h)
		if !ok || modules.Hash(b) != h {
			t.Fatalf("leaf lacks %s after EnsureAll", h)
		}
		total += int64(len(b))
	}
	for i, n := range ns[1:] {
		st := n.svc.Stats()
		if st.Fetches != int64(len(all)) || st.FetchedBytes != total {
			t.Errorf("context %d fetched %d blobs, %d bytes; want each of %d blobs (%d bytes) once", i+1, st.Fetches, st.FetchedBytes, len(all), total)
		}
		// 5000 hashes: 2 batches at least; 15 MiB of mid blobs: 2 more; the
		// large one: 1. Sizes are unknown to EnsureAll, so a batch cut
		// short by the reply bound is asked again: a few more.
		if st.FetchRequests < 5 || st.FetchRequests > 12 {
			t.Errorf("context %d made %d requests for %d blobs, want 5 to 12", i+1, st.FetchRequests, len(all))
		}
		t.Logf("context %d: %d requests for %d blobs", i+1, st.FetchRequests, st.Fetches)
		up := ns[i]
		if b, by := up.svc.ServedTo(n.r.ID()); b != int64(len(all)) || by != total {
			t.Errorf("edge %d->%d carried %d blobs, %d bytes; want %d, %d", up.r.ID(), n.r.ID(), b, by, len(all), total)
		}
	}
	if s := leaf.svc.Store().Stats(); s.PinnedBytes != 0 || s.MemBytes != total {
		t.Errorf("leaf store: %+v; want everything cached, nothing pinned", s)
	}

	// Again: nothing moves.
	before := ns[1].svc.Stats()
	if err := leaf.svc.EnsureAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	if after := ns[1].svc.Stats(); after != before {
		t.Errorf("a second EnsureAll moved blobs: %+v, then %+v", before, after)
	}

	missing := modules.Hash([]byte("nobody has this"))
	err := leaf.svc.EnsureAll(ctx, []string{small[0], missing})
	if !errors.Is(err, modules.ErrNotFound) || !strings.Contains(err.Error(), missing[:12]) {
		t.Fatalf("EnsureAll(missing) = %v, want %v naming it", err, modules.ErrNotFound)
	}
	if err := leaf.svc.EnsureAll(ctx, []string{"nope"}); !errors.Is(err, modules.ErrBadHash) {
		t.Fatalf("EnsureAll(malformed) = %v, want %v", err, modules.ErrBadHash)
	}
	if err := m.svc.EnsureAll(ctx, []string{missing}); !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("master EnsureAll(missing) = %v, want %v", err, modules.ErrNotFound)
	}
}

// getBlobs sends a raw GET_BLOBS body.
func getBlobs(ctx context.Context, n *ctxNode, dst uint32, body any) (*wire.Blobs, error) {
	b, _ := msgpack.Marshal(body)
	reply, err := n.r.Call(ctx, dst, wire.HandleGetBlobs, wire.EncMsgpack, b)
	if err != nil {
		return nil, err
	}
	var rep wire.Blobs
	return &rep, wire.Unmarshal(reply.Body, &rep)
}

// TestGetBlobsBounds sends the parent what a hostile child could.
func TestGetBlobsBounds(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	ctx := ctxT(t)
	hs := putBlobs(t, ns[0].svc.Store(), 0, 3, 10)
	many := make([]string, modules.MaxBatchHashes+1)
	for i := range many {
		many[i] = modules.Hash(blob(i, 8))
	}
	for _, tt := range []struct {
		name string
		body any
	}{
		{"too many hashes", wire.GetBlobs{Hashes: many}},
		{"repeated hash", wire.GetBlobs{Hashes: []string{hs[0], hs[1], hs[0]}}},
		{"invalid hash", wire.GetBlobs{Hashes: []string{hs[0], "../../etc/passwd"}}},
		{"upper-case hash", wire.GetBlobs{Hashes: []string{strings.ToUpper(hs[0])}}},
		{"wrong type", map[string]any{"hashes": 7}},
	} {
		if _, err := getBlobs(ctx, ns[1], 0, tt.body); !errors.Is(err, routing.ErrBadRequest) {
			t.Errorf("%s: GET_BLOBS = %v, want %v", tt.name, err, routing.ErrBadRequest)
		}
	}
	// Only direct children are served.
	if _, err := getBlobs(ctx, ns[2], 0, wire.GetBlobs{Hashes: hs}); !errors.Is(err, routing.ErrRefused) {
		t.Errorf("GET_BLOBS from a grandchild = %v, want %v", err, routing.ErrRefused)
	}
	if _, err := getBlobs(ctx, ns[0], 1, wire.GetBlobs{Hashes: hs}); !errors.Is(err, routing.ErrRefused) {
		t.Errorf("GET_BLOBS from the parent = %v, want %v", err, routing.ErrRefused)
	}
	missing := modules.Hash([]byte("missing"))
	rep, err := getBlobs(ctx, ns[2], 1, wire.GetBlobs{Hashes: []string{hs[2], missing, hs[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 2 || rep.Blobs[0].Hash != hs[2] || rep.Blobs[1].Hash != hs[0] ||
		!bytes.Equal(rep.Blobs[0].Data, blob(2, 10)) || len(rep.Missing) != 1 || rep.Missing[0] != missing {
		t.Fatalf("GET_BLOBS = %+v", rep)
	}
	if rep, err := getBlobs(ctx, ns[1], 0, wire.GetBlobs{}); err != nil || len(rep.Blobs)+len(rep.Missing)+len(rep.Large) != 0 {
		t.Fatalf("empty GET_BLOBS = %+v, %v", rep, err)
	}
}

// TestGetBlobsFetchesOneReply: a GET_BLOBS that names many hashes held
// only further up costs the edge above at most one reply of the parent's,
// whatever sizes the blobs have and in whatever order: what does not fit
// is left for the asker's next request, and a blob too large for a batch
// is named large without being fetched.
func TestGetBlobsFetchesOneReply(t *testing.T) {
	for _, tt := range []struct {
		name  string
		sizes []int
	}{
		{"all 2 MiB", repeat(40, 2<<20)},
		{"a tiny one first", append([]int{8}, repeat(30, 2<<20)...)},
		{"all larger than a batch", repeat(12, 9<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			ns := chain(t)
			ctx := ctxT(t)
			var hs []string
			for i, size := range tt.sizes {
				hs = append(hs, putBlobs(t, ns[0].svc.Store(), i*10, 1, size)...)
			}
			rep, err := getBlobs(ctx, ns[2], 1, wire.GetBlobs{Hashes: hs})
			if err != nil {
				t.Fatal(err)
			}
			named := len(rep.Blobs) + len(rep.Missing) + len(rep.Large)
			if named == 0 || len(rep.Missing) != 0 {
				t.Fatalf("reply of %d blobs, %d missing, %d large for %d hashes", len(rep.Blobs), len(rep.Missing), len(rep.Large), len(hs))
			}
			for i, b := range rep.Blobs {
				if b.Hash != hs[i] || !bytes.Equal(b.Data, blob(i*10, tt.sizes[i])) {
					t.Fatalf("blob %d of the reply is not the %dth asked for", i, i)
				}
			}
			if st := ns[1].svc.Stats(); st.FetchedBytes > modules.MaxBatchBytes {
				t.Errorf("the middle context fetched %d blobs (%d bytes) for a reply of %d blobs: more than one reply of its parent's",
					st.Fetches, st.FetchedBytes, len(rep.Blobs))
			}
			if named < len(hs) {
				rep2, err := getBlobs(ctx, ns[2], 1, wire.GetBlobs{Hashes: hs[named:]})
				if err != nil || len(rep2.Blobs)+len(rep2.Large) == 0 {
					t.Fatalf("second GET_BLOBS = %+v, %v", rep2, err)
				}
			}
		})
	}
	// The child of the middle context still gets everything, each blob
	// crossing each edge once.
	testutil.VerifyNone(t)
	ns := chain(t)
	hs := putBlobs(t, ns[0].svc.Store(), 0, 20, 1<<20)
	hs = append(hs, putBlobs(t, ns[0].svc.Store(), 100, 2, 9<<20)...)
	if err := ns[3].svc.EnsureAll(ctxT(t), hs); err != nil {
		t.Fatal(err)
	}
	if b, by := ns[0].svc.ServedTo(ns[1].r.ID()); b != 22 || by != 20<<20+18<<20 {
		t.Errorf("the master served %d blobs, %d bytes; want each of 22 once", b, by)
	}
}

func repeat(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestGetBlobsInflightBound checks a child cannot have more than
// MaxInflightPerChild requests served at once.
func TestGetBlobsInflightBound(t *testing.T) {
	testutil.VerifyNone(t)
	m := newNode(t, nil, nodeOpts{noService: true})
	held := make(chan *wire.Message, 100)
	if _, err := m.r.AddHandler(func(msg *wire.Message, _ *broker.Stream) { held <- msg }, routing.HandlerOptions{Handle: wire.HandleGetBlobs}); err != nil {
		t.Fatal(err)
	}
	a := newCtx(t, m)
	b := newNode(t, a, nodeOpts{noService: true})
	ctx := ctxT(t)
	var calls []*routing.Pending
	for i := range modules.MaxInflightPerChild + 1 {
		body, _ := msgpack.Marshal(&wire.GetBlobs{Hashes: []string{modules.Hash(blob(i, 5))}})
		p, err := b.r.CallAsync(ctx, a.r.ID(), wire.HandleGetBlobs, wire.EncMsgpack, body)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, p)
	}
	if _, err := calls[modules.MaxInflightPerChild].Wait(ctx); !errors.Is(err, routing.ErrRefused) {
		t.Fatalf("request %d = %v, want %v", modules.MaxInflightPerChild+1, err, routing.ErrRefused)
	}
	// The parent got one request per blob, no more than a child's bound.
	for range modules.MaxInflightPerChild {
		var msg *wire.Message
		select {
		case msg = <-held:
		case <-ctx.Done():
			t.Fatal("the parent did not get the requests")
		}
		var req wire.GetBlobs
		if err := wire.Unmarshal(msg.Body, &req); err != nil {
			t.Fatal(err)
		}
		body, _ := msgpack.Marshal(&wire.Blobs{Missing: req.Hashes})
		if err := m.r.Reply(ctx, msg, wire.EncMsgpack, body); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range calls[:modules.MaxInflightPerChild] {
		reply, err := p.Wait(ctx)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var rep wire.Blobs
		if err := wire.Unmarshal(reply.Body, &rep); err != nil || len(rep.Missing) != 1 {
			t.Fatalf("request %d: %+v, %v; want one missing", i, rep, err)
		}
	}
	if len(held) != 0 {
		t.Fatalf("the parent got %d requests more", len(held))
	}
	// The slots are free again.
	body, _ := msgpack.Marshal(&wire.GetBlobs{})
	if _, err := b.r.Call(ctx, a.r.ID(), wire.HandleGetBlobs, wire.EncMsgpack, body); err != nil {
		t.Fatalf("a request after the others: %v", err)
	}
}

// TestBadParentReplies checks a child refuses what a broken parent sends:
// bytes that do not match, hashes not asked for, replies that answer
// nothing; and that the flights end so a later fetch can succeed.
func TestBadParentReplies(t *testing.T) {
	testutil.VerifyNone(t)
	m := newNode(t, nil, nodeOpts{noService: true})
	good := blob(1, 50)
	h := modules.Hash(good)
	other := modules.Hash(blob(2, 50))
	third := blob(3, 50)
	var mu sync.Mutex
	var reply func(req wire.GetBlobs) wire.Blobs
	if _, err := m.r.AddHandler(func(msg *wire.Message, _ *broker.Stream) {
		var req wire.GetBlobs
		_ = wire.Unmarshal(msg.Body, &req)
		mu.Lock()
		rep := reply(req)
		mu.Unlock()
		body, _ := msgpack.Marshal(&rep)
		_ = m.r.Reply(m.b.Context(), msg, wire.EncMsgpack, body)
	}, routing.HandlerOptions{Handle: wire.HandleGetBlobs}); err != nil {
		t.Fatal(err)
	}
	c := newCtx(t, m)
	ctx := ctxT(t)
	set := func(f func(wire.GetBlobs) wire.Blobs) {
		mu.Lock()
		reply = f
		mu.Unlock()
	}
	for _, tt := range []struct {
		name  string
		reply func(wire.GetBlobs) wire.Blobs
		want  error
	}{
		{"wrong bytes", func(wire.GetBlobs) wire.Blobs { return wire.Blobs{Blobs: []wire.Blob{{Hash: h, Data: []byte("evil")}}} }, modules.ErrBadHash},
		{"not asked for", func(wire.GetBlobs) wire.Blobs {
			return wire.Blobs{Blobs: []wire.Blob{{Hash: modules.Hash(third), Data: third}}}
		}, routing.ErrBadRequest},
		{"named twice", func(wire.GetBlobs) wire.Blobs { return wire.Blobs{Missing: []string{other, other}} }, routing.ErrBadRequest},
		{"no progress", func(wire.GetBlobs) wire.Blobs { return wire.Blobs{} }, routing.ErrBadRequest},
	} {
		set(tt.reply)
		if err := c.svc.EnsureAll(ctx, []string{h, other}); !errors.Is(err, tt.want) {
			t.Errorf("%s: EnsureAll = %v, want %v", tt.name, err, tt.want)
		}
		if c.svc.Store().Has(other) || c.svc.Store().Has(modules.Hash(third)) {
			t.Fatalf("%s: stored a blob not asked for", tt.name)
		}
	}
	set(func(req wire.GetBlobs) wire.Blobs {
		var rep wire.Blobs
		for _, x := range req.Hashes {
			if x == h {
				rep.Blobs = append(rep.Blobs, wire.Blob{Hash: h, Data: good})
			} else {
				rep.Missing = append(rep.Missing, x)
			}
		}
		return rep
	})
	if err := c.svc.EnsureAll(ctx, []string{h}); err != nil {
		t.Fatalf("EnsureAll after the failures: %v", err)
	}
}

func TestPull(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	ctx := ctxT(t)
	leaf := ns[3]
	// Blobs the leaf made (cached there, as Collect stores them): many
	// small, some of 3 MiB (batches cut by bytes), one of 9 MiB (alone).
	var hs []string
	var total int64
	for i := range 300 {
		hs = append(hs, putCached(t, leaf.svc.Store(), blob(i, 1000)))
		total += 1000
	}
	for i := range 4 {
		hs = append(hs, putCached(t, leaf.svc.Store(), blob(1000+i, 3<<20)))
		total += 3 << 20
	}
	hs = append(hs, putCached(t, leaf.svc.Store(), blob(2000, 9<<20)))
	total += 9 << 20
	// One of them the master holds already: pinned, not moved.
	if err := ns[0].svc.Store().PutVerified(hs[0], blob(0, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := ns[0].svc.Pull(ctx, leaf.r.ID(), hs); err != nil {
		t.Fatal(err)
	}
	if s := ns[0].svc.Store().Stats(); s.PinnedBytes != total || s.MemBytes != 0 {
		t.Fatalf("master store after Pull: %+v; want %d bytes pinned", s, total)
	}
	st := ns[0].svc.Stats()
	if st.Pulled != int64(len(hs)-1) || st.PulledBytes != total-1000 {
		t.Fatalf("master Stats = %+v; want %d blobs pulled", st, len(hs)-1)
	}
	if up := leaf.svc.Stats(); up.Uploaded != st.Pulled || up.UploadedBytes != st.PulledBytes {
		t.Fatalf("leaf Stats = %+v; want what the master pulled", up)
	}
	// The contexts on the way only forwarded.
	for i, n := range ns[1:3] {
		if n.svc.Store().Has(hs[1]) {
			t.Errorf("context %d kept a pulled blob", i+1)
		}
	}
	// An intermediate context may pull from below too.
	if err := ns[1].svc.Pull(ctx, leaf.r.ID(), hs[1:3]); err != nil {
		t.Fatal(err)
	}
	// A child cannot pull from its parent.
	if err := ns[2].svc.Pull(ctx, ns[1].r.ID(), hs[1:2]); !errors.Is(err, routing.ErrRefused) {
		t.Fatalf("Pull from the parent = %v, want %v", err, routing.ErrRefused)
	}
	if err := leaf.svc.Pull(ctx, 0, []string{modules.Hash([]byte("the master's"))}); !errors.Is(err, routing.ErrRefused) {
		t.Fatalf("Pull from the master = %v, want %v", err, routing.ErrRefused)
	}
	missing := modules.Hash([]byte("not there"))
	if err := ns[0].svc.Pull(ctx, leaf.r.ID(), []string{missing}); !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("Pull(missing) = %v, want %v", err, modules.ErrNotFound)
	}
	if err := ns[0].svc.Pull(ctx, leaf.r.ID(), []string{"bad"}); !errors.Is(err, modules.ErrBadHash) {
		t.Fatalf("Pull(malformed) = %v, want %v", err, modules.ErrBadHash)
	}
	// Hostile PULL_BLOBS bodies are refused like GET_BLOBS ones.
	body, _ := msgpack.Marshal(&wire.GetBlobs{Hashes: []string{hs[1], hs[1]}})
	if _, err := ns[0].r.Call(ctx, leaf.r.ID(), wire.HandlePullBlobs, wire.EncMsgpack, body); !errors.Is(err, routing.ErrBadRequest) {
		t.Fatalf("PULL_BLOBS with a repeated hash = %v, want %v", err, routing.ErrBadRequest)
	}
}

// TestEnsureGivesUpWithItsCaller: a parent that takes a GET_MODULE and
// never answers holds the flight, not the caller: Ensure returns when its
// own context ends, and a later caller joins the same flight, which ends
// when the parent finally answers.
func TestEnsureGivesUpWithItsCaller(t *testing.T) {
	testutil.VerifyNone(t)
	m := newNode(t, nil, nodeOpts{noService: true})
	good := blob(9, 50)
	h := modules.Hash(good)
	asked := make(chan *wire.Message, 4)
	if _, err := m.r.AddHandler(func(msg *wire.Message, _ *broker.Stream) { asked <- msg },
		routing.HandlerOptions{Handle: wire.HandleGetModule}); err != nil {
		t.Fatal(err)
	}
	c := newCtx(t, m)
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.svc.Ensure(short, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure with a parent that never answers = %v, want %v", err, context.DeadlineExceeded)
	}
	got := make(chan error, 1)
	go func() {
		b, err := c.svc.Ensure(ctxT(t), h)
		if err == nil && !bytes.Equal(b, good) {
			err = errors.New("wrong bytes")
		}
		got <- err
	}()
	msg := <-asked
	if err := m.r.Reply(m.b.Context(), msg, wire.EncRaw, good); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the second Ensure: %v", err)
	}
	if len(asked) != 0 {
		t.Errorf("the parent was asked %d more times: the second caller did not join the flight", len(asked))
	}
}
