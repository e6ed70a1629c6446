package spindle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// resetPeakRSS resets this process's peak RSS (VmHWM) to its current RSS,
// so peakRSS then shows the peak of what follows. The master of these tests
// is this process.
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v): the figure below is the process's peak", err)
	}
}

// peakRSS returns VmHWM in MiB.
func peakRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// stillWorks checks that the master and a sibling survived an attack: a
// call to the sibling succeeds, the sibling can start a child of its own,
// and the master's next child gets a fresh working ID.
func stillWorks(t *testing.T, ctx context.Context, m *spindle.Master, sibling *spindle.Context, wantNext uint32) {
	t.Helper()
	if err := sibling.Ping(ctx); err != nil {
		t.Fatalf("sibling after the attack: %v", err)
	}
	g := startVia(t, ctx, sibling, "sibling-child")
	if err := g.Ping(ctx); err != nil {
		t.Fatalf("sibling's new child after the attack: %v", err)
	}
	next := startLocal(t, ctx, m, "next")
	if wantNext != 0 && next.ID() != wantNext {
		t.Errorf("master's next child got ID %d, want %d", next.ID(), wantNext)
	}
	if err := next.Ping(ctx); err != nil {
		t.Fatalf("master's next child after the attack: %v", err)
	}
}

// countRecords counts the master's records with message msg.
func countRecords(logs *logCapture, msg string) int {
	return len(logs.find(func(r logRecord) bool { return r.Msg == msg }))
}

// TestHostileAddRoute: a compromised child writes ADD_ROUTE frames straight
// onto its parent stream: the master's next ID, the next ID of a sibling's
// block, and a flood of 200,000 IDs nobody allocated. All are refused (with
// a rate-limited log), the route table does not grow, and the master, the
// sibling and the sibling's and master's next children all work. The
// master's peak RSS during the flood is logged.
func TestHostileAddRoute(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	h := startLocal(t, ctx, m, "hostile")
	s := startLocal(t, ctx, m, "sibling")
	sg := startVia(t, ctx, s, "sg") // s now holds the block [sg, sg+IDBlockSize)
	masterNext := sg.ID() + routing.IDBlockSize
	siblingNext := sg.ID() + 1
	const flood = 200_000
	resetPeakRSS(t)
	before := peakRSS(t)
	start := time.Now()
	var n int
	if err := h.Call(ctx, "add_routes", addRoutesArgs{Ranges: []idRange{
		{masterNext, masterNext + 1},
		{siblingNext, siblingNext + 1},
		{1 << 24, 1<<24 + flood},
	}}, &n); err != nil {
		t.Fatalf("add_routes: %v", err)
	}
	if err := h.Ping(ctx); err != nil { // the frames were written before the reply
		t.Fatal(err)
	}
	t.Logf("%d ADD_ROUTEs written and refused in %v; master's peak RSS %.1f MiB (%.1f MiB before)", n, time.Since(start), peakRSS(t), before)
	if got, want := m.Router().Routes(), []uint32{h.ID(), s.ID(), sg.ID()}; !slices.Equal(got, want) {
		t.Fatalf("master's routes after the flood = %v, want %v", got[:min(len(got), 10)], want)
	}
	recs := logs.find(func(r logRecord) bool { return r.Msg == "ADD_ROUTE for an ID never allocated below this stream" })
	if len(recs) == 0 || recs[0].Attrs["id"] != fmt.Sprint(masterNext) {
		t.Fatalf("first refusal records = %v, want one for the master's next ID %d", recs[:min(len(recs), 2)], masterNext)
	}
	if len(recs) > 16+flood/1024+1 {
		t.Errorf("%d refusal records for %d refusals, want them rate-limited", len(recs), flood+2)
	}
	s2 := startVia(t, ctx, s, "sg2")
	if s2.ID() != siblingNext {
		t.Errorf("sibling's next child = %d, want %d", s2.ID(), siblingNext)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Errorf("sibling's next child, whose ID was squatted: %v", err)
	}
	stillWorks(t, ctx, m, s, masterNext)
}

// TestHostileRouteBound: a compromised child takes ID blocks legitimately
// and then announces more IDs from them than a stream may route: past
// routing.DefaultMaxRoutesPerStream they are refused, and everyone else
// works.
func TestHostileRouteBound(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	h := startLocal(t, ctx, m, "hostile")
	s := startLocal(t, ctx, m, "sibling")
	var res allocateResult
	blocks := routing.DefaultMaxRoutesPerStream/routing.IDBlockSize + 4
	if err := h.Call(ctx, "allocate", allocateArgs{N: blocks}, &res); err != nil || len(res.Blocks) != blocks {
		t.Fatalf("allocate: %v, %+v", err, res.Err)
	}
	resetPeakRSS(t)
	before := peakRSS(t)
	var n int
	if err := h.Call(ctx, "add_routes", addRoutesArgs{Ranges: res.Blocks}, &n); err != nil {
		t.Fatalf("add_routes: %v", err)
	}
	if err := h.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ADD_ROUTEs for granted IDs; master's peak RSS %.1f MiB (%.1f MiB before)", n, peakRSS(t), before)
	via := 0
	for _, id := range m.Router().Routes() {
		if hop, ok := m.Router().NextHop(id); ok && hop == h.ID() {
			via++
		}
	}
	if via != routing.DefaultMaxRoutesPerStream {
		t.Errorf("master routes %d IDs via the hostile child, want the bound %d", via, routing.DefaultMaxRoutesPerStream)
	}
	if countRecords(logs, fmt.Sprintf("ADD_ROUTE past the route limit (max %d per stream)", routing.DefaultMaxRoutesPerStream)) == 0 {
		t.Errorf("no route-limit record in the master's log")
	}
	stillWorks(t, ctx, m, s, 0)
}

// TestHostileAllocateID: a compromised child asks for ID blocks until it is
// refused: it gets routing.DefaultMaxIDBlocksPerChild and then ErrRefused
// saying why, and a sibling and the master can still start children.
func TestHostileAllocateID(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	h := startLocal(t, ctx, m, "hostile")
	s := startLocal(t, ctx, m, "sibling")
	resetPeakRSS(t)
	before := peakRSS(t)
	start := time.Now()
	var res allocateResult
	if err := h.Call(ctx, "allocate", allocateArgs{N: routing.DefaultMaxIDBlocksPerChild + 100}, &res); err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Logf("%d blocks granted, then %q, in %v; master's peak RSS %.1f MiB (%.1f MiB before)", len(res.Blocks), res.Err, time.Since(start), peakRSS(t), before)
	if len(res.Blocks) != routing.DefaultMaxIDBlocksPerChild {
		t.Errorf("hostile child got %d blocks, want the bound %d", len(res.Blocks), routing.DefaultMaxIDBlocksPerChild)
	}
	if !res.Refused || !strings.Contains(res.Err, "ID block limit reached") {
		t.Errorf("error past the bound = %q (ErrRefused: %v), want ErrRefused saying the limit was reached", res.Err, res.Refused)
	}
	if countRecords(logs, "ID block limit reached") == 0 {
		t.Errorf("no ID-block-limit record in the master's log")
	}
	stillWorks(t, ctx, m, s, 0)
}

// TestHostileGrandchildAllocateID: a compromised great-grandchild X of the
// master (master -> I1 -> I2 -> X) asks for ID blocks until refused. Each
// router bounds each child's subtree to half of its own share (4096 blocks
// for I1's subtree at the master, 2048 for I2's at I1, 1024 for X's at I2),
// so X gets 1024 and then I2's ErrRefused naming the bound. Its cousin Y
// then takes the rest of I2's share and is refused by I1; I1's refusals end
// I2's records of the requests, so Y's later requests get the same answer
// from I1 (not "too many in flight" from I2). I1's other child Z, the
// master and Z's new child still allocate and work.
func TestHostileGrandchildAllocateID(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	i1 := startLocal(t, ctx, m, "i1")
	i2 := startVia(t, ctx, i1, "i2")
	x := startVia(t, ctx, i2, "hostile")
	y := startVia(t, ctx, i2, "cousin")
	z := startVia(t, ctx, i1, "uncle")
	allocate := func(c *spindle.Context, n int) allocateResult {
		t.Helper()
		var res allocateResult
		if err := c.Call(ctx, "allocate", allocateArgs{N: n}, &res); err != nil {
			t.Fatalf("%v: allocate: %v", c, err)
		}
		return res
	}
	refusedBy := func(res allocateResult, who string, child, router uint32) {
		t.Helper()
		want := fmt.Sprintf("context %d: refused by policy: ID block limit reached: the subtree of context %d", router, child)
		if !res.Refused || !strings.Contains(res.Err, want) {
			t.Fatalf("%s past the bound: %q (ErrRefused: %v), want ErrRefused containing %q", who, res.Err, res.Refused, want)
		}
	}
	resetPeakRSS(t)
	before := peakRSS(t)
	start := time.Now()
	share := routing.IDBlockShare(2) // per child of I2, X's
	res := allocate(x, share+100)
	t.Logf("X: %d blocks granted, then %q, in %v", len(res.Blocks), res.Err, time.Since(start))
	if len(res.Blocks) != share {
		t.Fatalf("X got %d blocks, want its share %d", len(res.Blocks), share)
	}
	refusedBy(res, "X", x.ID(), i2.ID())
	// I2's subtree at I1: I2's own block, X's, and what Y can take.
	res = allocate(y, routing.IDBlockShare(1))
	if want := routing.IDBlockShare(1) - 1 - share; len(res.Blocks) != want {
		t.Fatalf("Y got %d blocks, want the rest of I2's share, %d", len(res.Blocks), want)
	}
	refusedBy(res, "Y", i2.ID(), i1.ID())
	for i := range 3 * routing.MaxAllocsInFlight {
		refusedBy(allocate(y, 1), fmt.Sprintf("Y's request %d", i), i2.ID(), i1.ID())
	}
	if res := allocate(z, 1); len(res.Blocks) != 1 {
		t.Fatalf("Z, I1's other child: allocate = %q, want a block", res.Err)
	}
	t.Logf("master's peak RSS %.1f MiB (%.1f MiB before), %v in all", peakRSS(t), before, time.Since(start))
	stillWorks(t, ctx, m, z, 0)
}

// TestHostileDeadReplies: a compromised child writes dead messages to the
// reply handle of the master's pending call to a sibling (given the handle,
// which it could not have guessed), and sprays 20,000 more over the dynamic
// handle range. The call still gets the sibling's genuine answer, and the
// forgeries are logged.
func TestHostileDeadReplies(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	h := startLocal(t, ctx, m, "hostile")
	s := startLocal(t, ctx, m, "sibling")
	args, _ := msgpack.Marshal(300)
	req, _ := msgpack.Marshal(&wire.CallRequest{Fn: "sleep", Args: args})
	p, err := m.Router().CallAsync(ctx, s.ID(), wire.HandleCall, wire.EncMsgpack, req)
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := msgpack.Marshal(&wire.ErrorBody{Code: wire.CodeDisconnected, Message: "the respondent context has disconnected"})
	for _, a := range []rawArgs{
		{Dst: 0, Src: h.ID(), Auth: h.ID(), Handle: p.Handle(), ReplyTo: wire.IsDead, Enc: uint16(wire.EncError), Body: dead, N: 1},
		{Dst: 0, Src: h.ID(), Auth: h.ID(), Handle: p.Handle(), Enc: uint16(wire.EncError), Body: dead, N: 1},
		{Dst: 0, Src: h.ID(), Auth: h.ID(), Handle: wire.FirstDynamicHandle, ReplyTo: wire.IsDead, Enc: uint16(wire.EncError), Body: dead, N: 20_000, Spread: true},
	} {
		if err := h.Call(ctx, "raw", a, nil); err != nil {
			t.Fatalf("raw: %v", err)
		}
	}
	reply, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("call to the sibling after forged dead replies: %v", err)
	}
	var got int
	if err := msgpack.Unmarshal(reply.Body, &got); err != nil || got != 300 || reply.Src != s.ID() {
		t.Fatalf("reply %v %x, want 300 from the sibling", reply, reply.Body)
	}
	if _, ok := logs.waitFor(time.Second, func(r logRecord) bool {
		return r.Msg == "reply from unexpected context" && strings.Contains(r.Attrs["msg"], fmt.Sprintf("src=%d auth=%d handle=%d", h.ID(), h.ID(), p.Handle()))
	}); !ok {
		t.Errorf("no record of the forged reply in the master's log")
	}
	stillWorks(t, ctx, m, s, 0)
}

// TestKillWhileForwardBlocked: the master's reader for child a is blocked
// forwarding a's flood into the stream of a sibling that stopped reading
// (its reader is stuck in hang_inline) when a is killed with SIGKILL. The
// pending call to a fails promptly with ErrDisconnected, Disconnected()
// closes, a's route goes, and another sibling and a new child still work.
func TestKillWhileForwardBlocked(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{Grace: 300 * time.Millisecond})
	a := startLocal(t, ctx, m, "a")
	stuck := startLocal(t, ctx, m, "stuck")
	s := startLocal(t, ctx, m, "sibling")
	if _, err := stuck.CallAsync(ctx, "hang_inline", nil); err != nil {
		t.Fatal(err)
	}
	hang, err := a.CallAsync(ctx, "hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CallAsync(ctx, "flood", floodArgs{Dst: stuck.ID(), Handle: 4242, Size: 64 << 10, N: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	out := m.Router().Stream(stuck.ID())
	for out.Queued() < 3<<20 {
		if ctx.Err() != nil {
			t.Fatalf("the stuck sibling's queue never filled (%d bytes)", out.Queued())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the master's reader for a is now blocked behind it
	if err := syscall.Kill(a.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = hang.Wait(wctx, nil)
	cancel()
	if !errors.Is(err, routing.ErrDisconnected) {
		t.Fatalf("pending call to the killed child = %v, want ErrDisconnected", err)
	}
	t.Logf("pending call failed %v after the kill", time.Since(start))
	waitClosed(t, a.Disconnected(), time.Second, "a.Disconnected()")
	if slices.Contains(m.Router().Routes(), a.ID()) {
		t.Errorf("master still routes the killed child: %v", m.Router().Routes())
	}
	stillWorks(t, ctx, m, s, 0)
	processGone(t, a.PID(), 5*time.Second)
}

// TestKillErrorsMatchSentinels: calls racing with a SIGKILL of their
// context fail, every one, with an error matching ErrDisconnected or
// ErrNoRoute: never a bare "broken pipe" or "child exited".
func TestKillErrorsMatchSentinels(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	s := startLocal(t, ctx, m, "sibling")
	for round := range 3 {
		k := startLocal(t, ctx, m, fmt.Sprint("k", round))
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		stop := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := k.Call(ctx, "big_reply", 4<<10, nil)
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		if err := syscall.Kill(k.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, k.Disconnected(), 2*time.Second, k.String()+".Disconnected()")
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, routing.ErrDisconnected) && !errors.Is(err, routing.ErrNoRoute) {
				t.Errorf("round %d: call racing the kill = %v, want ErrDisconnected or ErrNoRoute", round, err)
			}
		}
		processGone(t, k.PID(), 5*time.Second)
	}
	stillWorks(t, ctx, m, s, 0)
}

// TestStoppedReadingChildIsCut: a child stops reading (its reader is stuck
// in hang_inline) while a sibling floods it through the master, so the
// master's reader for the sibling is blocked and the master's calls to the
// sibling cannot get their replies. After StallTimeout without the stuck
// child taking a byte, the master cuts it off: its pending call fails with
// ErrDisconnected, and the sibling answers again.
func TestStoppedReadingChildIsCut(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{StallTimeout: 500 * time.Millisecond, Grace: 300 * time.Millisecond})
	stuck := startLocal(t, ctx, m, "stuck")
	s := startLocal(t, ctx, m, "sibling")
	stuckCall, err := stuck.CallAsync(ctx, "hang_inline", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CallAsync(ctx, "flood", floodArgs{Dst: stuck.ID(), Handle: 4242, Size: 64 << 10, N: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := stuckCall.Wait(ctx, nil); !errors.Is(err, routing.ErrDisconnected) {
		t.Fatalf("pending call to the stuck child = %v, want ErrDisconnected", err)
	}
	t.Logf("stuck child cut off %v after the flood began", time.Since(start))
	waitClosed(t, stuck.Disconnected(), time.Second, "stuck.Disconnected()")
	if _, ok := logs.waitFor(time.Second, func(r logRecord) bool {
		return r.Msg == "closing stream" && strings.Contains(r.Attrs["reason"], "peer stopped reading")
	}); !ok {
		t.Errorf("no record of the stalled stream in the master's log")
	}
	stillWorks(t, ctx, m, s, 0)
	processGone(t, stuck.PID(), 5*time.Second)
}

// TestForgedFloodLogBounded: a child writes 5000 frames with a forged
// src_id. Every one is dropped, and the master logs the first 16 and then
// every 1024th (with the count), not 5000 records.
func TestForgedFloodLogBounded(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, logs := newMaster(t, spindle.Config{})
	logs.allowDrops()
	bad := startLocal(t, ctx, m, "bad")
	sibling := startLocal(t, ctx, m, "sibling")
	const n = 5000
	a := rawArgs{Dst: 0, Src: sibling.ID(), Auth: bad.ID(), Handle: wire.HandleCall, Enc: uint16(wire.EncRaw), Body: []byte("forged"), N: n}
	if err := bad.Call(ctx, "raw", a, nil); err != nil {
		t.Fatalf("raw: %v", err)
	}
	if err := bad.Ping(ctx); err != nil { // the forged frames came before this reply
		t.Fatal(err)
	}
	got := logs.find(func(r logRecord) bool { return strings.HasPrefix(r.Msg, "bad src_id") })
	t.Logf("%d forged frames: %d log records", n, len(got))
	if want := 16 + n/1024; len(got) != want {
		t.Fatalf("%d forged frames made %d log records, want %d", n, len(got), want)
	}
	if last := got[len(got)-1].Attrs["refusals"]; last != "4096" {
		t.Errorf("last record counts %q refusals, want 4096", last)
	}
	if err := sibling.Ping(ctx); err != nil {
		t.Errorf("sibling after the flood: %v", err)
	}
}

// TestRoutedBackGetsDeadReply: a child writes a request, past its own
// router, for its own child's ID: the master can only route it back where
// it came from, and answers with a dead "no route" instead of dropping it.
func TestRoutedBackGetsDeadReply(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	for _, dst := range []uint32{g.ID(), c.ID()} {
		a := rawArgs{Dst: dst, Src: c.ID(), Auth: c.ID(), Handle: wire.HandleCall, Enc: uint16(wire.EncMsgpack), Body: []byte{0xc0}}
		var got string
		if err := c.Call(ctx, "raw_ask", a, &got); err != nil {
			t.Fatalf("raw_ask: %v", err)
		}
		if want := fmt.Sprintf("no route to %d, my ID is 0", dst); !strings.Contains(got, want) {
			t.Errorf("request for %d routed back: answer %q, want a dead %q", dst, got, want)
		}
	}
	if err := g.Ping(ctx); err != nil {
		t.Errorf("g after: %v", err)
	}
}
