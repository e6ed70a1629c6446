package wire

import "github.com/vmihailenco/msgpack/v5"

// Hello is the first frame a parent sends a new child (handle HandleHello,
// Dst = the child's new ID, Src = the parent's ID).
type Hello struct {
	Version        int      `msgpack:"version"`
	ID             uint32   `msgpack:"id"`
	Name           string   `msgpack:"name"`
	ParentIDs      []uint32 `msgpack:"parent_ids"` // parent first, the master (0) last
	MaxMessageSize uint32   `msgpack:"max_message_size"`
	LogLevel       int      `msgpack:"log_level"` // slog.Level: records below it are never sent
	Unidirectional bool     `msgpack:"unidirectional"`
	ShutdownGrace  int64    `msgpack:"shutdown_grace_ns"`
}

// HelloAck is the child's answer to Hello.
type HelloAck struct {
	Version int    `msgpack:"version"`
	ID      uint32 `msgpack:"id"`
	PID     int    `msgpack:"pid"`
	Error   string `msgpack:"error,omitempty"` // set when the child refuses the Hello
}

// Route is the body of ADD_ROUTE, DEL_ROUTE and STOP_CHILD.
type Route struct {
	ID   uint32 `msgpack:"id"`
	Name string `msgpack:"name,omitempty"`
}

// IDBlock is the reply to ALLOCATE_ID: the IDs [Start, End) belong to the
// asker for the rest of the run.
type IDBlock struct {
	Start uint32 `msgpack:"start"`
	End   uint32 `msgpack:"end"`
}

// CallRequest is the body of a CALL message.
type CallRequest struct {
	Fn   string             `msgpack:"fn"`
	Args msgpack.RawMessage `msgpack:"args,omitempty"`
}

// StartChild is the body of START_CHILD.
type StartChild struct {
	Name string `msgpack:"name"`
}

// ChildStarted is the reply to START_CHILD.
type ChildStarted struct {
	ID   uint32 `msgpack:"id"`
	Name string `msgpack:"name"`
	PID  int    `msgpack:"pid"`
}

// LogRecord is the body of FORWARD_LOG.
type LogRecord struct {
	Context string   `msgpack:"ctx"`   // name of the context the record is about
	TimeNs  int64    `msgpack:"t"`     // Unix nanoseconds
	Level   int      `msgpack:"level"` // slog.Level
	Msg     string   `msgpack:"msg"`
	Attrs   []string `msgpack:"attrs,omitempty"` // key, value, key, value...
}
