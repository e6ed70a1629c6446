package host_test

import (
	"context"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
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

// runStopped runs task of wasm with a short timeout and fails t unless the
// call ends with KindTimeout soon after it. A guest that escaped its ticks
// would hold the call (and, at the next GC, the whole process), so the
// call runs on its own goroutine and the wait is bounded.
func runStopped(t *testing.T, name string, wasm []byte, task string) {
	t.Helper()
	h := newHost(t, host.Config{})
	m, err := h.Compile(context.Background(), name, wasm)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	const timeout = 500 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), m, host.Call{Task: task, Limits: host.Limits{Timeout: timeout}})
		done <- err
	}()
	select {
	case err := <-done:
		if host.KindOf(err) != host.KindTimeout {
			t.Fatalf("Run = %v, want kind %s", err, host.KindTimeout)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a looping guest was not stopped %v after its %v timeout", 20*time.Second, timeout)
	}
	// Run returning is not enough: a guest still spinning on its thread
	// would burn a CPU for good and hold the next GC, and with it the
	// process. Over a second, such a guest would use most of a CPU.
	before := cpuTime(t)
	time.Sleep(time.Second)
	if spent := cpuTime(t) - before; spent > 500*time.Millisecond {
		t.Errorf("the process used %v of CPU in the second after the call ended: the guest is still running", spent)
	}
	gc := make(chan struct{})
	go func() {
		runtime.GC()
		close(gc)
	}()
	select {
	case <-gc:
	case <-time.After(20 * time.Second):
		t.Fatal("runtime.GC does not finish after the call ended: the guest is still running")
	}
}

// A SIMD prefix whose sub-opcode is written as a two-byte LEB128 number is
// read by wazero as one byte and the next instruction: guard must read it
// the same way, or the loop after it is hidden from its ticks. This runs
// the module end to end; TestGuardReadsSIMDOpcodeAsWazeroDoes checks the
// tick is where it must be (on this wazero the module did not spin even
// without it, but a review saw it freeze a process).
func TestSIMDPrefixCannotHideALoop(t *testing.T) {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	code := append([]byte{0xfd, 0x0c}, make([]byte, 16)...) // v128.const 0
	code = append(code,
		0xfd, 0x80, 0x02, // wazero: i16x8.abs, then block
		0x40,       //   [] -> []
		0x03, 0x40, // loop
		0x0c, 0x00, // br 0
		0x0b, 0x0b, // end end
		0x1a,       // drop the vector
		0x41, 0x00) // i32.const 0
	f := m.Func(task, nil, code)
	m.Export("task", 0, f)
	runStopped(t, "simd-hidden-loop", m.Bytes(), "task")
}

// A start function runs when a module is instantiated: one that loops
// ends at the call's timeout like any guest code.
func TestLoopingStartFunctionStopped(t *testing.T) {
	var m testutil.WasmModule
	void := m.Type(nil, nil)
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	spin := m.Func(void, nil, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}) // loop br 0 end
	m.Start(spin)
	f := m.Func(task, nil, []byte{0x41, 0x00})
	m.Export("task", 0, f)
	runStopped(t, "looping-start", m.Bytes(), "task")
}

// A start function that returns still runs first, once per instance.
func TestStartFunctionRuns(t *testing.T) {
	var m testutil.WasmModule
	void := m.Type(nil, nil)
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	g := m.GlobalInit(testutil.WasmI32, true, []byte{0x41, 0x00})
	set := m.Func(void, nil, []byte{0x41, 0x07, 0x24, byte(g)}) // global.set g 7
	m.Start(set)
	// global.get g; i32.const 7; i32.ne; if unreachable end; i32.const 0
	check := m.Func(task, nil, []byte{0x23, byte(g), 0x41, 0x07, 0x47, 0x04, 0x40, 0x00, 0x0b, 0x41, 0x00})
	m.Export("task", 0, check)
	h := newHost(t, host.Config{})
	mod, err := h.Compile(context.Background(), "start-sets", m.Bytes())
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for _, pooled := range []bool{false, true} {
		if _, err := h.Run(context.Background(), mod, host.Call{Task: "task", Pooled: pooled}); err != nil {
			t.Fatalf("Run (pooled %v) = %v: the start function did not run before the task", pooled, err)
		}
	}
}

// cpuTime is the CPU time this process has used so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
