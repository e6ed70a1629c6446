package spindle_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// watchWriter keeps what is written to it and lets a test wait for a part
// of it. It is safe for concurrent use.
type watchWriter struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newWatchWriter() *watchWriter { return &watchWriter{changed: make(chan struct{}, 1)} }

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.b.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// waitFor waits up to d for s to have been written.
func (w *watchWriter) waitFor(s string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for !strings.Contains(w.String(), s) {
		select {
		case <-w.changed:
		case <-t.C:
			return false
		}
	}
	return true
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r     io.Reader
	n     atomic.Int64
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type runResult struct {
	res *spindle.TaskResult
	err error
}

func runAsync(ctx context.Context, c *spindle.Context, task spindle.Task) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		res, err := c.Run(ctx, task)
		done <- runResult{res, err}
	}()
	return done
}

func probeModule(t *testing.T, m *spindle.Master) string {
	return addModule(t, m, testutil.BuildWasm(t, "examples/wasm/ciprobe", false))
}

// TestStdinStreamed: a command two hops down echoes each line of its stdin
// as it comes: the first line's echo arrives while stdin is still open,
// and the guest ends at the EOF that closing it sends.
func TestStdinStreamed(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	b := startVia(t, ctx, startLocal(t, ctx, m, "a"), "b")
	pr, pw := io.Pipe()
	defer pr.Close()
	out := newWatchWriter()
	done := runAsync(ctx, b, spindle.Task{Module: probe, Args: []string{"lines"}, Stdin: pr, Stdout: out})
	for _, line := range []string{"one", "two"} {
		if _, err := io.WriteString(pw, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if !out.waitFor("> "+line+"\n", 30*time.Second) {
			t.Fatalf("no echo of %q while stdin is open; stdout %q", line, out.String())
		}
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned before stdin was closed: %+v, %v", r.res, r.err)
	default:
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; want exit 0", r.res, r.err)
	}
	if got, want := out.String(), "> one\n> two\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// TestStdinLarge: 64 MiB of stdin reaches a guest two hops down intact.
func TestStdinLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB through two hops")
	}
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	b := startVia(t, ctx, startLocal(t, ctx, m, "a"), "b")
	const size = 64 << 20
	// Random bytes made as they are read, hashed on the way: the test holds
	// none of them.
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), h)
	out := newWatchWriter()
	t0 := time.Now()
	res, err := b.Run(ctx, spindle.Task{Module: probe, Args: []string{"stdinsum"}, Stdin: src, Stdout: out,
		Limits: spindle.Limits{Timeout: time.Minute}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	t.Logf("64 MiB of stdin through 2 hops in %v", time.Since(t0))
	if got, want := out.String(), fmt.Sprintf("%d %x\n", size, h.Sum(nil)); got != want {
		t.Errorf("the guest saw %q, want %q", got, want)
	}
}

// lineSource is an endless stdin of numbered lines, "%015d\n" (16 bytes),
// that never blocks: as fast a producer as can be.
type lineSource struct{ pos atomic.Int64 }

func (s *lineSource) Read(p []byte) (int, error) {
	n := 0
	pos := s.pos.Load()
	for ; n+16 <= len(p); n += 16 {
		copy(p[n:], fmt.Sprintf("%015d\n", (pos+int64(n))/16))
	}
	s.pos.Add(int64(n))
	return n, nil
}

// TestStdinFlowControl: a producer that never blocks is read no faster than
// the guest consumes its stdin. Each echoed line k says the guest has read
// at least 16(k+1) bytes; the source may be ahead of that only by what the
// stdin window, the guest's buffer and the output on its way can hold.
// Sent whole (or pushed without credit) the producer would be read to the
// end at once.
func TestStdinFlowControl(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	a := startLocal(t, ctx, m, "a")
	src := &lineSource{}
	const bound = 1 << 20 // 256 KiB of stdin window, 64 KiB of scanner, 160 KiB of output in flight, and slack
	var worst atomic.Int64
	var lines atomic.Int64
	pr, pw := io.Pipe()
	check := make(chan error, 1)
	go func() {
		// The slow consumer of the guest's output: it checks the bound at
		// each line and stops the run after 2 MiB of stdin.
		defer pr.Close()
		buf := make([]byte, 17)
		for {
			if _, err := io.ReadFull(pr, buf[:2]); err != nil { // "> "
				check <- err
				return
			}
			if _, err := io.ReadFull(pr, buf[:16]); err != nil {
				check <- err
				return
			}
			var k int64
			if _, err := fmt.Sscanf(string(buf[:15]), "%d", &k); err != nil || k != lines.Load() {
				check <- fmt.Errorf("line %q, want number %d", buf[:16], lines.Load())
				return
			}
			lines.Add(1)
			ahead := src.pos.Load() - 16*(k+1)
			worst.Store(max(worst.Load(), ahead))
			if ahead > bound {
				check <- fmt.Errorf("after line %d the source was read %d bytes ahead of the guest, bound %d", k, ahead, bound)
				return
			}
			if 16*(k+1) >= 2<<20 {
				check <- nil
				return
			}
			if k%4096 == 0 {
				time.Sleep(time.Millisecond) // slower than the producer
			}
		}
	}()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := runAsync(rctx, a, spindle.Task{Module: probe, Args: []string{"lines"}, Stdin: src, Stdout: pw,
		Limits: spindle.Limits{Timeout: time.Minute, OutputBytes: 64 << 20}})
	err := <-check
	cancel() // the endless task ends
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lines, the source at most %d bytes ahead of the guest's echo", lines.Load(), worst.Load())
}

// TestStdinNeverRead: a guest that never reads stdin exits, and Run
// returns, though stdin stays open; stdin is not read at all.
func TestStdinNeverRead(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	a := startLocal(t, ctx, m, "a")
	pr, pw := io.Pipe()
	defer pw.Close()
	src := &countingReader{r: pr}
	out := newWatchWriter()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := a.Run(rctx, spindle.Task{Module: probe, Args: []string{"echo", "hi"}, Stdin: src, Stdout: out})
	if err != nil || res.ExitCode != 0 || out.String() != "hi\n" {
		t.Fatalf("Run = %+v, %v, stdout %q; want exit 0 and hi", res, err, out.String())
	}
	if n := src.reads.Load(); n != 0 {
		t.Errorf("stdin was read %d times by a guest that never reads it", n)
	}
}

// TestStdinTimeout: a guest blocked reading a stdin that never comes is
// stopped at its timeout, and the context runs the next task.
func TestStdinTimeout(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	a := startLocal(t, ctx, m, "a")
	pr, pw := io.Pipe()
	defer pw.Close()
	out := newWatchWriter()
	done := runAsync(ctx, a, spindle.Task{Module: probe, Args: []string{"lines"}, Stdin: pr, Stdout: out,
		Limits: spindle.Limits{Timeout: 2 * time.Second}})
	io.WriteString(pw, "first\n")
	if !out.waitFor("> first\n", 30*time.Second) {
		t.Fatalf("no echo; stdout %q", out.String())
	}
	var r runResult
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a guest blocked reading stdin outlived its timeout by 18 s")
	}
	var te *spindle.TaskError
	if !errors.As(r.err, &te) || te.Kind != "timeout" {
		t.Fatalf("Run = %+v, %v; want a timeout", r.res, r.err)
	}
	pw.Close() // the stdin pump, in a Read, ends
	res, err := a.Run(ctx, spindle.Task{Module: probe, Args: []string{"stdinsum"}, Stdin: strings.NewReader("abc")})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("the next task = %+v, %v", res, err)
	}
}

// TestStdinContextDies: the context running a task that reads stdin is
// killed mid-stream: that Run fails at once, and the master streams stdin
// to a task on another context as before.
func TestStdinContextDies(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	a := startLocal(t, ctx, m, "a")
	other := startLocal(t, ctx, m, "other")
	pr, pw := io.Pipe()
	defer pw.Close()
	out := newWatchWriter()
	done := runAsync(ctx, a, spindle.Task{Module: probe, Args: []string{"lines"}, Stdin: pr, Stdout: out})
	io.WriteString(pw, "before\n")
	if !out.waitFor("> before\n", 30*time.Second) {
		t.Fatalf("no echo; stdout %q", out.String())
	}
	if err := syscall.Kill(a.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatalf("Run on a killed context = %+v, want an error", r.res)
		}
		t.Logf("Run on the killed context: %v", r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run on a killed context did not return")
	}
	pw.Close()

	pr2, pw2 := io.Pipe()
	out2 := newWatchWriter()
	done2 := runAsync(ctx, other, spindle.Task{Module: probe, Args: []string{"lines"}, Stdin: pr2, Stdout: out2})
	io.WriteString(pw2, "after\n")
	if !out2.waitFor("> after\n", 30*time.Second) {
		t.Fatalf("no echo on the other context; stdout %q", out2.String())
	}
	pw2.Close()
	if r := <-done2; r.err != nil || r.res.ExitCode != 0 {
		t.Fatalf("Run on the other context = %+v, %v", r.res, r.err)
	}
}

// TestHostileStdinFloodBounded: a compromised child (the real child
// process, through its test-only "send" function) floods the stdin source
// of the Run it serves with read requests of 1 MiB bodies while the
// caller's stdin has nothing: the master queues at most wire.StdinQueue of
// them, bodies dropped, and refuses the rest; the Run ends when stdin
// does, and a sibling still serves.
func TestHostileStdinFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := probeModule(t, m)
	c := startLocal(t, ctx, m, "flooder")
	sib := startLocal(t, ctx, m, "sibling")
	pr, pw := io.Pipe()
	defer pw.Close()
	src := &countingReader{r: pr}
	out := newWatchWriter()
	done := runAsync(ctx, c, spindle.Task{Module: probe, Args: []string{"echo", "reading", ";", "stdinsum"}, Stdin: src, Stdout: out})
	if !out.waitFor("reading\n", 30*time.Second) {
		t.Fatalf("the guest did not start: %q", out.String())
	}
	for src.reads.Load() == 0 { // the guest's first request has reached the pump
		time.Sleep(time.Millisecond)
	}
	h := m.LastStdinHandle()
	before := heapInuse()
	const requests, size = 40, 1 << 20
	for range requests {
		if err := c.Call(ctx, "send", map[string]any{"dst": 0, "handle": h, "size": size}, nil); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if err := c.Ping(ctx); err != nil { // every request has reached the master
		t.Fatal(err)
	}
	// The queue is full: one more request is refused at once.
	err := c.Call(ctx, "send", map[string]any{"dst": 0, "handle": h, "size": 1, "reply": true}, nil)
	if err == nil || !strings.Contains(err.Error(), "stdin read queue full") {
		t.Errorf("a stdin request past the queue = %v, want it refused (queue full)", err)
	}
	grew := int64(heapInuse()) - int64(before)
	t.Logf("%d hostile stdin requests of %d KiB: master heap %+d KiB", requests, size>>10, grew>>10)
	if grew > 4<<20 {
		t.Errorf("master heap grew by %d KiB under a stdin request flood, want the queue's few headers", grew>>10)
	}
	pw.Close()
	select {
	case r := <-done:
		t.Logf("the flooder's Run: %+v, %v (its stdin was eaten by its own requests)", r.res, r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the flooder's Run did not end at its stdin's EOF")
	}
	res, err := sib.Run(ctx, spindle.Task{Module: probe, Args: []string{"stdinsum"}, Stdin: strings.NewReader("abc")})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("sibling after a stdin flood = %+v, %v", res, err)
	}
}
