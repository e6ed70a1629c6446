package host

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Export names with a meaning of their own in docs/abi.md.
const (
	exportStart      = "_start"
	exportInitialize = "_initialize"
	exportDispatch   = "spindle_call"
	exportMemory     = "memory"
)

// ModuleKind says how a module runs: see docs/abi.md, "Module kinds".
type ModuleKind int

// The module kinds.
const (
	// Reactor is a module without _start: its tasks are exported
	// functions, called after _initialize.
	Reactor ModuleKind = iota
	// Command is a module with _start: a WASI program run with args,
	// environment and stdin, returning an exit code.
	Command
)

// String returns "reactor" or "command".
func (k ModuleKind) String() string {
	switch k {
	case Reactor:
		return "reactor"
	case Command:
		return "command"
	}
	return fmt.Sprintf("ModuleKind(%d)", int(k))
}

// Module is a compiled guest module, ready to run. It is created by
// Host.Compile and lives as long as its Host.
//
// A Module is safe for concurrent use: any number of calls may run on it at
// once, each on an instance of its own.
type Module struct {
	host     *Host
	hash     string
	compiled wazero.CompiledModule
	kind     ModuleKind
	// tasks are the exports of type () -> i32 other than spindle_call,
	// sorted; they are read-only after compilation, as are the fields
	// below.
	tasks      []string
	dispatch   bool   // exports spindle_call () -> i32
	initialize bool   // exports _initialize () -> ()
	minPages   uint32 // the memory's declared minimum
	// tableBytes is charged against every call's memory limit: what the
	// module's tables may grow to (guard.go).
	tableBytes uint64
	// counted reports that the module's calls count their frames in the
	// global exported as depthExport (guard.go).
	counted bool

	pool pool
	snap snapState // snapshot.go
}

// Hash returns the hash the module was compiled under.
func (m *Module) Hash() string { return m.hash }

// Kind returns whether the module is a Reactor or a Command.
func (m *Module) Kind() ModuleKind { return m.kind }

// Tasks returns the names of the reactor's exports that can be called
// directly as tasks (type () -> i32), sorted. A reactor that exports
// spindle_call also accepts task names that are not listed: its dispatcher
// decides. A command has no tasks.
func (m *Module) Tasks() []string { return slices.Clone(m.tasks) }

// export returns the export that runs task: the task's own export, else the
// dispatcher, else "".
func (m *Module) export(task string) string {
	if _, ok := slices.BinarySearch(m.tasks, task); ok {
		return task
	}
	if m.dispatch {
		return exportDispatch
	}
	return ""
}

// inspect checks compiled against docs/abi.md and fills m from its imports
// and exports.
func (m *Module) inspect(compiled wazero.CompiledModule) error {
	m.compiled = compiled
	if len(compiled.ImportedMemories()) > 0 {
		return fmt.Errorf("imports a memory; it must define and export its own")
	}
	mem, ok := compiled.ExportedMemories()[exportMemory]
	if !ok {
		return fmt.Errorf("does not export its memory as %q", exportMemory)
	}
	m.minPages = mem.Min()
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		switch module {
		case abiModule:
			want, ok := abiSignatures[name]
			if !ok {
				return fmt.Errorf("imports %s.%s, which the host does not provide", module, name)
			}
			if !slices.Equal(f.ParamTypes(), want) || !slices.Equal(f.ResultTypes(), i32) {
				return fmt.Errorf("imports %s.%s with the wrong signature", module, name)
			}
		case wasiModule:
			// wazero checks these when it instantiates.
		default:
			return fmt.Errorf("imports %s.%s: only %q and %q are provided", module, name, abiModule, wasiModule)
		}
	}
	exports := compiled.ExportedFunctions()
	if _, ok := exports[exportStart]; ok {
		m.kind = Command
		return nil
	}
	m.kind = Reactor
	for name, f := range exports {
		switch name {
		case exportStart:
		case exportInitialize:
			m.initialize = len(f.ParamTypes()) == 0 && len(f.ResultTypes()) == 0
		case exportDispatch:
			m.dispatch = isTaskFunc(f)
		default:
			if isTaskFunc(f) {
				m.tasks = append(m.tasks, name)
			}
		}
	}
	slices.Sort(m.tasks)
	return nil
}

func isTaskFunc(f api.FunctionDefinition) bool {
	return len(f.ParamTypes()) == 0 && slices.Equal(f.ResultTypes(), i32)
}

// pool holds a module's warm instances: reactor instances that were
// initialized and ended their last call successfully, with no grants.
//
// A pool is safe for concurrent use.
type pool struct {
	mu     sync.Mutex
	idle   []*instance // guarded by mu
	closed bool        // guarded by mu
}

// get takes an idle instance, or returns nil.
func (p *pool) get() *instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	inst := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return inst
}

// put keeps inst for a later call if there is room, and closes it if not.
func (p *pool) put(ctx context.Context, inst *instance, size int) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < size {
		p.idle = append(p.idle, inst)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	inst.close(ctx)
}

// close closes the idle instances; later puts close theirs.
func (p *pool) close(ctx context.Context) {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close(ctx)
	}
}
