package spindle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Task describes one wasm task call. Module is the module's hash (see
// Master.AddModule); Task names the export of a reactor; a command module
// (one with _start) takes Args, Stdin and Env instead and streams its
// output to Stdout and Stderr. Nothing is granted unless set here.
type Task struct {
	Module string
	Task   string
	Input  []byte

	Args   []string
	Stdin  []byte
	Stdout io.Writer // command output, streamed as written; nil discards
	Stderr io.Writer

	Env    map[string]string
	Mounts []Mount
	Clock  bool // the host's real clocks (else a fixed fake clock)
	Random bool // the host's crypto/rand (else deterministic)
	// Channels are the senders the task may send on (it finds them in its
	// input); any other is refused.
	Channels []routing.Sender
	Limits   Limits
	// Pooled runs a reactor task on a warm instance kept for the module
	// (faster; only for stateless tasks with no grants).
	Pooled bool
}

// Mount grants a task a directory of the machine it runs on.
type Mount struct {
	Host     string // directory on the target machine
	Guest    string // where the task sees it, e.g. "/data"
	ReadOnly bool
}

// Limits bounds one task call; zero fields mean the defaults (30 s, 256 MiB,
// 16 MiB of output, 1 MiB of logs).
type Limits struct {
	Timeout     time.Duration
	MemoryPages uint32
	OutputBytes int64
	LogBytes    int64
}

// TaskResult is what a successful task call returns.
type TaskResult struct {
	Output   []byte // a reactor's output bytes
	ExitCode int    // a command's exit code
	Command  bool   // the module was a command (ExitCode is meaningful)
}

// TaskError is a task that failed: Kind is one of the kinds in docs/abi.md
// ("guest", "trap", "timeout", "memory", ...).
type TaskError struct {
	Kind     string
	Message  string
	ExitCode int
	Context  string // the context it ran in
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s in %s: %s", e.Kind, e.Context, e.Message)
}

// AddModule stores a wasm module in the master and returns its hash, by
// which tasks name it. Contexts fetch it on first use.
func (m *Master) AddModule(wasm []byte) (string, error) {
	return m.n.mods.Store().Put(wasm)
}

// AddModuleFile is AddModule for a file.
func (m *Master) AddModuleFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("spindle: read module: %w", err)
	}
	return m.AddModule(b)
}

// ModuleStats returns the master's module transfer counters.
func (m *Master) ModuleStats() modules.Stats { return m.n.mods.Stats() }

// Preload sends a module down to the context (and every context on the way)
// ahead of use.
func (c *Context) Preload(ctx context.Context, module string) error {
	return c.m.n.mods.Push(ctx, module, c.id)
}

// Run runs a task in the context and returns its result. A task that fails
// returns a *TaskError; a context that cannot be reached, a routing error.
func (c *Context) Run(ctx context.Context, t Task) (*TaskResult, error) {
	n := c.m.n
	req := wire.RunTask{
		Module: t.Module, Task: t.Task, Input: t.Input, Args: t.Args, Stdin: t.Stdin, Env: t.Env,
		Clock: t.Clock, Random: t.Random, Pooled: t.Pooled,
		Limits: wire.Limits{TimeoutNs: int64(t.Limits.Timeout), MemoryPages: t.Limits.MemoryPages,
			OutputBytes: t.Limits.OutputBytes, LogBytes: t.Limits.LogBytes},
	}
	for _, mt := range t.Mounts {
		req.Mounts = append(req.Mounts, wire.Mount{Host: mt.Host, Guest: mt.Guest, ReadOnly: mt.ReadOnly})
	}
	for _, s := range t.Channels {
		req.Channels = append(req.Channels, wire.Channel{Context: s.Context, Handle: s.Handle})
	}
	var out *routing.Receiver
	var streamed sync.WaitGroup
	if t.Stdout != nil || t.Stderr != nil {
		var err error
		out, err = n.r.NewReceiver(routing.HandlerOptions{})
		if err != nil {
			return nil, err
		}
		defer out.Close()
		req.Output = &wire.Channel{Context: n.r.ID(), Handle: out.Handle()}
		streamed.Add(1)
		go func() {
			defer streamed.Done()
			copyOutput(ctx, out, t.Stdout, t.Stderr)
		}()
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	reply, err := n.r.Call(ctx, c.id, wire.HandleRunTask, wire.EncMsgpack, body)
	if out != nil {
		// Every chunk was routed before the reply: close the receiver and
		// let the copier drain what is queued.
		_ = n.r.CloseSender(ctx, out.Sender())
		streamed.Wait()
	}
	if err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	var res wire.TaskResult
	if err := wire.Unmarshal(reply.Body, &res); err != nil {
		return nil, fmt.Errorf("spindle: run on %s: decode result: %w", c, err)
	}
	if res.Error != nil {
		return nil, &TaskError{Kind: res.Error.Kind, Message: res.Error.Message, ExitCode: res.Error.ExitCode, Context: c.name}
	}
	return &TaskResult{Output: res.Output, ExitCode: res.ExitCode, Command: res.Command}, nil
}

// copyOutput writes streamed chunks until the receiver's sender is closed.
func copyOutput(ctx context.Context, rc *routing.Receiver, stdout, stderr io.Writer) {
	for {
		m, err := rc.Get(ctx)
		if err != nil {
			return
		}
		var ch wire.OutputChunk
		if wire.Unmarshal(m.Body, &ch) != nil {
			continue
		}
		w := stdout
		if ch.Stream == 2 {
			w = stderr
		}
		if w != nil {
			_, _ = w.Write(ch.Data)
		}
	}
}

// RunOutcome is one context's result from RunAll.
type RunOutcome struct {
	Context *Context
	Result  *TaskResult
	Err     error
}

// RunAll runs the same task in every context at once and returns one
// outcome per context, in the order given.
func RunAll(ctx context.Context, cs []*Context, t Task) []RunOutcome {
	out := make([]RunOutcome, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(ctx, t)
			out[i] = RunOutcome{Context: c, Result: res, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// taskHost returns the context's wasm host, made on first use: a context
// that never runs a task never pays for a runtime.
type taskState struct {
	once sync.Once
	mu   sync.Mutex
	host *host.Host // guarded by mu
	err  error      // guarded by mu
}

// get returns the host if it has been made (without making it).
func (ts *taskState) get() (*host.Host, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.host, ts.err
}

func (n *node) taskHost() (*host.Host, error) {
	n.tasks.once.Do(func() {
		dir := ""
		if n.cacheDir != "" {
			dir = filepath.Join(n.cacheDir, "compiled")
		}
		h, err := host.New(n.b.Context(), host.Config{CacheDir: dir, Logger: n.log})
		n.tasks.mu.Lock()
		n.tasks.host, n.tasks.err = h, err
		n.tasks.mu.Unlock()
		if err == nil {
			n.b.OnExit(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = h.Close(ctx)
			})
		}
	})
	return n.tasks.get()
}

// onRunTask serves RUN_TASK: fetch the module if needed, compile it once,
// run the task, reply with a TaskResult.
func (n *node) onRunTask(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	var req wire.RunTask
	if err := wire.Unmarshal(m.Body, &req); err != nil {
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("decode RUN_TASK: %w: %v", routing.ErrBadRequest, err))
		return
	}
	err := n.b.Go(func(ctx context.Context) {
		res := n.runTask(ctx, &req)
		body, err := msgpack.Marshal(res)
		if err != nil {
			_ = n.r.ReplyError(ctx, m, err)
			return
		}
		if err := n.r.Reply(ctx, m, wire.EncMsgpack, body); err != nil {
			n.log.Warn("task reply not sent", "to", m.Src, "err", err)
		}
	})
	if err != nil {
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("run task: %w", routing.ErrShutdown))
	}
}

func taskFailure(kind string, err error) *wire.TaskResult {
	return &wire.TaskResult{Error: &wire.TaskError{Kind: kind, Message: err.Error()}}
}

func (n *node) runTask(ctx context.Context, req *wire.RunTask) *wire.TaskResult {
	code, err := n.mods.Ensure(ctx, req.Module)
	if err != nil {
		if errors.Is(err, modules.ErrNotFound) {
			return taskFailure("not_found", err)
		}
		return taskFailure("invalid_module", err)
	}
	h, err := n.taskHost()
	if err != nil {
		return taskFailure("invalid_module", fmt.Errorf("start wasm host: %w", err))
	}
	mod, err := h.Compile(ctx, req.Module, code)
	if err != nil {
		return taskFailure("invalid_module", err)
	}
	call := host.Call{
		Task: req.Task, Input: req.Input, Args: req.Args,
		Limits: host.Limits{Timeout: time.Duration(req.Limits.TimeoutNs), MemoryPages: req.Limits.MemoryPages,
			OutputBytes: req.Limits.OutputBytes, LogBytes: req.Limits.LogBytes},
		Grants: host.Grants{Clock: req.Clock, Random: req.Random, Env: req.Env},
		Pooled: req.Pooled,
	}
	if req.Stdin != nil {
		call.Stdin = bytes.NewReader(req.Stdin)
	}
	for _, mt := range req.Mounts {
		call.Grants.Mounts = append(call.Grants.Mounts, host.Mount{HostDir: mt.Host, GuestDir: mt.Guest, ReadOnly: mt.ReadOnly})
	}
	for _, ch := range req.Channels {
		call.Grants.Channels = append(call.Grants.Channels, host.Channel{Context: ch.Context, Handle: ch.Handle})
	}
	if req.Output != nil {
		dst := routing.Sender{Context: req.Output.Context, Handle: req.Output.Handle}
		call.Stdout = &chunkWriter{ctx: ctx, r: n.r, dst: dst, stream: 1}
		call.Stderr = &chunkWriter{ctx: ctx, r: n.r, dst: dst, stream: 2}
	}
	taskLog := n.log.With("task", req.Task, "module", req.Module[:min(12, len(req.Module))])
	call.Log = func(level slog.Level, msg string) { taskLog.Log(ctx, level, msg) }
	call.Send = func(ctx context.Context, ch host.Channel, raw bool, data []byte) error {
		enc := wire.EncMsgpack
		if raw {
			enc = wire.EncRaw
		}
		return n.r.SendTo(ctx, routing.Sender{Context: ch.Context, Handle: ch.Handle}, enc, data)
	}
	res, err := h.Run(ctx, mod, call)
	if err != nil {
		var te *host.TaskError
		if errors.As(err, &te) {
			return &wire.TaskResult{Error: &wire.TaskError{Kind: string(te.Kind), Message: te.Message, ExitCode: te.ExitCode}}
		}
		if errors.Is(err, host.ErrInvalidCall) {
			return taskFailure("invalid_call", err)
		}
		return taskFailure("cancelled", err) // the host closed under the call
	}
	return &wire.TaskResult{Output: res.Output, ExitCode: res.ExitCode, Command: mod.Kind() == host.Command}
}

// chunkWriter streams a command's output to the caller, one message per
// Write, in order.
type chunkWriter struct {
	ctx    context.Context
	r      *routing.Router
	dst    routing.Sender
	stream int
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	body, err := msgpack.Marshal(&wire.OutputChunk{Stream: w.stream, Data: p})
	if err != nil {
		return 0, err
	}
	if err := w.r.SendTo(w.ctx, w.dst, wire.EncMsgpack, body); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hostStats reports the wasm host's counters, zero before its first task.
func (n *node) hostStats() (compiles, instantiations int64) {
	h, err := n.tasks.get()
	if h == nil || err != nil {
		return 0, 0
	}
	st := h.Stats()
	return st.Compiles, st.Instantiations
}
