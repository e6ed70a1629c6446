package host_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
)

// TestLoopingGuestLetsGCRun: a guest spinning in a loop leaves its code
// for the host often enough that a stop-the-world GC completes while it
// spins (guard's ticks, "Termination" in the package doc), and it still
// ends at its timeout. Without a preemption point, runtime.GC would wait
// for the call to end.
func TestLoopingGuestLetsGCRun(t *testing.T) {
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	const timeout = 3 * time.Second
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := h.Run(context.Background(), m, host.Call{Task: "loop", Limits: host.Limits{Timeout: timeout}})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the guest start spinning
	for i := range 3 {
		t0 := time.Now()
		runtime.GC()
		if d := time.Since(t0); d > timeout/2 {
			t.Errorf("runtime.GC %d took %v while a guest spun", i, d)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the spinning call ended early (%v): %v", time.Since(start), err)
	default:
	}
	err := <-done
	if host.KindOf(err) != host.KindTimeout {
		t.Fatalf("Run = %v, want kind %s", err, host.KindTimeout)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("the call ended %v after its start, its timeout is %v", d, timeout)
	}
}
