// Package wire defines Spindle's frame format and the message types that cross
// a stream: the fixed frame header, the well-known handles, the error codes
// carried by dead messages and remote errors, and the msgpack bodies of the
// control messages.
//
// It sits at the bottom of the import graph: it starts no goroutines, holds no
// state and imports nothing of ours. docs/protocol.md is the normative
// description; this package is its executable form.
//
// # Untrusted bodies
//
// Every msgpack body that came from a child, a remote host or a guest is
// decoded with Unmarshal, which first walks it with Check: a body that is
// not exactly one msgpack value, nests deeper than MaxDepth (128), declares
// a str, bin, ext, array or map longer than the bytes left, or holds an ext
// other than a timestamp never reaches the msgpack decoder. Every such error
// wraps ErrMalformed. A checked body of n bytes costs its decoder at most
// 192·n bytes decoded into an interface value, and 2·n times the element
// size decoded into a typed slice; n itself is bounded by the stream's max
// message size (DefaultMaxMessageSize). A test in internal/deptest fails when
// a non-test file outside wire (and the guest SDK) calls msgpack's decoder
// directly.
//
// # Concurrency
//
// Everything here is a plain value or a pure function. A *Message must not be
// changed while another goroutine reads it; the routing layer hands each
// message to exactly one consumer.
package wire
