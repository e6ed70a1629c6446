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
// # Concurrency
//
// Host and Module are safe for concurrent use; any number of Run calls may
// run at once, each on its own instance. A guest runs on the goroutine that
// called Run, and so do the callbacks it triggers: Call.Log, Call.Send and
// the writes to Call.Stdout and Call.Stderr. wazero stops a running guest at
// its next loop iteration or call once the call's ctx ends
// (WithCloseOnContextDone), so neither a looping guest nor a GC waiting on
// one holds the process; a callback that blocks, or a Call.Stdin read, does
// hold its call until it returns.
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
