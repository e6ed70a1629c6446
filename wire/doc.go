// Package wire defines Spindle's frame format and the message types that cross
// a stream: the fixed frame header, the well-known handles, the error codes
// carried by dead messages and remote errors, and the msgpack bodies of the
// control messages.
//
// It sits at the bottom of the import graph: it starts no goroutines, holds no
// state and imports nothing of ours. docs/protocol.md is the normative
// description; this package is its executable form.
//
// # Concurrency
//
// Everything here is a plain value or a pure function. A *Message must not be
// changed while another goroutine reads it; the routing layer hands each
// message to exactly one consumer.
package wire
