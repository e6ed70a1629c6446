package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/modules"
	"github.com/vmihailenco/msgpack/v5"
)

// wasmResult holds the wasm figures of `spindle bench`.
type wasmResult struct {
	WasmCallWarmUs      float64 `json:"wasm_call_warm_us"`
	WasmCallFreshUs     float64 `json:"wasm_call_fresh_us"`
	WasmInstantiateGoMs float64 `json:"wasm_instantiate_go_ms"`
	CompileColdMs       float64 `json:"compile_cold_ms"`
	CompileCachedMs     float64 `json:"compile_cached_ms"`
}

// benchWasm measures the task host with the hello example (a Go reactor):
// compiles and fresh instances in this process, and task round trips to a
// local child.
func benchWasm(ctx context.Context, m *spindle.Master, helloPath string, scale int) (*wasmResult, error) {
	wasm, err := os.ReadFile(helloPath)
	if err != nil {
		return nil, fmt.Errorf("%w (run `make wasm` first, or pass -wasm DIR)", err)
	}
	res := &wasmResult{}
	hash := modules.Hash(wasm)
	input, _ := msgpack.Marshal(map[string]string{"name": "bench"})

	// Compile: cold into an empty cache dir, then cached by a new Host on
	// the same dir (what a second process on the machine sees).
	dir, err := os.MkdirTemp("", "spindle-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var colds, cached []time.Duration
	rounds := max(3/scale, 1)
	for i := 0; i < rounds; i++ {
		cacheDir := filepath.Join(dir, fmt.Sprint(i))
		d, h0, err := compileOnce(ctx, cacheDir, hash, wasm)
		if err != nil {
			return nil, err
		}
		h0.Close(ctx)
		colds = append(colds, d)
		d, h, err := compileOnce(ctx, cacheDir, hash, wasm)
		if err != nil {
			return nil, err
		}
		cached = append(cached, d)
		if i == 0 {
			// Fresh instances of a Go guest, in process: instantiate,
			// _initialize, one call, close.
			mod, _ := h.Lookup(hash)
			var inst []time.Duration
			for j := 0; j < 40/scale+2; j++ {
				t0 := time.Now()
				if _, err := h.Run(ctx, mod, host.Call{Task: "hello", Input: input}); err != nil {
					h.Close(ctx)
					return nil, err
				}
				inst = append(inst, time.Since(t0))
			}
			res.WasmInstantiateGoMs = round2(float64(median(inst[2:])) / float64(time.Millisecond))
		}
		h.Close(ctx)
	}
	res.CompileColdMs = ms(median(colds))
	res.CompileCachedMs = ms(median(cached))

	// Round trips to a child: warm (pooled) and fresh instances.
	c, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "wasm"})
	if err != nil {
		return nil, err
	}
	defer c.Shutdown(ctx)
	if _, err := m.AddModule(wasm); err != nil {
		return nil, err
	}
	for _, v := range []struct {
		pooled bool
		n      int
		out    *float64
	}{{true, 5000 / scale, &res.WasmCallWarmUs}, {false, 200 / scale, &res.WasmCallFreshUs}} {
		var ds []time.Duration
		for i := 0; i < v.n+v.n/10+1; i++ {
			t0 := time.Now()
			if _, err := c.Run(ctx, spindle.Task{Module: hash, Task: "hello", Input: input, Pooled: v.pooled}); err != nil {
				return nil, err
			}
			if i > v.n/10 {
				ds = append(ds, time.Since(t0))
			}
		}
		*v.out = us(median(ds))
	}
	return res, nil
}

func compileOnce(ctx context.Context, cacheDir, hash string, wasm []byte) (time.Duration, *host.Host, error) {
	h, err := host.New(ctx, host.Config{CacheDir: cacheDir})
	if err != nil {
		return 0, nil, err
	}
	t0 := time.Now()
	if _, err := h.Compile(ctx, hash, wasm); err != nil {
		h.Close(ctx)
		return 0, nil, err
	}
	d := time.Since(t0)
	return d, h, nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
