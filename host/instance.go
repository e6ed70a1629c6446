package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
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
	// fds is the guest's descriptor table (fdtable.go), made with the
	// instance and bound to each call that runs on it.
	fds *fdTable
	// release undoes what the grants set up beyond the mounts (see
	// interruptStdin); called after mod is closed. Nil if nothing.
	release func()
	// depth is the stack budget counter of a counted module (guard.go),
	// else nil.
	depth api.MutableGlobal
	// stop is the stop flag of tick (guard.go) in a counted module, else
	// nil; watching counts the call's watcher that may set it, stopNow
	// (made once per instance), in call.
	stop     api.MutableGlobal
	watching sync.WaitGroup
	stopNow  func()
}

// instantiate makes a new instance of m for the call st. A pooled instance
// (pooled true) gets no grants, since it will serve other calls. Reactors
// are initialized; a command's _start is left to the caller. ctx is the
// call's: it bounds _initialize.
//
// If _initialize fails, the instance is returned with the error, for
// classify and then close; on other errors nothing is left open.
func (h *Host) instantiate(ctx context.Context, m *Module, st *callState, call *Call, pooled bool) (*instance, error) {
	inst, err := h.instantiateFrom(ctx, m, st, call, pooled, true)
	if errors.Is(err, errRestore) {
		// A snapshot that did not fit this instance after all: it
		// initializes itself.
		return h.instantiateFrom(ctx, m, st, call, pooled, false)
	}
	return inst, err
}

// instantiateFrom is instantiate, restoring or capturing a snapshot if
// snapshots allows it.
func (h *Host) instantiateFrom(ctx context.Context, m *Module, st *callState, call *Call, pooled, snapshots bool) (*instance, error) {
	inst := &instance{
		mem:    &linearMemory{pool: &h.buffers, limit: st.limits.memoryBytes() - m.tableBytes},
		fns:    make(map[string]api.Function, 2),
		stack:  make([]uint64, 1),
		stdout: stdio{st: st},
		stderr: stdio{st: st, stderr: true},
	}
	cfg := h.moduleConfig.WithStdout(&inst.stdout).WithStderr(&inst.stderr)
	var preopens []preopen
	if !pooled {
		var err error
		if cfg, preopens, err = inst.grant(ctx, cfg, m, call, st); err != nil {
			inst.closeGrants()
			return nil, err
		}
	}
	inst.fds = newFDTable(preopens)
	st.fds = inst.fds
	var plan snapPlan
	if snapshots {
		plan = h.planSnapshot(m, call, pooled, inst.mem.limit, st.limits.stackBudget())
	}
	if plan.fake != nil {
		cfg = plan.fake.config(cfg)
	}
	mod, err := h.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, inst.mem), m.compiled, cfg)
	if err != nil {
		// wazero has closed what it made; none of it runs again.
		inst.mem.release()
		inst.closeGrants()
		if plan.capture {
			m.captureFailed()
		}
		return nil, &instantiateError{err}
	}
	h.instantiations.Add(1)
	inst.mod = mod
	if m.counted {
		inst.depth, _ = mod.ExportedGlobal(depthExport).(api.MutableGlobal)
		inst.stop, _ = mod.ExportedGlobal(stopExport).(api.MutableGlobal)
		inst.stopNow = func() {
			inst.stop.Set(1)
			inst.watching.Done()
		}
	}
	inst.setStack(st.limits)
	if plan.restore != nil {
		// Initialized already (snapshot.go). A restore fails only on a
		// snapshot that does not fit: the instance is not used.
		if err := plan.restore.restoreTo(inst); err != nil {
			inst.close(ctx)
			return nil, fmt.Errorf("%w: %v", errRestore, err)
		}
		h.restored.Add(1)
		return inst, nil
	}
	var before []byte
	calls := st.hostCalls
	if plan.capture {
		if uint64(len(inst.mem.buf)) > maxSnapshotBytes {
			plan.capture = false // never: busy stays set
		} else {
			before = slices.Clone(inst.mem.buf)
		}
	}
	if err := inst.initialize(ctx, m); err != nil {
		if plan.capture {
			m.captureFailed()
		}
		return inst, err
	}
	if plan.capture {
		h.capture(m, inst, before, plan.fake, st, calls)
	}
	return inst, nil
}

// initialize runs what initializes a new instance of m: its start function
// and a reactor's _initialize, under the call's ctx like any call.
func (inst *instance) initialize(ctx context.Context, m *Module) error {
	if m.counted && inst.mod.ExportedFunction(startExport) != nil {
		// The module's start function (see startExport).
		if err := inst.call(ctx, startExport); err != nil {
			return err
		}
	}
	if m.kind == Reactor && m.initialize {
		return inst.call(ctx, exportInitialize)
	}
	return nil
}

// instantiateError marks an error of InstantiateModule itself, before any
// guest code ran: a module that cannot be linked or laid out.
type instantiateError struct{ err error }

func (e *instantiateError) Error() string { return e.err.Error() }
func (e *instantiateError) Unwrap() error { return e.err }

// grant adds call's grants (and a command's args and stdin) to cfg, for
// the call st, and returns the directories it mounts in the order wazero
// numbers them. ctx is the call's.
func (inst *instance) grant(ctx context.Context, cfg wazero.ModuleConfig, m *Module, call *Call, st *callState) (wazero.ModuleConfig, []preopen, error) {
	g := &call.Grants
	if m.kind == Command {
		name := call.Task
		if name == "" {
			name = "main"
		}
		cfg = cfg.WithArgs(append([]string{name}, call.Args...)...)
	}
	if call.Stdin != nil {
		cfg = cfg.WithStdin(stdin{call.Stdin})
		inst.release = interruptStdin(ctx, call.Stdin)
	}
	for _, k := range slices.Sorted(maps.Keys(g.Env)) {
		cfg = cfg.WithEnv(k, g.Env[k])
	}
	if g.Clock {
		done := ctx.Done()
		st.sleep = func(ns int64) {
			// time.Sleep would hold a sleeping guest past its
			// timeout: wazero checks the ctx only in guest code.
			t := time.NewTimer(time.Duration(ns))
			defer t.Stop()
			select {
			case <-t.C:
			case <-done:
			}
		}
		st.walltime = func() int64 { return time.Now().UnixNano() }
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(st.sleep)
	}
	if g.Random {
		cfg = cfg.WithRandSource(rand.Reader)
	}
	var preopens []preopen
	// A command always has a file system, if only the empty root: a path
	// outside every mount is then ENOENT, as tools expect, not EBADF.
	if len(g.Mounts) > 0 || g.DevNull || m.kind == Command {
		fsc := wazero.NewFSConfig()
		// One bound of open files and one disk budget for all the call's
		// mounts.
		files := rootfs.NewFiles(st.limits.OpenFiles)
		st.disk = rootfs.NewDisk(st.limits.DiskBytes)
		atRoot := false
		for _, mt := range g.Mounts {
			fsys, err := rootfs.NewShared(mt.HostDir, mt.ReadOnly, files, st.disk)
			if err != nil {
				return nil, nil, wrapInvalid(err)
			}
			fsys.SetMade(mt.Made)
			inst.mounts = append(inst.mounts, fsys)
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(fsys, mt.GuestDir)
			preopens = append(preopens, preopen{mt.GuestDir, fsys})
			atRoot = atRoot || mt.GuestDir == "/"
		}
		// The virtual mounts hold no host descriptors: they have a bound
		// of their own (virtual), so that Limits.OpenFiles counts the
		// guest's files in its real mounts only, as it did before them.
		virtual := rootfs.NewFiles(rootfs.DefaultMaxOpenFiles)
		if g.DevNull {
			dev := rootfs.NewDev(virtual)
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(dev, devDir)
			preopens = append(preopens, preopen{devDir, dev})
		}
		if !atRoot {
			// Without it, a guest's libc finds no preopen for a path
			// outside the mounts and the host no file descriptor: EBADF
			// for what should not be there.
			empty := rootfs.NewEmpty(virtual)
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(empty, "/")
			preopens = append(preopens, preopen{"/", empty})
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	return cfg, preopens, nil
}

// devDir is where Grants.DevNull mounts its directory.
const devDir = "/dev"

// stdin is Call.Stdin as wazero reads it. wazero would take an *os.File
// for its own: read its descriptor (Fd), which puts the file in blocking
// mode for good, so that no deadline could end a read, and let the guest
// set O_NONBLOCK on it. Behind this type it sees only a reader.
type stdin struct{ r io.Reader }

func (s stdin) Read(p []byte) (int, error) { return s.r.Read(p) }

// interruptStdin makes a read of r that blocks return when ctx ends, if r
// has a read deadline that can end it (an *os.File from os.Pipe or a FIFO,
// a net.Conn): wazero stops a guest only in guest code, never inside a
// host call, so a guest blocked reading stdin would hold its call past
// the timeout. It returns the function that undoes it once the guest has
// stopped: the deadline, if it was set, is cleared for the caller.
func interruptStdin(ctx context.Context, r io.Reader) (release func()) {
	d, ok := r.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return nil
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		// A time in the past: reads in progress and later ones fail at
		// once (os.ErrDeadlineExceeded).
		_ = d.SetReadDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stop() {
			<-fired
			_ = d.SetReadDeadline(time.Time{})
		}
	}
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
// any, in inst.stack[0]. When ctx ends, the guest traps at its next tick
// (guard.go): a watcher sets the stop flag, and call returns only once
// the watcher has returned, so that no flag set for this call outlives
// it.
func (inst *instance) call(ctx context.Context, name string) error {
	inst.stack[0] = 0
	f := inst.fn(name)
	if inst.stop == nil {
		return f.CallWithStack(ctx, inst.stack)
	}
	inst.stop.Set(0)
	inst.watching.Add(1)
	unwatch := context.AfterFunc(ctx, inst.stopNow)
	err := f.CallWithStack(ctx, inst.stack)
	if unwatch() {
		inst.watching.Done()
	}
	inst.watching.Wait()
	return err
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
	if st != nil {
		st.fds = inst.fds
	}
}

// close closes the instance and then its grants' mounts, and gives its
// memory back to the Host's buffers. ctx is not the call's, which may be
// done: wazero passes it only to close notifiers. It runs on the goroutine
// that ran the instance's calls, once none runs.
//
// No guest code runs here, not even on a module already closed (by
// proc_exit): wazero would run it, since the Host's runtime has no
// close-on-done watchdog, on a memory it had already freed.
func (inst *instance) close(ctx context.Context) {
	_ = inst.mod.Close(context.WithoutCancel(ctx))
	inst.mem.release()
	inst.closeGrants()
}

// closeGrants closes the mounts and releases the rest of the grants; the
// instance must be closed, or never made.
func (inst *instance) closeGrants() {
	for _, fsys := range inst.mounts {
		_ = fsys.Close()
	}
	inst.mounts = nil
	if inst.release != nil {
		inst.release()
		inst.release = nil
	}
}
