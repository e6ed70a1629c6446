package wire

// Well-known handles. Every context listens on the ones its role needs; the
// policy each is registered with is given in docs/protocol.md.
const (
	// HandleHello carries the handshake. It is only valid as the first frame
	// in each direction of a stream and is never routed.
	HandleHello uint32 = 100
	// HandleCall invokes a native function by name (CallRequest).
	HandleCall uint32 = 101
	// HandleForwardLog carries a LogRecord to the master.
	HandleForwardLog uint32 = 102
	// HandleAddRoute announces a new context below the sender (Route).
	HandleAddRoute uint32 = 103
	// HandleDelRoute announces that a context has gone (Route).
	HandleDelRoute uint32 = 104
	// HandleAllocateID asks the master for a block of context IDs (IDBlock).
	HandleAllocateID uint32 = 105
	// HandleShutdown asks a context to shut down with its whole subtree.
	HandleShutdown uint32 = 106
	// HandleStartChild asks a context to start a child of its own
	// (StartChild, replied to with ChildStarted).
	HandleStartChild uint32 = 107
	// HandleStopChild asks a context to kill one of its direct children
	// (Route): the forced half of Context.Shutdown.
	HandleStopChild uint32 = 108
	// HandleRunTask runs a wasm task in the context (RunTask, replied to
	// with TaskResult).
	HandleRunTask uint32 = 109
	// HandleGetModule asks the parent for a module by hash (GetModule,
	// replied to with the module's bytes, raw).
	HandleGetModule uint32 = 110
	// HandleLoadModule pushes a module one hop toward a target context
	// (LoadModule).
	HandleLoadModule uint32 = 111
	// HandleCancelTask cancels a RUN_TASK its sender no longer waits for
	// (CancelTask).
	HandleCancelTask uint32 = 112
	// HandleGetBlobs asks the parent for blobs by hash (GetBlobs, replied
	// to with Blobs).
	HandleGetBlobs uint32 = 113
	// HandlePullBlobs asks a descendant for blobs it holds (GetBlobs,
	// replied to with Blobs).
	HandlePullBlobs uint32 = 114

	// IsDead is not a handle: in ReplyTo it marks a dead message, whose body
	// is an ErrorBody.
	IsDead uint32 = 999
	// FirstDynamicHandle is the first handle a router allocates for
	// receivers and replies.
	FirstDynamicHandle uint32 = 1000
)

// Code classifies an error carried across the wire, in a dead message or a
// failed reply. Each code maps back to one sentinel error on the receiving
// side (see routing.RemoteError), so errors.Is works end to end.
type Code uint16

// The codes. New codes may be added; a receiver maps an unknown code to a
// generic remote error.
const (
	CodeUnknown        Code = 0
	CodeNoRoute        Code = 1  // no route to the destination context
	CodeInvalidHandle  Code = 2  // nothing listens on the handle
	CodeRefused        Code = 3  // a handler policy refused the message
	CodeTooLarge       Code = 4  // the message exceeds the max message size
	CodeDisconnected   Code = 5  // the respondent context went away
	CodeShutdown       Code = 6  // the router or broker is shutting down
	CodeUnidirectional Code = 7  // routing mode forbids sibling traffic
	CodeUnexpectedSrc  Code = 8  // a reply came from the wrong context
	CodeClosed         Code = 9  // the sender explicitly closed the channel
	CodeCallFailed     Code = 10 // the called function returned an error
	CodeBadRequest     Code = 11 // a request body could not be decoded
	CodeNotFound       Code = 12 // the named function or object does not exist
)

// ErrorBody is the msgpack body of an EncError message.
type ErrorBody struct {
	Code    Code   `msgpack:"code"`
	Message string `msgpack:"msg"`
	// Start says how a child failed to start, in the failed reply to a
	// START_CHILD; nil in every other error body. A receiver that does not
	// know the key ignores it and reads Message.
	Start *StartFailure `msgpack:"start,omitempty"`
}

// StartFailure is how a START_CHILD failed, for the parent to show in its
// own words (see spindle.StartError). Class is one of "auth", "host_key",
// "unreachable", "timeout", "platform", "refused", "lost", "cancelled",
// "other"; a receiver treats a class it does not know as "other".
type StartFailure struct {
	Class  string `msgpack:"class"`
	Label  string `msgpack:"label,omitempty"`  // the transport: "ssh web1", "sudo -u root", "local"
	Detail string `msgpack:"detail,omitempty"` // one line: what the transport said, or why
}
