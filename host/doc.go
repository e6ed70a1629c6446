// Package host runs Spindle tasks as WebAssembly: it is the host side of
// docs/abi.md, on one wazero runtime per Host.
//
// A Host compiles each module once per hash (Compile, Lookup) and runs
// calls on it (Run):
//
//	h, err := host.New(ctx, host.Config{CacheDir: dir})
//	...
//	m, err := h.Compile(ctx, hash, wasm)
//	res, err := h.Run(ctx, m, host.Call{Task: "greet", Input: in})
//	var te *host.TaskError
//	if errors.As(err, &te) { ... te.Kind ... }
//
// Before compiling, every module is checked and rewritten (guard.go); with
// a CacheDir, the rewritten module is kept there too (guardcache.go), so a
// module compiled once on the machine costs a new Host a read and a hash
// before wazero's compilation cache, in the same directory, finds its code.
//
// Each call runs on an instance of its own: a fresh one by default, created
// for the call with the call's grants and closed after it, or with
// Call.Pooled a warm reactor instance that is kept for later calls if the
// call succeeds. An instance whose call failed is closed, never reused.
//
// # Snapshots
//
// A fresh reactor instance whose initialization cannot see its call (no
// mounts, /dev, environment or stdin; the fake clock and random source;
// every pooled instance) starts from a snapshot of the first such
// instance's memory and globals, taken right after its _initialize, and
// does not run _initialize again: for a Go guest that halves a fresh
// instance's start. The restored instance is the one its own _initialize
// would have made, down to the clock readings and random bytes it goes on
// to see; an initialization that calls a spindle host function, writes to
// stdout or stderr, changes a descriptor, has a memory grow refused, or
// fails is never captured, and neither is a module whose code changes a
// table or a segment or that has a reference-typed mutable global; a call
// with a smaller stack budget or memory limit than the snapshot needs
// initializes itself (snapshot.go has the whole argument). Config.NoSnapshots
// turns them off; Stats.Restored counts their use.
//
// The sandbox is the one docs/abi.md describes: a guest gets its memory and
// the spindle host functions, and only what Call.Grants adds (mounts
// through package rootfs, /dev/null, real clocks, real random bytes,
// environment, channels). Limits bound each call's wall time, memory, output and logs;
// the memory limit is enforced per call by the allocator of the instance's
// linear memory. The package imports nothing else of this module: the
// caller passes callbacks (Call.Log, Call.Send) for what a guest asks of
// the rest of the system.
//
// # Output
//
// A guest's stdout and stderr writes (often a byte each) are coalesced: each
// stream is buffered and passed on (Call.Output, or Call.Stdout and
// Call.Stderr) in pieces of at most OutputChunkBytes (32 KiB), once a
// stream holds that much, once a byte has waited OutputFlushInterval
// (20 ms), and as the call ends (bounded by ExitFlushTimeout, 5 s, and by
// the ctx of Run). Their relative order is kept within a flush only.
//
// The message of a call that traps, runs out of memory or exits keeps what
// its stderr says of why (stderr.go), on one line: for a Go guest the
// first lines of the runtime's crash report ("runtime: out of memory:
// ...", "fatal error: ...", "panic: ...") and the top frames of the first
// stack, without the goroutine dumps after it; for other guests the first
// 3 and the last 5 lines. At most 10 lines, 2 KiB, 256 bytes a line, then
// how many lines were left out; the host keeps no more than that and the
// line being written (at most 1 KiB) however much is written. The whole of
// stderr still goes to Call.Output or Call.Stderr.
//
// # Files
//
// A reactor call without mounts or DevNull has no file system: every path
// operation fails with EBADF, as no preopened directory holds it. A command
// always has one, and a call with any grant of files: the guest sees its mounts (package rootfs: nothing outside each
// directory), /dev with null alone if Grants.DevNull, and, unless a mount
// is at "/", an empty read-only directory there (rootfs.NewEmpty): a path
// outside every mount is ENOENT (fs.ErrNotExist in a Go guest) and making
// one is EROFS (ENOENT below a missing directory). That root lists
// nothing, not even the mount points, and the parents of a mount at /a/b
// are not there. All of a call's mounts, the virtual directories included,
// share one bound of open files (Limits.OpenFiles) and the writable ones
// one disk budget (Limits.DiskBytes); a write or create past the budget
// fails with ENOSPC (see wasi.go for how: wazero's errnos have none) and
// the call goes on. Writes to /dev/null spend nothing.
//
// Stdin (Call.Stdin) is read as a plain reader, an *os.File too. A guest
// that reads it runs inside a host call, which wazero cannot interrupt:
// when the call's ctx ends (timeout, cancel, Close), the guest stops only
// once the read returns. So if Stdin has SetReadDeadline (an *os.File of a
// pipe or FIFO, a net.Conn), the host sets its read deadline in the past
// at that moment, which ends the read, and clears it once the guest has
// stopped; a regular file's reads never wait. Any other reader that
// blocks, an io.Pipe or a terminal's os.Stdin, holds its call, past its
// timeout, until its Read returns (TestStdinBlocked).
//
// # Bounds
//
// What one call may cost, each a Limits field (a zero field takes the
// Host's Config.Limits, and a zero there the package default):
//
//   - Timeout: 30 s of wall time (DefaultTimeout); the ctx of Run ends it
//     sooner (kind cancelled).
//   - MemoryPages: 4096 pages = 256 MiB of linear memory.
//   - OutputBytes: 16 MiB of output_write, and separately 16 MiB of stdout
//     and stderr together (kind output_limit).
//   - OutputMessages: 10,000 pieces of stdout and stderr passed on (kind
//     output_limit); coalescing keeps an honest call far below it (16 MiB
//     is 512 pieces, plus at most two per 20 ms for trickled output).
//   - LogBytes and LogRecords: 1 MiB and 8192 records; each record costs
//     its message plus LogRecordCost (128) bytes, so empty messages spend
//     the budget too. Past either, log returns ERR_LIMIT and the host logs
//     one notice; the call goes on.
//   - SendBytes and SendMessages: 16 MiB and 65,536 channel sends. The send
//     past either gets ERR_LIMIT, is not copied, and ends the call (kind
//     output_limit). An encoded channel longer than 64 bytes is refused
//     undecoded (ERR_INVALID).
//   - StackBytes: 32 MiB of estimated call frames, never more than the
//     memory limit (kind stack_overflow; see guard.go).
//   - OpenFiles: 256 files open at once across all the call's mounts, the
//     preopened directories and the virtual / and /dev included; an open
//     past it fails with EAGAIN (WASI as wazero passes it has no EMFILE).
//     Opening a FIFO, socket or device in a mount fails at once with
//     ENOTSUP, never blocks (package rootfs).
//   - DiskBytes: 1 GiB written into the call's writable mounts together,
//     counted conservatively (every byte written, overwrites, holes and
//     truncate growth included, and 4 KiB for each file, directory or
//     link made; nothing given back: rootfs.Disk). A write that only
//     partly fits is short, the next fails with ENOSPC; the call goes on.
//
// Every bound is a documented field with a default; a guest or a module
// past one gets a *TaskError, and the Host and its other calls go on.
//
// Per module (Config.Modules, ModuleLimits), checked before compiling
// (guard.go); past one, Compile returns kind invalid_module at once:
// Bytes 256 MiB, Functions 1<<20 (imported and defined together, and
// separately the exports), FunctionBytes 8 MiB, Locals 50,000 per
// function, FunctionBlocks 100,000 control instructions per function (a
// loop counts twice), CompileWork 8e9 (the sum of the functions' control
// instructions squared; both set by the largest toolbox tool, actionlint
// v1.7.12, whose largest function has 76,377 and whose sum is 5.9e9),
// Globals 100,000, TableElements 1<<20 for all tables together
// (and TableElements+Functions entries for all element segments). Every
// vector a module declares must be held by its bytes: wazero's decoder
// allocates a vector at its declared length before reading it, so a
// 22-byte module declaring 2^31 local names killed the process (Go's
// fatal out of memory) until guard checked them (TestHostileDeclaredCounts).
// At the count bounds, what wazero holds while decoding is still a
// multiple of the module's bytes: 1<<20 exports (8 MiB) add 270 MiB of
// RSS, 1<<20 imports 310 MiB, 2<<20 element entries (2 MiB) 128 MiB.
// A module that names a function or global index past the ones it
// declares (in code, constant expressions, exports, the start section or
// element segments), exports the name "spindle$stack" or "spindle$stop", or repeats a
// section is refused the same way: guard's rewrite makes such indexes
// valid (the moved bodies, the stack counter), so it checks them itself
// before rewriting (guard.go).
// The Go compiler built for wasip1 (49 MB, 19,930 functions, at most
// 26,168 control instructions in one function, work 3.2e9) passes them;
// the example Go guests use about 1% of them.
//
// What a hostile guest can still cost, measured on amd64 with the test
// binary's peak RSS (VmHWM, logged by go test -v -run NAME ./host/, each
// test run alone):
//   - Tables: table.grow of 0xFFFFFFF0 returns -1 (a table that declares
//     no maximum cannot grow); filling a table at its bound, 1<<20
//     elements, costs 8 MiB (peak RSS 39 MiB for the whole test), and is
//     charged 15 MiB (16 bytes an element past the first 1 MiB) against
//     the memory limit, so a 1 MiB call with such a table is refused.
//   - Call stack: the counter bounds the estimated frames of a call to
//     StackBytes; 8 concurrent unbounded recursions at the default limit
//     peak at 196 MiB RSS together (about 25 MiB each), 18 MiB at a
//     1 MiB limit (-run TestHostileRecursion alone). The estimate (frameBytes: 128 bytes plus 16 a
//     parameter or local) does not see values left on the operand stack
//     across a call, so a guest that spills many of them per frame can
//     reach more, up to wazero's own ceiling (about 100 MiB a call).
//     Counting costs every guest call one extra call and two global
//     updates. A module cannot reach past the counter: one that calls a
//     moved body directly (call 1 in a one-function module) or sets the
//     counter (global.set 0 of 0x7fffffff, then recursion) is refused at
//     Compile; before that check, each run at a 1 MiB limit reached
//     wazero's own stack overflow at 177 MiB and 314 MiB peak RSS for one
//     call (TestHostileIndexes logs the peak, about 10 MiB now).
//   - Compile: a module within the bounds can still take long: one
//     function of 40,000 loops (just within) passes a minute of one
//     core, 60,000 nested blocks take about 40 s, and wazero
//     cannot stop inside a function. Compile returns at its caller's
//     deadline whatever happens, wazero stops between functions, and at
//     most maxCompiles (2) compiles run at once.
//
// # Concurrency
//
// Host and Module are safe for concurrent use; any number of Run calls may
// run at once, each on its own instance. A guest runs on the goroutine that
// called Run, and so do the callbacks it triggers: Call.Log and Call.Send.
// Call.Output (or the writes to Call.Stdout and Call.Stderr) is called
// from Run's goroutine or a timer's, one call at a time, never after Run
// returns. A running guest stops within a bounded number of loop
// iterations and calls once the call's ctx ends, and leaves its code for
// the host at least every tickFuel of them, so neither a looping guest nor
// a GC waiting on one holds the process (see Termination below); a callback that blocks, or a Call.Stdin read, does
// hold its call until it returns (Call.Output is given a ctx that ends
// with the call for that reason, and a Stdin with a read deadline has it
// set when the call ends: see Files).
//
// The Host's locks (Host.mu, each Module's pool, the pool of memory
// buffers) are never held together, nor while a guest runs.
//
// # Termination
//
// Go cannot preempt a goroutine running wasm compiled code: a guest that
// never leaves its code would hold its call past every deadline and, at
// the next stop-the-world of the GC, the whole process. wazero's own
// remedy, WithCloseOnContextDone, leaves the guest for Go at every loop
// header, about 33 ns each; Go's wasm backend puts a loop at the head of
// most functions, so that made Go guests' code about 3x slower (a warm
// call of the hello example: 56 -> 18 µs without it; docs/RATIONALE.md).
// The Host does without it. guard (guard.go) inserts a tick at every
// function's entry and at the head of every loop iteration (once for a
// body whose entry runs straight into a loop, as Go's do): an inline
// decrement of a fuel global which, every tickFuel (1000) ticks, leaves
// the guest for the host through memory.grow(0), a point where the Go
// runtime can stop the goroutine, and traps if the stop global is set.
// A call sets the stop flag from a watcher on its ctx (context.AfterFunc)
// and waits for the watcher before it returns. So a guest stops within
// tickFuel ticks of its ctx ending (kind timeout or cancelled, as
// before), and the longest stretch of guest code with no exit is tickFuel
// straight-line runs between two ticks (one function body or loop body
// each, at most ModuleLimits.FunctionBytes), where wazero's checks, on
// loop headers only, left calls of functions without loops unchecked. A
// module without a memory is given an empty one for memory.grow, so that
// it is refused, as before, for not exporting one.
//
// # Lifecycle
//
// New creates the Host; Close ends it. Close makes later Compile and Run
// calls fail with ErrClosed and ends running calls (kind cancelled). Once
// the last of them has returned, it closes the warm instances, every
// compiled module and the runtime; a guest must not run on code or memory
// that wazero has freed, so this never happens while a call is in progress.
// A Module lives as long as its Host. Run closes each instance it does not
// keep, and the mounts it opened for it, before it returns.
package host
