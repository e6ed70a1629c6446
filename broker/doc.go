// Package broker runs the I/O side of one Spindle process: framed streams over
// any byte pipe, the goroutines that serve them, timers, and the shutdown
// sequence. It knows nothing of routing: each decoded frame is handed to the
// Handler its stream was opened with.
//
// # Streams
//
// A Stream wraps an io.ReadWriteCloser (a socketpair, a pair of pipes, an ssh
// session's stdio). It has exactly one reader goroutine, which decodes frames
// and calls the stream's Handler, and one writer goroutine, which drains a
// bounded queue of outgoing frames into the pipe, batching whatever has
// accumulated into one write. When the queue holds more than
// StreamConfig.MaxQueued bytes, Send blocks (back-pressure): a slow or stuck
// peer slows its senders down instead of making memory grow. A frame whose
// header is bad or whose length exceeds the limit closes that stream, and only
// that stream, with a logged reason. The first error that kills a stream is
// kept and returned by every later Send and by Err.
//
// A stream's Context ends when the stream closes: work done on behalf of its
// peer (forwarding its frames into another stream) runs under it, so a dead
// peer never leaves its reader blocked elsewhere. The OnClose hook runs as
// soon as the stream closes, whoever closed it, without waiting for the
// reader. Post queues a small control frame without waiting for room (a
// route withdrawal must not wait behind a peer that has stopped reading).
//
// # Bounds
//
//   - queued bytes per stream: StreamConfig.MaxQueued, default 4 MiB (one
//     larger frame is accepted into an empty queue);
//   - frame bodies read: StreamConfig.MaxMessageSize, default
//     wire.DefaultMaxMessageSize;
//   - a peer that takes no bytes at all while a Send waits for room:
//     StreamConfig.StallTimeout (none by default; the router gives child
//     streams 30 s), after which the stream closes with ErrStalled. A large
//     queue is written in chunks of 1 MiB so that a slow but live peer shows
//     progress. The clock is per chunk, not a rate: a peer that takes a
//     chunk within each StallTimeout (about 35 KB/s for 30 s) is never cut,
//     however long its senders wait.
//   - frames posted (Post) past MaxQueued: not bounded in bytes, but a Post
//     that finds bytes waiting starts the same StallTimeout clock, so they
//     pile up behind a peer that takes nothing for at most StallTimeout. A
//     stream without a StallTimeout relies on its caller to bound its
//     posts.
//
// # Concurrency
//
// Broker and Stream methods are safe for concurrent use. A Handler runs on its
// stream's reader goroutine, one frame at a time, in arrival order; it may call
// Send on any stream, which can block on back-pressure. Deferred functions and
// timer callbacks run one at a time on the broker's loop goroutine and must
// not block for long.
//
// Lock order: Broker.mu is never held while taking a Stream's mu, and no lock
// is held while calling a Handler, an OnClose hook or a deferred function.
// OnClose runs on the stream's writer goroutine after the writer has
// stopped; a Handler call under way at the close may overlap it. The stall
// clock of posted frames runs on the loop goroutine.
//
// # Lifecycle
//
// New starts the loop goroutine. Every goroutine the broker starts (stream
// readers and writers, Go, the loop) is owned by it: Close returns only after
// all of them have exited. Shutdown starts the sequence: the OnShutdown hooks
// run (a router uses them to send SHUTDOWN to its children), then the broker
// waits up to the grace period for every KeepAlive stream to close, then
// closes every remaining stream, cancels the lifetime context of Go
// goroutines, runs the OnExit hooks and waits for its goroutines. After
// Shutdown has begun, opening a stream, Go and Defer fail with ErrShutdown.
// The broker closes each Stream it opened, and each Stream closes its pipe.
package broker
