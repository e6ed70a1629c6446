package host

import (
	"context"
	"crypto/rand"
	"maps"
	"slices"
	"time"

	"github.com/spindle-hq/spindle/host/internal/rootfs"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// instance is one instantiation of a Module. It is used by one goroutine at
// a time: the one running a call on it, or the pool holding it.
type instance struct {
	mod    api.Module
	mem    *linearMemory
	fns    map[string]api.Function // exports looked up so far
	stack  []uint64                // for CallWithStack
	stdout stdio
	stderr stdio
	mounts []*rootfs.FS // closed after mod
	// depth is the stack budget counter of a counted module (guard.go),
	// else nil.
	depth api.MutableGlobal
}

// instantiate makes a new instance of m for the call st. A pooled instance
// (pooled true) gets no grants, since it will serve other calls. Reactors
// are initialized; a command's _start is left to the caller. ctx is the
// call's: it bounds _initialize.
//
// If _initialize fails, the instance is returned with the error, for
// classify and then close; on other errors nothing is left open.
func (h *Host) instantiate(ctx context.Context, m *Module, st *callState, call *Call, pooled bool) (*instance, error) {
	inst := &instance{
		mem:    &linearMemory{pool: &h.buffers, limit: st.limits.memoryBytes() - m.tableBytes},
		fns:    make(map[string]api.Function, 2),
		stack:  make([]uint64, 1),
		stdout: stdio{st: st},
		stderr: stdio{st: st, stderr: true},
	}
	cfg := h.moduleConfig.WithStdout(&inst.stdout).WithStderr(&inst.stderr)
	if !pooled {
		var err error
		if cfg, err = inst.grant(ctx, cfg, m, call, st.limits); err != nil {
			inst.closeMounts()
			return nil, err
		}
	}
	mod, err := h.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, inst.mem), m.compiled, cfg)
	if err != nil {
		inst.closeMounts()
		return nil, &instantiateError{err}
	}
	h.instantiations.Add(1)
	inst.mod = mod
	if m.counted {
		inst.depth, _ = mod.ExportedGlobal(depthExport).(api.MutableGlobal)
	}
	inst.setStack(st.limits)
	if m.kind == Reactor && m.initialize {
		if err := inst.call(ctx, exportInitialize); err != nil {
			return inst, err
		}
	}
	return inst, nil
}

// instantiateError marks an error of InstantiateModule itself, before any
// guest code ran: a module that cannot be linked or laid out.
type instantiateError struct{ err error }

func (e *instantiateError) Error() string { return e.err.Error() }
func (e *instantiateError) Unwrap() error { return e.err }

// grant adds call's grants (and a command's args and stdin) to cfg.
func (inst *instance) grant(ctx context.Context, cfg wazero.ModuleConfig, m *Module, call *Call, limits Limits) (wazero.ModuleConfig, error) {
	g := &call.Grants
	if m.kind == Command {
		name := call.Task
		if name == "" {
			name = "main"
		}
		cfg = cfg.WithArgs(append([]string{name}, call.Args...)...)
	}
	if call.Stdin != nil {
		cfg = cfg.WithStdin(call.Stdin)
	}
	for _, k := range slices.Sorted(maps.Keys(g.Env)) {
		cfg = cfg.WithEnv(k, g.Env[k])
	}
	if g.Clock {
		done := ctx.Done()
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(func(ns int64) {
			// time.Sleep would hold a sleeping guest past its
			// timeout: wazero checks the ctx only in guest code.
			t := time.NewTimer(time.Duration(ns))
			defer t.Stop()
			select {
			case <-t.C:
			case <-done:
			}
		})
	}
	if g.Random {
		cfg = cfg.WithRandSource(rand.Reader)
	}
	if len(g.Mounts) > 0 {
		fsc := wazero.NewFSConfig()
		files := rootfs.NewFiles(limits.OpenFiles) // one bound for all the call's mounts
		for _, mt := range g.Mounts {
			fsys, err := rootfs.NewShared(mt.HostDir, mt.ReadOnly, files)
			if err != nil {
				return nil, wrapInvalid(err)
			}
			inst.mounts = append(inst.mounts, fsys)
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(fsys, mt.GuestDir)
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	return cfg, nil
}

// fn returns the export name, looked up once per instance: a lookup costs
// about 14 µs and 11 KiB, a cached call a few ns.
func (inst *instance) fn(name string) api.Function {
	f, ok := inst.fns[name]
	if !ok {
		f = inst.mod.ExportedFunction(name)
		inst.fns[name] = f
	}
	return f
}

// call calls the export name, which must exist, leaving its result, if
// any, in inst.stack[0].
func (inst *instance) call(ctx context.Context, name string) error {
	inst.stack[0] = 0
	return inst.fn(name).CallWithStack(ctx, inst.stack)
}

// setStack sets the stack budget counter for a call under limits.
func (inst *instance) setStack(limits Limits) {
	if inst.depth != nil {
		inst.depth.Set(uint64(uint32(limits.stackBudget())))
	}
}

// stackSpent reports that the last call trapped on its stack budget.
func (inst *instance) stackSpent() bool {
	return inst.depth != nil && int32(uint32(inst.depth.Get())) < 0
}

// bind points the instance's stdio at the call st (nil: none).
func (inst *instance) bind(st *callState) {
	inst.stdout.st = st
	inst.stderr.st = st
}

// close closes the instance and then its mounts. ctx is not the call's,
// which may be done: wazero passes it only to close notifiers.
func (inst *instance) close(ctx context.Context) {
	if inst.mod.IsClosed() {
		// When wazero's watchdog closes a module because the call's ctx
		// ended, it leaves the module's memory and open files to be
		// closed by the guest's goroutine at its next check; a guest
		// that returned first never makes it, and Close does nothing
		// on a closed module. Calling any export with a done ctx makes
		// wazero close them and return at once.
		for _, f := range inst.fns {
			done, cancel := context.WithCancel(context.Background())
			cancel()
			_ = f.CallWithStack(done, inst.stack)
			break
		}
	}
	_ = inst.mod.Close(context.WithoutCancel(ctx))
	inst.closeMounts()
}

func (inst *instance) closeMounts() {
	for _, fsys := range inst.mounts {
		_ = fsys.Close()
	}
	inst.mounts = nil
}
