package guest

// yieldEvery is the most calls the SDK serves between two yields to the Go
// scheduler while no GC cycle is under way.
const yieldEvery = 32

// maxYields bounds the yields after one call while a GC cycle is marking.
const maxYields = 1000

// yieldPolicy decides when spindle_call yields to the Go scheduler
// (runtime.Gosched) before returning to the host.
//
// A guest runs on one thread and only while the host is in one of its
// exports, so the runtime's background goroutines — the GC's mark workers,
// the sweeper, finalizers, goroutines a task left behind — run only at a
// scheduling point. Without one between calls a GC cycle that a call
// started never finishes and the garbage made across calls is never
// reclaimed: linear memory grows until the memory limit.
//
// A yield costs a few microseconds (a pass through the scheduler, with its
// timer checks and WASI clock reads), more than a small call itself, so the
// SDK does not yield after every call. It yields when a GC cycle is marking
// — and keeps yielding, up to maxYields times, until the cycle has
// finished, so no call returns to the host with a cycle half done — and
// otherwise once every yieldEvery calls, for the other goroutines. A GC
// cycle starts when the heap reaches its goal, so memory stays bounded as
// when every call yielded.
//
// Its state is touched only by spindle_call, which the host never calls
// re-entrantly.
type yieldPolicy struct {
	calls int // calls since the last yield
}

// after runs after a call: it calls yield while marking reports a GC cycle
// under way (at most maxYields times), or once if yieldEvery calls have
// passed since the last yield.
func (y *yieldPolicy) after(marking func() bool, yield func()) {
	y.calls++
	if !marking() {
		if y.calls < yieldEvery {
			return
		}
		yield()
	}
	for i := 0; i < maxYields && marking(); i++ {
		yield()
	}
	y.calls = 0
}
