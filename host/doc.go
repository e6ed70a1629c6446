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
// Each call runs on an instance of its own: a fresh one by default, created
// for the call with the call's grants and closed after it, or with
// Call.Pooled a warm reactor instance that is kept for later calls if the
// call succeeds. An instance whose call failed is closed, never reused.
//
// The sandbox is the one docs/abi.md describes: a guest gets its memory and
// the spindle host functions, and only what Call.Grants adds (mounts
// through package rootfs, real clocks, real random bytes, environment,
// channels). Limits bound each call's wall time, memory, output and logs;
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
//
// # Concurrency
//
// Host and Module are safe for concurrent use; any number of Run calls may
// run at once, each on its own instance. A guest runs on the goroutine that
// called Run, and so do the callbacks it triggers: Call.Log and Call.Send.
// Call.Output (or the writes to Call.Stdout and Call.Stderr) is called
// from Run's goroutine or a timer's, one call at a time, never after Run
// returns. wazero stops a running guest at
// its next loop iteration or call once the call's ctx ends
// (WithCloseOnContextDone), so neither a looping guest nor a GC waiting on
// one holds the process; a callback that blocks, or a Call.Stdin read, does
// hold its call until it returns (Call.Output is given a ctx that ends
// with the call for that reason).
//
// The Host's locks (Host.mu, each Module's pool, the pool of memory
// buffers) are never held together, nor while a guest runs.
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
