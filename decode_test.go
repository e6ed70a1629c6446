package spindle_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// The bodies of a compromised child (issue 8, points 1 and 2).
const nest16MiB = 16 << 20

var (
	// logNested is `81 a1 78` + 16 MiB of 0x91 + `c0`: a one-field map whose
	// value nests 16 M arrays deep.
	logNested = rawArgs{Enc: uint16(wire.EncMsgpack), Prefix: []byte{0x81, 0xa1, 0x78}, Nest: nest16MiB, Suffix: []byte{0xc0}}
	// arrayBomb declares 2^32-1 elements and holds none.
	arrayBomb = []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
)

// attrsBomb is a 38-byte FORWARD_LOG body whose attrs declare 2^32-1
// strings.
func attrsBomb(t *testing.T) []byte {
	b, err := msgpack.Marshal(&wire.LogRecord{Context: "x", Msg: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b[0]++ // one more field: attrs
	return append(b, 0xa5, 'a', 't', 't', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff)
}

// TestHostileBodiesToMaster: a child writes bodies that used to kill the
// master (stack overflow, out of memory) straight onto its stream. The
// master drops each with a clear log record, and the child, its sibling and
// the master go on answering.
func TestHostileBodiesToMaster(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	bad := startLocal(t, ctx, m, "bad")
	sibling := startLocal(t, ctx, m, "sibling")
	own := func(a rawArgs, handle uint32) rawArgs {
		a.Dst, a.Src, a.Auth, a.Handle = 0, bad.ID(), bad.ID(), handle
		if a.Enc == 0 {
			a.Enc = uint16(wire.EncMsgpack)
		}
		return a
	}
	for _, tc := range []struct {
		name string
		args rawArgs
		log  string // the master's record for the dropped message
		why  string // in its "err" attribute ("" for the size bound)
	}{
		// 16 MiB is past the FORWARD_LOG body bound, dropped undecoded;
		// 200 KiB of nesting is inside it and fails the check.
		{"nested FORWARD_LOG", own(logNested, wire.HandleForwardLog), "FORWARD_LOG body over the bound, dropped", ""},
		{"nested FORWARD_LOG within the size bound", own(rawArgs{Prefix: logNested.Prefix, Nest: 200 << 10, Suffix: logNested.Suffix}, wire.HandleForwardLog), "bad FORWARD_LOG body", "nested deeper than 128"},
		{"FORWARD_LOG attrs bomb", own(rawArgs{Prefix: attrsBomb(t)}, wire.HandleForwardLog), "bad FORWARD_LOG body", "declares 4294967295"},
		{"nested ADD_ROUTE", own(rawArgs{Prefix: []byte{0x81, 0xa2, 'i', 'd'}, Nest: nest16MiB, Suffix: []byte{0xc0}}, wire.HandleAddRoute), "bad ADD_ROUTE body", "nested deeper than 128"},
		{"ADD_ROUTE map bomb", own(rawArgs{Prefix: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}}, wire.HandleAddRoute), "bad ADD_ROUTE body", "declares 8589934590"}, // 2^32-1 entries of two values
	} {
		t.Run(tc.name, func(t *testing.T) {
			since := logs.mark() // only this attack's record counts
			if err := bad.Call(ctx, "raw", tc.args, nil); err != nil {
				t.Fatalf("raw: %v", err)
			}
			rec, ok := logs.waitForSince(since, 5*time.Second, func(r logRecord) bool {
				if r.Msg != tc.log {
					return false
				}
				if tc.why == "" {
					return r.Attrs["bytes"] != ""
				}
				return strings.Contains(r.Attrs["err"], wire.ErrMalformed.Error()) && strings.Contains(r.Attrs["err"], tc.why)
			})
			if !ok {
				t.Fatalf("no %q record naming %q after the attack:%s", tc.log, tc.why, logs.dump())
			}
			t.Logf("master: %v; master's peak RSS %.1f MiB", rec, peakRSS(t))
			for _, c := range []*spindle.Context{bad, sibling} {
				if err := c.Ping(ctx); err != nil {
					t.Errorf("%s after the attack: %v", c, err)
				}
			}
		})
	}
}

// TestHostileReplies: a child answers the master's calls with a nested
// error body and with a length bomb; each call fails with ErrMalformed and
// nothing else does.
func TestHostileReplies(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	bad := startLocal(t, ctx, m, "bad")
	sibling := startLocal(t, ctx, m, "sibling")

	t.Run("nested error reply to a pending call", func(t *testing.T) {
		// Reply handles are random: the test knows the one it waits on, as
		// the called context does.
		req, err := msgpack.Marshal(&wire.CallRequest{Fn: "hang"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Router().CallAsync(ctx, bad.ID(), wire.HandleCall, wire.EncMsgpack, req)
		if err != nil {
			t.Fatal(err)
		}
		a := logNested
		a.Enc, a.Dst, a.Src, a.Auth, a.Handle = uint16(wire.EncError), 0, bad.ID(), bad.ID(), p.Handle()
		if err := bad.Call(ctx, "raw", a, nil); err != nil {
			t.Fatalf("raw: %v", err)
		}
		_, err = p.Wait(ctx)
		if !errors.Is(err, wire.ErrMalformed) || !errors.Is(err, routing.ErrBadRequest) {
			t.Fatalf("pending call answered with a nested error body: Wait = %v, want ErrMalformed and ErrBadRequest", err)
		}
		t.Logf("Wait = %v; master's peak RSS %.1f MiB", err, peakRSS(t))
	})

	for _, tc := range []struct {
		name string
		into any
	}{
		{"any", new(any)},
		{"map", new(map[string]any)},
		{"typed slice", new([]string)},
		{"struct slice", new([]wire.Mount)},
	} {
		t.Run("array bomb into "+tc.name, func(t *testing.T) {
			err := bad.Call(ctx, "raw_reply", rawArgs{Prefix: arrayBomb}, tc.into)
			if !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), "decode result") {
				t.Fatalf("Call into %T with reply %x = %v, want ErrMalformed", tc.into, arrayBomb, err)
			}
			t.Logf("Call = %v; master's peak RSS %.1f MiB", err, peakRSS(t))
		})
	}
	for _, c := range []*spindle.Context{bad, sibling} {
		if err := c.Ping(ctx); err != nil {
			t.Errorf("%s after the attacks: %v", c, err)
		}
	}
}

// TestHostileGrandchild: a grandchild sends its parent a nested ADD_ROUTE;
// the parent (which used to die of it, taking its other children) drops it
// and it, its other child and the grandchild itself still answer.
func TestHostileGrandchild(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	mid := startLocal(t, ctx, m, "mid")
	bad := startVia(t, ctx, mid, "bad")
	other := startVia(t, ctx, mid, "other")
	a := rawArgs{Enc: uint16(wire.EncMsgpack), Dst: mid.ID(), Src: bad.ID(), Auth: bad.ID(), Handle: wire.HandleAddRoute,
		Prefix: bytes.Clone(logNested.Prefix), Nest: nest16MiB, Suffix: []byte{0xc0}}
	if err := bad.Call(ctx, "raw", a, nil); err != nil {
		t.Fatalf("raw: %v", err)
	}
	if _, ok := logs.waitFor(5*time.Second, func(r logRecord) bool {
		return r.Msg == "bad ADD_ROUTE body" && r.Attrs["context"] == "mid" && strings.Contains(r.Attrs["err"], wire.ErrMalformed.Error())
	}); !ok {
		t.Errorf("no \"bad ADD_ROUTE body\" record from mid")
	}
	for _, c := range []*spindle.Context{mid, bad, other} {
		if err := c.Ping(ctx); err != nil {
			t.Errorf("%s after the attack: %v", c, err)
		}
	}
}

// TestHostileRSS measures the master's peak RSS under one attack, named by
// $SPINDLE_MEASURE_RSS (nested_log, attrs_bomb, reply_bomb_any,
// reply_bomb_slice). Run it alone, without -race:
//
//	SPINDLE_MEASURE_RSS=nested_log go test -count=1 -run TestHostileRSS -v .
func TestHostileRSS(t *testing.T) {
	attack := os.Getenv("SPINDLE_MEASURE_RSS")
	if attack == "" {
		t.Skip("set SPINDLE_MEASURE_RSS to measure")
	}
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	bad := startLocal(t, ctx, m, "bad")
	sibling := startLocal(t, ctx, m, "sibling")
	t.Logf("before the attack: master's peak RSS %.1f MiB", peakRSS(t))
	toMaster := func(a rawArgs, handle uint32) {
		a.Enc, a.Dst, a.Src, a.Auth, a.Handle = uint16(wire.EncMsgpack), 0, bad.ID(), bad.ID(), handle
		for range 10 {
			if err := bad.Call(ctx, "raw", a, nil); err != nil {
				t.Fatalf("raw: %v", err)
			}
		}
		time.Sleep(time.Second)
	}
	switch attack {
	case "nested_log":
		toMaster(logNested, wire.HandleForwardLog)
	case "attrs_bomb":
		toMaster(rawArgs{Prefix: attrsBomb(t)}, wire.HandleForwardLog)
	case "reply_bomb_any", "reply_bomb_slice":
		var v any = new(any)
		if attack == "reply_bomb_slice" {
			v = new([]wire.Mount)
		}
		for range 10 {
			t.Logf("Call = %v", bad.Call(ctx, "raw_reply", rawArgs{Prefix: arrayBomb}, v))
		}
	default:
		t.Fatalf("unknown attack %q", attack)
	}
	for _, c := range []*spindle.Context{bad, sibling} {
		t.Logf("%s ping after the attack: %v", c, c.Ping(ctx))
	}
	t.Logf("after %s: master's peak RSS %.1f MiB", attack, peakRSS(t))
}
