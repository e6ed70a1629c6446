//go:build !wasip1

package guest

import (
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// fakeABI stands in for the host's "spindle" module in tests on the build
// platform, following docs/abi.md: it copies at most cap bytes, refuses
// output and log lines past their limits with ERR_LIMIT (appending
// nothing), keeps the last error_set message, and accepts a send only on a
// granted channel. It is safe for concurrent use.
type fakeABI struct {
	// Set before the call, then read-only.
	task        string
	input       []byte
	outputLimit int       // bytes; 0: none
	logBudget   int       // bytes; 0: none
	granted     []Channel // the channels send accepts
	// execFn answers exec; nil: every exec is denied, as with no grant.
	execFn func(req []byte, res []byte) int32

	mu      sync.Mutex
	output  []byte     // guarded by mu
	errMsg  *string    // guarded by mu; nil until error_set
	logs    []fakeLog  // guarded by mu
	logUsed int        // guarded by mu
	sends   []fakeSend // guarded by mu
}

// fakeLog is one log call.
type fakeLog struct {
	level int32
	msg   string
}

// fakeSend is one accepted send.
type fakeSend struct {
	ch   Channel
	data []byte
	raw  bool
}

// fakeErrLimit is the ABI's limit on error_set messages.
const fakeErrLimit = 64 << 10

func (f *fakeABI) taskName(buf []byte) int32 {
	copy(buf, f.task)
	return int32(len(f.task))
}

func (f *fakeABI) inputLen() int32 { return int32(len(f.input)) }

func (f *fakeABI) inputRead(buf []byte) int32 { return int32(copy(buf, f.input)) }

func (f *fakeABI) outputWrite(b []byte) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outputLimit > 0 && len(f.output)+len(b) > f.outputLimit {
		return codeLimit
	}
	f.output = append(f.output, b...)
	return 0
}

func (f *fakeABI) errorSet(b []byte) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := string(b[:min(len(b), fakeErrLimit)])
	f.errMsg = &msg
	return 0
}

func (f *fakeABI) log(level int32, b []byte) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logBudget > 0 && f.logUsed+len(b) > f.logBudget {
		f.logUsed = f.logBudget // spent: refuse everything after
		return codeLimit
	}
	f.logUsed += len(b)
	f.logs = append(f.logs, fakeLog{level, string(b)})
	return 0
}

func (f *fakeABI) send(sender, data []byte, flags uint32) int32 {
	var ch Channel
	if err := msgpack.Unmarshal(sender, &ch); err != nil {
		return codeInvalid
	}
	if !slices.Contains(f.granted, ch) {
		return codeDenied
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, fakeSend{ch, slices.Clone(data), flags&sendRaw != 0})
	return 0
}

func (f *fakeABI) exec(req, res []byte) int32 {
	if f.execFn != nil {
		return f.execFn(req, res)
	}
	b, _ := msgpack.Marshal(&execResultWire{Exit: -1, Denied: true, Error: "the caller granted no programs (fake host)"})
	return int32(copy(res, b))
}

// defaultABI is the ABI of code outside a task call: off wasm, a fake
// that grants nothing.
func defaultABI() abi { return &fakeABI{} }
