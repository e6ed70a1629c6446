package spindle_test

import (
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

func TestLogForwarding(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{LogLevel: slog.LevelInfo})
	c := startLocal(t, ctx, m, "logger")
	g := startVia(t, ctx, c, "grandlogger")
	for _, x := range []*spindle.Context{c, g} {
		t.Run(x.Name(), func(t *testing.T) {
			for _, tc := range []struct {
				level slog.Level
				sent  bool
			}{{slog.LevelDebug, false}, {slog.LevelInfo, true}, {slog.LevelWarn, true}, {slog.LevelError, true}} {
				msg := fmt.Sprintf("record %v from %s", tc.level, x.Name())
				if err := x.Call(ctx, "log", logArgs{Level: int(tc.level), Msg: msg}, nil); err != nil {
					t.Fatalf("log: %v", err)
				}
				// Records from one context arrive in order: once the Error
				// record (always sent) is in, an earlier one would be too.
				marker := msg + " (marker)"
				if err := x.Call(ctx, "log", logArgs{Level: int(slog.LevelError), Msg: marker}, nil); err != nil {
					t.Fatalf("log: %v", err)
				}
				if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool { return r.Msg == marker }); !ok {
					t.Fatalf("record %q never arrived:%s", marker, logs.dump())
				}
				got := logs.find(func(r logRecord) bool { return r.Msg == msg })
				if !tc.sent {
					if len(got) != 0 {
						t.Errorf("%v record below LogLevel was forwarded: %v", tc.level, got)
					}
					continue
				}
				if len(got) != 1 {
					t.Fatalf("%v record: got %d, want 1:%s", tc.level, len(got), logs.dump())
				}
				r := got[0]
				want := map[string]string{
					"context": x.Name(), "context_id": strconv.FormatUint(uint64(x.ID()), 10),
					"pid": strconv.Itoa(x.PID()), "key": "value",
				}
				for k, v := range want {
					if r.Attrs[k] != v {
						t.Errorf("%v record: attr %s = %q, want %q (%v)", tc.level, k, r.Attrs[k], v, r)
					}
				}
				if r.Level != tc.level {
					t.Errorf("record level = %v, want %v", r.Level, tc.level)
				}
			}
			line := "a line on the stderr of " + x.Name()
			if err := x.Call(ctx, "stderr", line, nil); err != nil {
				t.Fatalf("stderr: %v", err)
			}
			r, ok := logs.waitFor(5*time.Second, func(r logRecord) bool { return r.Msg == line })
			if !ok {
				t.Fatalf("stderr line never reached the master:%s", logs.dump())
			}
			if r.Attrs["context"] != x.Name() || r.Attrs["stream"] != "stderr" || r.Level != slog.LevelInfo {
				t.Errorf("stderr line record = %v, want INFO with context=%s stream=stderr", r, x.Name())
			}
		})
	}
}

// TestLogLevelDebug: with a lower LogLevel, debug records are forwarded.
func TestLogLevelDebug(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{LogLevel: slog.LevelDebug})
	c := startLocal(t, ctx, m, "verbose")
	if err := c.Call(ctx, "log", logArgs{Level: int(slog.LevelDebug), Msg: "debug record"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool {
		return r.Msg == "debug record" && r.Attrs["context"] == "verbose"
	}); !ok {
		t.Errorf("debug record not forwarded:%s", logs.dump())
	}
	// The child's own early records, made before its route was up, arrive.
	if _, ok := logs.waitFor(time.Second, func(r logRecord) bool {
		return r.Msg == "child context up" && r.Attrs["context"] == "verbose"
	}); !ok {
		t.Errorf("corked startup record missing:%s", logs.dump())
	}
}

// TestForwardLogFloodBounded has a child log far more records than the master's
// bound per child stream lets through: the master logs at most the burst
// plus the rate for the time it took, says how many it dropped, and the
// records it logged plus those it counted as dropped are all that were sent.
// A sibling's records still get through.
func TestForwardLogFloodBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	// A bound small enough that the flooder outpaces it even slowed down
	// by -race on a loaded machine (with the default, 100,000 records
	// took more than 15 s there and nothing was dropped).
	const rate, burst = 500, 2000
	m.SetLogBound(rate, burst)
	c := startLocal(t, ctx, m, "flooder")
	sib := startLocal(t, ctx, m, "sibling")
	const n = 20_000
	start := time.Now()
	if err := c.Call(ctx, "log_flood", n, nil); err != nil {
		t.Fatalf("log_flood: %v", err)
	}
	// Drop counts are reported with the next record after a second.
	time.Sleep(1100 * time.Millisecond)
	if err := c.Call(ctx, "log", logArgs{Level: int(slog.LevelInfo), Msg: "after the flood"}, nil); err != nil {
		t.Fatalf("log: %v", err)
	}
	if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool { return r.Msg == "after the flood" }); !ok {
		t.Fatalf("the record after the flood never arrived")
	}
	elapsed := time.Since(start)
	logged := len(logs.find(func(r logRecord) bool { return r.Msg == "flood" && r.Attrs["context"] == "flooder" }))
	dropped := 0
	for _, r := range logs.find(func(r logRecord) bool {
		return r.Msg == "log records dropped: the subtree behind this stream logs faster than the bound"
	}) {
		k, err := strconv.Atoi(r.Attrs["dropped"])
		if err != nil {
			t.Fatalf("drop record without a count: %v", r)
		}
		dropped += k
	}
	t.Logf("%d records sent in %v: %d logged, %d dropped and counted", n, elapsed, logged, dropped)
	if logged+dropped != n {
		t.Errorf("logged %d + dropped %d = %d, want %d sent", logged, dropped, logged+dropped, n)
	}
	if most := burst + int(rate*elapsed.Seconds()) + 1; logged > most {
		t.Errorf("logged %d flood records in %v, want at most %d (burst + rate)", logged, elapsed, most)
	}
	if dropped == 0 {
		t.Errorf("nothing dropped: the bound did not apply")
	}
	if err := sib.Call(ctx, "log", logArgs{Level: int(slog.LevelInfo), Msg: "sibling speaks"}, nil); err != nil {
		t.Fatalf("sibling log: %v", err)
	}
	if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool { return r.Msg == "sibling speaks" }); !ok {
		t.Errorf("the sibling's record was dropped with the flooder's")
	}
}

// TestForwardLogBodyBound has a child log one record with attributes far
// past the record bound: the record arrives, its attributes cut with a
// marker, and its encoded body within the bound the master enforces.
func TestForwardLogBodyBound(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "wordy")
	if err := c.Call(ctx, "log_wide", 200, nil); err != nil { // 200 attrs of 16 KiB
		t.Fatalf("log_wide: %v", err)
	}
	r, ok := logs.waitFor(5*time.Second, func(r logRecord) bool { return r.Msg == "wide" })
	if !ok {
		t.Fatalf("the wide record never arrived:%s", logs.dump())
	}
	if r.Attrs["attrs_dropped"] == "" {
		t.Errorf("wide record kept %d attrs and no attrs_dropped marker", len(r.Attrs))
	}
	size := 0
	for k, v := range r.Attrs {
		size += len(k) + len(v)
	}
	if size > 256<<10 {
		t.Errorf("wide record carried %d bytes of attrs, want at most the 256 KiB body bound", size)
	}
	if r.Attrs["a0"] == "" {
		t.Errorf("the first attributes were dropped too: %v", len(r.Attrs))
	}
}
