package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
)

// BenchmarkCompileCold compiles the Go reactor with no cache: a new Host
// (runtime) per iteration, no cache directory.
func BenchmarkCompileCold(b *testing.B) {
	wasm := guest(b, "goreactor")
	for b.Loop() {
		h, err := host.New(context.Background(), host.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Compile(context.Background(), "goreactor", wasm); err != nil {
			b.Fatal(err)
		}
		h.Close(context.Background())
	}
	b.SetBytes(int64(len(wasm)))
}

// BenchmarkCompileCached loads the Go reactor from the on-disk cache into a
// new Host with the same CacheDir, as a restarted process would.
func BenchmarkCompileCached(b *testing.B) {
	wasm := guest(b, "goreactor")
	dir := b.TempDir()
	warm := newHost(b, host.Config{CacheDir: dir})
	compile(b, warm, "goreactor")
	for b.Loop() {
		h, err := host.New(context.Background(), host.Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Compile(context.Background(), "goreactor", wasm); err != nil {
			b.Fatal(err)
		}
		h.Close(context.Background())
	}
}

// BenchmarkInstantiateGo is a fresh instance of the Go reactor, its
// _initialize, a no-op call and the instance's close.
func BenchmarkInstantiateGo(b *testing.B) {
	h := newHost(b, host.Config{})
	m := compile(b, h, "goreactor")
	call := host.Call{Task: "noop"}
	for b.Loop() {
		if _, err := h.Run(context.Background(), m, call); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallWarm is a pooled call: an echo of 64 bytes on a warm
// instance.
func BenchmarkCallWarm(b *testing.B) {
	h := newHost(b, host.Config{})
	in := make([]byte, 64)
	for _, tc := range []struct{ guest, task string }{
		{"creactor", "hello"},
		{"goreactor", "echo"},
		{"goreactor", "noop"},
	} {
		b.Run(tc.guest+"/"+tc.task, func(b *testing.B) {
			m := compile(b, h, tc.guest)
			call := host.Call{Task: tc.task, Input: in, Pooled: true}
			benchCalls(b, h, m, call)
		})
	}
}

// BenchmarkCallWarmExample is a pooled call of examples/wasm/hello, a
// guest written with the SDK: typed msgpack input and output decoded and
// encoded inside the guest. The host's allocations are those of any warm
// call; the guest's own live in its linear memory and are not counted.
func BenchmarkCallWarmExample(b *testing.B) {
	h := newHost(b, host.Config{})
	m := example(b, h, "hello")
	call := host.Call{Task: "hello", Input: pack(b, map[string]any{"name": "world"}), Pooled: true}
	benchCalls(b, h, m, call)
}

// BenchmarkCallFresh is a call on a fresh instance: instantiate,
// _initialize, call, close.
func BenchmarkCallFresh(b *testing.B) {
	h := newHost(b, host.Config{})
	in := make([]byte, 64)
	for _, tc := range []struct{ guest, task string }{
		{"creactor", "hello"},
		{"cdispatch", "echo"},
		{"goreactor", "echo"},
	} {
		b.Run(tc.guest+"/"+tc.task, func(b *testing.B) {
			m := compile(b, h, tc.guest)
			call := host.Call{Task: tc.task, Input: in}
			for b.Loop() {
				if _, err := h.Run(context.Background(), m, call); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInstancePhases splits a fresh Go reactor instance into
// instantiation (wazero building the instance: memory, data, tables),
// _initialize (the Go runtime starting in the guest) and close, with the
// host's pooling allocator and with wazero's default one. Compare with
// BenchmarkInstantiateGo, which adds a call and the call's overheads.
func BenchmarkInstancePhases(b *testing.B) {
	h := newHost(b, host.Config{})
	m := compile(b, h, "goreactor")
	for _, custom := range []bool{true, false} {
		name := map[bool]string{true: "pool", false: "default"}[custom]
		b.Run(name, func(b *testing.B) {
			var inst, init, closing time.Duration
			for b.Loop() {
				i, n, c, err := host.Phases(context.Background(), h, m, custom)
				if err != nil {
					b.Fatal(err)
				}
				inst, init, closing = inst+i, init+n, closing+c
			}
			n := float64(b.N)
			b.ReportMetric(float64(inst.Microseconds())/n, "instantiate-µs")
			b.ReportMetric(float64(init.Microseconds())/n, "initialize-µs")
			b.ReportMetric(float64(closing.Microseconds())/n, "close-µs")
		})
	}
}

// benchCalls runs call on m once to warm up, then once per iteration.
func benchCalls(b *testing.B, h *host.Host, m *host.Module, call host.Call) {
	b.Helper()
	if _, err := h.Run(context.Background(), m, call); err != nil { // warm up
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Run(context.Background(), m, call); err != nil {
			b.Fatal(err)
		}
	}
}
