package spindle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0") // children inherit; else each exits 1 s late under -race
	spindle.MaybeRunChild(testFuncs)         // test-only native functions served by children
	testutil.VerifyTestMain(m)
}

// Arguments of the test functions.
type (
	// callArgs: "call" calls Fn with Args in context Dst, from the child.
	callArgs struct {
		Dst  uint32             `msgpack:"dst"`
		Fn   string             `msgpack:"fn"`
		Args msgpack.RawMessage `msgpack:"args,omitempty"`
	}
	// sendArgs: "send" sends Size zero bytes to (Dst, Handle), waiting for a
	// reply when Reply is set.
	sendArgs struct {
		Dst    uint32 `msgpack:"dst"`
		Handle uint32 `msgpack:"handle"`
		Size   int    `msgpack:"size"`
		Reply  bool   `msgpack:"reply"`
	}
	// spoofArgs: "spoof" writes this header straight onto the stream to the
	// parent, past the router's Src/Auth stamping.
	spoofArgs struct {
		Dst     uint32 `msgpack:"dst"`
		Src     uint32 `msgpack:"src"`
		Auth    uint32 `msgpack:"auth"`
		Handle  uint32 `msgpack:"handle"`
		ReplyTo uint32 `msgpack:"reply_to"`
	}
	// rawArgs: "raw" writes N frames (at least one) with this header
	// straight onto the stream to the parent, past the router's stamping (a
	// compromised child's frames); with Spread, frame i goes to Handle+i.
	// The body is Body, then Prefix, Nest bytes 0x91 and Suffix.
	// "raw_reply" returns that body as its reply.
	rawArgs struct {
		Dst     uint32 `msgpack:"dst"`
		Src     uint32 `msgpack:"src"`
		Auth    uint32 `msgpack:"auth"`
		Handle  uint32 `msgpack:"handle"`
		ReplyTo uint32 `msgpack:"reply_to"`
		Enc     uint16 `msgpack:"enc"`
		Body    []byte `msgpack:"body"`
		N       int    `msgpack:"n"`
		Spread  bool   `msgpack:"spread"`
		Prefix  []byte `msgpack:"prefix"`
		Nest    int    `msgpack:"nest"`
		Suffix  []byte `msgpack:"suffix"`
	}
	// idRange is the IDs [Start, End).
	idRange struct {
		Start uint32 `msgpack:"start"`
		End   uint32 `msgpack:"end"`
	}
	// addRoutesArgs: "add_routes" writes one ADD_ROUTE (with the context's
	// own src and auth) for each ID in each range straight onto the stream
	// to the parent, and returns how many it wrote.
	addRoutesArgs struct {
		Ranges []idRange `msgpack:"ranges"`
	}
	// allocateArgs: "allocate" sends up to N ALLOCATE_ID requests to the
	// master, one at a time, and stops at the first failure.
	allocateArgs struct {
		N int `msgpack:"n"`
	}
	allocateResult struct {
		Blocks  []idRange `msgpack:"blocks"`
		Err     string    `msgpack:"err"`
		Refused bool      `msgpack:"refused"` // errors.Is(err, routing.ErrRefused) in the child
	}
	// floodArgs: "flood" sends N messages of Size bytes to (Dst, Handle)
	// through the router, and returns how many it sent.
	floodArgs struct {
		Dst    uint32 `msgpack:"dst"`
		Handle uint32 `msgpack:"handle"`
		Size   int    `msgpack:"size"`
		N      int    `msgpack:"n"`
	}
	// logArgs: "log" logs Msg at Level on the context's logger.
	logArgs struct {
		Level int    `msgpack:"level"`
		Msg   string `msgpack:"msg"`
	}
	// streamArgs: "stream" sends the ints 0..N-1 to To, then closes it, and
	// returns N.
	streamArgs struct {
		To routing.Sender `msgpack:"to"`
		N  int            `msgpack:"n"`
	}
)

// testFuncs are the native functions children of the test binary serve.
var testFuncs = map[string]spindle.Func{
	// hang blocks forever, ignoring ctx: a stuck function.
	"hang": {Fn: func(context.Context, *spindle.CallInfo, []byte) (any, error) {
		select {}
	}},
	// hang_inline blocks the reader goroutine of the stream the call came
	// in on: the context no longer reads anything from its parent.
	"hang_inline": {Inline: true, Fn: func(context.Context, *spindle.CallInfo, []byte) (any, error) {
		select {}
	}},
	"sleep": {Fn: func(ctx context.Context, _ *spindle.CallInfo, args []byte) (any, error) {
		var ms int
		if err := msgpack.Unmarshal(args, &ms); err != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}},
	"spoof": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a spoofArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		body, _ := msgpack.Marshal("spoofed")
		m := &wire.Message{Enc: wire.EncMsgpack, Dst: a.Dst, Src: a.Src, Auth: a.Auth, Handle: a.Handle, ReplyTo: a.ReplyTo, Body: body}
		return nil, call.Router.Stream(0).Send(ctx, m)
	}},
	"raw": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a rawArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		up := call.Router.Stream(0)
		body := a.body()
		for i := range max(a.N, 1) {
			h := a.Handle
			if a.Spread {
				h += uint32(i)
			}
			m := &wire.Message{Enc: wire.Encoding(a.Enc), Dst: a.Dst, Src: a.Src, Auth: a.Auth, Handle: h, ReplyTo: a.ReplyTo, Body: body}
			if err := up.Send(ctx, m); err != nil {
				return i, err
			}
		}
		return max(a.N, 1), nil
	}},
	"add_routes": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a addRoutesArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		r := call.Router
		up := r.Stream(0)
		n := 0
		for _, rg := range a.Ranges {
			for id := rg.Start; id < rg.End; id++ {
				body, _ := msgpack.Marshal(&wire.Route{ID: id, Name: "squatter"})
				m := &wire.Message{Enc: wire.EncMsgpack, Dst: r.ParentIDs()[0], Src: r.ID(), Auth: r.ID(), Handle: wire.HandleAddRoute, Body: body}
				if err := up.Send(ctx, m); err != nil {
					return n, err
				}
				n++
			}
		}
		return n, nil
	}},
	"allocate": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a allocateArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		var res allocateResult
		for range a.N {
			reply, err := call.Router.Call(ctx, 0, wire.HandleAllocateID, wire.EncMsgpack, nil)
			if err != nil {
				res.Err, res.Refused = err.Error(), errors.Is(err, routing.ErrRefused)
				break
			}
			var blk idRange
			if err := msgpack.Unmarshal(reply.Body, &blk); err != nil {
				return nil, err
			}
			res.Blocks = append(res.Blocks, blk)
		}
		return &res, nil
	}},
	"flood": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a floodArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		body := make([]byte, a.Size)
		for i := range a.N {
			if err := call.Router.Send(ctx, &wire.Message{Enc: wire.EncRaw, Dst: a.Dst, Handle: a.Handle, Body: body}); err != nil {
				return i, err
			}
		}
		return a.N, nil
	}},
	"call": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a callArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		body, err := msgpack.Marshal(&wire.CallRequest{Fn: a.Fn, Args: a.Args})
		if err != nil {
			return nil, err
		}
		reply, err := call.Router.Call(ctx, a.Dst, wire.HandleCall, wire.EncMsgpack, body)
		if err != nil {
			return nil, err
		}
		return msgpack.RawMessage(reply.Body), nil
	}},
	"send": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a sendArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		body := make([]byte, a.Size)
		if a.Reply {
			_, err := call.Router.Call(ctx, a.Dst, a.Handle, wire.EncRaw, body)
			return nil, err
		}
		return nil, call.Router.Send(ctx, &wire.Message{Enc: wire.EncRaw, Dst: a.Dst, Handle: a.Handle, Body: body})
	}},
	"big_reply": {Fn: func(_ context.Context, _ *spindle.CallInfo, args []byte) (any, error) {
		var n int
		if err := msgpack.Unmarshal(args, &n); err != nil {
			return nil, err
		}
		return make([]byte, n), nil
	}},
	"log": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a logArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		call.Log.Log(ctx, slog.Level(a.Level), a.Msg, "key", "value")
		return nil, nil
	}},
	// log_flood logs N records "flood i" as fast as the context can.
	"log_flood": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var n int
		if err := msgpack.Unmarshal(args, &n); err != nil {
			return nil, err
		}
		for i := range n {
			call.Log.Info("flood", "i", i)
		}
		return n, nil
	}},
	// log_wide logs one record "wide" with N attributes a0..aN-1 of 16 KiB.
	"log_wide": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var n int
		if err := msgpack.Unmarshal(args, &n); err != nil {
			return nil, err
		}
		attrs := make([]any, 0, 2*n)
		for i := range n {
			attrs = append(attrs, fmt.Sprintf("a%d", i), strings.Repeat("x", 16<<10))
		}
		call.Log.Info("wide", attrs...)
		return n, nil
	}},
	// read_file returns the bytes of the file named by its argument.
	"read_file": {Fn: func(_ context.Context, _ *spindle.CallInfo, args []byte) (any, error) {
		var path string
		if err := msgpack.Unmarshal(args, &path); err != nil {
			return nil, err
		}
		return os.ReadFile(path)
	}},
	// write_file writes "x" to the file named by its argument.
	"write_file": {Fn: func(_ context.Context, _ *spindle.CallInfo, args []byte) (any, error) {
		var path string
		if err := msgpack.Unmarshal(args, &path); err != nil {
			return nil, err
		}
		return nil, os.WriteFile(path, []byte("x"), 0o600)
	}},
	"stderr": {Fn: func(_ context.Context, _ *spindle.CallInfo, args []byte) (any, error) {
		var line string
		if err := msgpack.Unmarshal(args, &line); err != nil {
			return nil, err
		}
		fmt.Fprintln(os.Stderr, line)
		return nil, nil
	}},
	// raw_ask writes one raw frame as "raw" does, with reply_to a fresh
	// receiver of its own, and returns the error of the first message that
	// arrives there ("" for a plain reply).
	"raw_ask": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a rawArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		rc, err := call.Router.NewReceiver(routing.HandlerOptions{})
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		m := &wire.Message{Enc: wire.Encoding(a.Enc), Dst: a.Dst, Src: a.Src, Auth: a.Auth, Handle: a.Handle, ReplyTo: rc.Handle(), Body: a.body()}
		if err := call.Router.Stream(0).Send(ctx, m); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = rc.Get(ctx)
		if err == nil {
			return "", nil
		}
		return err.Error(), nil
	}},
	"raw_reply": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a rawArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		return msgpack.RawMessage(a.body()), nil
	}},
	"stream": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
		var a streamArgs
		if err := msgpack.Unmarshal(args, &a); err != nil {
			return nil, err
		}
		for i := range a.N {
			body, _ := msgpack.Marshal(i)
			if err := call.Router.SendTo(ctx, a.To, wire.EncMsgpack, body); err != nil {
				return nil, err
			}
		}
		if err := call.Router.CloseSender(ctx, a.To); err != nil {
			return nil, err
		}
		return a.N, nil
	}},
}

func (a *rawArgs) body() []byte {
	b := make([]byte, 0, len(a.Body)+len(a.Prefix)+a.Nest+len(a.Suffix))
	b = append(b, a.Body...)
	b = append(b, a.Prefix...)
	b = append(b, bytes.Repeat([]byte{0x91}, a.Nest)...)
	return append(b, a.Suffix...)
}

// testTimeout bounds every operation of a test that should finish quickly,
// so a bug fails the test instead of hanging it.
const testTimeout = 15 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// logRecord is one record the master's logger received.
type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func (r logRecord) String() string {
	return fmt.Sprintf("%v %q %v", r.Level, r.Msg, r.Attrs)
}

// logCapture keeps every record a master logs, including those forwarded
// from its tree and the lines its children write to stderr.
type logCapture struct {
	mu    sync.Mutex
	recs  []logRecord // guarded by mu
	drops bool        // guarded by mu: "bad auth_id" records are expected
}

// allowDrops says the test expects messages to be dropped as forged.
func (c *logCapture) allowDrops() {
	c.mu.Lock()
	c.drops = true
	c.mu.Unlock()
}

func (c *logCapture) logger() *slog.Logger { return slog.New(&captureHandler{c: c}) }

func (c *logCapture) records() []logRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]logRecord(nil), c.recs...)
}

func (c *logCapture) find(pred func(logRecord) bool) []logRecord {
	var out []logRecord
	for _, r := range c.records() {
		if pred(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls for a record matching pred for up to d.
func (c *logCapture) waitFor(d time.Duration, pred func(logRecord) bool) (logRecord, bool) {
	return c.waitForSince(0, d, pred)
}

// mark is the number of records so far: waitForSince(mark, ...) looks only
// at those that come after.
func (c *logCapture) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// waitForSince is waitFor over the records after the first since.
func (c *logCapture) waitForSince(since int, d time.Duration, pred func(logRecord) bool) (logRecord, bool) {
	deadline := time.Now().Add(d)
	for {
		for _, r := range c.records()[since:] {
			if pred(r) {
				return r, true
			}
		}
		if time.Now().After(deadline) {
			return logRecord{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dump formats the last 100 records.
func (c *logCapture) dump() string {
	var b strings.Builder
	recs := c.records()
	if len(recs) > 100 {
		fmt.Fprintf(&b, "\n\t(%d earlier records)", len(recs)-100)
		recs = recs[len(recs)-100:]
	}
	for _, r := range recs {
		fmt.Fprintf(&b, "\n\t%v", r)
	}
	return b.String()
}

type captureHandler struct {
	c     *logCapture
	attrs []slog.Attr
	group string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, rec slog.Record) error {
	r := logRecord{Level: rec.Level, Msg: rec.Message, Attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		flatten(r.Attrs, h.group, a)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	rec.Attrs(add)
	h.c.mu.Lock()
	h.c.recs = append(h.c.recs, r)
	h.c.mu.Unlock()
	return nil
}

func flatten(m map[string]string, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			flatten(m, key, g)
		}
		return
	}
	m[key] = a.Value.String()
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	g := *h
	g.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &g
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	g := *h
	if g.group != "" {
		g.group += "."
	}
	g.group += name
	return &g
}

// newMaster starts a master that logs into a capture, and closes it when the
// test ends. Call it after testutil.VerifyNone so the leak check runs after
// the close. Any data race a child reports on its stderr fails the test, and
// so does a well-formed message dropped as forged anywhere in the tree
// (unless logs.allowDrops was called).
func newMaster(t *testing.T, cfg spindle.Config) (*spindle.Master, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	if cfg.Logger == nil {
		cfg.Logger = logs.logger()
	}
	m, err := spindle.NewMaster(cfg)
	if err != nil {
		t.Fatalf("NewMaster: %v", err)
	}
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("master's log:%s", logs.dump())
		}
		logs.mu.Lock()
		drops := logs.drops
		logs.mu.Unlock()
		for _, r := range logs.records() {
			if !drops && (strings.HasPrefix(r.Msg, "bad auth_id") || strings.HasPrefix(r.Msg, "bad src_id")) {
				t.Errorf("a well-formed message was dropped: %v", r)
			}
		}
		for _, r := range logs.records() {
			if strings.Contains(r.Msg, "DATA RACE") || strings.Contains(r.Attrs["status"], "exit status 66") {
				t.Errorf("a child reported a data race: %v%s", r, logs.dump())
				break
			}
		}
	})
	return m, logs
}

func startLocal(t *testing.T, ctx context.Context, m *spindle.Master, name string) *spindle.Context {
	t.Helper()
	c, err := m.StartLocal(ctx, spindle.LocalOptions{Name: name})
	if err != nil {
		t.Fatalf("StartLocal(%q): %v", name, err)
	}
	return c
}

func startVia(t *testing.T, ctx context.Context, parent *spindle.Context, name string) *spindle.Context {
	t.Helper()
	c, err := parent.StartLocal(ctx, spindle.LocalOptions{Name: name})
	if err != nil {
		t.Fatalf("%v.StartLocal(%q): %v", parent, name, err)
	}
	return c
}

// remoteError returns the *routing.RemoteError inside err, failing the test
// if there is none.
func remoteError(t *testing.T, err error) *routing.RemoteError {
	t.Helper()
	var re *routing.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) holds no *routing.RemoteError", err, err)
	}
	return re
}

// checkRemote fails t unless err matches sentinel and carries a RemoteError
// made by context from with exactly the message msg.
func checkRemote(t *testing.T, err, sentinel error, from uint32, msg string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error = %v, want one matching %v", err, sentinel)
	}
	re := remoteError(t, err)
	if re.Context != from || re.Message != msg {
		t.Errorf("RemoteError = {Context: %d, Message: %q}, want {Context: %d, Message: %q}", re.Context, re.Message, from, msg)
	}
}

// waitClosed fails t unless ch is closed within d.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Errorf("%s: not closed within %v", what, d)
	}
}

// processGone waits up to d for pid to be gone: kill(pid, 0) gives ESRCH
// (exited and reaped), or it is a zombie whose parent is no longer this
// process. The second case is an orphan (its own parent died) that has
// exited and waits for init to reap it, which here takes up to two seconds.
func processGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if state, ppid, ok := parseStat(stat); ok && state == 'Z' && ppid != os.Getpid() {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process %d still exists %v later (kill: %v; stat: %s)", pid, d, err, stat)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parseStat returns the state and parent PID from /proc/PID/stat.
func parseStat(stat []byte) (state byte, ppid int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}
