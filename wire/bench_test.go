package wire

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The hot-path benchmarks of the frame codec. Their allocs/op are checked
// against docs/bench-allocs.txt by `make bench-allocs` (tools/benchallocs);
// their times are for people, never compared.

// BenchmarkAppendHeader encodes one header into a reused buffer, as a
// stream's writer does for every frame.
func BenchmarkAppendHeader(b *testing.B) {
	m := sample()
	buf := make([]byte, 0, HeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendHeader(buf[:0])
	}
}

// BenchmarkAppendFrame encodes a header and body into a reused buffer.
func BenchmarkAppendFrame(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{{"64B", 64}, {"16KiB", 16 << 10}} {
		b.Run(tc.name, func(b *testing.B) {
			m := &Message{Enc: EncRaw, Handle: 1, Body: make([]byte, tc.size)}
			buf := make([]byte, 0, HeaderLen+tc.size)
			b.SetBytes(int64(tc.size))
			b.ReportAllocs()
			for b.Loop() {
				buf = m.AppendFrame(buf[:0])
			}
		})
	}
}

// BenchmarkReadMessage decodes one frame from a reader with a reused header
// buffer, as a stream's reader does: a small body (one allocation for the
// Message, one for the body) and a body just below PoolMin (still a plain
// allocation). BenchmarkReadMessagePooled (pool_test.go) is the large body
// from the pool.
func BenchmarkReadMessage(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{{"64B", 64}, {"60KiB", PoolMin - 4<<10}} {
		b.Run(tc.name, func(b *testing.B) {
			frame := (&Message{Enc: EncRaw, Handle: 1, Body: make([]byte, tc.size)}).AppendFrame(nil)
			hdr := make([]byte, HeaderLen)
			r := bytes.NewReader(frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(frame)
				if _, err := ReadMessage(r, hdr, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkControl encodes and decodes a control body the way the routers
// and the task path do: msgpack.Marshal out, Unmarshal (checked) in. A
// Route is the smallest (ADD_ROUTE), a RunTask the largest common one, a
// TaskResult its reply.
func BenchmarkControl(b *testing.B) {
	run := &RunTask{
		Module: "4f0c5a8e9b7d6c3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a",
		Task:   "hello", Input: mustMarshal(map[string]any{"name": "world"}),
		Limits: Limits{TimeoutNs: 1e9, MemoryPages: 256}, Pooled: true, ID: 7, DeadlineNs: 2e9,
	}
	for _, tc := range []struct {
		name string
		v    any
		into func() any
	}{
		{"route", &Route{ID: 42, Name: "ctx42"}, func() any { return new(Route) }},
		{"runtask", run, func() any { return new(RunTask) }},
		{"taskresult", &TaskResult{Output: mustMarshal("hello, world")}, func() any { return new(TaskResult) }},
	} {
		b.Run(tc.name+"/marshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := msgpack.Marshal(tc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/unmarshal", func(b *testing.B) {
			body := mustMarshal(tc.v)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Unmarshal(body, tc.into()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
