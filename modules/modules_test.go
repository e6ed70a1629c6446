package modules_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

func TestStore(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	st, err := modules.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	mod := []byte("\x00asm fake module")
	h, err := st.Put(mod)
	if err != nil || h != modules.Hash(mod) || !modules.ValidHash(h) {
		t.Fatalf("Put = %q, %v; want %q", h, err, modules.Hash(mod))
	}
	if got, ok := st.Get(h); !ok || !bytes.Equal(got, mod) {
		t.Fatalf("Get(%s) = %q, %v", h, got, ok)
	}
	// A second store on the same dir (another process) finds it on disk.
	st2, _ := modules.NewStore(dir)
	if got, ok := st2.Get(h); !ok || !bytes.Equal(got, mod) {
		t.Fatalf("Get from disk = %q, %v", got, ok)
	}
	// A corrupt file is not served, and is removed.
	other := []byte("another module")
	h2 := modules.Hash(other)
	path := filepath.Join(dir, h2)
	if err := os.WriteFile(path, []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	st3, _ := modules.NewStore(dir)
	if _, ok := st3.Get(h2); ok {
		t.Fatalf("Get(%s) served a file whose hash does not match", h2)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("corrupt module file still there: %v", err)
	}
	if err := st.PutVerified(h2, []byte("wrong bytes")); !errors.Is(err, modules.ErrBadHash) {
		t.Fatalf("PutVerified(wrong bytes) = %v, want %v", err, modules.ErrBadHash)
	}
	if modules.ValidHash("abc") || modules.ValidHash(h[:63]+"g") {
		t.Fatal("ValidHash accepted a malformed hash")
	}
}

// ctxNode is one context of an in-process tree.
type ctxNode struct {
	b   *broker.Broker
	r   *routing.Router
	svc *modules.Service
}

// newCtx starts a context: the master when parent is nil, else a child of
// parent with the ID parent allocates for it (routers refuse routes for IDs
// no block covers). Its store is in memory only.
func newCtx(t *testing.T, parent *ctxNode) *ctxNode {
	t.Helper()
	return newNode(t, parent, nodeOpts{})
}

// nodeOpts configures newNode.
type nodeOpts struct {
	store     modules.StoreConfig
	noService bool // a bare router: the test serves the handles itself
}

func newNode(t *testing.T, parent *ctxNode, o nodeOpts) *ctxNode {
	t.Helper()
	var cfg routing.Config
	if parent != nil {
		id, err := parent.r.AllocateID(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.ID = id
		cfg.ParentIDs = append([]uint32{parent.r.ID()}, parent.r.ParentIDs()...)
	}
	n := &ctxNode{b: broker.New(broker.Config{Grace: time.Millisecond})}
	t.Cleanup(func() { n.b.Close() })
	n.r = routing.New(n.b, cfg)
	if !o.noService {
		st, err := modules.NewStoreConfig(o.store)
		if err != nil {
			t.Fatal(err)
		}
		if n.svc, err = modules.NewService(n.r, st, nil); err != nil {
			t.Fatal(err)
		}
	}
	if parent != nil {
		pc, cc := testutil.SocketPair(t)
		if _, err := parent.r.AddChild(context.Background(), pc, cfg.ID, fmt.Sprint("ctx", cfg.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := n.r.SetParent(cc, "parent"); err != nil {
			t.Fatal(err)
		}
		// Wait until the master knows the route.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := n.r.Call(ctx, 0, 599, wire.EncRaw, nil); !errors.Is(err, routing.ErrInvalidHandle) {
			t.Fatalf("sync: %v", err)
		}
	}
	return n
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// chain builds master 0 -> 1 -> 2 -> 1002 (the IDs a master hands out).
func chain(t *testing.T) []*ctxNode {
	m := newCtx(t, nil)
	c1 := newCtx(t, m)
	c2 := newCtx(t, c1)
	c3 := newCtx(t, c2)
	return []*ctxNode{m, c1, c2, c3}
}

func TestEnsureCrossesEachEdgeOnce(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	mod := bytes.Repeat([]byte("module body "), 1000)
	h, _ := ns[0].svc.Store().Put(mod)
	ctx := ctxT(t)

	// Many concurrent first requests at the leaf: one fetch per hop.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := ns[3].svc.Ensure(ctx, h)
			if err == nil && !bytes.Equal(got, mod) {
				err = fmt.Errorf("Ensure returned %d wrong bytes", len(got))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A second leaf under context 1 is served from 1's cache.
	c4 := newCtx(t, ns[1])
	if _, err := c4.svc.Ensure(ctx, h); err != nil {
		t.Fatal(err)
	}
	n := int64(len(mod))
	want := []modules.Stats{
		{Served: 1, ServedBytes: n},
		{Fetches: 1, FetchedBytes: n, FetchRequests: 1, Served: 2, ServedBytes: 2 * n},
		{Fetches: 1, FetchedBytes: n, FetchRequests: 1, Served: 1, ServedBytes: n},
		{Fetches: 1, FetchedBytes: n, FetchRequests: 1},
	}
	for i, n := range ns {
		if got := n.svc.Stats(); got != want[i] {
			t.Errorf("context %d: Stats() = %+v, want %+v", i, got, want[i])
		}
	}
	if got := c4.svc.Stats(); got != (modules.Stats{Fetches: 1, FetchedBytes: n, FetchRequests: 1}) {
		t.Errorf("context 4: Stats() = %+v, want one fetch", got)
	}
	if b, by := ns[1].svc.ServedTo(c4.r.ID()); b != 1 || by != n {
		t.Errorf("context 1 served context %d %d blobs, %d bytes; want 1, %d", c4.r.ID(), b, by, n)
	}
}

func TestEnsureMissing(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	h := modules.Hash([]byte("nobody has this"))
	_, err := ns[3].svc.Ensure(ctxT(t), h)
	if !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("Ensure(missing) = %v, want %v", err, modules.ErrNotFound)
	}
	if _, err := ns[3].svc.Ensure(ctxT(t), "not-a-hash"); !errors.Is(err, modules.ErrBadHash) {
		t.Fatalf("Ensure(malformed) = %v, want %v", err, modules.ErrBadHash)
	}
}

func TestPushPreloadsPath(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	mod := []byte("pushed module")
	h, _ := ns[0].svc.Store().Put(mod)
	ctx := ctxT(t)
	if err := ns[0].svc.Push(ctx, h, ns[3].r.ID()); err != nil {
		t.Fatal(err)
	}
	for i, n := range ns {
		if !n.svc.Store().Has(h) {
			t.Errorf("context %d lacks the module after Push", i)
		}
	}
	// Again: nothing crosses an edge twice.
	if err := ns[0].svc.Push(ctx, h, ns[3].r.ID()); err != nil {
		t.Fatal(err)
	}
	for i, n := range ns[:3] {
		if got := n.svc.Stats().Served; got != 1 {
			t.Errorf("context %d served %d bodies, want 1", i, got)
		}
	}
	// Nobody fetched: everything came down ahead of use.
	if _, err := ns[3].svc.Ensure(ctx, h); err != nil || ns[3].svc.Stats().Fetches != 0 {
		t.Fatalf("Ensure after Push: %v, fetches %d", err, ns[3].svc.Stats().Fetches)
	}
	if err := ns[0].svc.Push(ctx, h, 77); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("Push to unknown context = %v, want %v", err, routing.ErrNoRoute)
	}
}

// TestLoadNeedsParentAuthority checks a child cannot push code up or
// sideways, and a parent cannot push bytes that do not match the hash.
func TestLoadNeedsParentAuthority(t *testing.T) {
	testutil.VerifyNone(t)
	ns := chain(t)
	ctx := ctxT(t)
	mod := []byte("evil module")
	h := modules.Hash(mod)
	body, _ := msgpack.Marshal(&wire.LoadModule{Hash: h, Target: 1, Data: mod})
	// Context 2 pushing to its parent 1.
	if _, err := ns[2].r.Call(ctx, 1, wire.HandleLoadModule, wire.EncMsgpack, body); !errors.Is(err, routing.ErrRefused) {
		t.Fatalf("LOAD_MODULE from a child = %v, want %v", err, routing.ErrRefused)
	}
	if ns[1].svc.Store().Has(h) {
		t.Fatal("module pushed by a child was stored")
	}
	bad, _ := msgpack.Marshal(&wire.LoadModule{Hash: modules.Hash([]byte("other")), Target: 1, Data: mod})
	if _, err := ns[0].r.Call(ctx, 1, wire.HandleLoadModule, wire.EncMsgpack, bad); err == nil {
		t.Fatal("LOAD_MODULE with mismatched bytes succeeded")
	}
}

// TestPushAfterEviction checks a push to a context that had the module
// once and has evicted it since sends the bytes again.
func TestPushAfterEviction(t *testing.T) {
	testutil.VerifyNone(t)
	m := newCtx(t, nil)
	c1 := newNode(t, m, nodeOpts{store: modules.StoreConfig{MaxMemBytes: 100}})
	c2 := newCtx(t, c1)
	ctx := ctxT(t)
	mod := bytes.Repeat([]byte("m"), 80)
	h, _ := m.svc.Store().Put(mod)
	if err := m.svc.Push(ctx, h, c2.r.ID()); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte("o"), 90)
	if err := c1.svc.Store().PutVerified(modules.Hash(other), other); err != nil {
		t.Fatal(err)
	}
	if c1.svc.Store().Has(h) {
		t.Fatal("the module was not evicted")
	}
	if err := m.svc.Push(ctx, h, c2.r.ID()); err != nil {
		t.Fatalf("Push after an eviction: %v", err)
	}
	if !c1.svc.Store().Has(h) || m.svc.Stats().Served != 2 {
		t.Fatalf("after the second push: held %v, master served %d; want held, 2", c1.svc.Store().Has(h), m.svc.Stats().Served)
	}
}
