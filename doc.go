// Package spindle starts and drives a tree of Spindle contexts: a master
// process and the child broker processes it starts, locally and through each
// other, all talking msgpack frames over socketpairs.
//
// # Usage
//
// A program that starts contexts must call MaybeRunChild first thing in main
// (and in TestMain for tests), because every child is a re-execution of the
// same binary:
//
//	func main() {
//		spindle.MaybeRunChild(nil)
//		m, err := spindle.NewMaster(spindle.Config{})
//		...
//		c, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "worker"})
//		var pong spindle.PingResult
//		err = c.Call(ctx, "ping", nil, &pong)
//		gc, err := c.StartLocal(ctx, spindle.LocalOptions{Name: "grandchild"}) // via c
//		...
//		m.Close() // SHUTDOWN to the whole tree, grace period, then kill
//	}
//
// # Task budgets
//
// A task's guest is bounded per call by Limits (host.Limits: time, memory,
// output, logs, channel sends; defaults in package host). Context.Run adds:
//
//   - The caller's ctx reaches the context: the request carries its
//     deadline (RunTask.deadline_ns), and when ctx ends first Run sends
//     CANCEL_TASK; the guest is stopped either way, and Run returns at once.
//   - A Run's stdout and stderr are flow-controlled: the context sends
//     coalesced chunks of at most host.OutputChunkBytes (32 KiB), each
//     acknowledged once written, with at most 4 unacknowledged, so a slow
//     writer slows the task instead of growing the master. The master
//     queues at most OutputQueueChunks (16) chunks and OutputQueueBytes
//     (1 MiB) per Run; a chunk past that (only a compromised child sends
//     one) is refused with an error to its sender, and the Run fails with
//     kind output_limit.
//   - A Run's stdin (Task.Stdin) is pulled by the context as the guest
//     reads it: one request per chunk of at most wire.StdinChunkBytes
//     (64 KiB), at most wire.StdinWindow (4) unanswered, so a context holds
//     at most 256 KiB of a task's stdin however fast the producer, and
//     Task.Stdin is read only when the guest reads. The master queues at
//     most wire.StdinQueue (8) requests per Run, each without its body,
//     and refuses one past it (stdin.go).
//
// What one call can queue in a receiver it was granted as a channel
// (Task.Channels) is bounded by Limits.SendBytes and Limits.SendMessages
// (16 MiB, 65,536 by default). What all senders together (many calls, or a
// compromised child) can queue in a receiver is bounded by the receiver:
// routing.DefaultReceiverLimits (1<<20 messages, 256 MiB) for one from
// Router().NewReceiver, or what was given to NewBoundedReceiver.
//
// # Start errors
//
// Every failed start (Master.Start, Context.Start, Master.StartTarget,
// Fleet) returns a *StartError: its Class (auth, host_key, unreachable,
// timeout, platform, refused, lost, cancelled, other), the hop it was, one
// line of detail (the transport's own line when it printed one), and a
// Hint when there is an obvious fix. errors.Is(err, ErrChildStart) holds
// for all of them, ErrAuth, ErrHostKey, ErrUnreachable and ErrPlatform for
// their classes, and the class and detail of a hop started by another
// context cross the wire, so they read the same at the master.
//
// # Concurrency
//
// Master and Context methods are safe for concurrent use. Native functions
// (Func) run on their own goroutine, or on a stream's reader goroutine when
// registered as Inline (which must then never block).
//
// # Lifecycle
//
// The Master owns its broker, router and every child process it started.
// Close sends SHUTDOWN down the tree, waits up to Config.Grace for the
// children to leave, kills what remains, reaps every process and returns once
// all goroutines have exited. A child exits when told to shut down, when its
// parent's stream closes, or (local children) when its parent process dies
// (PR_SET_PDEATHSIG).
package spindle
