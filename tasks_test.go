package spindle_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/vmihailenco/msgpack/v5"
)

// taskTimeout bounds task tests: the first compile of a Go guest takes about
// a second on 2 cores, several under -race.
const taskTimeout = 2 * time.Minute

func taskContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), taskTimeout)
	t.Cleanup(cancel)
	return ctx
}

// sharedCache is one compilation cache for every master of the test binary
// that does not need its own, so each guest compiles once per run.
var sharedCache = sync.OnceValue(func() string {
	dir := filepath.Join(os.TempDir(), "spindle-test-cache")
	_ = os.MkdirAll(dir, 0o700)
	return dir
})

func mustPack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addModule(t *testing.T, m *spindle.Master, path string) string {
	t.Helper()
	h, err := m.AddModuleFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func stats(t *testing.T, ctx context.Context, c *spindle.Context) spindle.StatsResult {
	t.Helper()
	var st spindle.StatsResult
	if err := c.Call(ctx, "stats", nil, &st); err != nil {
		t.Fatalf("stats of %s: %v", c, err)
	}
	return st
}

func TestTaskHello(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	hello := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hello", true))
	c := startLocal(t, ctx, m, "w")
	for _, pooled := range []bool{false, true} {
		res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: mustPack(t, map[string]string{"name": "spindle"}), Pooled: pooled})
		if err != nil {
			t.Fatalf("Run(hello, pooled=%v): %v", pooled, err)
		}
		var out struct {
			Greeting string `msgpack:"greeting"`
		}
		if err := msgpack.Unmarshal(res.Output, &out); err != nil || out.Greeting != "hello, spindle" {
			t.Fatalf("hello output = %q (%v), want greeting %q", res.Output, err, "hello, spindle")
		}
	}
	_, err := c.Run(ctx, spindle.Task{Module: hello, Task: "nope"})
	var te *spindle.TaskError
	if !errors.As(err, &te) || te.Context != "w" {
		t.Fatalf("Run(unknown task) = %v, want a TaskError from w", err)
	}
}

// TestTaskC runs the C guest: the ABI needs no SDK.
func TestTaskC(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	c := startLocal(t, ctx, m, "")
	res, err := c.Run(ctx, spindle.Task{Module: mod, Task: "hello", Input: []byte("world")})
	if err != nil || string(res.Output) != "hello, world" {
		t.Fatalf("c-hello = %q, %v; want %q", res.Output, err, "hello, world")
	}
	_, err = c.Run(ctx, spindle.Task{Module: mod, Task: "fail"})
	var te *spindle.TaskError
	if !errors.As(err, &te) || te.Kind != "guest" || te.Message != "c says no" {
		t.Fatalf("c-hello fail = %v, want kind guest %q", err, "c says no")
	}
}

// TestModuleCrossesEachEdgeOnce runs a task at the end of a 3-deep chain,
// twice, with every context keeping modules in memory only: the module
// crosses each edge exactly once, and is compiled once, where it runs.
func TestModuleCrossesEachEdgeOnce(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startVia(t, ctx, c1, "c2")
	c3 := startVia(t, ctx, c2, "c3")
	// Two concurrent first calls: one fetch, one compile.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c3.Run(ctx, spindle.Task{Module: mod, Task: "hello", Input: []byte("x")})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c3.Run(ctx, spindle.Task{Module: mod, Task: "hello"}); err != nil {
		t.Fatal(err)
	}
	if got := m.ModuleStats().Served; got != 1 {
		t.Errorf("master served the module %d times, want 1", got)
	}
	for _, tc := range []struct {
		c                        *spindle.Context
		fetches, served, compile int64
	}{{c1, 1, 1, 0}, {c2, 1, 1, 0}, {c3, 1, 0, 1}} {
		st := stats(t, ctx, tc.c)
		if st.ModuleFetches != tc.fetches || st.ModuleServed != tc.served || st.Compiles != tc.compile {
			t.Errorf("%s: fetches %d served %d compiles %d; want %d %d %d", tc.c, st.ModuleFetches, st.ModuleServed, st.Compiles,
				tc.fetches, tc.served, tc.compile)
		}
	}
	// A module nobody has fails clearly.
	_, err := c3.Run(ctx, spindle.Task{Module: strings.Repeat("ab", 32), Task: "hello"})
	var te *spindle.TaskError
	if !errors.As(err, &te) || te.Kind != "not_found" || !strings.Contains(te.Message, "no context in the tree has blob") {
		t.Fatalf("Run(unknown module) = %v, want kind not_found", err)
	}
}

func TestPreload(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	c1 := startLocal(t, ctx, m, "c1")
	c2 := startVia(t, ctx, c1, "c2")
	if err := c2.Preload(ctx, mod); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Run(ctx, spindle.Task{Module: mod, Task: "hello"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*spindle.Context{c1, c2} {
		if st := stats(t, ctx, c); st.ModuleFetches != 0 {
			t.Errorf("%s fetched %d modules after a preload, want 0", c, st.ModuleFetches)
		}
	}
}

// TestMisbehavingGuests: each ends with its typed error within its limit,
// and the context then serves the next call.
func TestMisbehavingGuests(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	bad := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/bad", true))
	cbad := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-bad"))
	hello := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	c := startLocal(t, ctx, m, "sandbox")
	// Compile both modules first (seconds for a Go guest on a cold cache),
	// so each case below times only its task.
	for _, warm := range []spindle.Task{{Module: bad, Task: "probe"}, {Module: cbad, Task: "unreachable"}} {
		if _, err := c.Run(ctx, warm); err != nil {
			var te *spindle.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("warming %s: %v", warm.Task, err)
			}
		}
	}
	tests := []struct {
		name   string
		module string
		task   string
		limits spindle.Limits
		kind   string
	}{
		{"go loop", bad, "loop", spindle.Limits{Timeout: 500 * time.Millisecond}, "timeout"},
		{"c loop", cbad, "loop", spindle.Limits{Timeout: 300 * time.Millisecond}, "timeout"},
		{"go membomb", bad, "membomb", spindle.Limits{MemoryPages: 1024}, "memory"},
		{"c membomb", cbad, "membomb", spindle.Limits{MemoryPages: 64}, "memory"},
		{"go trap", bad, "trap", spindle.Limits{}, "trap"},
		{"c unreachable", cbad, "unreachable", spindle.Limits{}, "trap"},
		{"c recursion", cbad, "recurse", spindle.Limits{}, "stack_overflow"},
		{"go recursion", bad, "recurse", spindle.Limits{MemoryPages: 1024}, "memory"},
		{"output flood", bad, "output_flood", spindle.Limits{OutputBytes: 4 << 20}, "output_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := c.Run(ctx, spindle.Task{Module: tt.module, Task: tt.task, Limits: tt.limits})
			var te *spindle.TaskError
			if !errors.As(err, &te) || te.Kind != tt.kind {
				t.Fatalf("%s = %v, want kind %s", tt.task, err, tt.kind)
			}
			if tt.limits.Timeout > 0 {
				if d := time.Since(start); d > tt.limits.Timeout+5*time.Second {
					t.Errorf("%s took %v with a %v limit", tt.task, d, tt.limits.Timeout)
				}
			}
			// The context still serves.
			res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: []byte("again")})
			if err != nil || string(res.Output) != "hello, again" {
				t.Fatalf("call after %s = %q, %v", tt.task, res.Output, err)
			}
		})
	}
}

func TestLogFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	bad := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/bad", true))
	c := startLocal(t, ctx, m, "flood")
	_, _ = c.Run(ctx, spindle.Task{Module: bad, Task: "log_flood", Input: mustPack(t, map[string]int{"n": 20000}),
		Limits: spindle.Limits{LogBytes: 4096}})
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	n := len(logs.find(func(r logRecord) bool { return r.Attrs["context"] == "flood" && r.Attrs["task"] == "log_flood" }))
	if n == 0 || n > 4096/8 {
		t.Errorf("%d log records from a task with a 4 KiB log budget", n)
	}
}

// TestSandboxDefaults: nothing is granted unless asked for.
func TestSandboxDefaults(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	t.Setenv("SPINDLE_SECRET_ENV", "leak")
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	bad := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/bad", true))
	c := startLocal(t, ctx, m, "")
	probe := func(task spindle.Task) map[string]any {
		t.Helper()
		task.Module, task.Task = bad, "probe"
		res, err := c.Run(ctx, task)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := msgpack.Unmarshal(res.Output, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	def := probe(spindle.Task{})
	granted := probe(spindle.Task{Clock: true, Random: true, Env: map[string]string{"SPINDLE_SECRET_ENV": "given"}})
	t.Logf("default: %v", def)
	t.Logf("granted: %v", granted)
	year := func(m map[string]any) int64 {
		switch v := m["year"].(type) {
		case int64:
			return v
		case int8, int16, int32, uint8, uint16, uint32, uint64:
			return toInt(v)
		}
		return -1
	}
	if y := year(def); y != 2022 {
		t.Errorf("default clock says year %d, want the fake 2022", y)
	}
	if y := year(granted); y < 2025 {
		t.Errorf("granted clock says year %d, want the real one", y)
	}
	if s := strings.Join(strSlice(def["environ"]), ","); s != "" {
		t.Errorf("default environment is %q, want empty", s)
	}
	if s := strings.Join(strSlice(granted["environ"]), ","); s != "SPINDLE_SECRET_ENV=given" {
		t.Errorf("granted environment = %q, want just SPINDLE_SECRET_ENV=given", s)
	}
	if def["root_err"] == nil {
		t.Errorf("the guest could list / without a mount: %v", def)
	}
	if def["random"] == granted["random"] {
		t.Errorf("random bytes are the same with and without the grant: %v", def["random"])
	}
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	}
	return -1
}

func strSlice(v any) []string {
	var out []string
	if xs, ok := v.([]any); ok {
		for _, x := range xs {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestMountsConfine: a read-only mount is readable, and no escape through
// ".." or symlinks reaches the file next to it.
func TestMountsConfine(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	hasher := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/hasher", true))
	bad := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/bad", true))
	top := t.TempDir()
	data, rw := filepath.Join(top, "data"), filepath.Join(top, "rw")
	for _, d := range []string{data, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "SECRET"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "file.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../SECRET", filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	c := startLocal(t, ctx, m, "")
	mounts := []spindle.Mount{{Host: data, Guest: "/data", ReadOnly: true}, {Host: rw, Guest: "/rw"}}
	res, err := c.Run(ctx, spindle.Task{Module: hasher, Task: "hash", Input: mustPack(t, map[string]string{"path": "/data/file.txt"}), Mounts: mounts})
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Sha256 string `msgpack:"sha256"`
		Bytes  int64  `msgpack:"bytes"`
	}
	if err := msgpack.Unmarshal(res.Output, &h); err != nil || h.Bytes != 5 ||
		h.Sha256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("hash of /data/file.txt = %+v (%v)", h, err)
	}
	// Without the grant the file is not there.
	if _, err := c.Run(ctx, spindle.Task{Module: hasher, Task: "hash", Input: mustPack(t, map[string]string{"path": "/data/file.txt"})}); err == nil {
		t.Fatal("hash without a mount succeeded")
	}
	for _, task := range []string{"escape_dotdot", "escape_symlink"} {
		res, err := c.Run(ctx, spindle.Task{Module: bad, Task: task, Mounts: mounts})
		if err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		if bytes.Contains(res.Output, []byte("secret")) {
			t.Errorf("%s read the secret: %q", task, res.Output)
		}
		t.Logf("%s: %s", task, summarize(res.Output))
	}
	if b, _ := os.ReadFile(filepath.Join(top, "SECRET")); string(b) != "secret" {
		t.Errorf("SECRET changed to %q", b)
	}
}

func summarize(b []byte) string {
	var v any
	if msgpack.Unmarshal(b, &v) != nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// TestTaskStreamsAndLogs: messages a task sends on a granted channel arrive
// in order, and its logs reach the master tagged with the context's name.
func TestTaskStreamsAndLogs(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	progress := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/progress", true))
	c := startLocal(t, ctx, m, "streamer")
	rc, err := m.Router().NewReceiver(routing.HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	const n = 50
	in := mustPack(t, map[string]any{"n": n, "progress": rc.Sender()})
	res, err := c.Run(ctx, spindle.Task{Module: progress, Task: "count", Input: in, Channels: []routing.Sender{rc.Sender()}})
	if err != nil {
		t.Fatal(err)
	}
	var done struct {
		Done int `msgpack:"done"`
	}
	if err := msgpack.Unmarshal(res.Output, &done); err != nil || done.Done != n {
		t.Fatalf("count output %q (%v), want done %d", res.Output, err, n)
	}
	for i := 1; i <= n; i++ {
		msg, err := rc.Get(ctx)
		if err != nil {
			t.Fatalf("progress message %d: %v", i, err)
		}
		var p struct {
			I int `msgpack:"i"`
		}
		if err := msgpack.Unmarshal(msg.Body, &p); err != nil || p.I != i {
			t.Fatalf("progress message %d = %q (%v), want i=%d", i, msg.Body, err, i)
		}
	}
	if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool {
		return r.Attrs["context"] == "streamer" && strings.Contains(r.Msg, "step")
	}); !ok {
		t.Errorf("no task log from streamer reached the master:%s", logs.dump())
	}
	// A channel the caller did not grant is refused.
	_, err = c.Run(ctx, spindle.Task{Module: progress, Task: "count", Input: in})
	var te *spindle.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("count with an ungranted channel = %v, want a TaskError", err)
	}
}

// TestCommandModule: args, env, stdin in; stdout and stderr streamed back;
// the exit code returned.
func TestCommandModule(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	cmd := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/cmd", false))
	c := startLocal(t, ctx, m, "")
	var stdout, stderr bytes.Buffer
	res, err := c.Run(ctx, spindle.Task{Module: cmd, Args: []string{"a", "b"}, Stdin: strings.NewReader("shout\n"),
		Env: map[string]string{"GREETING": "hi"}, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Command || res.ExitCode != 2 {
		t.Errorf("command result %+v, want exit code 2", res)
	}
	for _, want := range []string{"SHOUT", "GREETING=hi", "a"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout %q lacks %q", stdout.String(), want)
		}
	}
	if !strings.Contains(stderr.String(), "cmd: done") {
		t.Errorf("stderr = %q, want cmd: done", stderr.String())
	}
}

// TestRunAll runs one task in several contexts at once.
func TestRunAll(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	var cs []*spindle.Context
	for range 4 {
		c, err := m.StartLocal(ctx, spindle.LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, o := range spindle.RunAll(ctx, cs, spindle.Task{Module: mod, Task: "hello", Input: []byte("all")}) {
		if o.Err != nil || string(o.Result.Output) != "hello, all" {
			t.Errorf("%s: %+v, %v", o.Context, o.Result, o.Err)
		}
	}
}
