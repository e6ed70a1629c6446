package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/spindle-hq/spindle/wire"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The host side of docs/abi.md: the "spindle" host module.

const (
	abiModule  = "spindle"
	wasiModule = "wasi_snapshot_preview1"
)

// Return codes of the host functions (docs/abi.md).
const (
	codeOK      = 0
	codeMemory  = -1 // ERR_MEMORY
	codeLimit   = -2 // ERR_LIMIT
	codeDenied  = -3 // ERR_DENIED
	codeInvalid = -4 // ERR_INVALID
	codeFailed  = -5 // ERR_FAILED
)

// maxErrorMessage clips error_set messages.
const maxErrorMessage = 64 << 10

const flagRaw = 1 // send: bit 0 set = raw bytes

var i32 = []api.ValueType{api.ValueTypeI32}

// abiFunc is one host function of the spindle module. fn gets the state of
// the call it serves and returns the function's i32 result.
type abiFunc struct {
	name   string
	params []string // all i32
	fn     func(ctx context.Context, st *callState, mod api.Module, stack []uint64) int32
}

var abiFuncs = []abiFunc{
	{"task_name", []string{"buf", "cap"}, abiTaskName},
	{"input_len", nil, abiInputLen},
	{"input_read", []string{"buf", "cap"}, abiInputRead},
	{"output_write", []string{"ptr", "len"}, abiOutputWrite},
	{"error_set", []string{"ptr", "len"}, abiErrorSet},
	{"log", []string{"level", "ptr", "len"}, abiLog},
	{"send", []string{"sender_ptr", "sender_len", "data_ptr", "data_len", "flags"}, abiSend},
	{"exec", []string{"req_ptr", "req_len", "res_ptr", "res_cap"}, abiExec},                     // exec.go
	{"path_attrs", []string{"fd", "path_ptr", "path_len", "res_ptr"}, abiPathAttrs},             // attrs.go
	{"path_regrant", []string{"fd", "what", "path_ptr", "path_len", "res_ptr"}, abiPathRegrant}, // attrs.go
}

// abiSignatures maps each host function to its parameter types; every one
// returns one i32.
var abiSignatures = func() map[string][]api.ValueType {
	m := make(map[string][]api.ValueType, len(abiFuncs))
	for _, f := range abiFuncs {
		params := make([]api.ValueType, len(f.params))
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		m[f.name] = params
	}
	return m
}()

// instantiateABI instantiates the spindle host module in r. The functions
// find the call they serve through the ctx of the guest's call (see
// stateFrom), so one module serves every instance.
func instantiateABI(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abiModule)
	for _, f := range abiFuncs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(withState(f.fn), abiSignatures[f.name], i32).
			WithParameterNames(f.params...).
			WithResultNames("result").
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// Host functions must not panic: wazero turns a panic into a trap of the
// guest. Every pointer and length comes from the guest and is checked by
// api.Memory.Read, which fails for any range outside the memory.

// withState adapts a host function body: it finds the call's state (outside
// a call there is none: ERR_FAILED) and stores the body's result.
func withState(fn func(context.Context, *callState, api.Module, []uint64) int32) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		code := int32(codeFailed)
		if st := stateFrom(ctx); st != nil {
			st.hostCalls++
			code = fn(ctx, st, mod, stack)
		}
		stack[0] = api.EncodeI32(code)
	}
}

// view returns the guest's memory at [ptr, ptr+n). It aliases the memory:
// copy what must outlive the host function.
func view(mod api.Module, ptr, n uint64) ([]byte, bool) {
	mem := mod.Memory()
	if mem == nil {
		return nil, false
	}
	return mem.Read(api.DecodeU32(ptr), api.DecodeU32(n))
}

func abiTaskName(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	buf, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	copy(buf, st.task)
	return int32(len(st.task))
}

func abiInputLen(_ context.Context, st *callState, _ api.Module, _ []uint64) int32 {
	return int32(len(st.input))
}

func abiInputRead(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	buf, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	return int32(copy(buf, st.input))
}

func abiOutputWrite(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	b, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	if int64(len(st.output))+int64(len(b)) > st.limits.OutputBytes {
		st.outputOverflow = true
		return codeLimit
	}
	st.output = append(st.output, b...)
	return codeOK
}

func abiErrorSet(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	b, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	st.errMsg = string(b[:min(len(b), maxErrorMessage)])
	st.errSet = true
	return codeOK
}

func abiLog(ctx context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	level := slog.Level(api.DecodeI32(stack[0]))
	b, ok := view(mod, stack[1], stack[2])
	if !ok {
		return codeMemory
	}
	// A record costs the master more than its message: count a fixed
	// cost too, and the records themselves, so that empty messages
	// spend the budget as well.
	cost := int64(len(b)) + LogRecordCost
	if st.logSpent || st.logUsed+cost > st.limits.LogBytes || st.logRecords >= st.limits.LogRecords {
		if !st.logSpent {
			st.logSpent = true
			st.log(ctx, slog.LevelWarn, fmt.Sprintf("log budget of %d bytes or %d records spent: dropping further messages",
				st.limits.LogBytes, st.limits.LogRecords))
		}
		return codeLimit
	}
	st.logUsed += cost
	st.logRecords++
	st.log(ctx, level, string(b))
	return codeOK
}

// maxSenderLen bounds the encoded channel a guest passes to send: the
// msgpack of {"ctx": uint32, "handle": uint32} takes at most 26 bytes, and
// longer input is refused before it is decoded.
const maxSenderLen = 64

func abiSend(ctx context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	if api.DecodeU32(stack[1]) > maxSenderLen {
		return codeInvalid
	}
	sender, ok := view(mod, stack[0], stack[1])
	if !ok {
		return codeMemory
	}
	data, ok := view(mod, stack[2], stack[3])
	if !ok {
		return codeMemory
	}
	flags := api.DecodeU32(stack[4])
	ch, err := decodeChannel(sender)
	switch {
	case err != nil:
		return codeInvalid
	case !st.granted(ch):
		return codeDenied
	case st.send == nil:
		return codeFailed
	}
	// The budget is checked before data is copied: a refused send costs
	// the host nothing. Passing it ends the call, as passing the stdout
	// limit does: a guest that ignores the error would spin to its
	// timeout.
	if st.sendOverflow || st.sendMessages >= st.limits.SendMessages || st.sendBytes+int64(len(data)) > st.limits.SendBytes {
		st.sendOverflow = true
		st.stop(errOutputLimit)
		return codeLimit
	}
	st.sendMessages++
	st.sendBytes += int64(len(data))
	if err := st.send(ctx, ch, flags&flagRaw != 0, bytes.Clone(data)); err != nil {
		return codeFailed
	}
	return codeOK
}

// decodeChannel decodes the msgpack encoding of a Channel that a guest
// passes to send. The bytes are the guest's: wire.Unmarshal checks them
// first, and a decoder panic is an error too.
func decodeChannel(b []byte) (ch Channel, err error) {
	err = wire.Unmarshal(b, &ch)
	return ch, err
}
