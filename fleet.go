package spindle

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/spindle-hq/spindle/target"
)

// Fleet starts the contexts of many targets so that the tree stays a tree:
// targets behind the same intermediate hops (a bastion) reach them through
// one context each, started once. It is safe for concurrent use; the
// contexts it starts belong to its Master, which closes them.
type Fleet struct {
	// Sandbox starts the last hop of every chain (never the hops before
	// it) with ChildOptions.Sandbox: OS layers under wasm, and a leaf
	// that starts no children. Set it before the first Start or Get.
	Sandbox bool

	// Defaults are applied to every target before its hops start
	// (target.Target.WithDefaults): a connect timeout, a host-key policy
	// and an ssh config file for the hops that do not set their own. Set
	// it before the first Start or Get.
	Defaults target.Defaults

	// SudoPassword, if set, answers the password prompt of every sudo hop
	// (ChildOptions.Password): a hop behind other hops gets it in its
	// START_CHILD, so each context on the way holds it while it starts
	// the hop. Set it before the first Start or Get.
	SudoPassword string

	m    *Master
	mu   sync.Mutex
	hops map[string]*hopEntry // guarded by mu: canonical chain prefix -> its context
}

type hopEntry struct {
	once     sync.Once
	finished atomic.Bool // once's function has returned: c and err are set
	c        *Context
	err      error
}

func (e *hopEntry) done() bool { return e.finished.Load() }

// NewFleet returns an empty Fleet of m.
func NewFleet(m *Master) *Fleet { return &Fleet{m: m, hops: map[string]*hopEntry{}} }

// Start starts t's last hop, always as a new context, through the shared
// contexts of its earlier hops. A failed start is a *StartError naming the
// hop that failed.
func (f *Fleet) Start(ctx context.Context, t target.Target) (*Context, error) {
	t = t.WithDefaults(f.Defaults)
	parent, err := f.prefix(ctx, t, len(t)-1)
	if err != nil {
		return nil, err
	}
	c, err := f.startHop(ctx, parent, t[len(t)-1], f.Sandbox)
	if err != nil {
		return nil, withHop(err, len(t)-1, t[len(t)-1])
	}
	return c, nil
}

// Get returns the context of the whole chain t, starting the hops not yet
// started: every caller naming the same chain gets the same context. A
// failed start is remembered; Forget clears it.
func (f *Fleet) Get(ctx context.Context, t target.Target) (*Context, error) {
	t = t.WithDefaults(f.Defaults)
	return f.prefix(ctx, t, len(t))
}

// Forget drops t's own context from the fleet (not its earlier hops), so
// that the next Get starts it again: after it failed or was lost.
func (f *Fleet) Forget(t target.Target) {
	t = t.WithDefaults(f.Defaults) // the keys Start and Get used
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hops, t.String())
	delete(f.hops, t.String()+"\x00sandbox")
	for i := range len(t) - 1 { // and every earlier hop that failed to start
		key := t[:i+1].String()
		if e := f.hops[key]; e != nil && e.done() && e.err != nil {
			delete(f.hops, key)
		}
	}
}

// prefix returns the shared context of t's first n hops (nil for n = 0).
func (f *Fleet) prefix(ctx context.Context, t target.Target, n int) (*Context, error) {
	if len(t) == 0 {
		return nil, &StartError{Class: ClassRefused, Detail: "empty target"}
	}
	var parent *Context
	for i := range n {
		last := i == len(t)-1 && n == len(t)
		key := t[:i+1].String()
		if last && f.Sandbox {
			key += "\x00sandbox" // never the same context as an intermediate hop
		}
		f.mu.Lock()
		e := f.hops[key]
		if e == nil {
			e = &hopEntry{}
			f.hops[key] = e
		}
		f.mu.Unlock()
		// The first caller's ctx may end (its job's timeout) while others
		// wait for the same hop: the start has only its own time limit.
		e.once.Do(func() {
			e.c, e.err = f.startHop(context.WithoutCancel(ctx), parent, t[i], last && f.Sandbox)
			e.finished.Store(true)
		})
		if e.err != nil {
			return nil, withHop(e.err, i, t[i])
		}
		parent = e.c
	}
	return parent, nil
}

func (f *Fleet) startHop(ctx context.Context, parent *Context, h target.Hop, sandbox bool) (*Context, error) {
	o := OptionsFor(h)
	o.Sandbox = sandbox
	if h.Method == "sudo" {
		o.Password = f.SudoPassword
	}
	if parent == nil {
		return f.m.Start(ctx, o)
	}
	return parent.Start(ctx, o)
}
