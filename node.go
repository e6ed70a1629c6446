package spindle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/internal/oslayer"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// node is what every context process has, master or child: a broker, a
// router, the native functions it serves and the children it started.
type node struct {
	name       string
	b          *broker.Broker
	r          *routing.Router
	log        *slog.Logger
	funcs      map[string]Func // read-only once serving
	exe        string          // binary to re-execute for local children
	childGrace time.Duration   // grace period handed to children
	logLevel   slog.Level      // children forward records at or above it
	connectTO  time.Duration
	cacheDir   string // modules and compiled code live below it; "" = memory only
	mods       *modules.Service
	// sandbox is what oslayer.Apply reported, for a context started with
	// Sandbox; nil otherwise. Written before the context serves anything,
	// read-only after.
	sandbox *oslayer.Report

	logs logLimiter // the master's bound on FORWARD_LOG per child stream

	// lastOutput is the handle of the newest Run's output sink: what a
	// compromised child learns from its RunTask, for the tests that play
	// one (export_test.go).
	lastOutput atomic.Uint32
	lastStdin  atomic.Uint32 // the same for the newest Run's stdin source
	tasks      taskState     // the wasm host, made on first use
	bins       binaries      // broker binaries this context can ship to remote children

	mu       sync.Mutex
	children map[uint32]*childProc // guarded by mu: direct children
}

func newNode(name string, b *broker.Broker, r *routing.Router, log *slog.Logger, extra map[string]Func, cacheDir string, child bool) (*node, error) {
	n := &node{name: name, b: b, r: r, log: log, cacheDir: cacheDir, children: make(map[uint32]*childProc)}
	n.tasks.idle = make(chan func(context.Context))
	n.funcs = n.builtins()
	maps.Copy(n.funcs, extra)
	b.OnShutdown(n.shutdownChildren)
	dir := ""
	if cacheDir != "" {
		dir = filepath.Join(cacheDir, "modules")
	}
	// The hash cache lets a master that stores the same directory tree
	// again (an unchanged CI workspace) stat its files instead of reading
	// them.
	// A child opens the cache lazily: it starts often, mostly reads, and
	// a scan of a cache of thousands of blobs made its start 4x slower.
	st, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, HashCache: modules.NewHashCache(0), LazyScan: child})
	if err != nil {
		// No usable cache dir (no home, read-only): keep modules in memory.
		log.Warn("module cache dir unusable; keeping modules in memory", "dir", dir, "err", err)
		n.cacheDir = ""
		if st, err = modules.NewStore(""); err != nil {
			return nil, err
		}
	}
	if n.mods, err = modules.NewService(r, st, log); err != nil {
		return nil, err
	}
	return n, nil
}

// serve registers the handlers a context answers. A child takes orders only
// with parent authority.
func (n *node) serve() error {
	auth := n.r.HasParentAuthority
	for _, h := range []struct {
		handle uint32
		fn     routing.HandlerFunc
	}{
		{wire.HandleCall, n.onCall},
		{wire.HandleShutdown, n.onShutdown},
		{wire.HandleStartChild, n.onStartChild},
		{wire.HandleStopChild, n.onStopChild},
		{wire.HandleRunTask, n.onRunTask},
		{wire.HandleCancelTask, n.onCancelTask},
	} {
		if _, err := n.r.AddHandler(h.fn, routing.HandlerOptions{Handle: h.handle, Policy: auth}); err != nil {
			return err
		}
	}
	return nil
}

// shutdownChildren sends SHUTDOWN to every direct child; the broker then
// waits for their streams to close within the grace period.
func (n *node) shutdownChildren() {
	n.mu.Lock()
	kids := make([]*childProc, 0, len(n.children))
	for _, c := range n.children {
		kids = append(kids, c)
	}
	n.mu.Unlock()
	for _, c := range kids {
		n.sendShutdown(c)
	}
}

// sendShutdown sends SHUTDOWN to direct child c, whose stream is set.
func (n *node) sendShutdown(c *childProc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m := &wire.Message{Enc: wire.EncMsgpack, Dst: c.id, Src: n.r.ID(), Auth: n.r.ID(), Handle: wire.HandleShutdown}
	if err := c.stream.Send(ctx, m); err != nil {
		n.log.Debug("SHUTDOWN not sent", "child", c.name, "err", err)
	}
}

func (n *node) onShutdown(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	n.log.Debug("SHUTDOWN received", "from", m.Src)
	n.b.Shutdown(0)
}

func (n *node) onStartChild(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	var req wire.StartChild
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("decode START_CHILD: %w: %v", routing.ErrBadRequest, err))
		return
	}
	spec, err := n.transport(&req)
	if err != nil {
		se := &StartError{Class: ClassRefused, Name: req.Name, Detail: oneLine(err.Error())}
		if errors.As(err, &se) {
			se.Err = fmt.Errorf("%w: %v", routing.ErrBadRequest, se.Err) // code 11, as before
		}
		n.replyStartError(n.b.Context(), m, se)
		return
	}
	// Starting a process takes milliseconds: never on the reader goroutine.
	err = n.b.Go(func(ctx context.Context) {
		c, err := n.startChild(ctx, spec)
		if err != nil {
			n.replyStartError(ctx, m, err)
			return
		}
		body, _ := msgpack.Marshal(&wire.ChildStarted{ID: c.id, Name: c.name, PID: c.cmd.Process.Pid, SentBinary: c.sentBinary})
		_ = n.r.Reply(ctx, m, wire.EncMsgpack, body)
	})
	if err != nil {
		n.replyStartError(n.b.Context(), m, &StartError{Class: ClassCancelled, Name: spec.name, Label: spec.label,
			Detail: "this context is shutting down", Err: routing.ErrShutdown})
	}
}

// replyStartError answers START_CHILD m with err, a *StartError: its class
// and detail for this version, its text for older ones.
func (n *node) replyStartError(ctx context.Context, m *wire.Message, err error) {
	se, ok := err.(*StartError)
	if !ok {
		_ = n.r.ReplyError(ctx, m, err)
		return
	}
	body, merr := msgpack.Marshal(se.wire())
	if merr != nil {
		_ = n.r.ReplyError(ctx, m, err)
		return
	}
	_ = n.r.Reply(ctx, m, wire.EncError, body)
}

func (n *node) onStopChild(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	var req wire.Route
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("decode STOP_CHILD: %w: %v", routing.ErrBadRequest, err))
		return
	}
	err := n.stopChild(req.ID)
	if err != nil {
		_ = n.r.ReplyError(n.b.Context(), m, err)
		return
	}
	_ = n.r.Reply(n.b.Context(), m, wire.EncMsgpack, nil)
}

// stopChild kills direct child id at once: its stream closes (so its routes
// go) and the reaper collects the process.
func (n *node) stopChild(id uint32) error {
	n.mu.Lock()
	c := n.children[id]
	n.mu.Unlock()
	if c == nil {
		return fmt.Errorf("stop child %d: not a direct child of context %d: %w", id, n.r.ID(), routing.ErrNotFound)
	}
	c.kill()
	c.stream.Close()
	return nil
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
