package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// Hostile guests, assembled by hand: each task is a () -> i32 export.
var (
	opRefNullFunc = []byte{0xd0, 0x70}
	opTableGrow0  = []byte{0xfc, 15, 0}
	opTableSize0  = []byte{0xfc, 16, 0}
	opTableFill0  = []byte{0xfc, 17, 0}
)

func i32const(v int64) []byte { return append([]byte{0x41}, testutil.SLEB(v)...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// tableModule has one table (max < 0: none declared) and tasks "grow"
// (one table.grow by 0xFFFFFFF0, status 0 if it returned -1) and "fill"
// (grow by 65536 until refused, then fill the whole table; status 0).
func tableModule(max int64) []byte {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	m.Table(1, max)
	grow := m.Func(task, nil, cat(opRefNullFunc, i32const(-16), opTableGrow0, i32const(-1), []byte{0x47})) // i32.ne
	fill := m.Func(task, nil, cat(
		[]byte{0x03, 0x40}, opRefNullFunc, i32const(65536), opTableGrow0, i32const(-1), []byte{0x47, 0x0d, 0, 0x0b},
		i32const(0), opRefNullFunc, opTableSize0, opTableFill0, i32const(0)))
	m.Export("grow", 0, grow)
	m.Export("fill", 0, fill)
	return m.Bytes()
}

// recursionModule's task "recurse" calls itself until something stops it.
func recursionModule() []byte {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	f := m.Func(task, nil, []byte{0x10, 0}) // call 0 (itself: no imports)
	m.Export("recurse", 0, f)
	return m.Bytes()
}

// blocksModule has fns functions of n control instructions each: nested
// blocks, or sequential loops.
func blocksModule(fns, n int, loops bool) []byte {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	m.Memory(1, -1)
	var code []byte
	for range n {
		if loops {
			code = append(code, 0x03, 0x40, 0x0b)
		} else {
			code = append(code, 0x02, 0x40)
		}
	}
	if !loops {
		for range n {
			code = append(code, 0x0b)
		}
	}
	code = append(code, i32const(0)...)
	for i := range fns {
		f := m.Func(task, nil, code)
		if i == 0 {
			m.Export("task", 0, f)
		}
	}
	return m.Bytes()
}

// openModule's task "open" opens the path in the first mount (fd 3) with
// path_open until it fails, keeping every file open; it returns count<<8 |
// errno. With once, it opens one file and returns the errno.
func openModule(path string, once bool) []byte {
	var m testutil.WasmModule
	task := m.Type(nil, []byte{testutil.WasmI32})
	i32, i64 := byte(testutil.WasmI32), byte(testutil.WasmI64)
	openT := m.Type([]byte{i32, i32, i32, i32, i32, i64, i64, i32, i32}, []byte{i32})
	pathOpen := m.ImportFunc("wasi_snapshot_preview1", "path_open", openT)
	m.Memory(1, -1)
	data := cat([]byte{0, 0x41, 16, 0x0b}, testutil.ULEB(uint32(len(path))), []byte(path))
	m.Extra = append(m.Extra, [2][]byte{{11}, cat([]byte{1}, data)})
	call := cat(i32const(3), i32const(1), i32const(16), i32const(int64(len(path))), i32const(0),
		[]byte{0x42}, testutil.SLEB(0x1fffffff), []byte{0x42}, testutil.SLEB(0x1fffffff), i32const(0), i32const(0),
		[]byte{0x10}, testutil.ULEB(pathOpen))
	var code []byte
	if once {
		code = call
	} else {
		// local 0: count, local 1: errno
		code = cat([]byte{0x03, 0x40}, call, []byte{0x22, 1, 0x45, 0x04, 0x40}, // local.tee 1, i32.eqz, if
			[]byte{0x20, 0, 0x41, 1, 0x6a, 0x21, 0, 0x0c, 1, 0x0b, 0x0b}, // count++, br 1 (the loop), end, end
			[]byte{0x20, 0, 0x41, 8, 0x74, 0x20, 1, 0x72})                // count<<8 | errno
	}
	f := m.Func(task, []byte{i32, i32}, code)
	m.Export("open", 0, f)
	data2 := m.Bytes()
	return data2
}

// statusOf returns the status of a task that returned non-zero.
func statusOf(t *testing.T, err error) int {
	t.Helper()
	var te *host.TaskError
	if !errors.As(err, &te) || te.Kind != host.KindGuest {
		t.Fatalf("Run = %v, want kind guest", err)
	}
	n, perr := strconv.Atoi(strings.TrimPrefix(te.Message, "task returned status "))
	if perr != nil {
		t.Fatalf("status of %q: %v", te.Message, perr)
	}
	return n
}

func compileRaw(t *testing.T, h *host.Host, name string, wasm []byte) *host.Module {
	t.Helper()
	m, err := h.Compile(t.Context(), name, wasm)
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return m
}

// peakRSS returns the process's peak resident set (VmHWM) in MiB.
func peakRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "?"
}

// TestHostileTables: the 80-byte table.grow bomb gets -1, table.fill
// reaches at most the bound, and a module whose tables could pass its
// memory limit is refused before it runs.
func TestHostileTables(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	for _, tt := range []struct {
		name  string
		max   int64
		task  string
		limit uint32
		kind  host.Kind // "" ok
	}{
		{"grow, no max", -1, "grow", 16, ""},
		{"grow, huge max", 0xffffffff, "grow", 0, ""},
		{"fill, huge max", 0xffffffff, "fill", 0, ""},
		{"fill, huge max, 1 MiB limit", 0xffffffff, "fill", 16, host.KindMemory},
		{"fill, no max, 1 MiB limit", -1, "fill", 16, ""},
	} {
		wasm := tableModule(tt.max)
		m := compileRaw(t, h, tt.name, wasm)
		_, err := h.Run(t.Context(), m, host.Call{Task: tt.task, Limits: host.Limits{MemoryPages: tt.limit}})
		if host.KindOf(err) != tt.kind || (tt.kind == "" && err != nil) {
			t.Errorf("%s (%d bytes): Run = %v, want kind %q", tt.name, len(wasm), err, tt.kind)
		}
		t.Logf("%s: peak RSS %s", tt.name, peakRSS())
	}
}

// TestHostileRecursion: unbounded recursion ends with kind stack_overflow
// at the stack budget, and the Host serves the next call.
func TestHostileRecursion(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	m := compileRaw(t, h, "recursion", recursionModule())
	for _, limit := range []uint32{16, 0} {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = h.Run(context.Background(), m, host.Call{Task: "recurse", Limits: host.Limits{MemoryPages: limit}})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if host.KindOf(err) != host.KindStackOverflow || !strings.Contains(err.Error(), "Limits.StackBytes") {
				t.Errorf("limit %d pages: Run = %v, want kind stack_overflow at the budget", limit, err)
			}
		}
		t.Logf("8 concurrent recursions at a limit of %d pages: peak RSS %s", limit, peakRSS())
	}
	if _, err := h.Run(t.Context(), compile(t, h, "creactor"), host.Call{Task: "hello"}); err != nil {
		t.Errorf("a call after: %v", err)
	}
}

// TestHostileCompile: modules past the structural bounds are refused at
// once, and a caller whose deadline passes during a compile returns then.
func TestHostileCompile(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	for _, tt := range []struct {
		name string
		wasm []byte
	}{
		{"110,000 nested blocks", blocksModule(1, 110_000, false)},
		{"60,000 loops", blocksModule(1, 60_000, true)},                  // count 120,000
		{"5 functions of 29,000 loops", blocksModule(5, 29_000, true)},   // work 1.7e10
		{"3 functions of 55,000 blocks", blocksModule(3, 55_000, false)}, // work 9.1e9
	} {
		start := time.Now()
		_, err := h.Compile(t.Context(), tt.name, tt.wasm)
		if host.KindOf(err) != host.KindInvalidModule || !strings.Contains(err.Error(), "ModuleLimits") {
			t.Errorf("%s: Compile = %v, want invalid_module past a bound", tt.name, err)
		}
		t.Logf("%s (%d bytes): refused in %v", tt.name, len(tt.wasm), time.Since(start))
	}
	// Within the bounds but slow: 100 functions of 4,000 loops (work
	// 6.4e9), about a minute of one core.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Compile(ctx, "slow", blocksModule(100, 4_000, true))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow compile: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow compile returned after %v", d)
	}
}

// TestHostileFiles: a call that opens files until refused stops at
// Limits.OpenFiles with EAGAIN while another call, at the same time, still
// opens its own; opening a FIFO fails at once with ENOTSUP.
func TestHostileFiles(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{CacheDir: t.TempDir()})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := host.Grants{Mounts: []host.Mount{{HostDir: dir, GuestDir: "/data"}, {HostDir: dir, GuestDir: "/again"}}}
	hog := compileRaw(t, h, "hog", openModule("f", false))
	const wasiEAGAIN, wasiENOTSUP = 6, 58
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = h.Run(context.Background(), hog, host.Call{Task: "open", Grants: mounts, Limits: host.Limits{OpenFiles: 100}})
		})
	}
	wg.Wait()
	for _, err := range errs {
		// The mounts' preopened directories, once wazero opens them,
		// count too.
		if got := statusOf(t, err); got>>8 > 100 || got>>8 < 100-len(mounts.Mounts) || got&0xff != wasiEAGAIN {
			t.Errorf("hog: %d files, errno %d; want 98 to 100, EAGAIN", got>>8, got&0xff)
		}
	}
	fifo := compileRaw(t, h, "fifo", openModule("fifo", true))
	start := time.Now()
	_, err := h.Run(t.Context(), fifo, host.Call{Task: "open", Grants: mounts, Limits: host.Limits{Timeout: time.Second}})
	if got := statusOf(t, err); got != wasiENOTSUP {
		t.Errorf("fifo: errno %d, want ENOTSUP (%d)", got, wasiENOTSUP)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("fifo open took %v", d)
	}
}

// TestCloseStopsCompile: a compile whose caller never gives up does not
// hold Close: Close stops it, and the caller gets an error.
func TestCloseStopsCompile(t *testing.T) {
	h, err := host.New(context.Background(), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// About two minutes of one core (see TestHostileCompile).
		_, err := h.Compile(context.Background(), "slow", blocksModule(200, 4_000, true))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the compile start
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close with a compile running = %v, want it to stop the compile", err)
	}
	if err := <-done; err == nil {
		t.Errorf("Compile stopped by Close returned no error")
	}
}
