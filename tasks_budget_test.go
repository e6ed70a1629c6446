package spindle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/latch"
	"github.com/spindle-hq/spindle/routing"
	"github.com/vmihailenco/msgpack/v5"
)

// The guest budgets through a real child context: hostile guests of
// examples/wasm/bad, run with Context.Run.

// heapInuse returns the master's (this process's) heap in use after a GC.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// budgetSetup starts a master with two local contexts, the flooder and a
// sibling, and adds the bad and hello modules (compiled once in each).
func budgetSetup(t *testing.T, ctx context.Context) (m *spindle.Master, logs *logCapture, c, sib *spindle.Context, bad, hello string) {
	t.Helper()
	m, logs = newMaster(t, spindle.Config{CacheDir: sharedCache()})
	bad = addModule(t, m, testutil.BuildWasm(t, "examples/wasm/bad", true))
	hello = addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	c = startLocal(t, ctx, m, "flooder")
	sib = startLocal(t, ctx, m, "sibling")
	for _, cc := range []*spindle.Context{c, sib} {
		if _, err := cc.Run(ctx, spindle.Task{Module: bad, Task: "probe"}); err != nil {
			t.Fatalf("warming %s: %v", cc, err)
		}
	}
	return m, logs, c, sib, bad, hello
}

// helloWorks fails the test unless c still runs a task.
func helloWorks(t *testing.T, ctx context.Context, c *spindle.Context, hello, after string) {
	t.Helper()
	res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: []byte("again")})
	if err != nil || string(res.Output) != "hello, again" {
		t.Fatalf("%s: hello on %s = %v, %v", after, c, res, err)
	}
}

// TestSendFloodBounded: a guest that sends without end on a granted channel
// stops at the call's send budget (kind output_limit), the master's
// receiver holds no more than the budget, and a sibling still serves.
func TestSendFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _, c, sib, bad, hello := budgetSetup(t, ctx)
	tests := []struct {
		name      string
		chunk     int
		limits    spindle.Limits
		wantMsgs  int
		wantBytes int
	}{
		{"1 GiB in 1 MiB sends, default budget", 1 << 20, spindle.Limits{}, host.DefaultSendBytes >> 20, host.DefaultSendBytes},
		{"16-byte sends, 1000 messages", 16, spindle.Limits{SendMessages: 1000}, 1000, 16000},
		{"1 KiB sends, 64 KiB", 1024, spindle.Limits{SendBytes: 64 << 10}, 64, 64 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			before := heapInuse()
			in := mustPack(t, map[string]any{"ch": rc.Sender(), "chunk": tt.chunk})
			_, err = c.Run(ctx, spindle.Task{Module: bad, Task: "send_flood", Input: in,
				Channels: []routing.Sender{rc.Sender()}, Limits: tt.limits})
			var te *spindle.TaskError
			if !errors.As(err, &te) || te.Kind != "output_limit" {
				t.Fatalf("send_flood = %v, want kind output_limit", err)
			}
			// Every send was routed before the reply, on the same stream.
			queued := heapInuse()
			msgs, size := 0, 0
			for {
				msg, err := rc.TryGet()
				if errors.Is(err, latch.ErrEmpty) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				msgs++
				size += len(msg.Body)
			}
			t.Logf("%s: %d messages, %d bytes queued; master heap %+d KiB; peak RSS %d MiB; %v",
				tt.name, msgs, size, (int64(queued)-int64(before))>>10, int64(peakRSS(t)), err)
			if msgs != tt.wantMsgs || size != tt.wantBytes {
				t.Errorf("receiver got %d messages of %d bytes, want %d of %d", msgs, size, tt.wantMsgs, tt.wantBytes)
			}
			if grew := int64(queued) - int64(before); grew > int64(tt.wantBytes)+32<<20 {
				t.Errorf("master heap grew by %d MiB for a %d-byte send budget", grew>>20, tt.wantBytes)
			}
			helloWorks(t, ctx, sib, hello, "send flood")
			helloWorks(t, ctx, c, hello, "send flood")
		})
	}
	// Many calls granted one receiver: a bounded one holds the master to
	// its bound, whatever their budgets add up to.
	t.Run("concurrent calls into a bounded receiver", func(t *testing.T) {
		lim := routing.ReceiverLimits{Messages: 64, Bytes: 4 << 20}
		rc, err := m.Router().NewBoundedReceiver(routing.HandlerOptions{}, lim)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		before := heapInuse()
		in := mustPack(t, map[string]any{"ch": rc.Sender(), "chunk": 64 << 10})
		outcomes := spindle.RunAll(ctx, []*spindle.Context{c, sib, c, sib},
			spindle.Task{Module: bad, Task: "send_flood", Input: in, Channels: []routing.Sender{rc.Sender()}})
		grew := int64(heapInuse()) - int64(before)
		t.Logf("4 calls of 16 MiB of sends each: %d messages dropped, %d bytes queued (bound %d); master heap %+d KiB; peak RSS %d MiB",
			rc.Dropped(), rc.Queued(), lim.Bytes, grew>>10, int64(peakRSS(t)))
		for _, o := range outcomes {
			var te *spindle.TaskError
			if !errors.As(o.Err, &te) || te.Kind != "output_limit" {
				t.Errorf("send_flood on %s = %v, want kind output_limit", o.Context, o.Err)
			}
		}
		if rc.Queued() > lim.Bytes || rc.Len() > lim.Messages+4 || rc.Dropped() == 0 {
			t.Errorf("bounded receiver holds %d messages, %d bytes, dropped %d; bound %+v", rc.Len(), rc.Queued(), rc.Dropped(), lim)
		}
		if grew > lim.Bytes+16<<20 {
			t.Errorf("master heap grew by %d MiB with a %d MiB receiver bound", grew>>20, lim.Bytes>>20)
		}
		helloWorks(t, ctx, sib, hello, "send floods")
	})
}

// safeCounter counts the bytes and Write calls it gets, optionally slowly.
type safeCounter struct {
	mu     sync.Mutex
	n      int
	writes int
	delay  time.Duration
}

func (w *safeCounter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	w.writes++
	return len(p), nil
}

func (w *safeCounter) counts() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.writes
}

// TestStdoutFloodBounded: 1.6 M one-byte stdout writes reach the caller
// whole, in few messages, with the master's heap flat; the bounds on bytes
// and on messages end the task with kind output_limit; concurrent floods
// all arrive whole.
func TestStdoutFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	_, _, c, sib, bad, hello := budgetSetup(t, ctx)
	const n = 1_600_000
	tests := []struct {
		name   string
		n      int
		limits spindle.Limits
		kind   string
	}{
		// Whole arrival, not speed, is the point: the ENOSPC listener on
		// fd_write (host/wasi.go) has wazero unwind the guest's stack on
		// every write, about 5 s here, 30 s or more under -race and load.
		{"1.6 M one-byte writes", n, spindle.Limits{Timeout: 3 * time.Minute}, ""},
		{"bytes bound", n, spindle.Limits{OutputBytes: 100_000}, "output_limit"},
		{"messages bound", n, spindle.Limits{OutputMessages: 5}, "output_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w safeCounter
			before := heapInuse()
			start := time.Now()
			_, err := c.Run(ctx, spindle.Task{Module: bad, Task: "stdout_flood", Input: mustPack(t, map[string]int{"n": tt.n}),
				Stdout: &w, Limits: tt.limits})
			took := time.Since(start)
			got, writes := w.counts()
			t.Logf("%s: %d bytes in %d writes in %v; master heap %+d KiB; peak RSS %d MiB; %v",
				tt.name, got, writes, time.Since(start), (int64(heapInuse())-int64(before))>>10, int64(peakRSS(t)), err)
			var te *spindle.TaskError
			switch {
			case tt.kind == "" && err != nil:
				t.Fatalf("stdout_flood = %v", err)
			case tt.kind != "" && (!errors.As(err, &te) || te.Kind != tt.kind):
				t.Fatalf("stdout_flood = %v, want kind %s", err, tt.kind)
			}
			if tt.kind == "" && got != tt.n {
				t.Errorf("stdout: %d bytes, want %d", got, tt.n)
			}
			// Coalesced: a message per chunk, or per flush interval of a
			// slow writer (under -race and load this one is slow), no more.
			if max := tt.n/host.OutputChunkBytes + int(took/host.OutputFlushInterval) + 100; writes > max {
				t.Errorf("%d writes for %d bytes in %v: not coalesced (at most %d)", writes, got, took, max)
			}
			if tt.limits.OutputMessages > 0 && int64(writes) > tt.limits.OutputMessages {
				t.Errorf("%d writes with OutputMessages %d", writes, tt.limits.OutputMessages)
			}
			helloWorks(t, ctx, sib, hello, "stdout flood")
		})
	}
	t.Run("concurrent", func(t *testing.T) {
		const runs, each = 8, 200_000
		ws := make([]safeCounter, runs)
		errs := make([]error, runs)
		var wg sync.WaitGroup
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				on := c
				if i%2 == 1 {
					on = sib
				}
				_, errs[i] = on.Run(ctx, spindle.Task{Module: bad, Task: "stdout_flood", Input: mustPack(t, map[string]int{"n": each}), Stdout: &ws[i],
					Limits: spindle.Limits{Timeout: 3 * time.Minute}}) // 8 slow writers on 2 cores under -race
			}()
		}
		wg.Wait()
		for i := range runs {
			if got, _ := ws[i].counts(); errs[i] != nil || got != each {
				t.Errorf("run %d: %d bytes, %v; want %d bytes", i, got, errs[i], each)
			}
		}
	})
}

// TestRunHonoursDeadline: with a writer that cannot keep up, Run returns at
// its caller's deadline rather than when the output is drained; the task is
// stopped and the context serves the next call.
func TestRunHonoursDeadline(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	_, _, c, _, bad, hello := budgetSetup(t, ctx)
	w := &safeCounter{delay: 50 * time.Millisecond}
	const wait = time.Second
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	_, err := c.Run(rctx, spindle.Task{Module: bad, Task: "stdout_flood", Stdout: w, Limits: spindle.Limits{Timeout: time.Minute}})
	late := time.Since(start) - wait
	got, writes := w.counts()
	t.Logf("Run returned %v after its deadline (%d bytes in %d writes; peak RSS %d MiB): %v", late, got, writes, int64(peakRSS(t)), err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stdout_flood with a slow writer = %v, want context.DeadlineExceeded", err)
	}
	// One Write in progress (50 ms) is all Run may wait for; the rest is
	// slack for a loaded machine.
	if late > 2*time.Second {
		t.Errorf("Run returned %v after its deadline", late)
	}
	helloWorks(t, ctx, c, hello, "a deadline")
}

// cpuTicks returns the user+system CPU ticks of process pid.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read stat of %d: %v", pid, err)
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// TestCancelReachesContext: when the caller cancels, the context stops the
// guest (its CPU use stops) long before the task's own 60 s limit, and the
// next call on it works.
func TestCancelReachesContext(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t) // a 2-minute deadline: only CANCEL_TASK stops the guest sooner
	_, _, c, _, bad, hello := budgetSetup(t, ctx)
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(200*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := c.Run(rctx, spindle.Task{Module: bad, Task: "loop", Limits: spindle.Limits{Timeout: time.Minute}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("loop cancelled by its caller = %v, want context.Canceled", err)
	}
	cancelled := time.Now()
	// The child spins at 100% of a core while the guest runs: 100 ticks
	// a second. Stopped, it is idle.
	const window = 500 * time.Millisecond
	for {
		t0 := cpuTicks(t, c.PID())
		time.Sleep(window)
		d := cpuTicks(t, c.PID()) - t0
		if d <= 5 {
			t.Logf("the child's CPU stopped within %v of the cancel (%d ticks in the last %v)", time.Since(cancelled), d, window)
			break
		}
		if time.Since(cancelled) > 20*time.Second {
			t.Fatalf("the child still burns CPU (%d ticks in %v) %v after the cancel", d, window, time.Since(cancelled))
		}
	}
	helloWorks(t, ctx, c, hello, "a cancel")
}

// TestEmptyLogsBounded: 200,000 empty log messages make at most
// DefaultLogRecords records in the master, since each record costs a fixed
// LogRecordCost of the log budget.
func TestEmptyLogsBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	_, logs, c, sib, bad, hello := budgetSetup(t, ctx)
	res, err := c.Run(ctx, spindle.Task{Module: bad, Task: "empty_logs"})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Logged int `msgpack:"logged"`
		RC     int `msgpack:"rc"`
	}
	unpackInto(t, res.Output, &out)
	want := min(host.DefaultLogBytes/host.LogRecordCost, host.DefaultLogRecords)
	if out.Logged != want || out.RC != -2 {
		t.Errorf("empty_logs: %d logged, rc %d; want %d, then -2 (ERR_LIMIT)", out.Logged, out.RC, want)
	}
	if err := c.Ping(ctx); err != nil { // the records were sent before the pong
		t.Fatal(err)
	}
	var recs []logRecord
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs = logs.find(func(r logRecord) bool { return r.Attrs["context"] == "flooder" && r.Attrs["task"] == "empty_logs" })
		if len(recs) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("200000 empty logs: %d records in the master; peak RSS %d MiB", len(recs), int64(peakRSS(t)))
	if len(recs) == 0 || len(recs) > want+1 {
		t.Errorf("%d master records for 200,000 empty logs, want at most %d", len(recs), want+1)
	}
	helloWorks(t, ctx, sib, hello, "empty logs")
}

func unpackInto(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := msgpack.Unmarshal(b, v); err != nil {
		t.Fatalf("Unmarshal(%x): %v", b, err)
	}
}

// gateWriter blocks every Write until open is closed; started is closed at
// the first.
type gateWriter struct {
	once    sync.Once
	started chan struct{}
	open    chan struct{}
	mu      sync.Mutex
	n       int
}

func (w *gateWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.open
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}

// TestHostileOutputFloodBounded: a compromised child (the real child
// process, through its test-only "send" function) floods the output handle
// of a Run whose writer is stuck: the master queues at most
// OutputQueueChunks / OutputQueueBytes, drops the rest, and the Run fails
// with kind output_limit; a sibling still serves.
func TestHostileOutputFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _, c, sib, bad, hello := budgetSetup(t, ctx)
	w := &gateWriter{started: make(chan struct{}), open: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, spindle.Task{Module: bad, Task: "stdout_flood", Input: mustPack(t, map[string]int{"n": 1}), Stdout: w})
		done <- err
	}()
	select {
	case <-w.started:
	case err := <-done:
		t.Fatalf("stdout_flood returned before writing: %v", err)
	}
	// The child was told the output handle in its RunTask; the test
	// plays that compromised child and learns it from the master.
	outHandle := m.LastOutputHandle()
	before := heapInuse()
	const chunks, size = 40, 64 << 10
	for range chunks {
		if err := c.Call(ctx, "send", map[string]any{"dst": 0, "handle": outHandle, "size": size}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if err := c.Ping(ctx); err != nil { // every chunk has reached the master
		t.Fatal(err)
	}
	grew := int64(heapInuse()) - int64(before)
	close(w.open)
	err := <-done
	t.Logf("%d hostile chunks of %d KiB: master heap %+d KiB while the writer was stuck; peak RSS %d MiB; Run: %v",
		chunks, size>>10, grew>>10, int64(peakRSS(t)), err)
	var te *spindle.TaskError
	if !errors.As(err, &te) || te.Kind != "output_limit" || !strings.Contains(te.Message, "dropped") {
		t.Fatalf("Run under a hostile output flood = %v, want kind output_limit, chunks dropped", err)
	}
	if grew > spindle.OutputQueueBytes+4<<20 {
		t.Errorf("master heap grew by %d KiB, want at most the queue bound of %d KiB", grew>>10, spindle.OutputQueueBytes>>10)
	}
	helloWorks(t, ctx, sib, hello, "a hostile output flood")
}

// TestLimitsCrossTheWire: Limits.StackBytes and Limits.OpenFiles reach the
// context. A recursing C guest stops at the stack bound it was given (the
// message names it), and a task allowed one open file, which its mount's
// preopened directory already takes, cannot open the file it hashes, while
// the same task with the default bound can.
func TestLimitsCrossTheWire(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	cbad := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-bad"))
	hasher := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hasher", true))
	c := startLocal(t, ctx, m, "limits")

	_, err := c.Run(ctx, spindle.Task{Module: cbad, Task: "recurse", Limits: spindle.Limits{StackBytes: 64 << 10}})
	var te *spindle.TaskError
	if !errors.As(err, &te) || te.Kind != "stack_overflow" || !strings.Contains(te.Message, "65536 bytes") {
		t.Fatalf("recurse with StackBytes 64 KiB = %v, want kind stack_overflow at 65536 bytes", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := spindle.Task{Module: hasher, Task: "hash", Input: mustPack(t, map[string]string{"path": "/data/f"}),
		Mounts: []spindle.Mount{{Host: dir, Guest: "/data", ReadOnly: true}}}
	if _, err := c.Run(ctx, task); err != nil {
		t.Fatalf("hash with the default open-file bound: %v", err)
	}
	task.Limits.OpenFiles = 1
	if _, err := c.Run(ctx, task); !errors.As(err, &te) || !strings.Contains(te.Message, "open /data/f") {
		t.Fatalf("hash with OpenFiles 1 = %v, want the task to fail opening /data/f", err)
	}
}
