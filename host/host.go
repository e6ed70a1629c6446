package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// Config configures a Host. The zero value is valid: no on-disk cache, logs
// discarded, default limits.
type Config struct {
	// CacheDir is the directory of wazero's on-disk compilation cache and
	// of the guarded modules (guardcache.go), shared by Hosts (and
	// processes) that use the same directory. "" keeps compiled code in
	// memory only.
	CacheDir string
	// Logger receives the guests' log messages for calls without a Log
	// function. nil discards them.
	Logger *slog.Logger
	// Limits are the defaults for calls whose Limits fields are zero;
	// zero fields here take the package defaults (DefaultTimeout, ...).
	Limits Limits
	// Modules bounds the modules Compile accepts; zero fields take the
	// package defaults (DefaultModuleBytes, ...).
	Modules ModuleLimits
	// NoSnapshots turns off the snapshots of initialized instances
	// ("Snapshots" in the package doc): every fresh instance then runs
	// its own initialization. For measurement and debugging: a call
	// gives the same result either way, within the conditions the
	// package doc's "Snapshots" names.
	NoSnapshots bool
}

// maxCompiles is the most modules a Host compiles at once; more Compile
// calls wait (within their ctx) for a turn. A compile whose callers gave up
// finishes or stops in the background, so this also bounds the compiles
// that no one waits for.
const maxCompiles = 2

// Stats counts a Host's work since New.
type Stats struct {
	// Compiles counts the modules wazero compiled (or loaded from the
	// cache directory): one per hash, however many callers asked.
	Compiles int64
	// Instantiations counts the instances created.
	Instantiations int64
	// PoolHits counts pooled calls served by a warm instance.
	PoolHits int64
	// Restored counts the instances started from a snapshot of an
	// initialized instance instead of initializing themselves.
	Restored int64
}

// Host runs guest modules in one wazero runtime: it compiles each module
// once and runs calls on instances of it, fresh or pooled.
//
// A Host is safe for concurrent use.
type Host struct {
	rt           wazero.Runtime
	cache        wazero.CompilationCache // nil: none
	cacheDir     string                  // Config.CacheDir: also holds guarded modules (guardcache.go)
	life         context.Context         // ends when Close begins: compiles watch it
	endLife      context.CancelFunc
	moduleConfig wazero.ModuleConfig // what every instance starts from
	logger       *slog.Logger
	limits       Limits
	modLimits    ModuleLimits
	compileSem   chan struct{} // a slot per compile running
	poolSize     int
	buffers      bufferPool
	noSnapshots  bool // Config.NoSnapshots

	mu      sync.Mutex
	modules map[string]*compileEntry // guarded by mu
	closed  bool                     // guarded by mu
	active  int                      // guarded by mu; Compile and Run calls in progress
	// calls lists the Run calls in progress, for Close to stop them: an
	// intrusive list, so that a call costs no allocation here.
	calls    callList      // guarded by mu
	finished chan struct{} // closed once the runtime is closed
	closeErr error         // set before finished is closed

	compiles, instantiations, poolHits, restored atomic.Int64
	snapBytes                                    atomic.Uint64 // held by snapshots (snapshot.go)
}

// compileEntry is a module compiled, or being compiled, under one hash.
type compileEntry struct {
	done chan struct{} // closed once mod or err is set
	mod  *Module
	err  error
}

// New starts a Host: one wazero runtime with the compiler engine (where
// supported), guests stopped when their call's ctx ends (by guard's ticks:
// see Termination in the package doc), the compilation cache, WASI and the spindle
// host module. ctx is used only while New runs.
func New(ctx context.Context, cfg Config) (*Host, error) {
	rc := wazero.NewRuntimeConfig()
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("host: compilation cache %s: %w", cfg.CacheDir, err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Host, error) {
		_ = rt.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		return nil, err
	}
	// The listeners tell a guest past its disk budget ENOSPC (wasi.go).
	wasiCtx := experimental.WithFunctionListenerFactory(ctx, wasiListeners{})
	if err := instantiateWASI(wasiCtx, rt); err != nil {
		return fail(fmt.Errorf("host: instantiate WASI: %w", err))
	}
	if err := instantiateABI(ctx, rt); err != nil {
		return fail(fmt.Errorf("host: instantiate %s: %w", abiModule, err))
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{
		rt:       rt,
		cache:    cache,
		cacheDir: cfg.CacheDir,
		// Anonymous instances, so that any number coexist; start
		// functions are called by the host, which tells their
		// failures from failures to instantiate.
		moduleConfig: wazero.NewModuleConfig().WithName("").WithStartFunctions(),
		logger:       logger,
		limits:       cfg.Limits.or(defaultLimits),
		modLimits:    cfg.Modules.orDefaults(),
		compileSem:   make(chan struct{}, maxCompiles),
		poolSize:     runtime.GOMAXPROCS(0),
		noSnapshots:  cfg.NoSnapshots,
		modules:      make(map[string]*compileEntry),
		finished:     make(chan struct{}),
	}
	h.life, h.endLife = context.WithCancel(context.Background())
	return h, nil
}

// Close stops the Host: later Compile and Run calls fail with ErrClosed,
// running calls end with kind cancelled, and once they have returned the
// warm instances, compiled modules and runtime are closed. Close waits for
// that, or for ctx; if ctx ends first, Close returns its error and the last
// call to return closes the runtime. Close is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	first := !h.closed
	h.closed = true
	h.endLife() // stops compiles in progress (their callers compile no more)
	idle := first && h.active == 0
	var running []*callState
	if first {
		for st := h.calls.head; st != nil; st = st.next {
			running = append(running, st)
		}
	}
	h.mu.Unlock()
	for _, st := range running {
		st.stop(ErrClosed)
	}
	if idle {
		h.finish()
	}
	select {
	case <-h.finished:
		return h.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enter registers a Compile call, or the Run call st; the runtime is not
// closed before the matching leave.
func (h *Host) enter(st *callState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	h.active++
	if st != nil {
		h.calls.pushLocked(st)
	}
	return nil
}

func (h *Host) leave(st *callState) {
	h.mu.Lock()
	h.active--
	if st != nil {
		h.calls.removeLocked(st)
	}
	last := h.closed && h.active == 0
	h.mu.Unlock()
	if last {
		h.finish()
	}
}

// finish closes what the Host owns. It runs once, when the Host is closed
// and no call is active, so no guest is running: wazero frees an
// instance's memory and code when it is closed, and a guest still running
// on them would crash the process.
func (h *Host) finish() {
	ctx := context.Background()
	h.mu.Lock()
	modules := h.modules
	h.modules = nil
	h.mu.Unlock()
	for _, e := range modules {
		// Every compile is done: Compile calls are active until then.
		if e.mod != nil {
			e.mod.pool.close(ctx)
		}
	}
	err := h.rt.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	h.closeErr = err
	close(h.finished)
}

// Stats returns the Host's counters.
func (h *Host) Stats() Stats {
	return Stats{
		Compiles:       h.compiles.Load(),
		Instantiations: h.instantiations.Load(),
		PoolHits:       h.poolHits.Load(),
		Restored:       h.restored.Load(),
	}
}

// Compile compiles wasm, the module known as hash, or returns the Module
// already compiled under hash (wasm is then not read). Concurrent calls for
// one hash compile it once. The caller vouches that hash names wasm: the
// Host does not check. A module that does not compile, or does not follow
// docs/abi.md, is a *TaskError of kind invalid_module, and is not cached.
//
// A module is first checked against Config.Modules (see guard.go) and
// rewritten so that its tables and call stack are bounded; one past a bound
// is a *TaskError of kind invalid_module. Compiling then uses GOMAXPROCS
// workers, at most maxCompiles modules at once. Every caller, the one that
// started the compile included, returns when its ctx ends, with its error;
// wazero stops the compile between two functions once the starting
// caller's ctx has ended (the guard's bounds cap the work of one
// function), and a later Compile of the hash starts again. Before
// compiling, the module's data segments are merged where that keeps its
// initial memory (see datasegments.go): it makes instantiating a Go guest
// about 2.5 ms faster.
func (h *Host) Compile(ctx context.Context, hash string, wasm []byte) (*Module, error) {
	for {
		mod, err, retry := h.compileOnce(ctx, hash, wasm)
		if !retry || ctx.Err() != nil {
			return mod, err
		}
	}
}

// errCompileStopped is the error of a compile stopped because the caller
// that started it gave up; a caller that waited for it compiles again.
var errCompileStopped = errors.New("host: compile stopped")

func (h *Host) compileOnce(ctx context.Context, hash string, wasm []byte) (mod *Module, err error, retry bool) {
	if err := h.enter(nil); err != nil {
		return nil, err, false
	}
	h.mu.Lock()
	e, ok := h.modules[hash]
	if !ok {
		e = &compileEntry{done: make(chan struct{})}
		h.modules[hash] = e
	}
	h.mu.Unlock()
	if ok {
		defer h.leave(nil)
		select {
		case <-e.done:
			return e.mod, e.err, errors.Is(e.err, errCompileStopped)
		case <-ctx.Done():
			return nil, ctx.Err(), false
		}
	}
	// The compile runs on a goroutine of its own, which owns the enter
	// above: Close waits for it.
	go func() {
		defer h.leave(nil)
		// The compile ends when its starter gives up or the Host closes.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(h.life, cancel)()
		e.mod, e.err = h.compile(cctx, hash, wasm)
		if e.err != nil {
			h.mu.Lock()
			delete(h.modules, hash)
			h.mu.Unlock()
		}
		close(e.done)
	}()
	select {
	case <-e.done:
		return e.mod, e.err, false
	case <-ctx.Done():
		return nil, ctx.Err(), false
	}
}

func (h *Host) compile(ctx context.Context, hash string, wasm []byte) (*Module, error) {
	invalid := func(err error) error {
		return &TaskError{Kind: KindInvalidModule, Message: fmt.Sprintf("module %s: %v", hash, err)}
	}
	// The slot bounds guarding too: it holds copies of the module.
	select {
	case h.compileSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errCompileStopped, ctx.Err())
	}
	defer func() { <-h.compileSem }()
	g, err := guardCached(h.cacheDir, wasm, h.modLimits, h.limits.stackBudget())
	if err != nil {
		return nil, invalid(err)
	}
	h.compiles.Add(1)
	cctx := experimental.WithCompilationWorkers(ctx, max(2, runtime.GOMAXPROCS(0)))
	compiled, err := h.rt.CompileModule(cctx, g.wasm)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", errCompileStopped, ctx.Err())
		}
		return nil, invalid(err)
	}
	m := &Module{host: h, hash: hash, tableBytes: g.tableBytes, counted: g.counted}
	if err := m.inspect(compiled); err != nil {
		_ = compiled.Close(ctx)
		return nil, invalid(err)
	}
	return m, nil
}

// callList is a doubly linked list of calls, linked through
// callState.prev and next. Its methods must be called with Host.mu held.
type callList struct {
	head *callState
}

func (l *callList) pushLocked(st *callState) {
	st.next = l.head
	if l.head != nil {
		l.head.prev = st
	}
	l.head = st
}

func (l *callList) removeLocked(st *callState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		l.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	}
	st.prev, st.next = nil, nil
}

// Lookup returns the Module compiled under hash, if Compile has finished
// compiling it.
func (h *Host) Lookup(hash string) (*Module, bool) {
	h.mu.Lock()
	e, ok := h.modules[hash]
	h.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-e.done:
		return e.mod, e.mod != nil
	default:
		return nil, false
	}
}
