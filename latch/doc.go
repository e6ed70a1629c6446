// Package latch provides Latch, an unbounded FIFO queue that goroutines can
// sleep on, and Select, which waits on several queues at once.
//
// A Latch is where replies, messages and deferred results land: producers
// Put without ever blocking, and consumers Get, sleeping until an item
// arrives, their ctx ends, or the Latch is closed. A Select gathers many
// sources (Latches, other Selects, or types elsewhere that wrap a Latch and
// implement Source) and hands out their items as Events in the order the
// puts happened.
//
// # Concurrency
//
// Every method of Latch and Select is safe to call from any goroutine.
// Neither type starts goroutines, and Put never blocks.
//
// Wake-up order is strictly FIFO: sleepers in Get are served in the order
// they went to sleep, so the k-th sleeper receives the k-th item put after
// it slept. Put hands its item directly to the longest sleeper, so a later
// TryGet or Get can never take an item that was promised to a sleeper; Len
// counts only items not yet promised. If a sleeper's ctx ends at the same
// moment it is handed an item, Get returns the item with a nil error: a
// handed item is never lost and never put back.
//
// A source tells its Select about a new item through the function installed
// with SetNotify. A Latch calls it once per successful Put, on the putter's
// goroutine, after releasing its own lock; because it reads the function
// under the lock but calls it afterwards, a call may race with the
// function's removal. Select therefore treats its tokens as hints: a token
// for a source that has left, or whose item another reader drained, is
// skipped.
//
// Lock order, outermost first:
//
//  1. Select.mu of an outer Select;
//  2. Select.mu of a Select nested in it (parent before child, all the way
//     down);
//  3. Latch.mu, a leaf: no other lock is taken and no callback runs while
//     it is held.
//
// The cycle check in Select.Add walks upward from child to parent, but holds
// only one Select.mu at a time while doing so.
//
// # Lifecycle
//
// The zero value of Latch is open and ready to use; a Select comes from
// NewSelect. Whoever creates one closes it; Close is idempotent and safe from
// any goroutine.
//
// Closing a Latch drops the items it still holds, wakes every sleeper with
// ErrClosed, and makes every later Put, Get and TryGet fail with ErrClosed,
// even if items remained. An item handed to a sleeper before Close is still
// delivered to that sleeper.
//
// Closing a Select removes every source (clearing their notify functions,
// so they may join another Select; their buffered items stay put), wakes
// every sleeping Get with ErrClosed, and makes later calls fail with
// ErrClosed. Closing a source does not remove it from its Select; it simply
// delivers no more events. A source removed from a Select may be added to
// another. When the last source leaves a Select, sleeping Gets return
// ErrSelectEmpty.
package latch
