package host

import (
	"bytes"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// guard marks a module that can be snapshotted with snapExport and
// exports its mutable globals; a module whose code changes a table or a
// segment, or with a mutable global the host cannot set, gets neither.
func TestGuardSnapshotExports(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte // the task's body, returning an i32
		ref  bool   // a mutable funcref global too
		want bool
	}{
		{"plain", []byte{0x41, 0x00}, false, true},
		{"table.set", []byte{0x41, 0x00, 0xd0, 0x70, 0x26, 0x00, 0x41, 0x00}, false, false},
		{"table.grow", []byte{0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00}, false, false},
		{"table.fill", []byte{0x41, 0x00, 0xd0, 0x70, 0x41, 0x01, 0xfc, 0x11, 0x00, 0x41, 0x00}, false, false},
		{"data.drop", []byte{0xfc, 0x09, 0x00, 0x41, 0x00}, false, false},
		{"elem.drop", []byte{0xfc, 0x0d, 0x00, 0x41, 0x00}, false, false},
		{"a funcref global", []byte{0x41, 0x00}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m testutil.WasmModule
			typ := m.Type(nil, []byte{testutil.WasmI32})
			m.Memory(1, -1)
			m.Table(1, -1)
			m.GlobalInit(testutil.WasmI32, true, []byte{0x41, 0x07})
			m.GlobalInit(testutil.WasmI64, false, []byte{0x42, 0x01})
			if tc.ref {
				m.GlobalInit(testutil.WasmFuncref, true, []byte{0xd0, 0x70})
			}
			task := m.Func(typ, nil, tc.code)
			m.Export("task", 0, task)
			m.Elem([]byte{1, 0, 1, 0})                                                       // a passive segment of function 0
			m.Extra = append(m.Extra, [2][]byte{{12}, {1}}, [2][]byte{{11}, {1, 1, 1, 'x'}}) // datacount, a passive data segment
			wasm := m.Bytes()
			if err := WazeroCompile(t.Context(), wasm); err != nil {
				t.Fatalf("the test module does not compile: %v", err)
			}
			g, err := guard(wasm, ModuleLimits{}.orDefaults(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := WazeroCompile(t.Context(), g.wasm); err != nil {
				t.Fatalf("guarded: %v", err)
			}
			marked := bytes.Contains(g.wasm, []byte(snapExport))
			exported := bytes.Contains(g.wasm, []byte(snapGlobalName(0)))
			if marked != tc.want || exported != tc.want {
				t.Errorf("snapExport %v, %s %v; want %v", marked, snapGlobalName(0), exported, tc.want)
			}
			if bytes.Contains(g.wasm, []byte(snapGlobalName(1))) {
				t.Errorf("the immutable global is exported as %s", snapGlobalName(1))
			}
		})
	}
}
