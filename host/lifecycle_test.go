package host_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

func TestCompileOnce(t *testing.T) {
	testutil.VerifyNone(t)
	// No cache directory: a compile here is a real one.
	h, err := host.New(t.Context(), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	wasm := guest(t, "creactor")
	if _, ok := h.Lookup("x"); ok {
		t.Fatalf("Lookup before Compile found a module")
	}
	const n = 16
	mods := make([]*host.Module, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			mods[i], errs[i] = h.Compile(context.Background(), "x", wasm)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || mods[i] != mods[0] {
			t.Fatalf("Compile %d = %p, %v; want %p", i, mods[i], errs[i], mods[0])
		}
	}
	if got := h.Stats().Compiles; got != 1 {
		t.Errorf("Stats().Compiles = %d, want 1", got)
	}
	if m, ok := h.Lookup("x"); !ok || m != mods[0] {
		t.Errorf("Lookup = %p, %v; want %p", m, ok, mods[0])
	}
}

func TestInvalidModules(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	// (module (memory (export "memory") 1) (import "env" "f" (func)))
	// would need an assembler; hand-encode the few modules needed.
	tests := []struct {
		name string
		wasm []byte
	}{
		{"garbage", []byte("not wasm")},
		{"no memory", wasmModule(nil, false)},
		{"foreign import", wasmModule([]string{"env", "f"}, true)},
		{"unknown spindle import", wasmModule([]string{"spindle", "nope"}, true)},
	}
	for _, tt := range tests {
		_, err := h.Compile(t.Context(), tt.name, tt.wasm)
		if host.KindOf(err) != host.KindInvalidModule {
			t.Errorf("%s: Compile = %v, want kind invalid_module", tt.name, err)
		}
		if _, ok := h.Lookup(tt.name); ok {
			t.Errorf("%s: Lookup found a module that failed to compile", tt.name)
		}
	}
	// A valid one, to be sure the encoder is right.
	if _, err := h.Compile(t.Context(), "ok", wasmModule(nil, true)); err != nil {
		t.Errorf("minimal module: %v", err)
	}
}

// wasmModule encodes a module that imports one function () -> () if imp is
// [module, name], and defines and exports a memory "memory" if memory.
func wasmModule(imp []string, memory bool) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	section := func(id byte, body []byte) {
		b = append(b, id, byte(len(body)))
		b = append(b, body...)
	}
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	if imp != nil {
		section(1, []byte{1, 0x60, 0, 0}) // type 0: () -> ()
		body := []byte{1}
		body = append(body, str(imp[0])...)
		body = append(body, str(imp[1])...)
		body = append(body, 0, 0) // func, type 0
		section(2, body)
	}
	if memory {
		section(5, []byte{1, 0, 1}) // one memory, min 1
		section(7, append(append([]byte{1}, str("memory")...), 2, 0))
	}
	return b
}

func TestPool(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	count := func(pooled bool) int32 {
		t.Helper()
		res, err := h.Run(t.Context(), m, host.Call{Task: "counter", Pooled: pooled})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return i32s(res.Output)[0]
	}
	for want := int32(1); want <= 3; want++ {
		if got := count(true); got != want {
			t.Errorf("pooled counter = %d, want %d (one warm instance)", got, want)
		}
	}
	if got := count(false); got != 1 {
		t.Errorf("fresh counter = %d, want 1", got)
	}
	if s := h.Stats(); s.PoolHits != 2 || s.Instantiations != 2 {
		t.Errorf("Stats = %+v, want 2 pool hits, 2 instantiations", s)
	}
	// A failed call discards its instance: the counter starts again.
	if _, err := h.Run(t.Context(), m, host.Call{Task: "fail", Pooled: true}); host.KindOf(err) != host.KindGuest {
		t.Fatalf("pooled fail = %v, want kind guest", err)
	}
	if got := count(true); got != 1 {
		t.Errorf("pooled counter after a failure = %d, want 1 (a new instance)", got)
	}
	// A not_found call fails before it takes an instance.
	if _, err := h.Run(t.Context(), m, host.Call{Task: "nope", Pooled: true}); host.KindOf(err) != host.KindNotFound {
		t.Fatalf("pooled nope = %v, want kind not_found", err)
	}
	if got := count(true); got != 2 {
		t.Errorf("pooled counter after not_found = %d, want 2", got)
	}
}

func TestPoolGo(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "goreactor")
	// 100 MiB of garbage in 16 MiB of memory: the guest's GC must run
	// between calls (its exports yield).
	limits := host.Limits{MemoryPages: 256}
	for i := range 50 {
		in := fmt.Appendf(nil, "call %d", i)
		res, err := h.Run(t.Context(), m, host.Call{Task: "echo", Input: in, Pooled: true, Limits: limits})
		if err != nil || string(res.Output) != string(in) {
			t.Fatalf("call %d: %v, %v", i, res, err)
		}
		for range 2 {
			if _, err := h.Run(t.Context(), m, host.Call{Task: "garbage", Pooled: true, Limits: limits}); err != nil {
				t.Fatalf("garbage %d: %v", i, err)
			}
		}
	}
	if s := h.Stats(); s.Instantiations != 1 || s.PoolHits != 149 {
		t.Errorf("Stats = %+v, want one instance serving 150 calls", s)
	}
}

// TestPooledCallAllocs checks that a warm call does not look its export up
// again: a lookup allocates about 11 KiB.
func TestPooledCallAllocs(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	call := host.Call{Task: "hello", Input: []byte("x"), Pooled: true}
	ctx := context.Background()
	if _, err := h.Run(ctx, m, call); err != nil {
		t.Fatal(err)
	}
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := h.Run(ctx, m, call); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / n; perCall > 4096 {
		t.Errorf("a warm call allocates %d bytes, want under 4 KiB", perCall)
	}
}

func TestInvalidCalls(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	reactor := compile(t, h, "creactor")
	command := compile(t, h, "ccommand")
	other := newHost(t, host.Config{})
	tests := []struct {
		name string
		m    *host.Module
		call host.Call
	}{
		{"pooled with grants", reactor, host.Call{Task: "hello", Pooled: true, Grants: host.Grants{Clock: true}}},
		{"pooled command", command, host.Call{Pooled: true}},
		{"env with =", command, host.Call{Grants: host.Grants{Env: map[string]string{"A=B": "c"}}}},
		{"relative guest dir", command, host.Call{Grants: host.Grants{Mounts: []host.Mount{{HostDir: t.TempDir(), GuestDir: "data"}}}}},
		{"missing host dir", command, host.Call{Grants: host.Grants{Mounts: []host.Mount{{HostDir: "/does/not/exist", GuestDir: "/data"}}}}},
		{"nil module", nil, host.Call{}},
	}
	for _, tt := range tests {
		if _, err := h.Run(t.Context(), tt.m, tt.call); !errors.Is(err, host.ErrInvalidCall) {
			t.Errorf("%s: Run = %v, want ErrInvalidCall", tt.name, err)
		}
	}
	if _, err := other.Run(t.Context(), reactor, host.Call{Task: "hello"}); !errors.Is(err, host.ErrInvalidCall) {
		t.Errorf("module of another host: Run = %v, want ErrInvalidCall", err)
	}
}

func TestSend(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	granted := host.Channel{Context: 7, Handle: 42}
	encode := func(ch host.Channel) []byte {
		b, err := msgpack.Marshal(ch)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type sent struct {
		ch   host.Channel
		raw  bool
		data string
	}
	tests := []struct {
		name    string
		sender  []byte
		flags   uint32
		send    func(context.Context, host.Channel, bool, []byte) error
		want    int32
		wantGot []sent
	}{
		{name: "msgpack", sender: encode(granted), want: 0, wantGot: []sent{{granted, false, "data"}}},
		{name: "raw", sender: encode(granted), flags: 1, want: 0, wantGot: []sent{{granted, true, "data"}}},
		{name: "not granted", sender: encode(host.Channel{Context: 7, Handle: 43}), want: -3},
		{name: "not msgpack", sender: []byte{0xc1}, want: -4},
		{name: "callee fails", sender: encode(granted), want: -5,
			send: func(context.Context, host.Channel, bool, []byte) error { return errors.New("gone") }},
	}
	for _, tt := range tests {
		var got []sent
		send := tt.send
		if send == nil {
			send = func(_ context.Context, ch host.Channel, raw bool, data []byte) error {
				got = append(got, sent{ch, raw, string(data)})
				return nil
			}
		}
		in := binary.LittleEndian.AppendUint32(nil, uint32(len(tt.sender)))
		in = append(in, tt.sender...)
		in = binary.LittleEndian.AppendUint32(in, tt.flags)
		in = append(in, "data"...)
		res, err := h.Run(t.Context(), m, host.Call{
			Task:   "send",
			Input:  in,
			Grants: host.Grants{Channels: []host.Channel{granted}},
			Send:   send,
		})
		if err != nil {
			t.Fatalf("%s: Run: %v", tt.name, err)
		}
		if code := i32s(res.Output)[0]; code != tt.want {
			t.Errorf("%s: send returned %d, want %d", tt.name, code, tt.want)
		}
		if !equal(got, tt.wantGot) {
			t.Errorf("%s: sent %v, want %v", tt.name, got, tt.wantGot)
		}
	}
}

func TestCancel(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := h.Run(ctx, m, host.Call{Task: "loop"})
	if host.KindOf(err) != host.KindCancelled {
		t.Errorf("Run = %v, want kind cancelled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled after %v, want about 100ms", d)
	}
	// An expired caller deadline is the caller's cancellation, not the
	// call's timeout.
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.Run(ctx, m, host.Call{Task: "loop"}); host.KindOf(err) != host.KindCancelled {
		t.Errorf("Run past the caller's deadline = %v, want kind cancelled", err)
	}
	if res, err := h.Run(t.Context(), m, host.Call{Task: "hello"}); err != nil || string(res.Output) != "hello, " {
		t.Errorf("good call after: %v, %v", res, err)
	}
}

// TestClose checks that Close ends running guests (kind cancelled), waits
// for them, and that the Host then refuses work.
func TestClose(t *testing.T) {
	testutil.VerifyNone(t)
	h, err := host.New(t.Context(), host.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	m := compile(t, h, "creactor")
	gm := compile(t, h, "goreactor")
	// Warm instances, closed by Close.
	for _, mod := range []*host.Module{m, gm} {
		task := map[*host.Module]string{m: "hello", gm: "echo"}[mod]
		if _, err := h.Run(t.Context(), mod, host.Call{Task: task, Pooled: true}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := h.Run(context.Background(), m, host.Call{Task: "loop", Pooled: i%2 == 0})
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them start looping
	if err := h.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-errs; host.KindOf(err) != host.KindCancelled {
			t.Errorf("running call ended with %v, want kind cancelled", err)
		}
	}
	if _, err := h.Run(t.Context(), m, host.Call{Task: "hello"}); !errors.Is(err, host.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if _, err := h.Compile(t.Context(), "y", guest(t, "creactor")); !errors.Is(err, host.ErrClosed) {
		t.Errorf("Compile after Close = %v, want ErrClosed", err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentRuns hammers one Host with fresh and pooled calls, good and
// bad, from many goroutines at once.
func TestConcurrentRuns(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	const goroutines, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range calls {
				pooled := (g+i)%2 == 0
				if i%10 == 0 {
					_, err := h.Run(context.Background(), m, host.Call{Task: "trap", Pooled: pooled})
					if host.KindOf(err) != host.KindTrap {
						errs <- fmt.Errorf("trap: %v", err)
						return
					}
					continue
				}
				in := fmt.Sprint(g, i)
				res, err := h.Run(context.Background(), m, host.Call{Task: "hello", Input: []byte(in), Pooled: pooled})
				if err != nil || string(res.Output) != "hello, "+in {
					errs <- fmt.Errorf("hello %s: %v, %v", in, res, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMemoryLimitPerCall checks that the memory limit is the call's, also
// on a pooled instance that served calls with other limits.
func TestMemoryLimitPerCall(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	growBy := func(pages int32, limit uint32, pooled bool) ([]int32, error) {
		res, err := h.Run(t.Context(), m, host.Call{
			Task:   "grow_by",
			Input:  binary.LittleEndian.AppendUint32(nil, uint32(pages)),
			Limits: host.Limits{MemoryPages: limit},
			Pooled: pooled,
		})
		if err != nil {
			return nil, err
		}
		return i32s(res.Output), nil
	}
	base, err := growBy(0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	pages := base[0] // the module's own minimum
	tests := []struct {
		name   string
		grow   int32
		limit  uint32
		pooled bool
		want   int32 // pages after, or 0 for kind memory
		hits   int64 // Stats().PoolHits after
	}{
		{"fresh within", 10, uint32(pages) + 10, false, pages + 10, 0},
		{"fresh past", 11, uint32(pages) + 10, false, 0, 0},
		{"pooled within", 10, uint32(pages) + 20, true, pages + 10, 0},
		{"pooled again, within a larger limit", 10, uint32(pages) + 20, true, pages + 20, 1},
		{"pooled, past a smaller limit", 0, uint32(pages) + 5, true, pages, 1}, // the warm one is too big: a new instance
		{"pooled, the small one grows past", 6, uint32(pages) + 5, true, 0, 2},
	}
	for _, tt := range tests {
		got, err := growBy(tt.grow, tt.limit, tt.pooled)
		if tt.want == 0 {
			if host.KindOf(err) != host.KindMemory {
				t.Errorf("%s: Run = %v, %v; want kind memory", tt.name, got, err)
			}
		} else if err != nil || got[0] != tt.want {
			t.Errorf("%s: pages = %v, %v; want %d", tt.name, got, err, tt.want)
		}
		if hits := h.Stats().PoolHits; hits != tt.hits {
			t.Errorf("%s: PoolHits = %d, want %d", tt.name, hits, tt.hits)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{Limits: host.Limits{Timeout: 100 * time.Millisecond, OutputBytes: 1000}})
	m := compile(t, h, "creactor")
	start := time.Now()
	if _, err := h.Run(t.Context(), m, host.Call{Task: "loop"}); host.KindOf(err) != host.KindTimeout {
		t.Errorf("loop = %v, want kind timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timed out after %v, want about 100ms", d)
	}
	if _, err := h.Run(t.Context(), m, host.Call{Task: "flood"}); host.KindOf(err) != host.KindOutputLimit {
		t.Errorf("flood = %v, want kind output_limit", err)
	}
	// A call's own limits win.
	if _, err := h.Run(t.Context(), m, host.Call{Task: "hello", Input: make([]byte, 2000), Limits: host.Limits{OutputBytes: 4000}}); err != nil {
		t.Errorf("hello with a larger output limit: %v", err)
	}
}

// TestCloseWaits checks Close against a call blocked in a host callback:
// Close gives up when its ctx ends, and the runtime is closed when the
// call returns.
func TestCloseWaits(t *testing.T) {
	testutil.VerifyNone(t)
	h, err := host.New(t.Context(), host.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	m := compile(t, h, "creactor")
	ch := host.Channel{Context: 1, Handle: 1}
	sender, _ := msgpack.Marshal(ch)
	in := binary.LittleEndian.AppendUint32(nil, uint32(len(sender)))
	in = append(in, sender...)
	in = binary.LittleEndian.AppendUint32(in, 0)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), m, host.Call{
			Task:   "send",
			Input:  in,
			Grants: host.Grants{Channels: []host.Channel{ch}},
			Send: func(context.Context, host.Channel, bool, []byte) error {
				close(entered)
				<-release // ignores its ctx, as a callback must not
				return nil
			},
		})
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a call blocked = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := <-done; err != nil && host.KindOf(err) != host.KindCancelled {
		t.Errorf("blocked call ended with %v, want success or kind cancelled", err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Errorf("Close after the call returned: %v", err)
	}
}

// TestNoGuestCodeAfterExit: once a guest has called proc_exit, none of its
// code runs again. Closing the instance once ran an export of the closed
// module (to make wazero free what its watchdog would have left open),
// which ran the guest a second time on a memory wazero had already given
// back: under load another instance was handed that buffer while the
// rerun wrote into it, and both crashed (TestAbusiveSteps in package ci).
// The guest here writes a marker only when it runs a second time; the
// control writes it in its first run, to show the marker would be seen.
func TestNoGuestCodeAfterExit(t *testing.T) {
	testutil.VerifyNone(t)
	marker := []byte("second-run-marker")
	build := func(first bool) []byte {
		var m testutil.WasmModule
		exit := m.ImportFunc("wasi_snapshot_preview1", "proc_exit", m.Type([]byte{testutil.WasmI32}, nil))
		m.Memory(1, -1)
		c := func(v int64) []byte { return append([]byte{0x41}, testutil.SLEB(v)...) } // i32.const
		store := c(0)
		store = append(store, c(1)...)
		store = append(store, 0x36, 2, 0) // i32.store: the flag at 0
		mark := c(64)
		mark = append(mark, c(1024)...)
		mark = append(mark, c(int64(len(marker)))...)
		mark = append(mark, 0xfc, 10, 0, 0) // memory.copy: the marker to 64
		var code []byte
		code = append(code, c(0)...)
		code = append(code, 0x28, 2, 0) // i32.load: the flag
		code = append(code, 0x04, 0x40) // if: a second run
		code = append(code, mark...)
		code = append(code, 0x0f, 0x0b) // return; end
		if first {
			code = append(code, mark...)
		}
		code = append(code, store...)
		code = append(code, c(3)...)
		code = append(code, 0x10)
		code = append(code, testutil.ULEB(exit)...) // proc_exit(3)
		m.Export("_start", 0, m.Func(m.Type(nil, nil), nil, code))
		data := append([]byte{1, 0, 0x41}, testutil.SLEB(1024)...)
		data = append(data, 0x0b)
		data = append(data, testutil.ULEB(uint32(len(marker)))...)
		data = append(data, marker...)
		m.Extra = append(m.Extra, [2][]byte{{11}, data})
		return m.Bytes()
	}
	for _, first := range []bool{true, false} {
		h := newHost(t, host.Config{})
		mod := compileRaw(t, h, fmt.Sprint("exit-first-", first), build(first))
		res, err := h.Run(t.Context(), mod, host.Call{})
		if err != nil || res.ExitCode != 3 {
			t.Fatalf("first=%v: Run = %+v, %v; want exit 3", first, res, err)
		}
		// The data segment holds the marker at 1024; it is at 64 only
		// if the guest copied it there.
		if !host.FreeBuffersHold(h, 1024, marker) {
			t.Fatalf("first=%v: the guest's memory was not kept for reuse", first)
		}
		if got := host.FreeBuffersHold(h, 64, marker); got != first {
			t.Errorf("first=%v: the marker at 64 in the freed memory: %v", first, got)
		}
	}
}

// TestPathAttrsDescriptors: path_attrs answers for its fd as
// path_filestat_get does: 0 through the mount's directory, ENOTDIR (54)
// through a file opened in it, EBADF (8) for stdout and for a number that
// is not open (docs/abi.md, "Modes and owners").
func TestPathAttrsDescriptors(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	i32, i64 := byte(testutil.WasmI32), byte(testutil.WasmI64)
	c := func(v int64) []byte { return append([]byte{0x41}, testutil.SLEB(v)...) } // i32.const
	build := func(attrsFd int64, viaFile bool) []byte {
		var m testutil.WasmModule
		open := m.ImportFunc("wasi_snapshot_preview1", "path_open",
			m.Type([]byte{i32, i32, i32, i32, i32, i64, i64, i32, i32}, []byte{i32}))
		attrs := m.ImportFunc("spindle", "path_attrs", m.Type([]byte{i32, i32, i32, i32}, []byte{i32}))
		exit := m.ImportFunc("wasi_snapshot_preview1", "proc_exit", m.Type([]byte{i32}, nil))
		m.Memory(1, -1)
		call := func(f uint32) []byte { return append([]byte{0x10}, testutil.ULEB(f)...) }
		var code []byte
		// path_open(3, 0, "a.txt" at 16, 5, 0, all rights, all, 0, fd at 200)
		code = append(code, c(3)...)
		code = append(code, c(0)...)
		code = append(code, c(16)...)
		code = append(code, c(5)...)
		code = append(code, c(0)...)
		code = append(code, 0x42, 0x7f, 0x42, 0x7f) // i64.const -1, i64.const -1
		code = append(code, c(0)...)
		code = append(code, c(200)...)
		code = append(code, call(open)...)
		code = append(code, 0x22, 0, 0x04, 0x40) // local.tee 0; if: path_open failed
		code = append(code, 0x20, 0)             // local.get 0
		code = append(code, c(100)...)
		code = append(code, 0x6a) // i32.add: exit 100+errno
		code = append(code, call(exit)...)
		code = append(code, 0x0b)
		// path_attrs(fd, path, len, result at 300): the errno is the exit status.
		if viaFile {
			code = append(code, c(200)...)
			code = append(code, 0x28, 2, 0) // i32.load: the opened file's fd
			code = append(code, c(32)...)   // "x"
			code = append(code, c(1)...)
		} else {
			code = append(code, c(attrsFd)...)
			code = append(code, c(16)...) // "a.txt"
			code = append(code, c(5)...)
		}
		code = append(code, c(300)...)
		code = append(code, call(attrs)...)
		code = append(code, call(exit)...)
		m.Export("_start", 0, m.Func(m.Type(nil, nil), []byte{i32}, code))
		seg := func(at int64, b string) []byte {
			d := append([]byte{0, 0x41}, testutil.SLEB(at)...)
			d = append(d, 0x0b)
			d = append(d, testutil.ULEB(uint32(len(b)))...)
			return append(d, b...)
		}
		data := append([]byte{2}, seg(16, "a.txt")...)
		data = append(data, seg(32, "x")...)
		m.Extra = append(m.Extra, [2][]byte{{11}, data})
		return m.Bytes()
	}
	h := newHost(t, host.Config{})
	grants := host.Grants{Mounts: []host.Mount{{HostDir: dir, GuestDir: "/"}}}
	for _, tc := range []struct {
		name    string
		fd      int64
		viaFile bool
		want    int
	}{
		{"the mount's directory", 3, false, 0},
		{"a file of the mount", 0, true, 54},
		{"stdout", 1, false, 8},
		{"not open", 99, false, 8},
	} {
		mod := compileRaw(t, h, "attrs-"+tc.name, build(tc.fd, tc.viaFile))
		res, err := h.Run(t.Context(), mod, host.Call{Grants: grants})
		if err != nil || res.ExitCode != tc.want {
			t.Errorf("%s: Run = %+v, %v; want exit %d", tc.name, res, err, tc.want)
		}
	}
}

// TestPathAttrsHostileArgs: path_attrs and path_regrant given what no
// honest guest passes answer with a code and cost nothing: a path or a
// result past the end of memory, a length of 4 GiB (ERR_MEMORY, -1), a
// regrant of no bits or of an unknown one (ERR_INVALID, -4), a path of
// NULs (EINVAL, 28), a name of 5,000 bytes (ENAMETOOLONG, 37); the call
// goes on to exit normally.
func TestPathAttrsHostileArgs(t *testing.T) {
	testutil.VerifyNone(t)
	i32 := byte(testutil.WasmI32)
	c := func(v int64) []byte { return append([]byte{0x41}, testutil.SLEB(v)...) } // i32.const
	const page = 65536
	build := func(regrant bool, args ...int64) []byte {
		var m testutil.WasmModule
		var fn uint32
		if regrant {
			fn = m.ImportFunc("spindle", "path_regrant", m.Type([]byte{i32, i32, i32, i32, i32}, []byte{i32}))
		} else {
			fn = m.ImportFunc("spindle", "path_attrs", m.Type([]byte{i32, i32, i32, i32}, []byte{i32}))
		}
		exit := m.ImportFunc("wasi_snapshot_preview1", "proc_exit", m.Type([]byte{i32}, nil))
		m.Memory(1, -1)
		var code []byte
		for _, a := range args {
			code = append(code, c(a)...)
		}
		code = append(code, 0x10)
		code = append(code, testutil.ULEB(fn)...)
		code = append(code, c(100)...)
		code = append(code, 0x6a) // i32.add: exit 100+code
		code = append(code, 0x10)
		code = append(code, testutil.ULEB(exit)...)
		m.Export("_start", 0, m.Func(m.Type(nil, nil), nil, code))
		// 5,000 bytes of "a" at 1000: a name longer than any file system's.
		long := strings.Repeat("a", 5000)
		data := append([]byte{1, 0, 0x41}, testutil.SLEB(1000)...)
		data = append(data, 0x0b)
		data = append(data, testutil.ULEB(uint32(len(long)))...)
		m.Extra = append(m.Extra, [2][]byte{{11}, append(data, long...)})
		return m.Bytes()
	}
	h := newHost(t, host.Config{})
	grants := host.Grants{Mounts: []host.Mount{{HostDir: t.TempDir(), GuestDir: "/"}}}
	for _, tc := range []struct {
		name    string
		regrant bool
		args    []int64 // fd, [what,] path, len, res
		want    int
	}{
		{"attrs: path past the end", false, []int64{3, page - 2, 8, 0}, 100 - 1},
		{"attrs: a 4 GiB length", false, []int64{3, 0, -1, 0}, 100 - 1},
		{"attrs: result past the end", false, []int64{3, 0, 1, page - 4}, 100 - 1},
		{"attrs: a path of 60,000 NULs", false, []int64{3, 0, 60000, 60000}, 100 + 28},
		{"attrs: a name of 5,000 bytes", false, []int64{3, 1000, 5000, 60000}, 100 + 37},
		{"regrant: no bits", true, []int64{3, 0, 0, 1, 16}, 100 - 4},
		{"regrant: an unknown bit", true, []int64{3, 1 << 20, 0, 1, 16}, 100 - 4},
		{"regrant: path past the end", true, []int64{3, 1, page - 2, 8, 16}, 100 - 1},
		{"regrant: result past the end", true, []int64{3, 1, 0, 1, page - 2}, 100 - 1},
	} {
		mod := compileRaw(t, h, "attrs-hostile-"+tc.name, build(tc.regrant, tc.args...))
		res, err := h.Run(t.Context(), mod, host.Call{Grants: grants})
		if err != nil || res.ExitCode != tc.want {
			t.Errorf("%s: Run = %+v, %v; want exit %d", tc.name, res, err, tc.want)
		}
	}
}
