//go:build wasip1

package guest

import (
	"runtime"
	"unsafe"
)

// The host functions, module "spindle" (docs/abi.md). Pointers are lowered
// to i32 offsets into the exported memory, int32 to i32.

//go:wasmimport spindle task_name
func spindleTaskName(buf unsafe.Pointer, cap int32) int32

//go:wasmimport spindle input_len
func spindleInputLen() int32

//go:wasmimport spindle input_read
func spindleInputRead(buf unsafe.Pointer, cap int32) int32

//go:wasmimport spindle output_write
func spindleOutputWrite(ptr unsafe.Pointer, len int32) int32

//go:wasmimport spindle error_set
func spindleErrorSet(ptr unsafe.Pointer, len int32) int32

//go:wasmimport spindle log
func spindleLog(level int32, ptr unsafe.Pointer, len int32) int32

//go:wasmimport spindle send
func spindleSend(senderPtr unsafe.Pointer, senderLen int32, dataPtr unsafe.Pointer, dataLen int32, flags uint32) int32

//go:wasmimport spindle exec
func spindleExec(reqPtr unsafe.Pointer, reqLen int32, resPtr unsafe.Pointer, resCap int32) int32

// wasmABI is abi over the real imports.
type wasmABI struct{}

// ptr is b's address in linear memory; the import call keeps b alive, and
// Go's heap does not move.
func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func (wasmABI) taskName(buf []byte) int32 { return spindleTaskName(ptr(buf), int32(len(buf))) }
func (wasmABI) inputLen() int32           { return spindleInputLen() }
func (wasmABI) inputRead(buf []byte) int32 {
	return spindleInputRead(ptr(buf), int32(len(buf)))
}
func (wasmABI) outputWrite(b []byte) int32 { return spindleOutputWrite(ptr(b), int32(len(b))) }
func (wasmABI) errorSet(b []byte) int32    { return spindleErrorSet(ptr(b), int32(len(b))) }
func (wasmABI) log(level int32, b []byte) int32 {
	return spindleLog(level, ptr(b), int32(len(b)))
}
func (wasmABI) send(sender, data []byte, flags uint32) int32 {
	return spindleSend(ptr(sender), int32(len(sender)), ptr(data), int32(len(data)), flags)
}

func (wasmABI) exec(req, res []byte) int32 {
	return spindleExec(ptr(req), int32(len(req)), ptr(res), int32(len(res)))
}

// defaultABI is the ABI of code outside a task call (a command's main).
func defaultABI() abi { return wasmABI{} }

// writeBarrier is the runtime's write barrier switch, on while the GC is
// marking (from the start of a cycle to its mark termination). The runtime
// keeps it linkable on purpose (go.dev/issue/67401; "do not remove or
// change the type signature"); the SDK only reads its first field.
//
//go:linkname writeBarrier runtime.writeBarrier
var writeBarrier struct {
	enabled bool
	pad     [3]byte
	alignme uint64
}

// gcMarking reports whether a GC cycle is marking.
func gcMarking() bool { return writeBarrier.enabled }

// yields is the policy of this module's spindle_call.
var yields yieldPolicy

// spindleCall is the export the host calls for any task that has no export
// of its own name (docs/abi.md, "Calling a task").
//
//lint:ignore U1000 the host calls it: staticcheck does not see wasmexport
//go:wasmexport spindle_call
func spindleCall() int32 {
	status := serve(wasmABI{}, &tasks)
	yields.after(gcMarking, runtime.Gosched)
	return status
}
