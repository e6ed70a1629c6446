package guest

import (
	"errors"
	"fmt"
)

// abi is the host's "spindle" import module (docs/abi.md, "Host functions")
// over Go slices. imports_wasip1.go implements it with the real imports;
// imports_other.go has an in-process fake for tests on the build platform.
//
// Every method copies: the host keeps no slice past the call.
type abi interface {
	taskName(buf []byte) int32
	inputLen() int32
	inputRead(buf []byte) int32
	outputWrite(b []byte) int32
	errorSet(b []byte) int32
	log(level int32, b []byte) int32
	send(sender, data []byte, flags uint32) int32
	exec(req, res []byte) int32
}

// The host functions' return codes (docs/abi.md).
const (
	codeMemory  = -1 // ERR_MEMORY
	codeLimit   = -2 // ERR_LIMIT
	codeDenied  = -3 // ERR_DENIED
	codeInvalid = -4 // ERR_INVALID
	codeFailed  = -5 // ERR_FAILED
)

// sendRaw is bit 0 of send's flags: the data is raw bytes, not msgpack.
const sendRaw = 1

// Errors a host function can report, one per ABI return code. Ctx methods
// wrap them, so check with errors.Is.
var (
	// ErrMemory: a buffer lay outside guest memory (ERR_MEMORY). It means
	// a bug in the SDK.
	ErrMemory = errors.New("guest: buffer outside guest memory")
	// ErrLimit: a per-call limit (output size, log budget, send budget)
	// would be passed (ERR_LIMIT).
	ErrLimit = errors.New("guest: per-call limit reached")
	// ErrDenied: the caller did not grant it, for example a channel that was
	// not in the task's input (ERR_DENIED).
	ErrDenied = errors.New("guest: not granted")
	// ErrInvalid: the host could not decode an argument (ERR_INVALID).
	ErrInvalid = errors.New("guest: invalid argument")
	// ErrFailed: the host could not do it, for example because the
	// channel's context is gone (ERR_FAILED).
	ErrFailed = errors.New("guest: host could not do it")
	// ErrReturned: the Ctx belongs to a task call that has already
	// returned.
	ErrReturned = errors.New("guest: task call has returned")
)

// codeErr maps a negative return code to its sentinel.
func codeErr(rc int32) error {
	switch rc {
	case codeMemory:
		return ErrMemory
	case codeLimit:
		return ErrLimit
	case codeDenied:
		return ErrDenied
	case codeInvalid:
		return ErrInvalid
	case codeFailed:
		return ErrFailed
	}
	return fmt.Errorf("guest: host returned unknown code %d", rc)
}
