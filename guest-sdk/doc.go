// Package guest is the Go SDK for writing Spindle tasks: WebAssembly
// reactors, built with GOOS=wasip1, whose exported tasks the host calls with
// bytes in and bytes out. It implements the guest side of docs/abi.md and
// imports nothing from the host side of the repository.
//
// A task is a function registered under a name. Its input and output are
// msgpack by default (Register), or raw bytes (RegisterRaw). A module is a
// main package whose init functions register its tasks; its main function
// must exist but never runs.
//
// # Hello, world
//
// A complete module with one task, "hello":
//
//	package main
//
//	import "github.com/spindle-hq/spindle/guest-sdk"
//
//	type helloIn struct {
//		Name string `msgpack:"name"`
//	}
//
//	type helloOut struct {
//		Greeting string `msgpack:"greeting"`
//	}
//
//	func init() {
//		guest.Register("hello", func(ctx guest.Ctx, in helloIn) (helloOut, error) {
//			ctx.Info("greeting", "name", in.Name)
//			return helloOut{Greeting: "hello, " + in.Name}, nil
//		})
//	}
//
//	func main() {}
//
// Build it, from its directory, as a reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// and call it with spindle run and --input '{"name": "world"}'; the output
// shows as {"greeting": "hello, world"}.
//
// # Calls
//
// The SDK exports spindle_call, the export the host calls for a task that
// has no export of its own name. It reads the task name and the input from
// the host, runs the registered function and writes its output. A returned
// error reaches the caller as an error of kind "guest" carrying the error's
// message; a panic in the task function is recovered and reported the same
// way as "panic: <value>" (its stack is logged). A panic in another
// goroutine, a wasm trap, running out of memory or proc_exit are not
// recoverable: the host discards the instance and the caller gets the
// matching error kind.
//
// Before a call returns, the SDK yields to the Go scheduler
// (runtime.Gosched) whenever a GC cycle is under way, until it has
// finished, and otherwise once every 32 calls: the points at which the Go
// runtime collects the garbage made by calls; without them memory would grow
// across calls until the memory limit. (Yielding after every call, as the
// SDK once did, costs a few microseconds per call.)
//
// Goroutines started by a task run only while some call is running: wait
// for them before returning.
//
// # The sandbox
//
// A guest gets its linear memory, the host functions the SDK wraps, and a
// WASI preview 1 system interface that by default gives nothing away:
//
//   - Files: none, unless the caller grants mounts of host directories
//     (read-only or read-write), seen under the paths the caller chose.
//     Neither ".." nor a symlink, whether made by the guest or found in the
//     mount, reaches outside a mount. WASI shows no permission bits or
//     owners: Lattrs reads them, and Regrant gives a file the mode and
//     owner the caller granted the mount, and no other.
//   - Clocks: fake unless granted. The wall clock starts at 2022-01-01 and
//     advances 1 ms each time it is read; sleeps return at once. Granted,
//     they are the host's clocks.
//   - Randomness (crypto/rand, and what the runtime seeds from it):
//     deterministic unless granted, then the host's crypto/rand.
//   - Environment variables: only those the caller passes. Command modules
//     get only the arguments passed.
//   - Network: none; WASI preview 1 has no sockets to connect.
//
// Each call is limited in wall time (30 s by default), memory (256 MiB),
// output size (16 MiB) and logging (1 MiB of lines). Once the log budget is
// spent the host logs a notice and Log drops the call's remaining lines.
// Passing another limit ends the call with a typed error (timeout, memory,
// output_limit) and the instance is discarded; the context keeps serving.
//
// # Concurrency
//
// Register and RegisterRaw are safe for concurrent use, though they belong
// in init functions. A Ctx may be used from the goroutines its task starts
// until the task returns.
//
// # Testing
//
// The package builds on other platforms too, so code that uses it can be
// compiled and vetted natively; only GOOS=wasip1 builds export spindle_call
// and talk to a host.
package guest
