package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

// The examples of examples/wasm, built with the guest SDK (or in C without
// one), run on the Host.

// example compiles examples/wasm/<name> on h.
func example(t testing.TB, h *host.Host, name string) *host.Module {
	t.Helper()
	dir := "examples/wasm/" + name
	var path string
	switch {
	case strings.HasPrefix(name, "c-"):
		path = testutil.BuildC(t, dir)
	case name == "cmd":
		path = testutil.BuildWasm(t, dir, false)
	default:
		path = testutil.BuildWasm(t, dir, true)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Compile(t.Context(), "example/"+name, wasm)
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return m
}

func pack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unpack(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %x: %v", b, err)
	}
	return m
}

func TestExampleHello(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := example(t, h, "hello")
	for _, pooled := range []bool{false, true, true} {
		res, err := h.Run(t.Context(), m, host.Call{Task: "hello", Input: pack(t, map[string]any{"name": "world"}), Pooled: pooled})
		if err != nil {
			t.Fatalf("pooled=%v: Run: %v", pooled, err)
		}
		if got := unpack(t, res.Output)["greeting"]; got != "hello, world" {
			t.Errorf("pooled=%v: greeting = %v", pooled, got)
		}
	}
	if _, err := h.Run(t.Context(), m, host.Call{Task: "nope"}); host.KindOf(err) != host.KindNotFound {
		t.Errorf("unknown task through spindle_call = %v, want kind not_found (status 2)", err)
	}
}

func TestExampleCHello(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := example(t, h, "c-hello")
	res, err := h.Run(t.Context(), m, host.Call{Task: "hello", Input: []byte("c")})
	if err != nil || string(res.Output) != "hello, c" {
		t.Errorf("hello = %v, %v; want hello, c", res, err)
	}
	_, err = h.Run(t.Context(), m, host.Call{Task: "fail"})
	if te, ok := err.(*host.TaskError); !ok || te.Kind != host.KindGuest || te.Message != "c says no" {
		t.Errorf("fail = %v, want task guest: c says no", err)
	}
}

func TestExampleProgress(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := example(t, h, "progress")
	ch := host.Channel{Context: 3, Handle: 9}
	in := pack(t, map[string]any{"n": 3, "progress": map[string]any{"ctx": ch.Context, "handle": ch.Handle}})
	var sent []string
	var logs []string
	res, err := h.Run(t.Context(), m, host.Call{
		Task:   "count",
		Input:  in,
		Grants: host.Grants{Channels: []host.Channel{ch}},
		Send: func(_ context.Context, got host.Channel, raw bool, data []byte) error {
			sent = append(sent, fmt.Sprintf("%v %v %v", got == ch, raw, unpack(t, data)["i"]))
			return nil
		},
		Log: func(level slog.Level, msg string) { logs = append(logs, msg) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if done := unpack(t, res.Output)["done"]; fmt.Sprint(done) != "3" {
		t.Errorf("done = %v, want 3", done)
	}
	if want := []string{"true false 1", "true false 2", "true false 3"}; !equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
	if len(logs) != 3 || !strings.Contains(logs[0], "step") {
		t.Errorf("logs %q, want three steps", logs)
	}
	// Without the grant, the guest's send is denied and the task fails.
	if _, err := h.Run(t.Context(), m, host.Call{Task: "count", Input: in}); host.KindOf(err) != host.KindGuest {
		t.Errorf("count without the channel granted = %v, want kind guest", err)
	}
}

func TestExampleCmd(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := example(t, h, "cmd")
	var stdout, stderr bytes.Buffer
	res, err := h.Run(t.Context(), m, host.Call{
		Args:   []string{"a", "b"},
		Stdin:  strings.NewReader("shout\n"),
		Stdout: &stdout,
		Stderr: &stderr,
		Grants: host.Grants{Env: map[string]string{"GREETING": "hi"}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "args: [\"a\" \"b\"]\nGREETING=hi\nSHOUT\n"; stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	if stderr.String() != "cmd: done\n" || res.ExitCode != 2 {
		t.Errorf("stderr, exit code = %q, %d; want cmd: done, 2", stderr.String(), res.ExitCode)
	}
}

func TestExampleHasher(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := example(t, h, "hasher")
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("abc"), 0o644))
	res, err := h.Run(t.Context(), m, host.Call{
		Task:   "hash",
		Input:  pack(t, map[string]any{"path": "a.txt"}),
		Grants: host.Grants{Mounts: []host.Mount{{HostDir: dir, GuestDir: "/data", ReadOnly: true}}},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sum := sha256.Sum256([]byte("abc"))
	if got := unpack(t, res.Output)["sha256"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 = %v, want %x", got, sum)
	}
}

// TestExampleBad runs the misbehaving examples, Go and C, each followed by
// a good call on the same Host.
func TestExampleBad(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	cbad := example(t, h, "c-bad")
	hello := example(t, h, "hello")
	small := host.Limits{MemoryPages: 256, Timeout: 10 * time.Second}
	tests := []struct {
		m      *host.Module
		task   string
		input  any
		limits host.Limits
		kind   host.Kind
	}{
		{bad, "loop", nil, host.Limits{Timeout: 200 * time.Millisecond}, host.KindTimeout},
		{bad, "membomb", nil, small, host.KindMemory},
		{bad, "trap", nil, host.Limits{}, host.KindTrap},
		{bad, "recurse", nil, small, host.KindMemory},
		{bad, "output_flood", nil, host.Limits{OutputBytes: 4 << 20}, host.KindOutputLimit},
		{cbad, "recurse", nil, host.Limits{}, host.KindStackOverflow},
		{cbad, "unreachable", nil, host.Limits{}, host.KindTrap},
		{cbad, "loop", nil, host.Limits{Timeout: 200 * time.Millisecond}, host.KindTimeout},
		{cbad, "membomb", nil, host.Limits{MemoryPages: 64}, host.KindMemory},
	}
	for _, tt := range tests {
		var in []byte
		if tt.m == bad {
			in = pack(t, map[string]any{})
		}
		_, err := h.Run(t.Context(), tt.m, host.Call{Task: tt.task, Input: in, Limits: tt.limits})
		if host.KindOf(err) != tt.kind {
			t.Errorf("%s: Run = %v, want kind %s", tt.task, err, tt.kind)
		}
		res, err := h.Run(t.Context(), hello, host.Call{Task: "hello", Input: pack(t, map[string]any{"name": "x"})})
		if err != nil || unpack(t, res.Output)["greeting"] != "hello, x" {
			t.Fatalf("after %s: good call = %v, %v", tt.task, res, err)
		}
	}
}

func TestExampleBadSandbox(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	empty := pack(t, map[string]any{})

	// log_flood: the budget holds, and the task still succeeds.
	var logged int
	if _, err := h.Run(t.Context(), bad, host.Call{
		Task: "log_flood", Input: pack(t, map[string]any{"n": 10000}),
		Limits: host.Limits{LogBytes: 4096},
		Log:    func(_ slog.Level, msg string) { logged += len(msg) },
	}); err != nil {
		t.Errorf("log_flood: %v", err)
	}
	if logged > 4096+200 {
		t.Errorf("log_flood logged %d bytes, budget 4096 (plus one notice)", logged)
	}

	// probe: nothing of the host by default.
	res, err := h.Run(t.Context(), bad, host.Call{Task: "probe", Input: empty})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	p := unpack(t, res.Output)
	if fmt.Sprint(p["year"]) != "2022" || len(p["environ"].([]any)) != 0 || p["root"] != nil {
		t.Errorf("probe = %v, want the fake clock, no environment, no /", p)
	}

	// The escapes: a secret beside the mounts, a symlink to it in one.
	top := t.TempDir()
	data, rw := filepath.Join(top, "data"), filepath.Join(top, "rw")
	must(t, os.Mkdir(data, 0o755))
	must(t, os.Mkdir(rw, 0o755))
	must(t, os.WriteFile(filepath.Join(top, "SECRET"), []byte("SECRET-CONTENT"), 0o644))
	must(t, os.Symlink("../SECRET", filepath.Join(data, "link")))
	grants := host.Grants{Mounts: []host.Mount{
		{HostDir: data, GuestDir: "/data", ReadOnly: true},
		{HostDir: rw, GuestDir: "/rw"},
	}}
	for _, task := range []string{"escape_dotdot", "escape_symlink"} {
		res, err := h.Run(t.Context(), bad, host.Call{Task: task, Input: empty, Grants: grants})
		if err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		if bytes.Contains(res.Output, []byte("SECRET-CONTENT")) {
			t.Errorf("%s escaped: %v", task, unpack(t, res.Output))
		}
	}
}
