package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spindle-hq/spindle/host/internal/rootfs"
)

// Limits bounds one call. A zero field takes the Host's default
// (Config.Limits), and a zero field there the package default.
type Limits struct {
	// Timeout is the call's wall time, instantiation included (default
	// 30s).
	Timeout time.Duration
	// MemoryPages caps the guest's linear memory in 64 KiB pages (default
	// 4096 = 256 MiB; at most 65536).
	MemoryPages uint32
	// OutputBytes caps the output written with output_write, and
	// separately the sum of the stdout and stderr bytes passed to the
	// call's writers (default 16 MiB).
	OutputBytes int64
	// OutputMessages caps the messages the coalesced stdout and stderr
	// are passed on in: the calls of Call.Output, or of the writers'
	// Write (default 10,000; see "Output" in the package doc).
	OutputMessages int64
	// LogBytes is the budget of the guest's log messages (default 1 MiB).
	// Each record costs its message's bytes plus LogRecordCost, so that
	// empty messages spend it too.
	LogBytes int64
	// StackBytes caps the guest's call stack, as the sum of the frame
	// estimates of the calls in progress (see guard.go), and never more
	// than the memory limit (default 32 MiB). Passing it traps with kind
	// stack_overflow.
	StackBytes int64
	// OpenFiles caps the files the guest holds open at once in its
	// mounts, all mounts together (default 256). An open past it fails
	// with EAGAIN (WASI as wazero passes it has no EMFILE).
	OpenFiles int
	// DiskBytes is what the guest may write into its writable mounts, all
	// mounts together (default 1 GiB), counted conservatively: every byte
	// written, overwrites included, the holes and growth of files, and
	// rootfs.EntryBytes (4 KiB) for each file, directory or link made;
	// nothing is given back. A write that only partly fits is short; past
	// it, writes and creates fail with ENOSPC and the call goes on.
	DiskBytes int64
	// LogRecords caps the number of log records (default 8192).
	LogRecords int64
	// SendBytes caps the bytes of all the call's channel sends (default
	// 16 MiB), SendMessages their number (default 65,536).
	SendBytes    int64
	SendMessages int64
}

// The package defaults of Limits.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMemoryPages = 4096
	DefaultOutputBytes = 16 << 20
	DefaultLogBytes    = 1 << 20
	DefaultOpenFiles   = 256
	DefaultStackBytes  = 32 << 20
	DefaultDiskBytes   = 1 << 30

	DefaultOutputMessages = 10_000
	DefaultLogRecords     = 8192
	DefaultSendBytes      = 16 << 20
	DefaultSendMessages   = 65_536

	// LogRecordCost is what each log record costs of Limits.LogBytes on
	// top of its message: about what the record's time, level and
	// attributes cost the master that keeps it.
	LogRecordCost = 128
)

// orDefault sets *v to d when it is zero or negative: a limit not given.
func orDefault[T int | int64 | uint32 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// or returns l with its zero fields taken from d.
func (l Limits) or(d Limits) Limits {
	orDefault(&l.Timeout, d.Timeout)
	orDefault(&l.MemoryPages, d.MemoryPages)
	orDefault(&l.OutputBytes, d.OutputBytes)
	orDefault(&l.OutputMessages, d.OutputMessages)
	orDefault(&l.LogBytes, d.LogBytes)
	orDefault(&l.LogRecords, d.LogRecords)
	orDefault(&l.SendBytes, d.SendBytes)
	orDefault(&l.SendMessages, d.SendMessages)
	orDefault(&l.StackBytes, d.StackBytes)
	orDefault(&l.OpenFiles, d.OpenFiles)
	orDefault(&l.DiskBytes, d.DiskBytes)
	l.MemoryPages = min(l.MemoryPages, maxPages)
	return l
}

var defaultLimits = Limits{
	Timeout:        DefaultTimeout,
	MemoryPages:    DefaultMemoryPages,
	OutputBytes:    DefaultOutputBytes,
	OutputMessages: DefaultOutputMessages,
	LogBytes:       DefaultLogBytes,
	LogRecords:     DefaultLogRecords,
	SendBytes:      DefaultSendBytes,
	SendMessages:   DefaultSendMessages,
	OpenFiles:      DefaultOpenFiles,
	StackBytes:     DefaultStackBytes,
	DiskBytes:      DefaultDiskBytes,
}

// memoryBytes is the memory limit in bytes.
func (l Limits) memoryBytes() uint64 { return uint64(l.MemoryPages) * pageSize }

// stackBudget is the counter a call starts with: StackBytes, at most the
// memory limit and what an i32 holds.
func (l Limits) stackBudget() int32 {
	return int32(min(l.StackBytes, int64(l.MemoryPages)*pageSize, 1<<31-1))
}

// ModuleLimits bounds the modules a Host compiles: their structure, so that
// compiling one takes bounded time and memory, and what wazero does not
// count against a call's limits (see guard.go). A module past a bound is a
// *TaskError of kind invalid_module. A zero field takes the default.
//
// The defaults pass every guest Go, TinyGo and C toolchains produced in the
// tests, the Go compiler itself built for wasip1 included (see doc.go).
type ModuleLimits struct {
	// Bytes caps the module's size (default 256 MiB).
	Bytes int64
	// Functions caps the functions, imported and defined together, and
	// separately the exports (default 1<<20): wazero holds a few hundred
	// bytes for each, however few bytes of the module name it.
	Functions int64
	// FunctionBytes caps one function body (default 8 MiB).
	FunctionBytes int64
	// Locals caps one function's locals (default 50,000); wazero
	// allocates them while it compiles, 4 billion if asked.
	Locals int64
	// FunctionBlocks caps one function's control instructions (block,
	// if, else, br_if, br_table targets; a loop counts twice; default
	// 100,000).
	FunctionBlocks int64
	// CompileWork caps the sum over functions of their control
	// instructions squared, which is what wazero's compile time grows
	// with (default 8e9). Measured on one core: 60,000 nested blocks
	// (3.6e9) compile in about 40 s, 20,000 loops (1.6e9) in 11 s, and
	// actionlint, the toolbox's largest tool (5.9e9), in 12 s all told.
	CompileWork int64
	// Globals caps the module's globals (default 100,000).
	Globals int64
	// TableElements caps the elements of all the module's tables
	// together, what table.grow can reach included (default 1<<20).
	// Each element is charged 16 bytes against a call's memory limit.
	// The entries of all element segments together are capped at
	// TableElements+Functions (a table's worth, and each function once
	// more for ref.func declarations): wazero holds some 60 bytes for
	// each entry, which the module writes in one byte.
	TableElements int64
}

// The defaults of ModuleLimits.
const (
	DefaultModuleBytes    = 256 << 20
	DefaultFunctions      = 1 << 20
	DefaultFunctionBytes  = 8 << 20
	DefaultLocals         = 50_000
	DefaultFunctionBlocks = 100_000
	DefaultCompileWork    = 8_000_000_000
	DefaultGlobals        = 100_000
	DefaultTableElements  = 1 << 20
)

func (l ModuleLimits) orDefaults() ModuleLimits {
	orDefault(&l.Bytes, DefaultModuleBytes)
	orDefault(&l.Functions, DefaultFunctions)
	orDefault(&l.FunctionBytes, DefaultFunctionBytes)
	orDefault(&l.Locals, DefaultLocals)
	orDefault(&l.FunctionBlocks, DefaultFunctionBlocks)
	orDefault(&l.CompileWork, DefaultCompileWork)
	orDefault(&l.Globals, DefaultGlobals)
	orDefault(&l.TableElements, DefaultTableElements)
	return l
}

// Mount grants the guest a host directory at GuestDir. Paths are resolved
// inside HostDir with os.Root (package host/internal/rootfs), so neither
// ".." nor a symlink reaches outside it.
type Mount struct {
	HostDir  string
	GuestDir string // absolute, e.g. "/data"
	ReadOnly bool
	// Made grants what the files, directories and symlinks the guest
	// makes in a writable mount get: an exact mode, an owner (WASI
	// preview 1 has no mode argument and no chown). The zero value: 0o644
	// and 0o755 less the umask, owned by the host process's user.
	Made Made
}

// Made is what a mount's new entries get; see Mount.Made.
type Made = rootfs.Made

// Channel names a channel a guest may send to: the sender of docs/abi.md
// `send`, decoded from msgpack.
type Channel struct {
	Context uint32 `msgpack:"ctx"`
	Handle  uint32 `msgpack:"handle"`
}

// Grants are what a call may use beyond its memory and the spindle
// functions. The zero value grants nothing: no files, fake clocks,
// deterministic random bytes, an empty environment, no channels.
//
// A call with any mount or DevNull also sees an empty read-only directory
// at "/" (unless a mount is there), so that a path outside every mount is
// not there (ENOENT) and cannot be made (EROFS).
type Grants struct {
	Mounts []Mount
	// DevNull mounts a directory /dev that holds null alone: writes to it
	// succeed and are dropped (they spend no Limits.DiskBytes), reads give
	// EOF. No host file is involved. A mount at /dev is then refused.
	DevNull bool
	// Clock grants the host's real wall and monotonic clocks and real
	// sleeps (which end when the call does).
	Clock bool
	// Random grants crypto/rand.
	Random bool
	// Env is the guest's whole environment.
	Env map[string]string
	// Channels are the channels the guest may send to.
	Channels []Channel
	// Exec are the host programs the guest may run with exec (see
	// ExecGrant and docs/abi.md); none by default.
	Exec []ExecGrant
}

// empty reports whether g grants nothing.
func (g *Grants) empty() bool {
	return len(g.Mounts) == 0 && !g.DevNull && !g.Clock && !g.Random && len(g.Env) == 0 && len(g.Channels) == 0 && len(g.Exec) == 0
}

// Call describes one run of a module.
type Call struct {
	// Task names the reactor export to call (docs/abi.md, "Calling a
	// task"); for a command it is argv[0] (default "main").
	Task string
	// Input is the reactor's input bytes.
	Input []byte

	// Args are the command's arguments, after argv[0].
	Args []string
	// Stdin is the guest's standard input (default empty), read as it is
	// consumed. wazero cannot stop a guest inside a read, so a read that
	// blocks holds the call, past its timeout, until it returns. If Stdin
	// has SetReadDeadline (an *os.File of a pipe or FIFO, a net.Conn), the
	// host sets its read deadline in the past when the call's ctx ends,
	// which ends the read, and clears it before Run returns; a regular
	// file's reads never block. Any other reader that may block (an
	// io.Pipe, a terminal) must be made to return by the caller when the
	// call is to end, at the ctx of Run or Limits.Timeout: by closing it
	// then, for example. Pooled calls have no stdin.
	Stdin io.Reader
	// Stdout and Stderr receive the guest's standard output and error,
	// coalesced (see "Output" in the package doc); nil discards them.
	// Their sum is limited by Limits.OutputBytes, the number of writes by
	// Limits.OutputMessages (kind output_limit). The writes are
	// serialized, and all of them return before Run does, but they may
	// come from a goroutine of the host as well as from Run's.
	Stdout, Stderr io.Writer
	// Output, if set, takes the place of Stdout and Stderr: it receives
	// each coalesced piece of stdout (stream 1) or stderr (stream 2), in
	// the same way, with a ctx that ends when the call does (and, for the
	// last pieces, flushed as the call ends, when the ctx of Run ends or
	// after ExitFlushTimeout). It must return once ctx is done: a guest
	// writing waits for it. An error ends the call (kind cancelled). p is
	// Output's only during the call.
	Output func(ctx context.Context, stream int, p []byte) error

	Limits Limits
	Grants Grants

	// Pooled runs the call on one of the module's warm instances, and
	// keeps the instance for later calls if the call succeeds (up to
	// GOMAXPROCS idle instances per module). Only for reactors, and only
	// for calls whose Grants are empty. A warm instance keeps what earlier
	// calls left in its memory: pool only tasks that may share it.
	Pooled bool

	// Log receives the guest's log messages. If nil, they go to the
	// Host's Logger.
	Log func(level slog.Level, msg string)
	// Send delivers what the guest sends to a channel in Grants.Channels
	// (docs/abi.md `send`); raw reports flags bit 0. It is called on the
	// goroutine that called Run, with the call's ctx, and data is the
	// callee's to keep. If nil, sends fail with ERR_FAILED. The sends of
	// a call are bounded by Limits.SendBytes and Limits.SendMessages: one
	// past either gets ERR_LIMIT and the call fails with kind
	// output_limit.
	Send func(ctx context.Context, ch Channel, raw bool, data []byte) error
}

// check returns an error wrapping ErrInvalidCall if c cannot run on m.
func (c *Call) check(m *Module) error {
	if c.Pooled && m.kind != Reactor {
		return fmt.Errorf("%w: pooled call of a %v", ErrInvalidCall, m.kind)
	}
	if c.Pooled && !c.Grants.empty() {
		return fmt.Errorf("%w: pooled call with grants", ErrInvalidCall)
	}
	for k, v := range c.Grants.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: environment variable %q", ErrInvalidCall, k)
		}
	}
	for _, a := range c.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%w: argument %q holds NUL", ErrInvalidCall, a)
		}
	}
	if err := checkExec(c.Grants.Exec); err != nil {
		return err
	}
	for _, mt := range c.Grants.Mounts {
		if !path.IsAbs(mt.GuestDir) || path.Clean(mt.GuestDir) != mt.GuestDir {
			return fmt.Errorf("%w: mount guest directory %q is not a clean absolute path", ErrInvalidCall, mt.GuestDir)
		}
		if c.Grants.DevNull && mt.GuestDir == devDir {
			return fmt.Errorf("%w: a mount at %s and DevNull", ErrInvalidCall, devDir)
		}
	}
	return nil
}

func wrapInvalid(err error) error { return fmt.Errorf("%w: %w", ErrInvalidCall, err) }

// Result is the outcome of a call that did not fail.
type Result struct {
	// Output is what a reactor wrote with output_write.
	Output []byte
	// ExitCode is a command's exit code; 0 for reactors.
	ExitCode int
}

var (
	// errTimeout is the cause of a call ctx whose Limits.Timeout passed.
	errTimeout = errors.New("host: call timed out")
	// errOutputLimit is the cause of a call ctx ended because stdout and
	// stderr passed their limit.
	errOutputLimit = errors.New("host: output limit")
	// errOutputFailed is the cause of a call ctx ended because
	// Call.Output (or a writer) failed.
	errOutputFailed = errors.New("host: output not delivered")
)

// callState is what the host functions and the stdio writers know of the
// call they serve. It is owned by the goroutine running the call: the guest
// runs on it, and so do its host functions and stdio writes.
type callState struct {
	host   *Host
	module *Module
	limits Limits
	task   string
	input  []byte
	cancel context.CancelFunc // ends the call; use stop
	// stopped is why the host ended the call, if it did: ErrClosed or
	// errOutputLimit. Set from any goroutine.
	stopped atomic.Pointer[error]
	// prev and next link the calls in progress; guarded by Host.mu.
	prev, next *callState

	output         []byte
	outputOverflow bool
	errMsg         string
	errSet         bool

	logUsed    int64
	logRecords int64
	logSpent   bool
	logFn      func(level slog.Level, msg string)

	send         func(ctx context.Context, ch Channel, raw bool, data []byte) error
	channels     []Channel
	sendBytes    int64
	sendMessages int64
	sendOverflow bool

	execGrants []ExecGrant // Grants.Exec
	execRuns   int         // exec calls so far, at most MaxExecRuns

	out    *outputBuffer // nil when stdout and stderr are discarded
	stderr stderrLog     // what stderr says of a crash, for the message

	// disk is the budget of the call's writable mounts (nil without
	// mounts); the WASI listeners read its refusals (wasi.go).
	disk *rootfs.Disk

	// fds is the descriptor table of the instance the call runs on
	// (fdtable.go); sleep and walltime are the call's clock when it has
	// Grants.Clock, else nil (the fake clock): for the WASI functions this
	// module implements itself (wasip1.go).
	fds      *fdTable
	sleep    func(ns int64)
	walltime func() int64

	// hostCalls counts what a snapshot of the guest's initialization
	// could not repeat (snapshot.go): its calls of spindle host
	// functions, its writes to stdout and stderr, and its calls of the
	// WASI descriptor functions other than the inert ones (inertWASI).
	// Only the guest's goroutine touches it.
	hostCalls int64
}

type stateKey struct{}

// stateFrom returns the state of the call a host function serves, or nil
// if the guest runs outside a call.
func stateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(stateKey{}).(*callState)
	return st
}

// stop ends the call for cause. It is safe from any goroutine; the first
// cause wins.
func (st *callState) stop(cause error) {
	st.stopped.CompareAndSwap(nil, &cause)
	st.cancel()
}

// cause returns why ctx, the call's, ended: the host's reason if it
// stopped the call, else the ctx's cause (errTimeout, or the caller's).
func (st *callState) cause(ctx context.Context) error {
	if p := st.stopped.Load(); p != nil {
		return *p
	}
	return context.Cause(ctx)
}

func (st *callState) granted(ch Channel) bool {
	return slices.Contains(st.channels, ch)
}

func (st *callState) log(ctx context.Context, level slog.Level, msg string) {
	if st.logFn != nil {
		st.logFn(level, msg)
		return
	}
	st.host.logger.Log(ctx, level, msg, "module", st.module.hash, "task", st.task)
}

// writeStdio takes p, written by the guest to stdout or stderr, into the
// call's output buffer, within the output limit. Passing the limit ends
// the call: a guest that ignores write errors would otherwise spin until
// its timeout.
func (st *callState) writeStdio(stderr bool, p []byte) (int, error) {
	if stderr {
		st.stderr.write(p)
	}
	if st.out == nil {
		return len(p), nil
	}
	stream := streamStdout
	if stderr {
		stream = streamStderr
	}
	if err := st.out.write(stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// stdio is an instance's stdout or stderr as wazero sees it. It forwards to
// the call running on the instance, so that a pooled instance writes to
// each call's writers in turn. Owned by the goroutine using the instance.
type stdio struct {
	st     *callState // nil between calls
	stderr bool
}

func (w *stdio) Write(p []byte) (int, error) {
	if w.st == nil {
		return len(p), nil
	}
	w.st.hostCalls++
	return w.st.writeStdio(w.stderr, p)
}
