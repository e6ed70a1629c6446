// Package routing routes Spindle messages between the handlers of one context
// and the streams to its parent and children: handles and their policies, the
// route table, reverse-path source checks, dead messages with reasons, ID
// allocation in blocks, ADD_ROUTE/DEL_ROUTE propagation, Receivers, Senders,
// calls and replies. docs/protocol.md is the wire-level description.
//
// # Trust
//
// Parents are trusted, children are not: whatever arrives on a child's stream
// is checked against what this router itself knows.
//
//   - Reverse path: a message's auth_id and src_id must be routed via the
//     stream it came in on, or it is dropped and logged (rate-limited with
//     the refusals below).
//   - Routes: the master records, per direct child's stream, the ID blocks it
//     granted to contexts below it (ALLOCATE_ID); every router between a
//     child and the master records, per child's stream, the blocks whose
//     grants it passes down.
//     ADD_ROUTE from a child is accepted only for an ID inside one of that
//     child's blocks that is not routed elsewhere and is not this context's
//     or an ancestor's. DEL_ROUTE from a child only for an ID routed via it,
//     other than the child's own.
//   - Replies: a handler bound to a respondent (every pending call) accepts
//     a reply only from the respondent, and a dead message only from this
//     router, or on the stream the request went out on, from the parent's
//     side or from a context on the path down to the respondent (the owners
//     of the blocks its ID and its ancestors' IDs came from). Dynamic
//     handles are drawn at random, so reply handles cannot be guessed.
//
// Refused ADD_ROUTE, DEL_ROUTE and ALLOCATE_ID, and reverse-path drops, are
// logged, rate-limited per stream (the first 16, then every 1024th). A refused ADD_ROUTE, or a
// DEL_ROUTE for an ID not routed via its sender, is answered with a dead
// message to the sender's handle of the same kind only when its refusal was
// logged, so that a flood of bad announcements does not become a flood of
// answers; a DEL_ROUTE whose src_id is not the immediate child is dropped
// unanswered. A refused ALLOCATE_ID is always answered, since its requester
// waits: by a dead ErrRefused from an intermediate router, by an ErrRefused
// error reply from the master. A message refused by a handler's policy, or
// a reply from an unexpected context, is logged (rate-limited alike) and,
// if it asked for a reply, answered with a dead message. A message that fails the reverse-path
// check is dropped and logged, unanswered.
//
// # Bounds
//
// What a child can make a router hold is bounded:
//
//   - routes per child stream: Config.MaxRoutesPerStream, default
//     DefaultMaxRoutesPerStream (16384), the child's own ID included. The
//     same bound caps the IDs remembered as destinations of the stream's
//     messages (for DEL_ROUTE notices); past it the stream is not told when
//     further IDs go, which costs only that child.
//   - ID blocks per child's subtree, at every router:
//     Config.MaxIDBlocksPerChild, default IDBlockShare(depth): in the master
//     DefaultMaxIDBlocksPerChild (4096 blocks of IDBlockSize = 1000, about
//     0.1% of the ID space), halved at each level below (2048 per child of
//     the master's children, 1024 one level down, ..., at least 1). The
//     master refuses to grant past it; any other router refuses to pass up
//     an ALLOCATE_ID from a child's stream whose blocks, with its requests
//     in flight, reach it. Either way the requester gets an error matching
//     ErrRefused that names the bound. A child may so take at most half of
//     its parent's share: a hostile descendant uses up its own share, and
//     its ancestors keep at least the other half for themselves and their
//     other children. (From depth 13 down the share is one block at every
//     level, and a child can use up its parent's.)
//   - ALLOCATE_ID requests passed up and unanswered: MaxAllocsInFlight (2)
//     per requester (src_id), at every router; the next gets a dead
//     ErrRefused. The bound is per requester, not per stream, so a hostile
//     context cannot use up its cousins' allowance behind a shared stream;
//     a child's stream holds at most MaxAllocsInFlight per ID routed via it
//     (MaxRoutesPerStream). Whatever comes down from the parent's side to a
//     request's reply handle (grant, refusal, a dead message from any router
//     above) ends the request's record; only a grant from the master, in
//     msgpack, is recorded as the subtree's block.
//   - route names: MaxRouteName (256) bytes; longer ones are cut.
//   - a Receiver's queue: DefaultReceiverLimits (1<<20 messages, 256 MiB
//     of bodies) for NewReceiver, or the ReceiverLimits given to
//     NewBoundedReceiver; past it a message is dropped, counted (Dropped),
//     logged, and answered with ErrRefused if it asked for a reply.
//   - a child that takes no bytes while a send waits for room on its stream:
//     Config.StallTimeout, default DefaultStallTimeout (30 s), after which
//     its stream is closed as stalled (broker.ErrStalled) and its contexts
//     are gone. Until then back-pressure travels hop by hop as usual. The
//     same clock runs once DEL_ROUTE notices posted to a child find bytes
//     waiting, so a child that reads nothing, to which nobody sends, cannot
//     make them pile up for longer either. The clock restarts whenever the
//     child takes a chunk (up to 1 MiB): it bounds a child that stops, not
//     one that reads slowly (see docs/SECURITY.md).
//
// # Concurrency
//
// A Router is safe for concurrent use. Handlers run on the goroutine that
// routed the message, usually a stream's reader; work done for a frame
// (forwarding it, answering it) runs under that stream's context, so it ends
// when the stream closes. Route withdrawals to children are posted (queued
// without waiting), so a child that has stopped reading cannot hold up the
// news of a disconnection for anyone else.
//
// A child's ADD_ROUTE is passed up by its stream's reader while the
// stream's close hook may run on another goroutine. The hook does not wait
// for it: it leaves the upward DEL_ROUTE for the ID being announced to the
// reader, which sends it after the ADD_ROUTE, so the parent never sees the
// withdrawal first.
//
// Lock order: Router.mu, then Router.hmu, then idAllocator.mu or peer.mu.
//
// # Lifecycle
//
// New registers the built-in handlers on a broker. SetParent and AddChild
// hand the router a stream; its close hook, which runs as soon as the stream
// closes (not when its reader gets round to it), removes the routes through
// it, sends DEL_ROUTE, then fails the calls pending on the contexts behind
// it with ErrDisconnected and closes their Disconnected channels. When the
// broker exits, every handler still registered gets a dead "broker has
// exited".
package routing
