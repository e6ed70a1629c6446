package spindle

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Func is a native function a context serves on its CALL handle. args is the
// msgpack encoding of the caller's arguments (nil for none). The result is
// msgpack-encoded for the caller, except a msgpack.RawMessage, which is sent
// as it is. An error reaches the caller as a *routing.RemoteError whose code
// is that of the error's routing sentinel, or ErrCallFailed.
type Func struct {
	Fn func(ctx context.Context, call *CallInfo, args []byte) (any, error)
	// Inline functions run on the reader goroutine of the stream the call
	// came in on: no goroutine hand-off, so they must not block.
	Inline bool
}

// CallInfo describes the call a Func is serving.
type CallInfo struct {
	// Router is the serving context's router (to send on Senders, or call
	// others).
	Router *routing.Router
	// Src is the caller's context ID.
	Src uint32
	// Log is the serving context's logger (forwarded to the master).
	Log *slog.Logger
	// CacheDir is the serving context's cache directory, "" when it
	// keeps nothing on disk.
	CacheDir string
}

// PingResult is the reply of the built-in "ping" function.
type PingResult struct {
	ID   uint32 `msgpack:"id"`
	Name string `msgpack:"name"`
	PID  int    `msgpack:"pid"`
}

// StatsResult is the reply of the built-in "stats" function.
type StatsResult struct {
	PID      int   `msgpack:"pid"`
	UID      int   `msgpack:"uid"`
	RSSBytes int64 `msgpack:"rss_bytes"`
	// PeakRSSBytes is the most RSSBytes has been since the context started.
	PeakRSSBytes int64 `msgpack:"peak_rss_bytes"`
	Goroutines   int   `msgpack:"goroutines"`
	FDs          int   `msgpack:"fds"`
	// ModuleFetches counts modules this context asked its parent for;
	// ModuleServed, module bodies it sent to its children.
	ModuleFetches int64 `msgpack:"module_fetches"`
	ModuleServed  int64 `msgpack:"module_served"`
	// FetchedBytes counts the bytes of blobs (modules, files and
	// directories of trees) this context received from its parent: what
	// crossed the edge above it (modules.Stats.FetchedBytes); ServedBytes,
	// those it sent to its children, all edges below it together.
	FetchedBytes int64 `msgpack:"fetched_bytes"`
	ServedBytes  int64 `msgpack:"served_bytes"`
	// Compiles counts wasm modules this context compiled (0 until it runs
	// a task); Instantiations, the instances it made.
	Compiles       int64 `msgpack:"compiles"`
	Instantiations int64 `msgpack:"instantiations"`
	// Sandbox is the OS layers of a sandboxed context in one line
	// (SandboxResult.Report), or "off (not started with Sandbox)".
	Sandbox string `msgpack:"sandbox"`
}

// SinkArgs are the arguments of the built-in "sink" function: it opens a
// receiver, returns its Sender, takes raw messages until Bytes bytes have
// arrived, then sends the count (an int64) to Ack.
type SinkArgs struct {
	Bytes int64          `msgpack:"bytes"`
	Ack   routing.Sender `msgpack:"ack"`
}

// builtins are served by every context.
func (n *node) builtins() map[string]Func {
	return map[string]Func{
		"ping": {Inline: true, Fn: func(context.Context, *CallInfo, []byte) (any, error) {
			return PingResult{ID: n.r.ID(), Name: n.name, PID: os.Getpid()}, nil
		}},
		"echo": {Inline: true, Fn: func(_ context.Context, _ *CallInfo, args []byte) (any, error) {
			return msgpack.RawMessage(args), nil
		}},
		"stats": {Fn: func(context.Context, *CallInfo, []byte) (any, error) {
			ms := n.mods.Stats()
			st := StatsResult{PID: os.Getpid(), UID: os.Getuid(), Goroutines: runtime.NumGoroutine(), FDs: countFDs(),
				ModuleFetches: ms.Fetches, ModuleServed: ms.Served,
				FetchedBytes: ms.FetchedBytes, ServedBytes: ms.ServedBytes, Sandbox: n.sandboxSummary()}
			st.RSSBytes, st.PeakRSSBytes = selfRSS()
			st.Compiles, st.Instantiations = n.hostStats()
			return st, nil
		}},
		"sink": {Inline: true, Fn: n.sink},
		// sandbox returns a SandboxResult.
		"sandbox": {Inline: true, Fn: n.sandboxResult},
	}
}

func (n *node) sink(_ context.Context, _ *CallInfo, args []byte) (any, error) {
	var a SinkArgs
	if err := wire.Unmarshal(args, &a); err != nil {
		return nil, fmt.Errorf("sink: %w: %v", routing.ErrBadRequest, err)
	}
	rc, err := n.r.NewReceiver(routing.HandlerOptions{})
	if err != nil {
		return nil, err
	}
	err = n.b.Go(func(ctx context.Context) {
		defer rc.Close()
		var got int64
		for got < a.Bytes {
			m, err := rc.Get(ctx)
			if err != nil {
				return
			}
			got += int64(len(m.Body))
			m.Release()
		}
		body, _ := msgpack.Marshal(got)
		_ = n.r.SendTo(ctx, a.Ack, wire.EncMsgpack, body)
	})
	if err != nil {
		rc.Close()
		return nil, err
	}
	return rc.Sender(), nil
}

// onCall serves the CALL handle.
func (n *node) onCall(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	ctx := n.b.Context()
	var req wire.CallRequest
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = n.r.ReplyError(ctx, m, fmt.Errorf("decode call: %w: %v", routing.ErrBadRequest, err))
		return
	}
	f, ok := n.funcs[req.Fn]
	if !ok {
		_ = n.r.ReplyError(ctx, m, fmt.Errorf("no function %q in context %d: %w", req.Fn, n.r.ID(), routing.ErrNotFound))
		return
	}
	info := &CallInfo{Router: n.r, Src: m.Src, Log: n.log, CacheDir: n.cacheDir}
	if f.Inline {
		n.finishCall(ctx, m, f, info, req.Args)
		return
	}
	if err := n.b.Go(func(ctx context.Context) { n.finishCall(ctx, m, f, info, req.Args) }); err != nil {
		_ = n.r.ReplyError(ctx, m, fmt.Errorf("call %q: %w", req.Fn, routing.ErrShutdown))
	}
}

func (n *node) finishCall(ctx context.Context, m *wire.Message, f Func, info *CallInfo, args []byte) {
	res, err := f.Fn(ctx, info, args)
	if err != nil {
		_ = n.r.ReplyError(ctx, m, err)
		return
	}
	var body []byte
	if raw, ok := res.(msgpack.RawMessage); ok {
		body = raw
	} else if body, err = msgpack.Marshal(res); err != nil {
		_ = n.r.ReplyError(ctx, m, fmt.Errorf("encode result: %w", err))
		return
	}
	if err := n.r.Reply(ctx, m, wire.EncMsgpack, body); err != nil {
		n.log.Warn("reply failed", "to", m.Src, "err", err)
	}
}
