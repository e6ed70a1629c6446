package host_test

import (
	"bytes"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestRenumberStdio runs a command that renumbers stdout onto stderr, which
// wazero refuses (ENOTSUP): fd_renumber onto a closed number is EBADF, onto
// 2 it succeeds, a write to 2 then reaches stdout, and 1 is closed (EBADF,
// the command's exit code). The guest exits 100+errno, 200+errno or
// 300+errno at the first step that goes otherwise.
func TestRenumberStdio(t *testing.T) {
	testutil.VerifyNone(t)
	var m testutil.WasmModule
	i32 := []byte{testutil.WasmI32}
	renumber := m.ImportFunc("wasi_snapshot_preview1", "fd_renumber", m.Type([]byte{testutil.WasmI32, testutil.WasmI32}, i32))
	write := m.ImportFunc("wasi_snapshot_preview1", "fd_write", m.Type(bytes.Repeat(i32, 4), i32))
	exit := m.ImportFunc("wasi_snapshot_preview1", "proc_exit", m.Type(i32, nil))
	m.Memory(1, -1)
	c := func(v int64) []byte { return append([]byte{0x41}, testutil.SLEB(v)...) } // i32.const
	call := func(f uint32) []byte { return append([]byte{0x10}, testutil.ULEB(f)...) }
	// failIf exits with base+errno unless the errno on the stack is want.
	failIf := func(want, base int64) []byte {
		code := []byte{0x22, 0} // local.tee 0
		code = append(code, c(want)...)
		code = append(code, 0x47, 0x04, 0x40) // i32.ne; if
		code = append(code, c(base)...)
		code = append(code, 0x20, 0, 0x6a) // local.get 0; i32.add
		code = append(code, call(exit)...)
		return append(code, 0x0b) // end
	}
	var code []byte
	code = append(code, c(1)...)
	code = append(code, c(9)...)
	code = append(code, call(renumber)...)
	code = append(code, failIf(8, 100)...) // EBADF: 9 is not open
	code = append(code, c(1)...)
	code = append(code, c(2)...)
	code = append(code, call(renumber)...)
	code = append(code, failIf(0, 200)...)
	for _, fd := range []int64{2, 1} {
		code = append(code, c(fd)...)
		code = append(code, c(0)...) // the iovec at 0
		code = append(code, c(1)...)
		code = append(code, c(8)...) // nwritten
		code = append(code, call(write)...)
		if fd == 2 {
			code = append(code, failIf(0, 300)...)
		}
	}
	code = append(code, call(exit)...) // the errno of the write to 1
	m.Export("_start", 0, m.Func(m.Type(nil, nil), []byte{testutil.WasmI32}, code))
	// Memory: an iovec {16, 2} at 0, "hi" at 16.
	data := []byte{1, 0, 0x41, 0, 0x0b, 18, 16, 0, 0, 0, 2, 0, 0, 0}
	data = append(data, make([]byte, 8)...)
	data = append(data, "hi"...)
	m.Extra = append(m.Extra, [2][]byte{{11}, data})

	h := newHost(t, host.Config{})
	mod := compileRaw(t, h, "renumber-stdio", m.Bytes())
	var stdout, stderr bytes.Buffer
	res, err := h.Run(t.Context(), mod, host.Call{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 8 || stdout.String() != "hi" || stderr.Len() != 0 {
		t.Errorf("Run = exit %d, stdout %q, stderr %q; want exit 8 (EBADF), stdout \"hi\", no stderr", res.ExitCode, stdout.String(), stderr.String())
	}
}
