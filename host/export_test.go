package host

import (
	"bytes"
	"context"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// CoalesceData exposes coalesceData to the tests of package host_test.
var CoalesceData = coalesceData

// DataSegments returns the number of data segments of wasm, or -1 if
// coalesceData could not read them.
func DataSegments(wasm []byte) int {
	_, _, segs, err := readDataSection(wasm)
	if err != nil {
		return -1
	}
	return len(segs)
}

// InitialMemory instantiates wasm without running any of its code and
// returns a copy of its memory. It uses wazero's interpreter, which
// compiles a Go guest about ten times faster than the compiler.
func InitialMemory(ctx context.Context, wasm []byte) ([]byte, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, err
	}
	if err := instantiateABI(ctx, rt); err != nil {
		return nil, err
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		return nil, err
	}
	b, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(b), nil
}

// Phases times the phases of making, initializing and closing a fresh
// instance of m as Run does, with the host's allocator or, if
// !customMemory, wazero's default one.
func Phases(ctx context.Context, h *Host, m *Module, customMemory bool) (instantiate, initialize, closing time.Duration, err error) {
	st := &callState{host: h, module: m, limits: h.limits, cancel: func() {}}
	inst := &instance{
		mem:    &linearMemory{pool: &h.buffers, limit: uint64(st.limits.MemoryPages) * pageSize},
		fns:    make(map[string]api.Function, 2),
		stack:  make([]uint64, 1),
		stdout: stdio{st: st},
		stderr: stdio{st: st, stderr: true},
	}
	cfg := h.moduleConfig.WithStdout(&inst.stdout).WithStderr(&inst.stderr)
	ictx := ctx
	if customMemory {
		ictx = experimental.WithMemoryAllocator(ctx, inst.mem)
	}
	t0 := time.Now()
	if inst.mod, err = h.rt.InstantiateModule(ictx, m.compiled, cfg); err != nil {
		return 0, 0, 0, err
	}
	t1 := time.Now()
	if m.initialize {
		err = inst.call(context.WithValue(ctx, stateKey{}, st), exportInitialize)
	}
	t2 := time.Now()
	inst.close(ctx)
	return t1.Sub(t0), t2.Sub(t1), time.Since(t2), err
}

// WazeroCompile compiles wasm as it is, without guard, with wazero's
// default features: it tells whether wazero itself accepts a module.
func WazeroCompile(ctx context.Context, wasm []byte) error {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, wasm)
	return err
}

// GrantAllows reports whether g permits args (argv[1:]).
func GrantAllows(g *ExecGrant, args []string) bool { return g.allows(args) }

// FreeBuffersHold reports whether a buffer the Host keeps for new
// instances holds marker at offset.
func FreeBuffersHold(h *Host, offset int, marker []byte) bool {
	h.buffers.mu.Lock()
	defer h.buffers.mu.Unlock()
	for _, b := range h.buffers.free {
		if len(b) >= offset+len(marker) && bytes.Equal(b[offset:offset+len(marker)], marker) {
			return true
		}
	}
	return false
}

// SnapshotInfo describes m's snapshot, if it has one: its memory's size,
// the runs and bytes it keeps of it, and what its initialization read of
// the fake monotonic clock and random source.
type SnapshotInfo struct {
	Size, Bytes          uint64
	Runs                 int
	ClockReads, RandRead int64
}

// Snapshot returns m's SnapshotInfo, or false when it has no snapshot.
func Snapshot(m *Module) (SnapshotInfo, bool) {
	s := m.snap.ready.Load()
	if s == nil {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{Size: s.size, Bytes: s.bytes, Runs: len(s.runs), ClockReads: s.nano, RandRead: s.random}, true
}
