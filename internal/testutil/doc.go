// Package testutil checks that a test leaves nothing behind: no goroutines,
// open file descriptors or child processes that were not there when it
// started.
//
// It is imported only by _test.go files. The descriptor and child-process
// checks read /proc, so they run on Linux only; where /proc cannot be read
// they are skipped and only goroutines are checked.
//
// A test starts with
//
//	testutil.VerifyNone(t)
//
// and a package whose tests call t.Parallel uses VerifyTestMain from its
// TestMain instead.
//
// # Concurrency
//
// The checks look at the whole process, so they cannot tell one test's
// goroutines, descriptors or children from another's. VerifyNone must not be
// used by a test that calls t.Parallel, nor while parallel tests of the same
// binary are running. Children and OpenFDs are safe to call from any
// goroutine.
//
// # Lifecycle
//
// VerifyNone must be the first call in a test. Cleanups run last in, first
// out, so its check then runs after every cleanup registered later has
// closed what it owns. Leftovers get up to two seconds to go away before the
// test is failed: a goroutine that is returning or a child that is being
// reaped is not a leak.
package testutil
