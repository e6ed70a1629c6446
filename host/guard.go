package host

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Guarding a module: before a module is compiled, guard checks it against
// the structural bounds of ModuleLimits and rewrites it so that what wazero
// does not bound is bounded:
//
//   - Tables. wazero grows a table without limit when the module declares
//     no maximum, and its elements are not part of the linear memory, so
//     the memory limit never sees them. guard gives every table a maximum:
//     its own if it declares one, its minimum if not (such a table cannot
//     grow: the spec lets table.grow fail), and all tables together hold at
//     most ModuleLimits.TableElements. table.grow past a maximum returns
//     -1, as the spec says, and table.fill cannot reach past a table's
//     size. A module whose tables' minimums alone pass the bound is
//     refused. Run charges tableElementBytes per element that the tables
//     may reach against the call's memory limit, beyond freeTableBytes, in
//     whole pages.
//
//   - The call stack. wazero's compiler grows a call's native stack up to
//     hundreds of MiB before it reports a stack overflow, outside any
//     limit. guard renames each function's body to a new index and puts a
//     wrapper at the old index, so that every call, export, table element
//     and start function goes through it unchanged (the start function as
//     an export, startExport, that the host calls; a module that names a
//     body's new index or the counter is refused: see below): the wrapper
//     subtracts the body's frame estimate (frameBytes) from a counter
//     global, traps if it went below zero, calls the body and adds the
//     estimate back. Run sets the counter to the call's stack budget
//     before each call, and a trap with the counter below zero is a
//     stack_overflow. Without exception handling or tail calls (wazero's
//     default features have neither) every exit of a body passes back
//     through its wrapper, so the counter is balanced whenever no call is
//     running.
//
//   - Termination. Every wrapper, and the head of every loop iteration,
//     runs a tick (the wrapper of a body whose entry reaches its first
//     loop's head through straight-line code does not: that head runs
//     one as the call begins) (see tick and "Termination" in doc.go): one unit of a
//     fuel global spent, and every tickFuel units an exit to the host and
//     a trap if the stop global, exported as stopExport, is set. The
//     fuel and stop globals follow the counter; a module without a memory
//     gets an empty one, for tick's memory.grow.
//
//   - Snapshots. A module whose code changes no table or segment, and
//     whose mutable globals are numbers, gets an immutable i32 global
//     exported as snapExport (the number of those globals) and each of
//     them exported as snapGlobalName(k): what the host needs to capture
//     and restore an initialized instance (snapshot.go).
//
//   - Compile time. wazero's compiler is quadratic in the basic blocks of
//     one function (60,000 nested blocks took 10 s), and it cannot be
//     stopped inside a function. guard counts each function's control
//     instructions (block, loop, if, else, br_if, br_table) and refuses a
//     module where one function has more than ModuleLimits.FunctionBlocks,
//     or where the sum of their squares passes ModuleLimits.CompileWork.
//
// Rewriting changes function indexes past the imports only by appending:
// every index in the original module keeps its meaning. What it appends,
// the moved bodies (importedFuncs+n and up) and the counter (global
// importGlobals+definedGlobals), are indexes the original cannot name, and
// a module that named them would call a body past its wrapper or set the
// counter. So before rewriting, guard refuses (errIndex) a module that
// names a function or global index past the ones it declares, wherever a
// module can name one: in code (call, return_call, ref.func, global.get,
// global.set), in the constant expressions of globals and of element and
// data segments (global.get, ref.func), in exports, in the start section
// and in element segments' function indexes. wazero refuses such a module
// too, in its own numbering; after the rewrite it could not tell. guard
// also refuses an export whose name begins with reservedPrefix
// ("spindle$"), which could collide with the host's (errReserved), and a section out of order or repeated
// (errMalformed), so that the sections guard reads are the ones wazero
// compiles. The rewrite adds no type, table, memory, element or data
// segment, so every other index keeps its range and stays wazero's to
// check; imports are named apart from exports, so no import can meet the
// counter's export. The DWARF sections (.debug_*) are dropped, since the
// code's offsets move; the name section's function names are copied to the
// bodies, so that traps still name them (names of indexes the original
// does not declare are dropped).

const (
	// tableElementBytes is what one table element is charged against the
	// memory limit: wazero stores a table as a []uintptr (8 bytes), and
	// growing it with append may hold the old and new arrays at once.
	tableElementBytes = 16
	// freeTableBytes of tables are not charged (65,536 elements): the
	// tables of real guests, which hold their functions, so that their
	// memory limit stays what it says in pages.
	freeTableBytes = 1 << 20
	// depthExport is the export name of the stack budget counter.
	depthExport = "spindle$stack"
	// stopExport is the export name of tick's stop flag.
	stopExport = "spindle$stop"
	// startExport is the export name guard gives a module's start
	// function, which it takes out of the start section: wazero would run it
	// inside InstantiateModule, before the host can watch the call's ctx
	// and set the stop flag, so a start function that loops could not be
	// stopped. The host calls it right after instantiating, as a call.
	startExport = "spindle$start"
	// snapExport is the export name of an immutable i32 global that a
	// module which can be snapshotted (snapshot.go) has: the number of
	// its mutable globals, each exported as snapGlobalName(k), k from 0.
	snapExport = "spindle$snapshot"
	// reservedPrefix begins every export name the host's rewrite adds; a
	// module exporting a name of its own with it is refused.
	reservedPrefix = "spindle$"

	sectionCustom = 0
	sectionType   = 1
	sectionImport = 2
	sectionFunc   = 3
	sectionTable  = 4
	sectionMemory = 5
	sectionGlobal = 6
	sectionExport = 7
	sectionStart  = 8
	sectionElem   = 9
	sectionCode   = 10
	sectionTag    = 13
)

// errGuard wraps every reason guard refuses a module.
var errGuard = errors.New("module passes a bound")

// guarded is a module after guard: the bytes to compile and what Run needs
// to know about them.
type guarded struct {
	wasm []byte
	// tableBytes is charged against each call's memory limit: the tables'
	// bound times tableElementBytes, less freeTableBytes, in whole pages.
	tableBytes uint64
	// counted reports that the module's calls are counted (depthExport).
	counted bool
}

// sectionSpan is one section of a module: its id and body.
type sectionSpan struct {
	id   byte
	body []byte
}

// guard checks wasm against lim and rewrites it, with budget as the
// counter's initial value (the budget of the start function); see above.
// A module without the wasm header is returned unchanged, for wazero to
// refuse. Any other module guard cannot read is refused (errMalformed):
// what it cannot check is not compiled.
func guard(wasm []byte, lim ModuleLimits, budget int32) (guarded, error) {
	if int64(len(wasm)) > lim.Bytes {
		return guarded{}, fmt.Errorf("%w: %d bytes, the bound is %d (ModuleLimits.Bytes)", errGuard, len(wasm), lim.Bytes)
	}
	sections, ok := splitSections(wasm)
	if !ok {
		if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
			return guarded{wasm: wasm}, nil
		}
		return guarded{}, fmt.Errorf("%w: section sizes", errMalformed)
	}
	return rewrite(sections, lim, budget)
}

// errMalformed wraps the errors of a module that guard cannot read: one
// wazero would refuse too, or one using features wazero's defaults do not
// enable (exception handling, GC types, threads).
var errMalformed = errors.New("module cannot be checked")

func splitSections(wasm []byte) ([]sectionSpan, bool) {
	if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
		return nil, false
	}
	var out []sectionSpan
	for i := 8; i < len(wasm); {
		id := wasm[i]
		size, n := readULEB(wasm[i+1:])
		if n == 0 || uint64(size) > uint64(len(wasm)-i-1-n) {
			return nil, false
		}
		body := wasm[i+1+n : i+1+n+int(size)]
		out = append(out, sectionSpan{id, body})
		i += 1 + n + int(size)
	}
	return out, true
}

// reader reads a section body; any error makes it sticky-fail.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u32() uint32 {
	v, n := readULEB(r.b)
	if n == 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// leb skips a LEB128 of at most max bytes (u64/s64: 10).
func (r *reader) leb(max int) {
	for i := 0; i < len(r.b) && i < max; i++ {
		if r.b[i] < 0x80 {
			r.b = r.b[i+1:]
			return
		}
	}
	r.bad = true
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) skip(n int) {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return
	}
	r.b = r.b[n:]
}

func (r *reader) name() string {
	n := r.u32()
	if uint64(n) > uint64(len(r.b)) {
		r.bad = true
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// valType skips a value type: a one-byte type, or a reference type with a
// heap type (function references).
func (r *reader) valType() {
	switch r.byte() {
	case 0x63, 0x64:
		r.leb(5) // s33 heap type
	}
}

func rewrite(sections []sectionSpan, lim ModuleLimits, budget int32) (guarded, error) {
	if err := checkSections(sections); err != nil {
		return guarded{}, err
	}
	var (
		typeParams    []uint32 // per type: parameter count
		importedFuncs uint32
		importGlobals uint32
		funcTypes     []uint32
		g             guarded
		definedGlobal uint32
	)
	find := func(id byte) int {
		for i, s := range sections {
			if s.id == id {
				return i
			}
		}
		return -1
	}
	for _, s := range sections {
		r := &reader{b: s.body}
		switch s.id {
		case sectionType:
			n := r.u32()
			for i := uint32(0); i < n && !r.bad; i++ {
				if r.byte() != 0x60 {
					return g, errMalformed // rec/sub types: wazero decides
				}
				p := r.u32()
				for j := uint32(0); j < p && !r.bad; j++ {
					r.valType()
				}
				res := r.u32()
				for j := uint32(0); j < res && !r.bad; j++ {
					r.valType()
				}
				typeParams = append(typeParams, p)
			}
		case sectionImport:
			n := r.u32()
			for i := uint32(0); i < n && !r.bad; i++ {
				mod, name := r.name(), r.name()
				switch kind := r.byte(); kind {
				case 0:
					r.u32()
					importedFuncs++
				case 1:
					return g, fmt.Errorf("%w: imports table %s.%s; no table is provided", errGuard, mod, name)
				case 2:
					return g, fmt.Errorf("%w: imports memory %s.%s; no memory is provided", errGuard, mod, name)
				case 3:
					r.valType()
					r.byte()
					importGlobals++
				default:
					return g, errMalformed
				}
			}
		case sectionFunc:
			n := r.u32()
			if int64(n) > lim.Functions {
				return g, fmt.Errorf("%w: %d functions, the bound is %d (ModuleLimits.Functions)", errGuard, n, lim.Functions)
			}
			for i := uint32(0); i < n && !r.bad; i++ {
				funcTypes = append(funcTypes, r.u32())
			}
		case sectionGlobal:
			definedGlobal = r.u32()
		case sectionTag:
			// Exception handling would let a throw skip the wrappers'
			// epilogue; wazero's default features refuse it anyway.
			return g, fmt.Errorf("%w: declares exception tags", errMalformed)
		}
		// A section guard reads whole must hold nothing more: the
		// rewrite would drop it, and turn a module wazero refuses into
		// one it compiles.
		whole := s.id == sectionType || s.id == sectionImport || s.id == sectionFunc
		if r.bad || whole && len(r.b) != 0 {
			return g, fmt.Errorf("%w: section %d", errMalformed, s.id)
		}
	}
	if f := int64(importedFuncs) + int64(len(funcTypes)); f > lim.Functions {
		return g, fmt.Errorf("%w: %d functions, imported and defined, the bound is %d (ModuleLimits.Functions)", errGuard, f, lim.Functions)
	}
	if int64(definedGlobal)+int64(importGlobals) > lim.Globals {
		return g, fmt.Errorf("%w: %d globals, the bound is %d (ModuleLimits.Globals)", errGuard, int64(definedGlobal)+int64(importGlobals), lim.Globals)
	}
	sp := space{funcs: importedFuncs + uint32(len(funcTypes)), globals: importGlobals + definedGlobal}
	if err := checkIndexes(sections, sp, lim); err != nil {
		return g, err
	}
	// Tables.
	if i := find(sectionTable); i >= 0 {
		body, elems, err := boundTables(sections[i].body, lim.TableElements)
		if err != nil {
			return g, err
		}
		sections[i].body = body
		if b := elems * tableElementBytes; b > freeTableBytes {
			g.tableBytes = (b - freeTableBytes + pageSize - 1) / pageSize * pageSize
		}
	}
	// Code: bounds, then wrappers.
	ci := find(sectionCode)
	if ci < 0 {
		g.wasm = join(sections)
		return g, nil
	}
	bodies, err := splitBodies(sections[ci].body)
	if err != nil {
		return g, err
	}
	if len(bodies) != len(funcTypes) {
		return g, errMalformed
	}
	var work int64
	outside := false // a body changes a table or a segment
	frames := make([]uint32, len(bodies))
	loops := make([][]int, len(bodies))
	entryLoops := make([]bool, len(bodies))
	for i, body := range bodies {
		if int64(len(body)) > lim.FunctionBytes {
			return g, fmt.Errorf("%w: function %d has %d bytes of code, the bound is %d (ModuleLimits.FunctionBytes)", errGuard, importedFuncs+uint32(i), len(body), lim.FunctionBytes)
		}
		locals, blocks, entryLoop, err := scanBodyLoops(body, lim, sp, &loops[i], &outside)
		entryLoops[i] = entryLoop
		if err != nil {
			return g, fmt.Errorf("function %d: %w", importedFuncs+uint32(i), err)
		}
		work += blocks * blocks
		if work > lim.CompileWork {
			return g, fmt.Errorf("%w: the functions' control instructions, squared and summed, pass %d (ModuleLimits.CompileWork)", errGuard, lim.CompileWork)
		}
		t := funcTypes[i]
		if int(t) >= len(typeParams) {
			return g, errMalformed
		}
		frames[i] = frameBytes(typeParams[t], locals)
	}
	if len(bodies) == 0 {
		g.wasm = join(sections)
		return g, nil
	}
	depth := importGlobals + definedGlobal // the counter's index
	fuel, stop := depth+1, depth+2         // the preemption globals (tick)
	var tk []byte
	tk = tick(tk, fuel, stop)

	// Function section: the wrappers keep the old indexes, the bodies
	// follow with the same types.
	n := uint32(len(funcTypes))
	fs := appendULEB(make([]byte, 0, 5+10*n), 2*n)
	for range 2 {
		for _, t := range funcTypes {
			fs = appendULEB(fs, t)
		}
	}
	sections[find(sectionFunc)].body = fs

	size := 5 + len(sections[ci].body) + int(n)*48 // wrappers are small
	code := appendULEB(make([]byte, 0, size), 2*n)
	var w []byte
	for i, t := range funcTypes {
		// A body whose every call reaches its first loop's head on a
		// straight path ticks there on entry (below): its wrapper need
		// not tick too. Go's wasm functions begin so (the loop of
		// resumable calls), so a Go call ticks once, not twice.
		wtk := tk
		if entryLoops[i] {
			wtk = nil
		}
		w = wrapper(w[:0], typeParams[t], depth, importedFuncs+n+uint32(i), frames[i], wtk)
		code = appendULEB(code, uint32(len(w)))
		code = append(code, w...)
	}
	var ticked []byte
	for i, body := range bodies {
		if len(loops[i]) > 0 {
			// A tick at the head of every loop iteration.
			ticked = ticked[:0]
			at := 0
			for _, o := range loops[i] {
				ticked = append(append(ticked, body[at:o]...), tk...)
				at = o
			}
			body = append(ticked, body[at:]...)
			ticked = body
		}
		code = appendULEB(code, uint32(len(body)))
		code = append(code, body...)
	}
	sections[ci].body = code

	// A memory for tick's memory.grow, if the module has none.
	if i := find(sectionMemory); i < 0 {
		sections = insertSection(sections, sectionSpan{sectionMemory, []byte{1, 1, 0, 0}})
	} else if len(sections[i].body) > 0 && sections[i].body[0] == 0 {
		sections[i].body = []byte{1, 1, 0, 0}
	}

	// What a snapshot of an initialized instance must restore besides
	// the memory: the module's mutable globals, if nothing else changes.
	var snap []uint32
	snapOK := false
	if !outside {
		snap, snapOK = mutableGlobals(sections, sp, importGlobals)
	}

	// The counter: a mutable i32 global, exported; then tick's fuel and
	// stop flag, the flag exported; then, if the module can be
	// snapshotted, an immutable i32: the number of its snapshot globals.
	global := appendSLEB([]byte{0x7f, 1, opI32Const}, budget)
	global = append(global, opEnd)
	global = appendSLEB(append(global, 0x7f, 1, opI32Const), tickFuel)
	global = append(global, opEnd, 0x7f, 1, opI32Const, 0, opEnd)
	added := uint32(3)
	if snapOK {
		global = appendSLEB(append(global, 0x7f, 0, opI32Const), int32(len(snap)))
		global = append(global, opEnd)
		added++
	}
	if i := find(sectionGlobal); i >= 0 {
		b := appendULEB(nil, definedGlobal+added)
		_, k := readULEB(sections[i].body)
		b = append(b, sections[i].body[k:]...)
		sections[i].body = append(b, global...)
	} else {
		sections = insertSection(sections, sectionSpan{sectionGlobal, append(appendULEB(nil, added), global...)})
	}
	export := append(appendULEB(nil, uint32(len(depthExport))), depthExport...)
	export = append(export, 3)
	export = appendULEB(export, depth)
	export = append(appendULEB(export, uint32(len(stopExport))), stopExport...)
	export = append(export, 3)
	export = appendULEB(export, stop)
	added = 2
	if snapOK {
		export = append(appendULEB(export, uint32(len(snapExport))), snapExport...)
		export = append(export, 3)
		export = appendULEB(export, stop+1)
		for k, idx := range snap {
			name := snapGlobalName(k)
			export = append(appendULEB(export, uint32(len(name))), name...)
			export = append(export, 3)
			export = appendULEB(export, idx)
		}
		added += 1 + uint32(len(snap))
	}
	if i := find(sectionStart); i >= 0 {
		// The start function becomes an export the host calls (see
		// startExport); its index is the wrapper's, so it ticks.
		fn, _ := readULEB(sections[i].body)
		export = append(appendULEB(export, uint32(len(startExport))), startExport...)
		export = append(export, 0)
		export = appendULEB(export, fn)
		added++
		sections = append(sections[:i], sections[i+1:]...)
	}
	if i := find(sectionExport); i >= 0 {
		cnt, k := readULEB(sections[i].body)
		b := appendULEB(nil, cnt+added)
		b = append(b, sections[i].body[k:]...)
		sections[i].body = append(b, export...)
	} else {
		b := appendULEB(nil, added)
		sections = insertSection(sections, sectionSpan{sectionExport, append(b, export...)})
	}
	sections = renameBodies(sections, importedFuncs, n)
	g.counted = true
	g.wasm = join(sections)
	return g, nil
}

// snapGlobalName is the export name of a snapshot's k-th global.
func snapGlobalName(k int) string { return snapGlobalPrefix + strconv.Itoa(k) }

const snapGlobalPrefix = "spindle$g"

// mutableGlobals returns the indexes of the module's own mutable globals,
// which a snapshot saves and restores. ok is false when one of them is
// not a number (a reference or a vector, which the host cannot set
// through wazero's API): such a module is not snapshotted.
func mutableGlobals(sections []sectionSpan, sp space, imported uint32) (idx []uint32, ok bool) {
	for _, s := range sections {
		if s.id != sectionGlobal {
			continue
		}
		r := &reader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && !r.bad; i++ {
			if len(r.b) == 0 {
				return nil, false
			}
			t := r.b[0]
			r.valType()
			mutable := r.byte() == 1
			if constExpr(r, sp, at("global")) != nil {
				return nil, false
			}
			if !mutable {
				continue
			}
			switch t {
			case 0x7f, 0x7e, 0x7d, 0x7c: // i32, i64, f32, f64
				idx = append(idx, imported+i)
			default:
				return nil, false
			}
		}
		if r.bad {
			return nil, false
		}
	}
	return idx, true
}

// frameBytes estimates the native stack bytes of one frame of a body with
// params and locals, with its wrapper's frame: measured on wazero's
// compiler for amd64 and arm64, a frame holds its spilled values (8 or 16
// bytes each) and some 64 bytes of return address, frame pointer and
// spill area; the wrapper adds about as much.
func frameBytes(params uint32, locals int64) uint32 {
	return uint32(min(128+16*(int64(params)+locals), 1<<24))
}

// wrapper appends to b the body of the wrapper of function body (at index
// target), whose type has params parameters.
func wrapper(b []byte, params, depth, target, frame uint32, tk []byte) []byte {
	b = append(b, 0) // no locals
	b = append(b, tk...)
	b = append(b, 0x23)
	b = appendULEB(b, depth)
	b = append(b, opI32Const)
	b = appendSLEB(b, int32(frame))
	b = append(b, 0x6b, 0x24) // i32.sub, global.set
	b = appendULEB(b, depth)
	b = append(b, 0x23)
	b = appendULEB(b, depth)
	b = append(b, opI32Const, 0, 0x48, 0x04, 0x40, 0x00, opEnd) // i32.const 0, i32.lt_s, if, unreachable, end
	for p := range params {
		b = append(b, 0x20)
		b = appendULEB(b, p)
	}
	b = append(b, 0x10)
	b = appendULEB(b, target)
	b = append(b, 0x23)
	b = appendULEB(b, depth)
	b = append(b, opI32Const)
	b = appendSLEB(b, int32(frame))
	b = append(b, 0x6a, 0x24) // i32.add, global.set
	b = appendULEB(b, depth)
	return append(b, opEnd)
}

// straightOp reports that op, before a body's first loop, can neither
// branch, call nor end a block: nop, block, drop, select, the local and
// global instructions, loads, stores, memory.size and grow, constants and
// numeric instructions. Whatever else (if, br*, return, calls, a prefix
// such as 0xfc or 0xfd) makes the body tick in its wrapper.
func straightOp(op byte) bool {
	return op == 0x01 || op == 0x02 || op == 0x1a || op == 0x1b || (op >= 0x20 && op <= 0x24) || (op >= 0x28 && op <= 0xc4)
}

// tickFuel is how many ticks pass between two of tick's exits to the host.
const tickFuel = 1000

// tick appends the code run at every function's entry (in its wrapper)
// and at the head of every loop iteration: it spends one unit of the fuel
// global and, when that is gone, refills it, leaves the guest for the host
// with memory.grow(0) — a point where the Go runtime can stop the guest's
// goroutine for a GC — and traps if the host has set the stop global (the
// call's ctx ended). See "Termination" in doc.go.
func tick(b []byte, fuel, stop uint32) []byte {
	b = append(b, 0x23) // global.get fuel
	b = appendULEB(b, fuel)
	b = append(b, opI32Const, 1, 0x6b, 0x24) // i32.const 1, i32.sub, global.set
	b = appendULEB(b, fuel)
	b = append(b, 0x23)
	b = appendULEB(b, fuel)
	b = append(b, opI32Const, 0, 0x4c, 0x04, 0x40) // i32.const 0, i32.le_s, if
	b = append(b, opI32Const)
	b = appendSLEB(b, tickFuel)
	b = append(b, 0x24) // global.set fuel
	b = appendULEB(b, fuel)
	b = append(b, opI32Const, 0, 0x40, 0, 0x1a) // i32.const 0, memory.grow 0, drop
	b = append(b, 0x23)                         // global.get stop
	b = appendULEB(b, stop)
	return append(b, 0x04, 0x40, 0x00, opEnd, opEnd) // if, unreachable, end; end
}

// boundTables gives each table of a table section a maximum, so that all
// of them together hold at most bound elements; it returns the new section
// and the sum of the maximums.
func boundTables(body []byte, bound int64) ([]byte, uint64, error) {
	r := &reader{b: body}
	n := r.u32()
	out := appendULEB(nil, n)
	type table struct {
		ref      []byte
		min, max uint64
		hasMax   bool
	}
	var tables []table
	var mins uint64
	for i := uint32(0); i < n && !r.bad; i++ {
		start := r.b
		if r.byte() == 0x40 {
			return nil, 0, errMalformed // initializer expressions: not in wazero's default features
		}
		r.b = start
		r.valType()
		ref := start[:len(start)-len(r.b)]
		t := table{ref: ref}
		switch flag := r.byte(); flag {
		case 0:
			t.min = uint64(r.u32())
		case 1:
			t.min, t.max, t.hasMax = uint64(r.u32()), uint64(r.u32()), true
		default:
			return nil, 0, errMalformed
		}
		mins += t.min
		tables = append(tables, t)
	}
	if r.bad || len(r.b) != 0 {
		return nil, 0, errMalformed
	}
	if mins > uint64(bound) {
		return nil, 0, fmt.Errorf("%w: the tables' minimums hold %d elements, the bound is %d (ModuleLimits.TableElements)", errGuard, mins, bound)
	}
	// A table keeps its own maximum, within what the others' minimums
	// leave; one without a maximum cannot grow (table.grow returns -1).
	room := uint64(bound) - mins
	var total uint64
	for _, t := range tables {
		max := t.min
		if t.hasMax && t.max > t.min {
			max = t.min + min(t.max-t.min, room)
		}
		room -= max - t.min
		total += max
		out = append(out, t.ref...)
		out = append(out, 1)
		out = appendULEB(out, uint32(t.min))
		out = appendULEB(out, uint32(max))
	}
	return out, total, nil
}

// splitBodies splits a code section into its function bodies.
func splitBodies(body []byte) ([][]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if uint64(n) > uint64(len(body)) {
		return nil, errMalformed
	}
	bodies := make([][]byte, 0, n)
	for i := uint32(0); i < n && !r.bad; i++ {
		size := r.u32()
		if uint64(size) > uint64(len(r.b)) {
			return nil, errMalformed
		}
		bodies = append(bodies, r.b[:size])
		r.b = r.b[size:]
	}
	if r.bad || len(r.b) != 0 {
		return nil, errMalformed
	}
	return bodies, nil
}

// scanBody reads a function body's locals and instructions; it returns the
// number of locals and of control instructions, errGuard past a bound, or
// errIndex for a function or global index outside sp.
func scanBody(body []byte, lim ModuleLimits, sp space) (locals, blocks int64, err error) {
	locals, blocks, _, err = scanBodyLoops(body, lim, sp, nil, nil)
	return locals, blocks, err
}

// scanBodyLoops is scanBody that also appends to *loops, if loops is not
// nil, the offset in body just past each loop's block type: where a loop's
// every iteration starts. entryLoop reports that every call of the body
// reaches the head of its first loop before anything but straight-line
// code (straightOp): Go's functions begin so (global.get SP, local.set,
// block, loop), so the tick at that head is one at the call's entry.
//
// If outside is not nil, scanBodyLoops sets it when the body changes state
// that is not in the memory or the globals: a table (table.set, grow,
// fill, copy, init) or a segment (data.drop, elem.drop). A module with
// such a body cannot be snapshotted (snapshot.go).
func scanBodyLoops(body []byte, lim ModuleLimits, sp space, loops *[]int, outside *bool) (locals, blocks int64, entryLoop bool, err error) {
	r := &reader{b: body}
	groups := r.u32()
	for i := uint32(0); i < groups && !r.bad; i++ {
		locals += int64(r.u32())
		r.valType()
		if locals > lim.Locals {
			return 0, 0, false, fmt.Errorf("%w: more than %d locals (ModuleLimits.Locals)", errGuard, lim.Locals)
		}
	}
	straight := true // no instruction yet that could leave the entry's path
	for len(r.b) > 0 && !r.bad {
		op := r.byte()
		if straight {
			entryLoop = op == 0x03
			straight = !entryLoop && straightOp(op)
		}
		switch {
		case op == 0x02 || op == 0x04: // block, if
			blocks++
			blockType(r)
		case op == 0x03: // loop: counts twice, it costs wazero about 3x a block
			blocks += 2
			blockType(r)
			if loops != nil && !r.bad {
				*loops = append(*loops, len(body)-len(r.b))
			}
		case op == 0x05: // else
			blocks++
		case op == 0x0c: // br
			r.u32()
		case op == 0x0d: // br_if
			blocks++
			r.u32()
		case op == 0x0e: // br_table
			n := r.u32()
			blocks += int64(n)
			for range n + 1 {
				r.u32()
				if r.bad {
					break
				}
			}
		case op == 0x10 || op == 0x12: // call, return_call
			what := at("call")
			if op == 0x12 {
				what = at("return_call")
			}
			if err := sp.function(what, r.u32()); err != nil && !r.bad {
				return 0, 0, false, err
			}
		case op == 0x14 || op == 0x15: // call_ref, return_call_ref (type index)
			r.u32()
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			n := r.u32()
			for j := uint32(0); j < n && !r.bad; j++ {
				r.valType()
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			what := at("global.get")
			if op == 0x24 {
				what = at("global.set")
			}
			if err := sp.global(what, r.u32()); err != nil && !r.bad {
				return 0, 0, false, err
			}
		case op >= 0x20 && op <= 0x26: // local.*, table.get/set
			r.u32()
			if op == 0x26 && outside != nil {
				*outside = true
			}
		case op >= 0x28 && op <= 0x3e: // loads, stores
			memarg(r)
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			r.u32()
		case op == 0x41:
			r.leb(5)
		case op == 0x42:
			r.leb(10)
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op == 0xd0: // ref.null heaptype
			r.leb(5)
		case op == 0xd2: // ref.func
			if err := sp.function(at("ref.func"), r.u32()); err != nil && !r.bad {
				return 0, 0, false, err
			}
		case op == 0xd5 || op == 0xd6: // br_on_null, br_on_non_null
			r.u32()
		case op == 0xfc:
			switch miscOp(r) {
			case 9, 12, 13, 14, 15, 17: // data.drop, table.init, elem.drop, table.copy, grow, fill
				if outside != nil {
					*outside = true
				}
			}
		case op == 0xfd:
			simdOp(r)
		case op == 0xfe:
			atomicOp(r)
		case op <= 0x01, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
			op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd4:
			// no immediates
		default:
			// Exception handling, GC and unknown opcodes: not in
			// wazero's default features; it refuses the module.
			return 0, 0, false, fmt.Errorf("%w: opcode %#x", errMalformed, op)
		}
		if blocks > lim.FunctionBlocks {
			return 0, 0, false, fmt.Errorf("%w: more than %d control instructions (ModuleLimits.FunctionBlocks)", errGuard, lim.FunctionBlocks)
		}
	}
	if r.bad {
		return 0, 0, false, errMalformed
	}
	return locals, blocks, entryLoop, nil
}

func blockType(r *reader) {
	if len(r.b) == 0 {
		r.bad = true
		return
	}
	switch c := r.b[0]; {
	case c == 0x40 || (c >= 0x6f && c <= 0x7f) && c != 0x71:
		r.b = r.b[1:]
	case c == 0x63 || c == 0x64:
		r.b = r.b[1:]
		r.leb(5)
	default:
		r.leb(5) // s33 type index
	}
}

func memarg(r *reader) {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32() // memory index
	}
	r.leb(10) // offset (u64 for memory64)
}

// miscOp reads an instruction after its 0xfc prefix and returns its
// sub-opcode.
func miscOp(r *reader) uint32 {
	sub := r.u32()
	switch {
	case sub <= 7:
	case sub == 8: // memory.init
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		r.u32()
	case sub == 10 || sub == 12 || sub == 14:
		r.u32()
		r.u32()
	default:
		r.bad = true
	}
	return sub
}

// simdOp reads a SIMD instruction after its 0xfd prefix. Its sub-opcode is
// one byte, as wazero reads it (not the LEB128 number the spec has): guard
// must see the instructions wazero compiles, or a module could hide a loop
// or an index from it behind bytes the two read differently.
func simdOp(r *reader) {
	switch sub := uint32(r.byte()); {
	case sub <= 11 || sub == 92 || sub == 93:
		memarg(r)
	case sub == 12 || sub == 13:
		r.skip(16)
	case sub >= 21 && sub <= 34:
		r.skip(1)
	case sub >= 84 && sub <= 91:
		memarg(r)
		r.skip(1)
	}
}

// atomicOp reads an atomic instruction after its 0xfe prefix: its
// sub-opcode is one byte, as wazero reads it (see simdOp).
func atomicOp(r *reader) {
	if sub := r.byte(); sub == 3 {
		r.skip(1) // atomic.fence
		return
	}
	memarg(r)
}

// sectionOrder ranks the non-custom sections in the order a module must
// hold them.
func sectionOrder(id byte) int {
	switch id {
	case sectionTag:
		return sectionGlobal*2 - 1 // between memory and global
	case sectionDataCount:
		return sectionCode*2 - 1 // between elem and code
	}
	return int(id) * 2
}

// insertSection inserts s at its place in the canonical section order.
func insertSection(sections []sectionSpan, s sectionSpan) []sectionSpan {
	at := len(sections)
	for i, o := range sections {
		if o.id != sectionCustom && sectionOrder(o.id) > sectionOrder(s.id) {
			at = i
			break
		}
	}
	sections = append(sections, sectionSpan{})
	copy(sections[at+1:], sections[at:])
	sections[at] = s
	return sections
}

// renameBodies drops the DWARF sections and copies the function names of
// the name section to the moved bodies (index + n).
func renameBodies(sections []sectionSpan, imported, n uint32) []sectionSpan {
	out := sections[:0]
	for _, s := range sections {
		if s.id == sectionCustom {
			r := &reader{b: s.body}
			name := r.name()
			if r.bad || strings.HasPrefix(name, ".debug_") {
				continue
			}
			if name == "name" {
				if body, ok := copyNames(s.body[len(s.body)-len(r.b):], imported, n); ok {
					s.body = append(append(appendULEB(nil, 4), "name"...), body...)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// copyNames rewrites the subsections of a name section: in the function
// names (subsection 1), each name of a defined function is also given to
// its body.
func copyNames(b []byte, imported, n uint32) ([]byte, bool) {
	var out []byte
	for len(b) > 0 {
		id := b[0]
		size, k := readULEB(b[1:])
		if k == 0 || uint64(size) > uint64(len(b)-1-k) {
			return nil, false
		}
		sub := b[1+k : 1+k+int(size)]
		b = b[1+k+int(size):]
		if id == 1 {
			r := &reader{b: sub}
			cnt := r.u32()
			type entry struct {
				idx  uint32
				name string
			}
			var entries []entry
			for i := uint32(0); i < cnt && !r.bad; i++ {
				entries = append(entries, entry{r.u32(), r.name()})
			}
			if r.bad {
				return nil, false
			}
			// Names of indexes the original does not declare go: they
			// would name the bodies.
			entries = slices.DeleteFunc(entries, func(e entry) bool { return e.idx >= imported+n })
			for _, e := range entries[:len(entries):len(entries)] {
				if e.idx >= imported {
					entries = append(entries, entry{e.idx + n, e.name})
				}
			}
			sub = appendULEB(nil, uint32(len(entries)))
			for _, e := range entries {
				sub = appendULEB(sub, e.idx)
				sub = appendULEB(sub, uint32(len(e.name)))
				sub = append(sub, e.name...)
			}
		}
		out = append(out, id)
		out = appendULEB(out, uint32(len(sub)))
		out = append(out, sub...)
	}
	return out, true
}

func join(sections []sectionSpan) []byte {
	size := 8
	for _, s := range sections {
		size += 6 + len(s.body)
	}
	out := make([]byte, 0, size)
	out = append(out, "\x00asm\x01\x00\x00\x00"...)
	for _, s := range sections {
		out = append(out, s.id)
		out = appendULEB(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out
}
