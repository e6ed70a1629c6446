package host_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/vmihailenco/msgpack/v5"
)

// BenchmarkHello calls the hello example (a typed task of the guest SDK)
// as `spindle bench` does, in process: warm (pooled) and fresh. The
// difference from BenchmarkCallWarm's goreactor is the SDK's path: its
// msgpack decode of the input and encode of the output, its dispatch.
func BenchmarkHello(b *testing.B) {
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "examples/wasm/hello", true))
	if err != nil {
		b.Fatal(err)
	}
	input, _ := msgpack.Marshal(map[string]string{"name": "bench"})
	for _, tc := range []struct {
		name   string
		pooled bool
		cfg    host.Config
	}{
		{"warm", true, host.Config{}},
		{"fresh", false, host.Config{}},
		// A fresh instance that runs its own _initialize, as before
		// snapshots (snapshot.go).
		{"fresh-nosnapshot", false, host.Config{NoSnapshots: true}},
	} {
		h := newHost(b, tc.cfg)
		m, err := h.Compile(context.Background(), "example/hello", wasm)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			call := host.Call{Task: "hello", Input: input, Pooled: tc.pooled}
			benchCalls(b, h, m, call)
			if s, ok := host.Snapshot(m); ok && !tc.pooled {
				// What the snapshot keeps, and what its initialization
				// read (the figures of RATIONALE's snapshot section).
				b.ReportMetric(float64(s.Size)/(1<<20), "snapshot-memory-MiB")
				b.ReportMetric(float64(s.Bytes)/(1<<10), "snapshot-kept-KiB")
				b.ReportMetric(float64(s.Runs), "snapshot-runs")
				b.ReportMetric(float64(s.ClockReads), "init-clock-reads")
				b.ReportMetric(float64(s.RandRead), "init-random-bytes")
			}
		})
	}
}

// BenchmarkInstancePhasesGuests splits a fresh instance into its phases
// (see BenchmarkInstancePhases) for a Go reactor without the SDK
// (goreactor) and with it (the hello example): what _initialize costs of
// the Go runtime itself and what of the SDK's packages' init.
func BenchmarkInstancePhasesGuests(b *testing.B) {
	h := newHost(b, host.Config{})
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "examples/wasm/hello", true))
	if err != nil {
		b.Fatal(err)
	}
	hello, err := h.Compile(context.Background(), "example/hello", wasm)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *host.Module
	}{{"goreactor", compile(b, h, "goreactor")}, {"hello", hello}} {
		b.Run(tc.name, func(b *testing.B) {
			var inst, init time.Duration
			for b.Loop() {
				i, n, _, err := host.Phases(context.Background(), h, tc.m, true)
				if err != nil {
					b.Fatal(err)
				}
				inst, init = inst+i, init+n
			}
			n := float64(b.N)
			b.ReportMetric(float64(inst.Microseconds())/n, "instantiate-µs")
			b.ReportMetric(float64(init.Microseconds())/n, "initialize-µs")
		})
	}
}
