package host_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// stateOf runs goreactor's state task n times on m with call's grants and
// returns what each call reported.
func stateOf(t *testing.T, h *host.Host, m *host.Module, call host.Call, n int) []string {
	t.Helper()
	call.Task = "state"
	var out []string
	for range n {
		res, err := h.Run(context.Background(), m, call)
		if err != nil {
			t.Fatalf("state: %v", err)
		}
		out = append(out, string(res.Output))
	}
	return out
}

// A fresh instance restored from a snapshot of the first one's
// initialization is the instance its own _initialize would have made: it
// reports the same init-time clock, random bytes, fast random state and
// map order, reads the clocks and random sources where a self-initialized
// instance reads them, and holds nothing of the calls before it.
func TestSnapshotRestoresInitializedState(t *testing.T) {
	plain := newHost(t, host.Config{NoSnapshots: true})
	snap := newHost(t, host.Config{})
	pm, sm := compile(t, plain, "goreactor"), compile(t, snap, "goreactor")

	want := stateOf(t, plain, pm, host.Call{}, 3)
	if got := plain.Stats().Restored; got != 0 {
		t.Fatalf("NoSnapshots: %d instances restored", got)
	}
	for _, s := range want {
		if s != want[0] {
			t.Fatalf("fresh instances differ without snapshots: %q and %q", want[0], s)
		}
	}
	if !strings.HasPrefix(want[0], "calls=1 ") || !strings.Contains(want[0], "since=") {
		t.Fatalf("state = %q", want[0])
	}
	got := stateOf(t, snap, sm, host.Call{}, 3)
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("call %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	// The first call captured, the next two were restored.
	if r := snap.Stats().Restored; r != 2 {
		t.Errorf("Restored = %d, want 2", r)
	}

	// Pooled instances start from the snapshot too; a warm one keeps its
	// state between calls, as it always did.
	pooled := stateOf(t, snap, sm, host.Call{Pooled: true}, 2)
	pooledPlain := stateOf(t, plain, pm, host.Call{Pooled: true}, 2)
	for i := range pooled {
		if pooled[i] != pooledPlain[i] {
			t.Errorf("pooled call %d:\n got %q\nwant %q", i, pooled[i], pooledPlain[i])
		}
	}
	if !strings.HasPrefix(pooled[1], "calls=2 ") {
		t.Errorf("second pooled call = %q, want the warm instance's second", pooled[1])
	}
	if r := snap.Stats().Restored; r != 3 {
		t.Errorf("Restored = %d after a pooled call, want 3", r)
	}
}

// A call whose initialization could see its grants initializes itself,
// and sees what it would have without snapshots.
func TestSnapshotNotForGrants(t *testing.T) {
	plain := newHost(t, host.Config{NoSnapshots: true})
	snap := newHost(t, host.Config{})
	pm, sm := compile(t, plain, "goreactor"), compile(t, snap, "goreactor")
	stateOf(t, snap, sm, host.Call{}, 1) // captures the snapshot
	for _, tc := range []struct {
		name string
		call host.Call
	}{
		{"env", host.Call{Grants: host.Grants{Env: map[string]string{"A": "b"}}}},
		{"devnull", host.Call{Grants: host.Grants{DevNull: true}}},
		{"mount", host.Call{Grants: host.Grants{Mounts: []host.Mount{{HostDir: t.TempDir(), GuestDir: "/data", ReadOnly: true}}}}},
		{"stdin", host.Call{Stdin: strings.NewReader("")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snap.Stats().Restored
			got := stateOf(t, snap, sm, tc.call, 1)
			want := stateOf(t, plain, pm, tc.call, 1)
			if got[0] != want[0] {
				t.Errorf("got %q\nwant %q", got[0], want[0])
			}
			if r := snap.Stats().Restored; r != before {
				t.Errorf("an instance with %s grants was restored", tc.name)
			}
		})
	}
	// Clock and Random: the guest reads the host's clock and random
	// source, so only the kind of result can be compared.
	before := snap.Stats().Restored
	res := stateOf(t, snap, sm, host.Call{Grants: host.Grants{Clock: true, Random: true}}, 1)
	if !strings.HasPrefix(res[0], "calls=1 ") {
		t.Errorf("state = %q", res[0])
	}
	if r := snap.Stats().Restored; r != before {
		t.Error("an instance with the real clock was restored")
	}
}

// An initialization that writes to stdout is never captured: each fresh
// instance writes it again.
func TestSnapshotNotWhenInitHasEffects(t *testing.T) {
	h := newHost(t, host.Config{})
	m := compile(t, h, "goinit")
	for i := range 3 {
		var out bytes.Buffer
		if _, err := h.Run(context.Background(), m, host.Call{Task: "noop", Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		if out.String() != "init ran\n" {
			t.Errorf("call %d: stdout %q, want the initialization's line", i, out.String())
		}
	}
	if r := h.Stats().Restored; r != 0 {
		t.Errorf("Restored = %d, want 0", r)
	}
}

// Concurrent first calls: one captures, the others initialize themselves
// meanwhile; all report the same state.
func TestSnapshotConcurrent(t *testing.T) {
	plain := newHost(t, host.Config{NoSnapshots: true})
	want := stateOf(t, plain, compile(t, plain, "goreactor"), host.Call{}, 1)[0]
	h := newHost(t, host.Config{})
	m := compile(t, h, "goreactor")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			res, err := h.Run(context.Background(), m, host.Call{Task: "state"})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = string(res.Output)
		})
	}
	wg.Wait()
	for i, s := range got {
		if s != want {
			t.Errorf("call %d: %q, want %q", i, s, want)
		}
	}
	after := stateOf(t, h, m, host.Call{}, 1)[0]
	if after != want {
		t.Errorf("after: %q, want %q", after, want)
	}
	if h.Stats().Restored == 0 {
		t.Error("no instance restored after the first calls")
	}
}

// outcome is what a call gave, as a string to compare.
func outcome(res *host.Result, err error, stdout *bytes.Buffer) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "output " + string(res.Output) + " stdout " + stdout.String()
}

// An initialization that sees something of its call, or changes an
// instance's descriptors, is never captured: the calls after it give what
// they give without snapshots.
func TestSnapshotNotWhenInitSeesItsCall(t *testing.T) {
	// g = memory.grow(10), -1 when the call's memory limit refuses it;
	// the task returns g+1: 0 (success) only if the grow failed.
	var mem testutil.WasmModule
	t0, t1 := mem.Type(nil, nil), mem.Type(nil, []byte{testutil.WasmI32})
	mem.Memory(1, -1)
	mem.Global()
	mem.Export("_initialize", 0, mem.Func(t0, nil, []byte{0x41, 0x0a, 0x40, 0x00, 0x24, 0x00}))
	mem.Export("task", 0, mem.Func(t1, nil, []byte{0x23, 0x00, 0x41, 0x01, 0x6a}))

	// _initialize closes stdout; the task writes "x" to it and returns
	// fd_write's errno.
	var fd testutil.WasmModule
	t0, t1 = fd.Type(nil, nil), fd.Type(nil, []byte{testutil.WasmI32})
	tc := fd.Type([]byte{testutil.WasmI32}, []byte{testutil.WasmI32})
	tw := fd.Type([]byte{testutil.WasmI32, testutil.WasmI32, testutil.WasmI32, testutil.WasmI32}, []byte{testutil.WasmI32})
	fdClose := fd.ImportFunc("wasi_snapshot_preview1", "fd_close", tc)
	fdWrite := fd.ImportFunc("wasi_snapshot_preview1", "fd_write", tw)
	fd.Memory(1, -1)
	fd.Export("_initialize", 0, fd.Func(t0, nil, []byte{0x41, 0x01, 0x10, byte(fdClose), 0x1a}))
	fd.Export("task", 0, fd.Func(t1, nil, []byte{
		0x41, 0x00, 0x41, 0x10, 0x36, 0x02, 0x00, // iovec at 0: ptr 16
		0x41, 0x04, 0x41, 0x01, 0x36, 0x02, 0x00, // len 1
		0x41, 0x10, 0x41, 0xf8, 0x00, 0x3a, 0x00, 0x00, // 'x' at 16
		0x41, 0x01, 0x41, 0x00, 0x41, 0x01, 0x41, 0x20, 0x10, byte(fdWrite),
	}))

	// _initialize reads 1 MiB of random bytes, past what a restore may
	// read again.
	var rnd testutil.WasmModule
	t0, t1 = rnd.Type(nil, nil), rnd.Type(nil, []byte{testutil.WasmI32})
	tr := rnd.Type([]byte{testutil.WasmI32, testutil.WasmI32}, []byte{testutil.WasmI32})
	rg := rnd.ImportFunc("wasi_snapshot_preview1", "random_get", tr)
	rnd.Memory(17, -1)
	rnd.Export("_initialize", 0, rnd.Func(t0, nil, cat([]byte{0x41, 0x00, 0x41}, testutil.SLEB(1<<20), []byte{0x10, byte(rg), 0x1a})))
	rnd.Export("task", 0, rnd.Func(t1, nil, []byte{0x41, 0x00}))

	small := host.Call{Task: "task"}
	small.Limits.MemoryPages = 2
	for _, tc := range []struct {
		name  string
		wasm  []byte
		calls []host.Call
	}{
		{"a grow refused by the first call's limit", mem.Bytes(), []host.Call{small, {Task: "task"}, {Task: "task"}}},
		{"stdout closed", fd.Bytes(), []host.Call{{Task: "task"}, {Task: "task"}}},
		{"1 MiB of random bytes", rnd.Bytes(), []host.Call{{Task: "task"}, {Task: "task"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2][]string
			for i, cfg := range []host.Config{{NoSnapshots: true}, {}} {
				h := newHost(t, cfg)
				m, err := h.Compile(context.Background(), tc.name, tc.wasm)
				if err != nil {
					t.Fatal(err)
				}
				for _, call := range tc.calls {
					var out bytes.Buffer
					call.Stdout = &out
					res, err := h.Run(context.Background(), m, call)
					got[i] = append(got[i], outcome(res, err, &out))
				}
				if r := h.Stats().Restored; r != 0 {
					t.Errorf("Restored = %d, want 0", r)
				}
			}
			for k := range got[0] {
				if got[0][k] != got[1][k] {
					t.Errorf("call %d: %q with snapshots, %q without", k, got[1][k], got[0][k])
				}
			}
		})
	}
}
