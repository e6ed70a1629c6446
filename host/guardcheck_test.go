package host

import (
	"context"
	"errors"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// FuzzGuard checks that guard never panics, that its rewrite never makes
// a module wazero refuses into one it compiles (a module that names the
// moved bodies or the counter), and that it never refuses a module wazero
// compiles for naming an index it does not declare.
func FuzzGuard(f *testing.F) {
	seed := func(code []byte, edit func(m *testutil.WasmModule)) []byte {
		var m testutil.WasmModule
		t := m.Type(nil, []byte{testutil.WasmI32})
		m.Memory(1, -1)
		m.Table(2, -1)
		task := m.Func(t, nil, code)
		m.Export("task", 0, task)
		if edit != nil {
			edit(&m)
		}
		return m.Bytes()
	}
	f.Add(seed([]byte{0x10, 0}, nil))                                                           // call 0
	f.Add(seed([]byte{0x10, 1}, nil))                                                           // call 1: a body
	f.Add(seed([]byte{0x41, 0x7f, 0x24, 0, 0x10, 0}, nil))                                      // global.set 0: the counter
	f.Add(seed([]byte{0x41, 0, 0x24, 0, 0x23, 0}, func(m *testutil.WasmModule) { m.Global() })) // a global of its own
	f.Add(seed([]byte{0x41, 0}, func(m *testutil.WasmModule) { m.Export("body", 0, 1) }))
	f.Add(seed([]byte{0x41, 0}, func(m *testutil.WasmModule) { m.ActiveElem(0, []uint32{0, 1}) }))
	f.Add(seed([]byte{0x41, 0}, func(m *testutil.WasmModule) {
		m.Elem([]byte{4, 0x41, 0, 0x0b, 1, 0xd2, 1, 0x0b}) // ref.func 1 in an expression
	}))
	f.Add(seed([]byte{0x41, 0}, func(m *testutil.WasmModule) {
		m.GlobalInit(testutil.WasmFuncref, false, []byte{0xd2, 0})
	}))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if len(wasm) > 1<<16 {
			return
		}
		ctx := context.Background()
		lim := ModuleLimits{}.orDefaults()
		g, err := guard(wasm, lim, 1<<20)
		switch {
		case errors.Is(err, errIndex):
			// guard stopped at the index: wazero may read the original
			// only if the rest of it passes guard's other checks.
			if checkedButIndexes(wasm, lim) {
				if werr := WazeroCompile(ctx, wasm); werr == nil {
					t.Errorf("guard refuses a module wazero compiles: %v", err)
				}
			}
		case err == nil && g.counted:
			if WazeroCompile(ctx, g.wasm) == nil {
				if werr := WazeroCompile(ctx, wasm); werr != nil {
					t.Errorf("the rewrite makes a module wazero refuses (%v) into one it compiles", werr)
				}
			}
		}
	})
}

// checkedButIndexes reports that wasm, which guard refused with errIndex,
// passes guard's other checks (those rewrite makes before checkIndexes
// passed already): its sections' declared lengths, and its bodies'
// bounds, with every index allowed.
func checkedButIndexes(wasm []byte, lim ModuleLimits) bool {
	sections, ok := splitSections(wasm)
	anyIndex := space{^uint32(0), ^uint32(0)}
	if !ok || checkSections(sections) != nil || checkIndexes(sections, anyIndex, lim) != nil {
		return false
	}
	for _, s := range sections {
		if s.id != sectionCode {
			continue
		}
		bodies, err := splitBodies(s.body)
		if err != nil {
			return false
		}
		for _, b := range bodies {
			if _, _, err := scanBody(b, lim, anyIndex); err != nil {
				return false
			}
		}
	}
	return true
}
