package host_test

import (
	"context"
	"runtime"
	"strings"
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

// TestMemorylessGuestRefused: a module without a memory is given one for
// guard's ticks, so that it is still refused for what it lacks (docs/abi.md:
// a module exports its memory), not for the code guard added.
func TestMemorylessGuestRefused(t *testing.T) {
	// (module (func (export "spin") (loop (br 0))))
	wasm := []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type () -> ()
		0x03, 0x02, 0x01, 0x00, // one function of type 0
		0x07, 0x08, 0x01, 0x04, 's', 'p', 'i', 'n', 0x00, 0x00, // export "spin"
		0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0 end
	}
	h := newHost(t, host.Config{})
	_, err := h.Compile(context.Background(), "memoryless-spin", wasm)
	if host.KindOf(err) != host.KindInvalidModule || !strings.Contains(err.Error(), "does not export its memory") {
		t.Fatalf("Compile = %v, want kind %s for the missing memory", err, host.KindInvalidModule)
	}
}
