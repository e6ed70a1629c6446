package testutil

// WasmModule assembles a WebAssembly binary by hand, for tests that need a
// module no toolchain would emit (a hostile guest). Indexes are the caller's
// to keep straight: functions count imports first, in the order added.
// Code bodies are raw instruction bytes, without the locals and the final
// `end`, which Func adds.
//
// A WasmModule is not safe for concurrent use.
type WasmModule struct {
	types   [][]byte
	imports []byte
	nimport int
	funcs   []uint32
	tables  []byte
	ntables int
	memory  []byte
	globals []byte
	nglobal int
	exports []byte
	nexport int
	start   []byte
	elems   []byte
	nelems  int
	code    []byte
	ncode   int
	// Raw sections ({id}, body) for sections this builder has no helper
	// for: placed before the code section, or after it if id is 11
	// (data).
	Extra [][2][]byte
}

// Wasm value types.
const (
	WasmI32     = 0x7f
	WasmI64     = 0x7e
	WasmFuncref = 0x70
)

// Type adds the function type params -> results and returns its index.
func (m *WasmModule) Type(params, results []byte) uint32 {
	t := append([]byte{0x60}, ULEB(uint32(len(params)))...)
	t = append(t, params...)
	t = append(t, ULEB(uint32(len(results)))...)
	t = append(t, results...)
	m.types = append(m.types, t)
	return uint32(len(m.types) - 1)
}

// ImportFunc imports module.name of type typ and returns its function index.
func (m *WasmModule) ImportFunc(module, name string, typ uint32) uint32 {
	m.imports = append(m.imports, wasmName(module)...)
	m.imports = append(m.imports, wasmName(name)...)
	m.imports = append(m.imports, 0)
	m.imports = append(m.imports, ULEB(typ)...)
	m.nimport++
	return uint32(m.nimport - 1)
}

// Memory defines memory 0 with min pages (and max, if max >= 0), exported
// as "memory".
func (m *WasmModule) Memory(min uint32, max int64) {
	m.memory = wasmLimits(min, max)
	m.Export("memory", 2, 0)
}

// Table defines a funcref table of min elements (and max, if max >= 0) and
// returns its index.
func (m *WasmModule) Table(min uint32, max int64) uint32 {
	m.tables = append(m.tables, WasmFuncref)
	m.tables = append(m.tables, wasmLimits(min, max)...)
	m.ntables++
	return uint32(m.ntables - 1)
}

// Global defines a mutable i32 global set to 0 and returns its index.
func (m *WasmModule) Global() uint32 {
	m.globals = append(m.globals, WasmI32, 1, 0x41, 0, 0x0b)
	m.nglobal++
	return uint32(m.nglobal - 1)
}

// GlobalInit defines a global of value type typ (mutable if mut) whose
// initializer is the constant expression init, without its final `end`,
// and returns its index.
func (m *WasmModule) GlobalInit(typ byte, mut bool, init []byte) uint32 {
	m.globals = append(m.globals, typ, 0)
	if mut {
		m.globals[len(m.globals)-1] = 1
	}
	m.globals = append(m.globals, init...)
	m.globals = append(m.globals, 0x0b)
	m.nglobal++
	return uint32(m.nglobal - 1)
}

// Start makes function f the module's start function.
func (m *WasmModule) Start(f uint32) { m.start = ULEB(f) }

// Func defines a function of type typ with the given extra locals (each of
// one value type) and code, and returns its function index.
func (m *WasmModule) Func(typ uint32, locals []byte, code []byte) uint32 {
	m.funcs = append(m.funcs, typ)
	var body []byte
	body = append(body, ULEB(uint32(len(locals)))...)
	for _, l := range locals {
		body = append(body, 1, l)
	}
	body = append(body, code...)
	body = append(body, 0x0b)
	m.code = append(m.code, ULEB(uint32(len(body)))...)
	m.code = append(m.code, body...)
	m.ncode++
	return uint32(m.nimport + len(m.funcs) - 1)
}

// Export exports index of kind (0 function, 1 table, 2 memory, 3 global).
func (m *WasmModule) Export(name string, kind byte, index uint32) {
	m.exports = append(m.exports, wasmName(name)...)
	m.exports = append(m.exports, kind)
	m.exports = append(m.exports, ULEB(index)...)
	m.nexport++
}

// ActiveElem adds an active element segment writing funcs into table 0 at
// offset.
func (m *WasmModule) ActiveElem(offset int32, funcs []uint32) {
	m.elems = append(m.elems, 0, 0x41)
	m.elems = append(m.elems, SLEB(int64(offset))...)
	m.elems = append(m.elems, 0x0b)
	m.elems = append(m.elems, ULEB(uint32(len(funcs)))...)
	for _, f := range funcs {
		m.elems = append(m.elems, ULEB(f)...)
	}
	m.nelems++
}

// Elem adds an element segment given whole (its flags and the rest), for
// the forms ActiveElem does not write.
func (m *WasmModule) Elem(segment []byte) {
	m.elems = append(m.elems, segment...)
	m.nelems++
}

// Bytes returns the module's binary.
func (m *WasmModule) Bytes() []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, n int, body []byte) {
		if n == 0 {
			return
		}
		body = append(ULEB(uint32(n)), body...)
		b = append(b, id)
		b = append(b, ULEB(uint32(len(body)))...)
		b = append(b, body...)
	}
	var types []byte
	for _, t := range m.types {
		types = append(types, t...)
	}
	section(1, len(m.types), types)
	section(2, m.nimport, m.imports)
	var funcs []byte
	for _, f := range m.funcs {
		funcs = append(funcs, ULEB(f)...)
	}
	section(3, len(m.funcs), funcs)
	section(4, m.ntables, m.tables)
	if m.memory != nil {
		section(5, 1, m.memory)
	}
	section(6, m.nglobal, m.globals)
	section(7, m.nexport, m.exports)
	if m.start != nil {
		b = append(b, 8)
		b = append(b, ULEB(uint32(len(m.start)))...)
		b = append(b, m.start...)
	}
	section(9, m.nelems, m.elems)
	extra := func(data bool) {
		for _, s := range m.Extra {
			if (s[0][0] == 11) == data {
				b = append(b, s[0]...)
				b = append(b, ULEB(uint32(len(s[1])))...)
				b = append(b, s[1]...)
			}
		}
	}
	extra(false)
	section(10, m.ncode, m.code)
	extra(true)
	return b
}

func wasmName(s string) []byte { return append(ULEB(uint32(len(s))), s...) }

func wasmLimits(min uint32, max int64) []byte {
	if max < 0 {
		return append([]byte{0}, ULEB(min)...)
	}
	return append(append([]byte{1}, ULEB(min)...), ULEB(uint32(max))...)
}

// ULEB encodes v as unsigned LEB128.
func ULEB(v uint32) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// SLEB encodes v as signed LEB128.
func SLEB(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
