//go:build !wasip1

package guest_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.CleanupWasm()
	os.Exit(code)
}

// TestGarbageCollectedAcrossCalls runs a guest built with the SDK on the
// real host: 1000 calls that each make 1 MiB of garbage, with small calls
// between them, in 16 MiB of memory. The SDK does not yield after every
// call, so this checks that its yields still let the GC finish: one warm
// instance must serve every call (an instance that hit the limit would
// fail the call; one that grew past the pool's bound would be replaced).
func TestGarbageCollectedAcrossCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm guest")
	}
	ctx := context.Background()
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "guest-sdk/testdata/garbage", true))
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(ctx, host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Compile(ctx, "garbage", wasm)
	if err != nil {
		t.Fatal(err)
	}
	limits := host.Limits{MemoryPages: 256} // 16 MiB
	calls := 0
	for i := range 1000 {
		input, _ := msgpack.Marshal(map[string]int{"n": i})
		res, err := h.Run(ctx, m, host.Call{Task: "garbage", Input: input, Pooled: true, Limits: limits})
		if err != nil {
			t.Fatalf("garbage call %d: %v", i, err)
		}
		var got struct {
			Last byte `msgpack:"last"`
		}
		if err := msgpack.Unmarshal(res.Output, &got); err != nil || got.Last != byte(i) {
			t.Fatalf("garbage call %d: output %x (%v), want last=%d", i, res.Output, err, byte(i))
		}
		calls++
		for j := range i % 5 { // small calls, which may end while a GC cycle marks
			want := fmt.Sprintf("small %d.%d", i, j)
			res, err := h.Run(ctx, m, host.Call{Task: "small", Input: []byte(want[6:]), Pooled: true, Limits: limits})
			if err != nil || string(res.Output) != want {
				t.Fatalf("small call %d.%d: %v, %v", i, j, res, err)
			}
			calls++
		}
	}
	if s := h.Stats(); s.Instantiations != 1 || s.PoolHits != int64(calls-1) {
		t.Errorf("Stats = %+v, want one instance serving %d calls", s, calls)
	}
}
