package host

import (
	"bytes"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// guard reads a SIMD sub-opcode as one byte, as wazero does: a 2-byte
// LEB128 one (fd 80 02) is i16x8.abs and then a block to wazero, and the
// loop inside that block gets its tick. Read as a number, the block and
// loop would be taken for immediates and the loop left without one
// (TestSIMDPrefixCannotHideALoop runs it).
func TestGuardReadsSIMDOpcodeAsWazeroDoes(t *testing.T) {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	code := append([]byte{0xfd, 0x0c}, make([]byte, 16)...) // v128.const 0
	code = append(code, 0xfd, 0x80, 0x02, 0x40, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 0x1a, 0x41, 0x00)
	m.Export("task", 0, m.Func(task, nil, code))
	g, err := guard(m.Bytes(), ModuleLimits{}.orDefaults(), 1<<20)
	if err != nil {
		t.Fatalf("guard: %v", err)
	}
	i := bytes.Index(g.wasm, []byte{0xfd, 0x80, 0x02, 0x40, 0x03, 0x40})
	if i < 0 {
		t.Fatal("the guarded module lost the SIMD instruction and the loop")
	}
	loop := g.wasm[i+6:]
	if tk := tick(nil, 0, 0); len(loop) == 0 || loop[0] != tk[0] || bytes.HasPrefix(loop, []byte{0x0c, 0x00}) {
		t.Fatalf("the loop after the SIMD instruction has no tick: % x", loop[:min(len(loop), 12)])
	}
}

// A body whose entry runs straight into a loop (Go's shape: global.get,
// local.set, block, loop) ticks at that loop's head as it begins, so its
// wrapper has no tick of its own; any other body's wrapper ticks. Four
// functions: one beginning with a loop, one with Go's prologue, one whose
// loop comes after a branch, one with none: five ticks in all (two
// wrappers, three loop heads), not seven.
func TestGuardTicksAnEntryLoopOnce(t *testing.T) {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	loopFirst := []byte{0x03, 0x40, 0x0b, 0x41, 0x00} // loop end; i32.const 0
	// i32.const 0, drop, block, loop, end, end; i32.const 0
	goShape := []byte{0x41, 0x00, 0x1a, 0x02, 0x40, 0x03, 0x40, 0x0b, 0x0b, 0x41, 0x00}
	// block, i32.const 0, br_if 0, loop, end, end; i32.const 0
	afterBranch := []byte{0x02, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x03, 0x40, 0x0b, 0x0b, 0x41, 0x00}
	m.Export("first", 0, m.Func(task, nil, loopFirst))
	m.Export("go", 0, m.Func(task, nil, goShape))
	m.Export("branch", 0, m.Func(task, nil, afterBranch))
	m.Export("none", 0, m.Func(task, nil, []byte{0x41, 0x00}))
	g, err := guard(m.Bytes(), ModuleLimits{}.orDefaults(), 1<<20)
	if err != nil {
		t.Fatalf("guard: %v", err)
	}
	// No globals: the counter is global 0, fuel 1, stop 2.
	if n := bytes.Count(g.wasm, tick(nil, 1, 2)); n != 5 {
		t.Errorf("the guarded module has %d ticks, want 5 (the wrappers of branch and none, the heads of the three loops)", n)
	}
	if !bytes.Contains(g.wasm, append([]byte{0x03, 0x40}, tick(nil, 1, 2)...)) {
		t.Error("a loop's head has no tick")
	}
}
