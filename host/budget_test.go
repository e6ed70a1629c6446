package host_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// countingWriter counts the bytes and the Write calls it gets. The host
// serializes the writes of a call, but they may come from its timer's
// goroutine: the lock is for the race detector's view of the test's reads.
type countingWriter struct {
	mu     sync.Mutex
	bytes  int
	writes int
	delay  time.Duration
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.delay > 0 {
		time.Sleep(w.delay)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += len(p)
	w.writes++
	return len(p), nil
}

func (w *countingWriter) counts() (bytes, writes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes, w.writes
}

// TestStdoutCoalesced: a guest's one-byte stdout writes reach the caller in
// a few large pieces, all of them; the bound on pieces holds.
func TestStdoutCoalesced(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	const n = 200_000
	tests := []struct {
		name   string
		limits host.Limits
		kind   host.Kind
	}{
		{"within limits", host.Limits{}, ""},
		{"bytes", host.Limits{OutputBytes: n / 2}, host.KindOutputLimit},
		{"messages", host.Limits{OutputMessages: 3}, host.KindOutputLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w countingWriter
			_, err := h.Run(t.Context(), bad, host.Call{Task: "stdout_flood", Input: pack(t, map[string]int{"n": n}),
				Stdout: &w, Limits: tt.limits})
			bytes, writes := w.counts()
			t.Logf("%d one-byte writes: %d bytes in %d Write calls; err %v", n, bytes, writes, err)
			if host.KindOf(err) != tt.kind {
				t.Fatalf("stdout_flood = %v, want kind %q", err, tt.kind)
			}
			if tt.kind == "" && bytes != n {
				t.Errorf("got %d bytes of stdout, want %d", bytes, n)
			}
			// At least n/OutputChunkBytes pieces by size; the timer adds
			// one per OutputFlushInterval at most.
			if maxWrites := n/host.OutputChunkBytes + 1 + 500; writes > maxWrites {
				t.Errorf("%d Write calls for %d one-byte writes, want at most %d", writes, n, maxWrites)
			}
			if tt.limits.OutputMessages > 0 && int64(writes) > tt.limits.OutputMessages {
				t.Errorf("%d Write calls with OutputMessages %d", writes, tt.limits.OutputMessages)
			}
			if tt.limits.OutputBytes > 0 && int64(bytes) > tt.limits.OutputBytes {
				t.Errorf("%d bytes with OutputBytes %d", bytes, tt.limits.OutputBytes)
			}
		})
	}
}

// TestOutputHonoursCtx: a guest writing to an Output that blocks is ended by
// the caller's ctx, and Output is not called after Run returns.
func TestOutputHonoursCtx(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	var mu sync.Mutex
	returned := false
	late := 0
	output := func(ctx context.Context, _ int, _ []byte) error {
		mu.Lock()
		if returned {
			late++
		}
		mu.Unlock()
		<-ctx.Done() // a consumer that never keeps up
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Run(ctx, bad, host.Call{Task: "stdout_flood", Output: output, Limits: host.Limits{Timeout: time.Minute}})
	mu.Lock()
	returned = true
	mu.Unlock()
	t.Logf("Run returned after %v: %v", time.Since(start), err)
	if host.KindOf(err) != host.KindCancelled {
		t.Fatalf("stdout_flood into a stuck Output = %v, want kind cancelled", err)
	}
	time.Sleep(2 * host.OutputFlushInterval)
	mu.Lock()
	defer mu.Unlock()
	if late > 0 {
		t.Errorf("Output called %d times after Run returned", late)
	}
}

// TestSendBudget: sends past SendBytes or SendMessages get ERR_LIMIT, are
// not delivered, and end the call with kind output_limit.
func TestSendBudget(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	ch := host.Channel{Context: 1, Handle: 4000}
	tests := []struct {
		name       string
		chunk      int
		limits     host.Limits
		wantSends  int
		wantErrMsg string
	}{
		{"default bytes", 1 << 20, host.Limits{}, host.DefaultSendBytes / (1 << 20), "16777216 bytes"},
		{"bytes", 1000, host.Limits{SendBytes: 10_500}, 10, "10500 bytes"},
		{"messages", 1, host.Limits{SendMessages: 100}, 100, "100 messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sends, bytes int
			send := func(_ context.Context, got host.Channel, raw bool, data []byte) error {
				if got != ch || !raw {
					t.Errorf("send to %v raw=%v, want %v raw", got, raw, ch)
				}
				sends++
				bytes += len(data)
				return nil
			}
			_, err := h.Run(t.Context(), bad, host.Call{Task: "send_flood",
				Input:  pack(t, map[string]any{"ch": map[string]uint32{"ctx": ch.Context, "handle": ch.Handle}, "chunk": tt.chunk}),
				Grants: host.Grants{Channels: []host.Channel{ch}}, Send: send, Limits: tt.limits})
			if host.KindOf(err) != host.KindOutputLimit || !strings.Contains(err.Error(), tt.wantErrMsg) {
				t.Fatalf("send_flood = %v, want kind output_limit naming %q", err, tt.wantErrMsg)
			}
			if sends != tt.wantSends {
				t.Errorf("%d sends delivered (%d bytes), want %d", sends, bytes, tt.wantSends)
			}
		})
	}
}

// TestEmptyLogsSpendBudget: empty log messages cost LogRecordCost each, and
// records are capped: the log import then returns ERR_LIMIT.
func TestEmptyLogsSpendBudget(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	tests := []struct {
		name   string
		limits host.Limits
		want   int
	}{
		{"default", host.Limits{}, min(host.DefaultLogBytes/host.LogRecordCost, host.DefaultLogRecords)},
		{"bytes", host.Limits{LogBytes: 100 * host.LogRecordCost}, 100},
		{"records", host.Limits{LogRecords: 10}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var records int
			logFn := func(slog.Level, string) { records++ }
			res, err := h.Run(t.Context(), bad, host.Call{Task: "empty_logs", Log: logFn, Limits: tt.limits})
			if err != nil {
				t.Fatal(err)
			}
			out := unpack(t, res.Output)
			if toInt(out["logged"]) != int64(tt.want) || toInt(out["rc"]) != -2 {
				t.Errorf("empty_logs = %v, want %d logged, then rc -2 (ERR_LIMIT)", out, tt.want)
			}
			if records != tt.want+1 { // and the notice that the budget is spent
				t.Errorf("%d records reached the logger, want %d", records, tt.want+1)
			}
		})
	}
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return -1
}

// TestSendHugeHandlesDenied: a channel of huge IDs that the caller did not
// grant is refused, and nothing is sent.
func TestSendHugeHandlesDenied(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	sent := false
	_, err := h.Run(t.Context(), bad, host.Call{Task: "send_flood",
		Input:  pack(t, map[string]any{"ch": map[string]uint32{"ctx": 0xFFFFFFFF, "handle": 0xFFFFFFFF}, "chunk": 1}),
		Grants: host.Grants{Channels: []host.Channel{{Context: 1, Handle: 1000}}},
		Send:   func(context.Context, host.Channel, bool, []byte) error { sent = true; return nil }})
	if host.KindOf(err) != host.KindGuest || !strings.Contains(err.Error(), "not granted") || sent {
		t.Errorf("send_flood to an ungranted channel = %v (sent %v), want kind guest, not granted", err, sent)
	}
	if errors.Is(err, host.ErrClosed) {
		t.Fatal(err)
	}
}
