package routing

import (
	"errors"
	"fmt"

	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Sentinels for the failures that cross the wire. A *RemoteError matches the
// sentinel of its code with errors.Is, in whichever context it was made.
var (
	ErrNoRoute          = errors.New("routing: no route")
	ErrInvalidHandle    = errors.New("routing: invalid handle")
	ErrRefused          = errors.New("routing: refused by policy")
	ErrTooLarge         = errors.New("routing: message too large")
	ErrDisconnected     = errors.New("routing: respondent disconnected")
	ErrShutdown         = errors.New("routing: shut down")
	ErrUnidirectional   = errors.New("routing: refused by unidirectional routing mode")
	ErrUnexpectedSource = errors.New("routing: reply from unexpected context")
	ErrSenderClosed     = errors.New("routing: sender closed")
	ErrCallFailed       = errors.New("routing: call failed")
	ErrBadRequest       = errors.New("routing: bad request")
	ErrNotFound         = errors.New("routing: not found")
)

// Local errors, never sent.
var (
	ErrDuplicateHandle = errors.New("routing: cannot register a handle that already exists")
	ErrUnknownHandle   = errors.New("routing: unknown handle")
	ErrReceiverClosed  = errors.New("routing: receiver closed")
)

var codeSentinel = map[wire.Code]error{
	wire.CodeNoRoute:        ErrNoRoute,
	wire.CodeInvalidHandle:  ErrInvalidHandle,
	wire.CodeRefused:        ErrRefused,
	wire.CodeTooLarge:       ErrTooLarge,
	wire.CodeDisconnected:   ErrDisconnected,
	wire.CodeShutdown:       ErrShutdown,
	wire.CodeUnidirectional: ErrUnidirectional,
	wire.CodeUnexpectedSrc:  ErrUnexpectedSource,
	wire.CodeClosed:         ErrSenderClosed,
	wire.CodeCallFailed:     ErrCallFailed,
	wire.CodeBadRequest:     ErrBadRequest,
	wire.CodeNotFound:       ErrNotFound,
}

// CodeOf returns the wire code for err: the code of a *RemoteError, the code
// whose sentinel err matches, or wire.CodeCallFailed for any other error.
func CodeOf(err error) wire.Code {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	for code, sentinel := range codeSentinel {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return wire.CodeCallFailed
}

// RemoteError is a failure reported by a message: a dead message or an
// error reply. It is safe to share once made.
type RemoteError struct {
	Code    wire.Code
	Message string
	// Context is the ID of the context that produced the message.
	Context uint32
	// Start is how a child failed to start, when the message is the failed
	// reply to a START_CHILD from a context that says so (nil otherwise).
	Start *wire.StartFailure
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("context %d: %s", e.Context, e.Message)
}

// Is makes errors.Is(err, ErrNoRoute) (and the other sentinels) hold for a
// RemoteError carrying the matching code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeSentinel[e.Code]
	return ok && s == target
}

// ErrorOf decodes the failure carried by m, or returns nil when m is neither
// dead nor an error reply.
func ErrorOf(m *wire.Message) error {
	if m.Enc != wire.EncError && !m.IsDead() {
		return nil
	}
	var body wire.ErrorBody
	if err := wire.Unmarshal(m.Body, &body); err != nil {
		// Both a RemoteError (ErrBadRequest) and wire.ErrMalformed.
		return fmt.Errorf("%w: %w", &RemoteError{Code: wire.CodeBadRequest, Message: "undecodable error body", Context: m.Src}, err)
	}
	return &RemoteError{Code: body.Code, Message: body.Message, Context: m.Src, Start: body.Start}
}

func errorBody(code wire.Code, text string) []byte {
	b, err := msgpack.Marshal(&wire.ErrorBody{Code: code, Message: text})
	if err != nil {
		panic(err) // two plain fields cannot fail to encode
	}
	return b
}
