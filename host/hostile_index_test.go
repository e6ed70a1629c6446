package host_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// Modules that name an index past what they declare. guard moves each
// function body to index importedFuncs+n+i and adds the stack counter as
// global importGlobals+definedGlobals: indexes such a module could use to
// skip the wrappers, or to reset the counter, unless guard refuses them.

var (
	opDrop  = []byte{0x1a}
	opEnd   = []byte{0x0b}
	i32Type = byte(testutil.WasmI32)
)

func call(f uint32) []byte         { return cat([]byte{0x10}, testutil.ULEB(f)) }
func refFunc(f uint32) []byte      { return cat([]byte{0xd2}, testutil.ULEB(f)) }
func globalGet(g uint32) []byte    { return cat([]byte{0x23}, testutil.ULEB(g)) }
func globalSet(g uint32) []byte    { return cat([]byte{0x24}, testutil.ULEB(g)) }
func callIndirect(t uint32) []byte { return cat([]byte{0x11}, testutil.ULEB(t), []byte{0}) }
func returnCall(f uint32) []byte   { return cat([]byte{0x12}, testutil.ULEB(f)) }
func vec(items ...[]byte) []byte   { return cat(testutil.ULEB(uint32(len(items))), cat(items...)) }
func funcs(fs ...uint32) []byte {
	b := testutil.ULEB(uint32(len(fs)))
	for _, f := range fs {
		b = append(b, testutil.ULEB(f)...)
	}
	return b
}

// indexModule is a module of one task, "task", of type () -> i32 (type 0,
// function 0 unless imports come first), with a memory and, if table, a
// table of 4 funcref elements; edit adds what the case needs.
func indexModule(imports int, code []byte, edit func(m *testutil.WasmModule, task uint32)) []byte {
	var m testutil.WasmModule
	t := m.Type(nil, []byte{i32Type})
	for range imports {
		m.ImportFunc("wasi_snapshot_preview1", "sched_yield", t)
	}
	m.Memory(1, -1)
	m.Table(4, -1)
	task := m.Func(t, nil, code) // the first defined function
	if edit != nil {
		edit(&m, task)
	}
	m.Export("task", 0, task)
	return m.Bytes()
}

// TestHostileIndexes: a module that names a function or global index past
// the ones it declares is refused before it is compiled (kind
// invalid_module), wazero refuses each of them too in the module's own
// numbering, and none of them runs. The two attacks first seen run a call
// at a 1 MiB limit; their peak RSS is logged.
func TestHostileIndexes(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	for _, tt := range []struct {
		name string
		wasm []byte
		want string // in the refusal
		// valid: wazero accepts the module as it is; guard refuses it
		// for a reason of its own.
		valid bool
	}{
		{"call of a body", indexModule(0, call(1), nil), "call 1: no such index", false},
		{"call of a body, past an import", indexModule(1, call(2), nil), "call 2: no such index", false},
		{"return_call of a body", indexModule(0, returnCall(1), nil), "return_call 1: no such index", false},
		{"global.set of the counter", indexModule(0, cat(i32const(0x7fffffff), globalSet(0), call(0)), nil), "global.set 0: no such index", false},
		{"global.get of the counter", indexModule(0, globalGet(0), nil), "global.get 0: no such index", false},
		{"global.set of the counter, past a global", indexModule(0, cat(i32const(0x7fffffff), globalSet(1), call(0)),
			func(m *testutil.WasmModule, _ uint32) { m.Global() }), "global.set 1: no such index", false},
		{"ref.func of a body", indexModule(0, cat(i32const(0), refFunc(1), []byte{0x26, 0}, i32const(0), callIndirect(0)), nil), "ref.func 1: no such index", false},
		{"export of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Export("body", 0, 1)
		}), "export \"body\": function 1: no such index", false},
		{"export of the counter", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Export("counter", 3, 0)
		}), "export \"counter\": global 0: no such index", false},
		{"start at a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Func(m.Type(nil, nil), nil, call(1)) // function 1: start calls its own body
			m.Start(3)
		}), "start function 3: no such index", false},
		{"elem segment of a body", indexModule(0, cat(i32const(0), callIndirect(0)), func(m *testutil.WasmModule, _ uint32) {
			m.ActiveElem(0, []uint32{1})
		}), "element segment 0: function 1: no such index", false},
		{"elem 1 (passive) of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{1, 0}, funcs(1)))
		}), "element segment 0: function 1: no such index", false},
		{"elem 2 (table, offset) of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{2, 0}, i32const(0), opEnd, []byte{0}, funcs(0, 1)))
		}), "element segment 0: function 1: no such index", false},
		{"elem 3 (declarative) of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{3, 0}, funcs(1)))
		}), "element segment 0: function 1: no such index", false},
		{"elem 4 (expressions) ref.func of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{4}, i32const(0), opEnd, vec(cat(refFunc(1), opEnd))))
		}), "ref.func 1: no such index", false},
		{"elem 5 (passive expressions) ref.func of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{5, testutil.WasmFuncref}, vec(cat(refFunc(0), opEnd), cat(refFunc(1), opEnd))))
		}), "ref.func 1: no such index", false},
		{"elem 6 (table, expressions) ref.func of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{6, 0}, i32const(0), opEnd, []byte{testutil.WasmFuncref}, vec(cat(refFunc(1), opEnd))))
		}), "ref.func 1: no such index", false},
		{"elem 7 (declarative expressions) ref.func of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{7, testutil.WasmFuncref}, vec(cat(refFunc(1), opEnd))))
		}), "ref.func 1: no such index", false},
		{"elem offset global.get of the counter", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Elem(cat([]byte{0}, globalGet(0), opEnd, funcs(0)))
		}), "global.get 0: no such index", false},
		{"global initializer ref.func of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.GlobalInit(testutil.WasmFuncref, false, refFunc(1))
		}), "ref.func 1: no such index", false},
		{"global initializer global.get of the counter", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.GlobalInit(i32Type, false, globalGet(1))
		}), "global.get 1: no such index", false},
		{"data offset global.get of the counter", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Extra = append(m.Extra, [2][]byte{{11}, cat([]byte{1, 0}, globalGet(0), opEnd, []byte{1, 'x'})})
		}), "global.get 0: no such index", false},
		{"a second export section, of a body", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Extra = append(m.Extra, [2][]byte{{7}, cat([]byte{1}, []byte{4}, []byte("body"), []byte{0, 1})})
		}), "out of order", false},
		{"export named as the counter", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Export("spindle$stack", 0, 0)
		}), "reserved", true},
		{"export named as a snapshot global", indexModule(0, i32const(0), func(m *testutil.WasmModule, _ uint32) {
			m.Export("spindle$g0", 0, 0)
		}), "reserved", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			werr := host.WazeroCompile(t.Context(), tt.wasm)
			if tt.valid != (werr == nil) {
				t.Errorf("wazero compiles the module as it is: %v, want valid %v", werr, tt.valid)
			}
			_, err := h.Compile(t.Context(), tt.name, tt.wasm)
			if host.KindOf(err) != host.KindInvalidModule || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile = %v, want invalid_module naming %q", err, tt.want)
			}
			if err == nil {
				m := compileRaw(t, h, tt.name, tt.wasm)
				_, rerr := h.Run(t.Context(), m, host.Call{Task: "task", Limits: host.Limits{MemoryPages: 16}})
				t.Errorf("Run at 16 pages = %v; peak RSS %s", rerr, peakRSS())
			}
			t.Logf("wazero: %v; guard: %v; peak RSS %s", werr, err, peakRSS())
		})
	}
}

// TestIndexesAtTheirBound: a module that names its last function and its
// last global everywhere it can compiles and runs: guard's bounds are not
// one short.
func TestIndexesAtTheirBound(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	var m testutil.WasmModule
	t0 := m.Type(nil, []byte{i32Type})
	t1 := m.Type(nil, nil)
	yield := m.ImportFunc("wasi_snapshot_preview1", "sched_yield", t0) // function 0
	m.Memory(1, -1)
	m.Table(4, -1)
	fref := m.GlobalInit(testutil.WasmFuncref, false, refFunc(3)) // global 0
	last := m.Global()                                            // global 1
	seven := m.Func(t0, nil, cat(i32const(7), globalSet(last), globalGet(last)))
	start := m.Func(t1, nil, cat(call(yield), opDrop, i32const(0), globalSet(last)))
	// task: seven() + table[0]() - 14, with the last function and global
	// named in its code.
	task := m.Func(t0, nil, cat(call(seven), i32const(0), callIndirect(t0), []byte{0x6a}, i32const(14), []byte{0x6b},
		refFunc(3), opDrop, globalGet(fref), opDrop))
	if task != 3 {
		t.Fatalf("task is function %d, want 3", task)
	}
	m.ActiveElem(0, []uint32{seven, task})
	m.Elem(cat([]byte{4}, i32const(2), opEnd, vec(cat(refFunc(seven), opEnd), cat(refFunc(task), opEnd))))
	m.Start(start)
	m.Export("task", 0, task)
	m.Export("last", 3, last)
	wasm := m.Bytes()
	if err := host.WazeroCompile(t.Context(), wasm); err != nil {
		t.Fatalf("wazero refuses the module: %v", err)
	}
	mod := compileRaw(t, h, "bounds", wasm)
	if _, err := h.Run(t.Context(), mod, host.Call{Task: "task"}); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// rawModule assembles the wasm header and sections given as {id, body}.
func rawModule(sections ...[2][]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s[0]...)
		b = append(b, testutil.ULEB(uint32(len(s[1])))...)
		b = append(b, s[1]...)
	}
	return b
}

// TestHostileDeclaredCounts: modules of a few bytes that declare vectors
// of billions of elements (wazero's decoder allocates a vector at its
// declared length before reading it: 2^31 local names are 64 GiB, and the
// process dies of a Go fatal error) are refused before wazero reads them.
func TestHostileDeclaredCounts(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	huge := testutil.ULEB(0x7fffffff)
	name := func(sub byte, body []byte) [2][]byte {
		return [2][]byte{{0}, cat([]byte{4}, []byte("name"), []byte{sub}, testutil.ULEB(uint32(len(body))), body)}
	}
	for _, tt := range []struct {
		name string
		wasm []byte
	}{
		{"name section: 2^31 local names", rawModule(name(2, huge))},
		{"name section: 2^31 function names", rawModule(name(1, huge))},
		{"name section: a 2 GiB module name", rawModule(name(0, huge))},
		{"name section: 2^31 names of one function's locals", rawModule(name(2, cat([]byte{1, 0}, huge)))},
		{"custom section: a 2 GiB name", rawModule([2][]byte{{0}, huge})},
		{"2^31 types", rawModule([2][]byte{{1}, huge})},
		{"a type of 2^32-1 parameters", rawModule([2][]byte{{1}, cat([]byte{1, 0x60}, testutil.ULEB(0xffffffff))})},
		{"2^31 imports", rawModule([2][]byte{{2}, huge})},
		{"2^31 functions", rawModule([2][]byte{{3}, huge})},
		{"2^31 tables", rawModule([2][]byte{{4}, huge})},
		{"2^31 globals", rawModule([2][]byte{{6}, huge})},
		{"2^31 exports", rawModule([2][]byte{{7}, huge})},
		{"2^31 element segments", rawModule([2][]byte{{9}, huge})},
		{"an element segment of 2^31 functions", rawModule([2][]byte{{9}, cat([]byte{1, 1, 0}, huge)})},
		{"an element segment of 2^31 expressions", rawModule([2][]byte{{9}, cat([]byte{1, 5, testutil.WasmFuncref}, huge)})},
		{"2^31 function bodies", rawModule([2][]byte{{10}, huge})},
		{"2^31 data segments", rawModule([2][]byte{{11}, huge})},
		{"a data segment of 2 GiB", rawModule([2][]byte{{11}, cat([]byte{1, 1}, huge)})},
	} {
		start := time.Now()
		_, err := h.Compile(t.Context(), tt.name, tt.wasm)
		if host.KindOf(err) != host.KindInvalidModule {
			t.Errorf("%s (%d bytes): Compile = %v, want invalid_module", tt.name, len(tt.wasm), err)
		}
		t.Logf("%s (%d bytes): %v in %v; peak RSS %s", tt.name, len(tt.wasm), err, time.Since(start), peakRSS())
	}
}

// TestModuleCountBounds: imports and defined functions together, exports,
// and element segment entries are bounded (ModuleLimits.Functions,
// TableElements+Functions): wazero holds 60 to 300 bytes for each,
// written in a few bytes of the module. Small bounds here; each case is
// one past its bound, and at the bound the module compiles.
func TestModuleCountBounds(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir(), Modules: host.ModuleLimits{Functions: 4, TableElements: 4}})
	module := func(imports, exports, entries int) []byte {
		var m testutil.WasmModule
		ty := m.Type(nil, []byte{i32Type})
		for i := range imports {
			m.ImportFunc("wasi_snapshot_preview1", "f"+strconv.Itoa(i), ty)
		}
		m.Memory(1, -1) // one export
		m.Table(4, -1)
		f := m.Func(ty, nil, i32const(0))
		for i := range exports - 1 {
			m.Export("e"+strconv.Itoa(i), 0, f)
		}
		m.Elem(cat([]byte{3, 0}, funcs(make([]uint32, entries)...))) // declarative
		return m.Bytes()
	}
	for _, tt := range []struct {
		name                      string
		imports, exports, entries int
		want                      string // "" compiles
	}{
		{"at the bounds", 3, 4, 8, ""},
		{"imports and functions", 4, 1, 1, "functions, imported and defined"},
		{"exports", 0, 5, 1, "5 exports"},
		{"element entries", 0, 1, 9, "TableElements+Functions entries"},
	} {
		_, err := h.Compile(t.Context(), tt.name, module(tt.imports, tt.exports, tt.entries))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Compile = %v", tt.name, err)
		case tt.want != "" && (host.KindOf(err) != host.KindInvalidModule || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: Compile = %v, want invalid_module naming %q", tt.name, err, tt.want)
		}
	}
}
