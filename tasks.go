package spindle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

	Args []string
	// Stdin is a command's standard input, streamed to the context as the
	// guest reads it (nil: empty). It is read only when the guest reads,
	// no faster than the guest consumes it, one Read for each piece of at
	// most wire.StdinChunkBytes sent; its EOF is the guest's, and an error
	// from it fails the guest's read (EIO) and every later one. A Task
	// with a Stdin is for one Run at a time. Run does not wait for a Read
	// in progress when it returns: that Read's bytes are dropped, and
	// Stdin is not read again (close a pipe to end it).
	Stdin  io.Reader
	Stdout io.Writer // command output, streamed as written; nil discards
	Stderr io.Writer

	Env    map[string]string
	Mounts []Mount
	Clock  bool // the host's real clocks (else a fixed fake clock)
	Random bool // the host's crypto/rand (else deterministic)
	// DevNull grants /dev/null, in a /dev that holds nothing else.
	DevNull bool
	// Channels are the senders the task may send on (it finds them in its
	// input); any other is refused.
	Channels []routing.Sender
	Limits   Limits
	// Pooled runs a reactor task on a warm instance kept for the module
	// (faster; only for stateless tasks with no grants).
	Pooled bool
	// Workspace runs a command as an action with a file view the context
	// builds from content-addressed trees (see Workspace); Mounts must
	// then be empty.
	Workspace *Workspace
	// Exec grants host programs the task may run (docs/abi.md, exec;
	// docs/SECURITY.md, "The exec grant"); none by default. Not with a
	// Workspace, nor in a sandboxed context.
	Exec []ExecGrant
}

// Mount grants a task a directory of the machine it runs on.
type Mount struct {
	Host     string // directory on the target machine
	Guest    string // where the task sees it, e.g. "/data"
	ReadOnly bool
	// Tree, instead of Host, is the digest of a tree in the master's
	// store (modules.Store.PutDir): the context fetches what it lacks,
	// each blob crossing each edge of the tree once, makes it as files in
	// a private directory of its work directory, mounts that read-only
	// and removes it when the call ends. Host must then be empty.
	Tree string
	// Collect makes a Tree mount writable: the guest works on a copy of
	// the tree, and when it exits the files it made or changed there
	// (regular files, by size and modification time) are collected into
	// TaskResult.OutputTree, which the master pulls into its store, as a
	// Workspace's outputs are. At most one mount of a call collects.
	Collect bool
	// FileMode and DirMode, when not zero, are the exact permission bits
	// (at most 0o777, not less the umask) of the files and directories
	// the task makes in this writable mount; by default 0o644 and 0o755
	// less the umask (WASI preview 1 has no mode argument).
	FileMode, DirMode fs.FileMode
	// Owner and Group, when set (a name, or a number), own what the task
	// makes in this writable mount: the context looks them up on its
	// machine and lchowns each new file, directory and symlink, which
	// needs root there unless they are its own. WASI has no chown: this
	// is the only way a task gets one, and only for what it makes here.
	Owner, Group string
}

// Limits bounds one task call; zero fields mean the defaults of package
// host (30 s, 256 MiB, 16 MiB of output in at most 10,000 messages, 1 MiB
// of logs in at most 8192 records, 16 MiB of channel sends in at most
// 65,536 messages, 32 MiB of call stack, 256 open files, 1 GiB written to
// mounts). See host.Limits.
type Limits struct {
	Timeout        time.Duration
	MemoryPages    uint32
	OutputBytes    int64
	OutputMessages int64
	LogBytes       int64
	LogRecords     int64
	SendBytes      int64
	SendMessages   int64
	StackBytes     int64 // the guest's estimated call stack (kind stack_overflow past it)
	OpenFiles      int   // files open at once in the task's mounts
	DiskBytes      int64 // bytes the task may write into its mounts (ENOSPC past it)
}

// TaskResult is what a successful task call returns.
type TaskResult struct {
	Output   []byte // a reactor's output bytes
	ExitCode int    // a command's exit code
	Command  bool   // the module was a command (ExitCode is meaningful)
	// OutputTree is the digest of a Workspace action's outputs, or of what
	// a command wrote in its collected mount (Mount.Collect), now in the
	// master's store (Master.Store).
	OutputTree string
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

// Store returns the master's content-addressed store: the modules, and the
// blobs and trees of Workspace actions (package modules).
func (m *Master) Store() *modules.Store { return m.n.mods.Store() }

// Blobs returns the master's module service, which moves the store's blobs
// through the tree.
func (m *Master) Blobs() *modules.Service { return m.n.mods }

// ModuleStats returns the master's module transfer counters.
func (m *Master) ModuleStats() modules.Stats { return m.n.mods.Stats() }

// Preload sends a module down to the context (and every context on the way)
// ahead of use.
func (c *Context) Preload(ctx context.Context, module string) error {
	return c.m.n.mods.Push(ctx, module, c.id)
}

// Run runs a task in the context and returns its result. A task that fails
// returns a *TaskError; a context that cannot be reached, a routing error.
//
// The context learns when Run gives up: the request carries ctx's deadline
// (the task is cancelled there once it passes), and when ctx ends first Run
// sends CANCEL_TASK. Either way Run returns when ctx ends, at once, whatever
// output is still on its way; a Write to t.Stdout or t.Stderr in progress
// is the only thing it waits for. The output is flow-controlled: the
// context keeps at most a few chunks unacknowledged, so a slow writer
// slows the task rather than growing the master (see OutputQueueBytes).
func (c *Context) Run(ctx context.Context, t Task) (*TaskResult, error) {
	n := c.m.n
	var err error
	req := wire.RunTask{
		Module: t.Module, Task: t.Task, Input: t.Input, Args: t.Args, Env: t.Env,
		Clock: t.Clock, Random: t.Random, Pooled: t.Pooled, DevNull: t.DevNull,
		Limits: wire.Limits{TimeoutNs: int64(t.Limits.Timeout), MemoryPages: t.Limits.MemoryPages,
			OutputBytes: t.Limits.OutputBytes, LogBytes: t.Limits.LogBytes,
			OutputMessages: t.Limits.OutputMessages, LogRecords: t.Limits.LogRecords,
			SendBytes: t.Limits.SendBytes, SendMessages: t.Limits.SendMessages, DiskBytes: t.Limits.DiskBytes,
			StackBytes: t.Limits.StackBytes, OpenFiles: t.Limits.OpenFiles},
		ID: n.tasks.ids.Add(1), Workspace: t.Workspace.wire(),
	}
	if req.Workspace != nil {
		if t.Stdin != nil {
			return nil, fmt.Errorf("spindle: run on %s: a task with a Workspace takes its stdin from Workspace.Stdin, not Stdin", c)
		}
		if len(t.Mounts) > 0 {
			return nil, fmt.Errorf("spindle: run on %s: a task with a Workspace takes no Mounts", c)
		}
		if err := checkWorkspace(req.Workspace); err != nil {
			return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
		}
	}
	collect := false
	for _, mt := range t.Mounts {
		if err := checkMount(mt.Host, mt.Tree, mt.ReadOnly, mt.Collect, uint32(mt.FileMode), uint32(mt.DirMode), mt.Owner, mt.Group); err != nil {
			return nil, fmt.Errorf("spindle: run on %s: mount %s: %w", c, mt.Guest, err)
		}
		if mt.Collect {
			if collect {
				return nil, fmt.Errorf("spindle: run on %s: mount %s: a second collected mount (at most one)", c, mt.Guest)
			}
			collect = true
		}
		req.Mounts = append(req.Mounts, wire.Mount{Host: mt.Host, Guest: mt.Guest, ReadOnly: mt.ReadOnly, Tree: mt.Tree, Collect: mt.Collect,
			FileMode: uint32(mt.FileMode), DirMode: uint32(mt.DirMode), Owner: mt.Owner, Group: mt.Group})
	}
	for _, s := range t.Channels {
		req.Channels = append(req.Channels, wire.Channel{Context: s.Context, Handle: s.Handle})
	}
	if req.Exec, err = execGrantsWire(t.Exec, req.Workspace != nil); err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return nil, fmt.Errorf("spindle: run on %s: %w", c, context.DeadlineExceeded)
		}
		req.DeadlineNs = int64(d)
	}
	var out *outputSink
	if t.Stdout != nil || t.Stderr != nil {
		if out, err = newOutputSink(ctx, n.r, c.id, t.Stdout, t.Stderr); err != nil {
			return nil, err
		}
		defer out.close()
		n.lastOutput.Store(out.handle)
		req.Output = &wire.Channel{Context: n.r.ID(), Handle: out.handle}
	}
	if t.Stdin != nil {
		in, err := newStdinSource(ctx, n.r, c.id, t.Stdin)
		if err != nil {
			return nil, err
		}
		defer in.close()
		n.lastStdin.Store(in.handle)
		req.Stdin = &wire.Channel{Context: n.r.ID(), Handle: in.handle}
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	p, err := n.r.CallAsync(ctx, c.id, wire.HandleRunTask, wire.EncMsgpack, body)
	if err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	reply, err := p.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		c.cancelTask(req.ID)
	}
	if out != nil {
		// An honest context has had every chunk acknowledged before it
		// replied: close drains nothing more than a hostile one queued
		// (bounded), and stops at once if ctx is done.
		out.close()
	}
	if err != nil {
		return nil, fmt.Errorf("spindle: run on %s: %w", c, err)
	}
	var res wire.TaskResult
	if err := wire.Unmarshal(reply.Body, &res); err != nil {
		return nil, fmt.Errorf("spindle: run on %s: decode result: %w", c, err)
	}
	if res.Error != nil {
		te := &TaskError{Kind: res.Error.Kind, Message: res.Error.Message, ExitCode: res.Error.ExitCode, Context: c.name}
		if te.Kind == string(host.KindCancelled) && ctx.Err() != nil {
			// The context stopped the task because the caller gave up, and
			// its reply crossed the caller's giving up: say both.
			return nil, fmt.Errorf("spindle: run on %s: %w: %w", c, ctx.Err(), te)
		}
		return nil, te
	}
	if d := out.droppedChunks(); d > 0 {
		return nil, &TaskError{Kind: string(host.KindOutputLimit), Context: c.name,
			Message: fmt.Sprintf("%d output chunks dropped: the context passed the master's output queue (%d chunks, %d bytes)",
				d, OutputQueueChunks, OutputQueueBytes)}
	}
	tr := &TaskResult{Output: res.Output, ExitCode: res.ExitCode, Command: res.Command}
	if (req.Workspace != nil || collect) && res.OutputTree != "" {
		// The context's own limits are not trusted: its tree is held to the
		// caller's.
		var lim modules.CollectLimits
		if req.Workspace != nil {
			lim = modules.CollectLimits{MaxBytes: req.Workspace.OutputBytes, MaxFiles: req.Workspace.OutputFiles}
		}
		if err := n.mods.PullTree(ctx, c.id, res.OutputTree, lim); err != nil {
			return nil, fmt.Errorf("spindle: run on %s: pull outputs: %w", c, err)
		}
		tr.OutputTree = res.OutputTree
	}
	return tr, nil
}

// cancelTask tells the context that the caller of task id gave up. It is
// sent by a goroutine of the broker so that Run returns at once.
func (c *Context) cancelTask(id uint64) {
	n := c.m.n
	body, err := msgpack.Marshal(&wire.CancelTask{ID: id})
	if err != nil {
		return
	}
	_ = n.b.Go(func(bctx context.Context) {
		ctx, cancel := context.WithTimeout(bctx, time.Second)
		defer cancel()
		if err := n.r.SendTo(ctx, routing.Sender{Context: c.id, Handle: wire.HandleCancelTask}, wire.EncMsgpack, body); err != nil {
			n.log.Debug("CANCEL_TASK not sent", "to", c.String(), "err", err)
		}
	})
}

// The bound of the master's queue of one Run's output, past which chunks
// are refused (and the Run fails with kind output_limit). An honest context
// keeps at most outputWindow chunks of host.OutputChunkBytes in flight, well
// inside it.
const (
	OutputQueueChunks = 16
	OutputQueueBytes  = 1 << 20
)

// outputWindow is how many output chunks a context sends before it waits
// for the oldest to be acknowledged.
const outputWindow = 4

// outputSink is the master's end of one Run's output: a bounded queue fed
// by the stream's reader (the handler) and drained by one copier goroutine,
// which writes each chunk and then acknowledges it. It is owned by Run,
// which starts the copier and stops it with close.
type outputSink struct {
	r              *routing.Router
	handle         uint32
	stdout, stderr io.Writer
	q              chan *wire.Message
	queued         atomic.Int64 // bytes in q
	dropped        atomic.Int64 // chunks refused
	stop           chan struct{}
	done           chan struct{}
	closeOnce      sync.Once
}

func newOutputSink(ctx context.Context, r *routing.Router, from uint32, stdout, stderr io.Writer) (*outputSink, error) {
	s := &outputSink{r: r, stdout: stdout, stderr: stderr, q: make(chan *wire.Message, OutputQueueChunks),
		stop: make(chan struct{}), done: make(chan struct{})}
	h, err := r.AddHandler(s.put, routing.HandlerOptions{Respondent: from, HasRespondent: true})
	if err != nil {
		return nil, err
	}
	s.handle = h
	go s.copy(ctx)
	return s, nil
}

// put queues a chunk, on the reader goroutine of the stream it came in on;
// one past the bound is refused with an error to its sender.
func (s *outputSink) put(m *wire.Message, in *broker.Stream) {
	if m.IsDead() {
		return // the context went away: Run's call fails as well
	}
	if s.queued.Add(int64(len(m.Body))) <= OutputQueueBytes {
		select {
		case s.q <- m:
			return
		default:
		}
	}
	s.queued.Add(-int64(len(m.Body)))
	// Only a context that ignores the window gets here, and the Run fails
	// already. Each chunk is a request and gets its answer, on the
	// sender's own stream, no longer than that stream lives.
	s.dropped.Add(1)
	_ = s.r.ReplyError(s.r.StreamContext(in), m, fmt.Errorf("%w: output queue full (%d chunks, %d bytes)", routing.ErrRefused, OutputQueueChunks, OutputQueueBytes))
}

// copy writes chunks until ctx ends, or close is called and the queue is
// empty.
func (s *outputSink) copy(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case m := <-s.q:
			s.deliver(ctx, m)
		case <-ctx.Done():
			return
		case <-s.stop:
			for {
				select {
				case m := <-s.q:
					if ctx.Err() != nil {
						return
					}
					s.deliver(ctx, m)
				default:
					return
				}
			}
		}
	}
}

func (s *outputSink) deliver(ctx context.Context, m *wire.Message) {
	s.queued.Add(-int64(len(m.Body)))
	var ch wire.OutputChunk
	if wire.Unmarshal(m.Body, &ch) != nil {
		_ = s.r.ReplyError(ctx, m, fmt.Errorf("%w: output chunk", routing.ErrBadRequest))
		return
	}
	w := s.stdout
	if ch.Stream == 2 {
		w = s.stderr
	}
	if w != nil {
		_, _ = w.Write(ch.Data)
	}
	_ = s.r.Reply(ctx, m, wire.EncMsgpack, nil)
}

// close unregisters the handle, lets the copier write what is queued (or
// stop at once if Run's ctx is done) and waits for it. It is idempotent.
func (s *outputSink) close() {
	s.closeOnce.Do(func() {
		_ = s.r.DelHandler(s.handle)
		close(s.stop)
	})
	<-s.done
}

// droppedChunks is how many chunks were refused; 0 for a nil sink.
func (s *outputSink) droppedChunks() int64 {
	if s == nil {
		return 0
	}
	return s.dropped.Load()
}

// RunOutcome is one context's result from RunAll.
type RunOutcome struct {
	Context *Context
	Result  *TaskResult
	Err     error
}

// RunAll runs the same task in every context at once and returns one
// outcome per context, in the order given. A Task with a Stdin is refused
// for more than one context (each outcome fails): one reader cannot be
// every context's stdin; Run each with a reader of its own.
func RunAll(ctx context.Context, cs []*Context, t Task) []RunOutcome {
	out := make([]RunOutcome, len(cs))
	if t.Stdin != nil && len(cs) > 1 {
		for i, c := range cs {
			out[i] = RunOutcome{Context: c, Err: fmt.Errorf("spindle: run on %s: RunAll with a Stdin: give each context's Run a reader of its own", c)}
		}
		return out
	}
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
	// running holds the cancel of each task in progress that its caller
	// named (RunTask.ID), for CANCEL_TASK; guarded by mu.
	running map[runKey]*taskCancel
	ids     atomic.Uint64 // the RunTask.IDs of this context's own calls
	// idle takes a task for a worker goroutine that has finished one and
	// waits for the next (goTask); unbuffered, so that a send succeeds
	// only when a worker is there to take it.
	idle chan func(context.Context)
}

// workerIdle is how long a task's goroutine waits for another task before
// it exits. A warm wasm call goes deep into wazero and grows its
// goroutine's stack to some tens of KiB; a new goroutine per task copied
// that stack up from 8 KiB on every call (runtime.morestack, copystack: 5%
// of a child's CPU in a warm-call loop).
const workerIdle = time.Second

// goTask runs fn on a goroutine owned by the broker: an idle worker's if
// one waits, else a new one, which then waits workerIdle for the next
// task. It fails once the broker is stopping, as Broker.Go does.
func (n *node) goTask(fn func(context.Context)) error {
	if n.b.Context().Err() == nil {
		select {
		case n.tasks.idle <- fn:
			return nil
		default:
		}
	}
	return n.b.Go(func(ctx context.Context) {
		fn(ctx)
		t := time.NewTimer(workerIdle)
		defer t.Stop()
		for {
			select {
			case fn := <-n.tasks.idle:
				fn(ctx)
				t.Reset(workerIdle)
			case <-t.C:
				return
			case <-ctx.Done():
				return
			}
		}
	})
}

// runKey names a task in progress: its caller and the ID it gave.
type runKey struct {
	src uint32
	id  uint64
}

// taskCancel cancels one task; fire may come before set (CANCEL_TASK is
// handled on the stream's reader, the task on a goroutine of its own).
type taskCancel struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc // guarded by mu
	fired  bool                    // guarded by mu
}

// errCallerCancelled is why a task whose caller sent CANCEL_TASK ends.
var errCallerCancelled = errors.New("spindle: the caller cancelled the task")

func (tc *taskCancel) set(cancel context.CancelCauseFunc) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.cancel = cancel
	if tc.fired {
		cancel(errCallerCancelled)
	}
}

func (tc *taskCancel) fire() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.fired = true
	if tc.cancel != nil {
		tc.cancel(errCallerCancelled)
	}
}

// track registers the task k; it returns nil (and registers nothing) for
// an unnamed task or a name in use.
func (ts *taskState) track(k runKey) *taskCancel {
	if k.id == 0 {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if _, dup := ts.running[k]; dup {
		return nil
	}
	if ts.running == nil {
		ts.running = make(map[runKey]*taskCancel)
	}
	tc := &taskCancel{}
	ts.running[k] = tc
	return tc
}

// untrack removes k if tc is its entry, and returns tc.
func (ts *taskState) untrack(k runKey, tc *taskCancel) {
	if tc == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.running[k] == tc {
		delete(ts.running, k)
	}
}

// onCancelTask serves CANCEL_TASK: it cancels the task the sender named,
// if it is still running; any other is ignored.
func (n *node) onCancelTask(m *wire.Message, _ *broker.Stream) {
	if m.IsDead() {
		return
	}
	var req wire.CancelTask
	if wire.Unmarshal(m.Body, &req) != nil {
		return
	}
	k := runKey{src: m.Src, id: req.ID}
	n.tasks.mu.Lock()
	tc := n.tasks.running[k]
	delete(n.tasks.running, k)
	n.tasks.mu.Unlock()
	if tc != nil {
		tc.fire()
	}
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
	// Registered here, on the reader, so that a CANCEL_TASK behind it on
	// the same stream finds it.
	k := runKey{src: m.Src, id: req.ID}
	tc := n.tasks.track(k)
	err := n.goTask(func(ctx context.Context) {
		if tc != nil {
			defer n.tasks.untrack(k, tc)
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			defer cancel(nil)
			tc.set(cancel)
		}
		if req.DeadlineNs > 0 {
			var stop context.CancelFunc
			ctx, stop = context.WithTimeoutCause(ctx, time.Duration(req.DeadlineNs), errCallerDeadline)
			defer stop()
		}
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
		n.tasks.untrack(k, tc)
		_ = n.r.ReplyError(n.b.Context(), m, fmt.Errorf("run task: %w", routing.ErrShutdown))
	}
}

// errCallerDeadline is why a task ends whose caller's deadline passed.
var errCallerDeadline = errors.New("spindle: the caller's deadline passed")

func taskFailure(kind string, err error) *wire.TaskResult {
	return &wire.TaskResult{Error: &wire.TaskError{Kind: kind, Message: err.Error()}}
}

func (n *node) runTask(ctx context.Context, req *wire.RunTask) *wire.TaskResult {
	if len(req.Exec) > 0 {
		if err := n.execAllowed(req); err != nil {
			return taskFailure("invalid_call", err)
		}
	}
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
			OutputBytes: req.Limits.OutputBytes, LogBytes: req.Limits.LogBytes,
			OutputMessages: req.Limits.OutputMessages, LogRecords: req.Limits.LogRecords,
			SendBytes: req.Limits.SendBytes, SendMessages: req.Limits.SendMessages,
			StackBytes: req.Limits.StackBytes, OpenFiles: req.Limits.OpenFiles, DiskBytes: req.Limits.DiskBytes},
		Grants: host.Grants{Clock: req.Clock, Random: req.Random, Env: req.Env, DevNull: req.DevNull},
		Pooled: req.Pooled,
	}
	if req.Stdin != nil {
		if req.Workspace != nil {
			return taskFailure("invalid_call", errors.New("a task with a workspace takes its stdin from the workspace"))
		}
		in := newStdinStream(ctx, n.r, routing.Sender{Context: req.Stdin.Context, Handle: req.Stdin.Handle})
		defer in.close()
		call.Stdin = in
	}
	var trees []string // materialized Tree mounts, removed when the call ends
	defer func() {
		for _, d := range trees {
			_ = modules.RemoveTree(d)
		}
	}()
	var collectDir string                  // the collected mount's copy, if any
	var collectSeed map[string]fs.FileInfo // its files before the run
	for _, mt := range req.Mounts {
		if mt.Collect && collectDir != "" {
			return taskFailure("invalid_call", fmt.Errorf("mount %s: a second collected mount (at most one)", mt.Guest))
		}
		hm, tree, err := n.hostMount(ctx, mt)
		if tree != "" {
			trees = append(trees, tree)
		}
		if err == nil && mt.Collect {
			collectDir = hm.HostDir
			collectSeed, err = seedFiles(collectDir)
		}
		if err != nil {
			return taskFailure("invalid_call", fmt.Errorf("mount %s: %w", mt.Guest, err))
		}
		call.Grants.Mounts = append(call.Grants.Mounts, hm)
	}
	for _, ch := range req.Channels {
		call.Grants.Channels = append(call.Grants.Channels, host.Channel{Context: ch.Context, Handle: ch.Handle})
	}
	if len(req.Exec) > 0 {
		call.Grants.Exec = hostExecGrants(req.Exec)
	}
	if req.Workspace != nil {
		if len(req.Mounts) > 0 {
			return taskFailure("invalid_call", errors.New("a task with a workspace takes no mounts"))
		}
		t0 := time.Now()
		ws, err := n.prepareWorkspace(ctx, req.Workspace, &call)
		if err != nil {
			return taskFailure("workspace", err)
		}
		t1 := time.Now()
		res := n.runCall(ctx, req, h, mod, call)
		t2 := time.Now()
		if res.Error == nil {
			tree, err := n.collect(ws, req.Workspace, res.ExitCode == 0)
			if err != nil {
				res = &wire.TaskResult{ExitCode: res.ExitCode, Command: true,
					Error: &wire.TaskError{Kind: "outputs", Message: err.Error(), ExitCode: res.ExitCode}}
			} else {
				res.OutputTree = tree
			}
		}
		n.log.Debug("workspace action", "module", req.Module[:min(12, len(req.Module))],
			"prepare", t1.Sub(t0), "run", t2.Sub(t1), "collect", time.Since(t2))
		// The directories go after the reply: nothing of them is in it.
		if n.b.Go(func(context.Context) { ws.remove() }) != nil {
			ws.remove()
		}
		return res
	}
	res := n.runCall(ctx, req, h, mod, call)
	if collectDir != "" && res.Error == nil {
		paths, err := collected(collectDir, collectSeed)
		var tree string
		if err == nil {
			tree, err = n.mods.Store().Collect(collectDir, paths, modules.CollectLimits{})
		}
		if err != nil {
			return &wire.TaskResult{ExitCode: res.ExitCode, Command: res.Command,
				Error: &wire.TaskError{Kind: "outputs", Message: "collected mount: " + err.Error(), ExitCode: res.ExitCode}}
		}
		res.OutputTree = tree
	}
	return res
}

// runCall runs call and passes its output on.
func (n *node) runCall(ctx context.Context, req *wire.RunTask, h *host.Host, mod *host.Module, call host.Call) *wire.TaskResult {
	var out *outputStream
	if req.Output != nil {
		out = &outputStream{r: n.r, dst: routing.Sender{Context: req.Output.Context, Handle: req.Output.Handle}}
		call.Output = out.write
	}
	var taskLog *slog.Logger // made at the first record: most calls log nothing
	call.Log = func(level slog.Level, msg string) {
		if taskLog == nil {
			taskLog = n.log.With("task", req.Task, "module", req.Module[:min(12, len(req.Module))])
		}
		taskLog.Log(ctx, level, msg)
	}
	call.Send = func(ctx context.Context, ch host.Channel, raw bool, data []byte) error {
		enc := wire.EncMsgpack
		if raw {
			enc = wire.EncRaw
		}
		return n.r.SendTo(ctx, routing.Sender{Context: ch.Context, Handle: ch.Handle}, enc, data)
	}
	res, err := h.Run(ctx, mod, call)
	if out != nil {
		// Every chunk is acknowledged before the reply, so the caller has
		// written all of them when it gets it.
		dctx, cancel := context.WithTimeout(ctx, host.ExitFlushTimeout)
		derr := out.drain(dctx)
		cancel()
		if derr != nil && err == nil {
			return taskFailure(string(host.KindCancelled), fmt.Errorf("output not delivered: %w", derr))
		}
	}
	if err != nil {
		var te *host.TaskError
		if errors.As(err, &te) {
			return &wire.TaskResult{Error: &wire.TaskError{Kind: string(te.Kind), Message: te.Message, ExitCode: te.ExitCode}}
		}
		if errors.Is(err, host.ErrInvalidCall) {
			return taskFailure("invalid_call", err)
		}
		return taskFailure(string(host.KindCancelled), err) // the host closed under the call
	}
	return &wire.TaskResult{Output: res.Output, ExitCode: res.ExitCode, Command: mod.Kind() == host.Command}
}

// outputStream passes a task's coalesced stdout and stderr (host.Call.Output)
// to the caller's output handle, one OutputChunk call each, with at most
// outputWindow of them unacknowledged. The host serializes its calls, and
// drain comes after Run: it needs no lock.
type outputStream struct {
	r        *routing.Router
	dst      routing.Sender
	inflight []*routing.Pending
}

func (o *outputStream) write(ctx context.Context, stream int, p []byte) error {
	body, err := msgpack.Marshal(&wire.OutputChunk{Stream: stream, Data: p})
	if err != nil {
		return err
	}
	if len(o.inflight) >= outputWindow {
		if err := o.waitOldest(ctx); err != nil {
			return err
		}
	}
	pd, err := o.r.CallAsync(ctx, o.dst.Context, o.dst.Handle, wire.EncMsgpack, body)
	if err != nil {
		o.abandon()
		return err
	}
	o.inflight = append(o.inflight, pd)
	return nil
}

func (o *outputStream) waitOldest(ctx context.Context) error {
	pd := o.inflight[0]
	o.inflight = o.inflight[1:]
	if _, err := pd.Wait(ctx); err != nil {
		o.abandon()
		return err
	}
	return nil
}

// drain waits for every chunk's acknowledgement.
func (o *outputStream) drain(ctx context.Context) error {
	for len(o.inflight) > 0 {
		if err := o.waitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// abandon gives up on the chunks in flight.
func (o *outputStream) abandon() {
	for _, pd := range o.inflight {
		pd.Cancel()
	}
	o.inflight = nil
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
