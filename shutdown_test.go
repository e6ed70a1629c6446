package spindle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestShutdownSubtree: Context.Shutdown takes the context's whole subtree
// with it, and every process is reaped.
func TestShutdownSubtree(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	keep := startLocal(t, ctx, m, "keep")
	c := startLocal(t, ctx, m, "c")
	g1 := startVia(t, ctx, c, "g1")
	g2 := startVia(t, ctx, c, "g2")
	gg := startVia(t, ctx, g1, "gg")
	start := time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	for _, x := range []*spindle.Context{c, g1, g2, gg} {
		waitClosed(t, x.Disconnected(), time.Second, x.String()+".Disconnected()")
		processGone(t, x.PID(), 5*time.Second)
	}
	if got, want := m.Router().Routes(), []uint32{keep.ID()}; !slices.Equal(got, want) {
		t.Errorf("routes after Shutdown = %v, want %v", got, want)
	}
	if err := keep.Ping(ctx); err != nil {
		t.Errorf("sibling after Shutdown: %v", err)
	}
	// Shutting down what is already gone returns at once.
	if err := c.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestCloseStuckChild: Master.Close does not wait longer than its grace
// period (plus the reaper's SIGTERM delay) for a child that is stuck, and
// leaves no process behind.
func TestCloseStuckChild(t *testing.T) {
	for _, fn := range []string{"hang", "hang_inline"} {
		t.Run(fn, func(t *testing.T) {
			testutil.VerifyNone(t)
			ctx := testContext(t)
			const grace = 300 * time.Millisecond
			m, _ := newMaster(t, spindle.Config{Grace: grace, ChildGrace: grace})
			c := startLocal(t, ctx, m, "stuck")
			g := startVia(t, ctx, c, "below-stuck")
			p, err := c.CallAsync(ctx, fn, nil)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			m.Close()
			t.Logf("Close took %v", time.Since(start))
			if d := time.Since(start); d > grace+1500*time.Millisecond {
				t.Errorf("Close took %v with grace %v", d, grace)
			}
			// Its stream closes (by the child, or by the master once the
			// grace is over) before the master's broker exits.
			if err := p.Wait(ctx, nil); !errors.Is(err, routing.ErrDisconnected) {
				t.Errorf("pending %s call: %v, want ErrDisconnected", fn, err)
			}
			// Close reaped its direct child before returning.
			if err := syscall.Kill(c.PID(), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill(%d, 0) after Close = %v, want ESRCH", c.PID(), err)
			}
			processGone(t, g.PID(), 5*time.Second)
		})
	}
}

// TestParentStreamClosed: closing the master's end of a child's stream makes
// the child leave; its routes go and its process is reaped.
func TestParentStreamClosed(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	s := m.Router().Stream(c.ID())
	if s == nil {
		t.Fatalf("no stream to %v", c)
	}
	s.Close()
	waitClosed(t, c.Disconnected(), time.Second, "c.Disconnected()")
	waitClosed(t, g.Disconnected(), time.Second, "g.Disconnected()")
	if got := m.Router().Routes(); len(got) != 0 {
		t.Errorf("routes = %v, want none", got)
	}
	processGone(t, c.PID(), 5*time.Second)
	processGone(t, g.PID(), 5*time.Second)
}

// fakeParent plays the parent of a child process by hand, over a real
// socketpair, so the test sees how the child itself behaves.
type fakeParent struct {
	t    *testing.T
	conn net.Conn
	cmd  *exec.Cmd
	hdr  []byte
}

func startFakeChild(t *testing.T, id uint32) *fakeParent {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parentEnd := os.NewFile(uintptr(fds[0]), "parent")
	childEnd := os.NewFile(uintptr(fds[1]), "child")
	conn, err := net.FileConn(parentEnd)
	parentEnd.Close()
	if err != nil {
		childEnd.Close()
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SPINDLE_CHILD_FD=3")
	cmd.ExtraFiles = []*os.File{childEnd}
	err = cmd.Start()
	childEnd.Close()
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	fp := &fakeParent{t: t, conn: conn, cmd: cmd, hdr: make([]byte, wire.HeaderLen)}
	t.Cleanup(func() {
		conn.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	hello, _ := msgpack.Marshal(&wire.Hello{Version: wire.ProtocolVersion, ID: id, Name: "orphan", ParentIDs: []uint32{0},
		LogLevel: 0, ShutdownGrace: int64(time.Second)})
	fp.send(&wire.Message{Enc: wire.EncMsgpack, Dst: id, Handle: wire.HandleHello, Body: hello})
	reply := fp.next(func(m *wire.Message) bool { return m.Handle == wire.HandleHello })
	var ack wire.HelloAck
	if err := msgpack.Unmarshal(reply.Body, &ack); err != nil || ack.ID != id || ack.PID != cmd.Process.Pid || ack.Error != "" {
		t.Fatalf("HelloAck = %+v, %v; want ID %d PID %d", ack, err, id, cmd.Process.Pid)
	}
	return fp
}

func (fp *fakeParent) send(m *wire.Message) {
	fp.t.Helper()
	_ = fp.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fp.conn.Write(m.AppendFrame(nil)); err != nil {
		fp.t.Fatalf("write %v: %v", m, err)
	}
}

// next returns the next frame from the child that want accepts, skipping
// the others (forwarded logs).
func (fp *fakeParent) next(want func(*wire.Message) bool) *wire.Message {
	fp.t.Helper()
	_ = fp.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := wire.ReadMessage(fp.conn, fp.hdr, wire.DefaultMaxMessageSize)
		if err != nil {
			fp.t.Fatalf("read from child: %v", err)
		}
		if want(m) {
			return m
		}
	}
}

// wait waits up to d for the child to exit and returns its exit error.
func (fp *fakeParent) wait(d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- fp.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = fp.cmd.Process.Kill()
		<-done
		return errors.New("still running")
	}
}

// TestOrphanExits: a child whose parent stream closes exits by itself, with
// status 0, and takes its own children with it.
func TestOrphanExits(t *testing.T) {
	t.Run("alone", func(t *testing.T) {
		testutil.VerifyNone(t)
		fp := startFakeChild(t, 7)
		fp.conn.Close()
		if err := fp.wait(5 * time.Second); err != nil {
			t.Errorf("child after its parent stream closed: %v, want exit status 0", err)
		}
	})
	t.Run("with a child", func(t *testing.T) {
		testutil.VerifyNone(t)
		fp := startFakeChild(t, 7)
		body, _ := msgpack.Marshal(&wire.StartChild{Name: "grandchild"})
		fp.send(&wire.Message{Enc: wire.EncMsgpack, Dst: 7, Src: 0, Auth: 0, Handle: wire.HandleStartChild, ReplyTo: 1000, Body: body})
		// The child asks the "master" for a block of IDs.
		req := fp.next(func(m *wire.Message) bool { return m.Handle == wire.HandleAllocateID })
		blk, _ := msgpack.Marshal(&wire.IDBlock{Start: 8, End: 9})
		fp.send(&wire.Message{Enc: wire.EncMsgpack, Dst: 7, Src: 0, Auth: 0, Handle: req.ReplyTo, Body: blk})
		route := fp.next(func(m *wire.Message) bool { return m.Handle == wire.HandleAddRoute })
		var rt wire.Route
		if err := msgpack.Unmarshal(route.Body, &rt); err != nil || rt.ID != 8 || rt.Name != "grandchild" {
			t.Errorf("ADD_ROUTE = %+v, %v", rt, err)
		}
		reply := fp.next(func(m *wire.Message) bool { return m.Handle == 1000 })
		var st wire.ChildStarted
		if err := msgpack.Unmarshal(reply.Body, &st); err != nil || st.ID != 8 || st.PID == 0 {
			t.Fatalf("START_CHILD reply = %v %+v, %v", reply, st, err)
		}
		fp.conn.Close()
		if err := fp.wait(5 * time.Second); err != nil {
			t.Errorf("child after its parent stream closed: %v, want exit status 0", err)
		}
		// The child reaped its own child before exiting.
		if err := syscall.Kill(st.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("grandchild %d after the child exited: kill = %v, want ESRCH", st.PID, err)
		}
	})
}

// TestFailedStart: a child that cannot start leaves nothing behind and says
// why.
func TestFailedStart(t *testing.T) {
	// The child going away during the handshake shows as EOF, or as a reset
	// (it exited with our Hello unread) or a broken pipe (before we wrote).
	peerGone := func(err error) bool {
		return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	}
	silent := filepath.Join(t.TempDir(), "silent")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const connectTimeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name string
		exe  string
		ok   func(error) bool
		text string
	}{
		{"exits at once", "/bin/true", peerGone, "child bad (local): lost during start: the child closed its stream before the handshake"},
		{"not a spindle binary", "/bin/cat", peerGone, "child bad (local): lost during start: the child closed its stream before the handshake"},
		{"never answers", silent, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
			"child bad (local): timed out: the child did not answer the handshake within the connect timeout (500ms)"},
		{"does not exist", "/nonexistent/spindle", func(err error) bool { return errors.Is(err, fs.ErrNotExist) },
			"child bad (local): start failed: fork/exec /nonexistent/spindle: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.VerifyNone(t)
			ctx := testContext(t)
			m, _ := newMaster(t, spindle.Config{Executable: tc.exe, ConnectTimeout: connectTimeout})
			start := time.Now()
			c, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "bad"})
			if err == nil {
				t.Fatalf("StartLocal with %s = %v, want an error", tc.exe, c)
			}
			if !tc.ok(err) || err.Error() != tc.text || !errors.Is(err, spindle.ErrChildStart) {
				t.Errorf("StartLocal with %s: %v", tc.exe, err)
			}
			if d := time.Since(start); d > connectTimeout+time.Second {
				t.Errorf("StartLocal took %v with a %v connect timeout", d, connectTimeout)
			}
			if got := m.Router().Routes(); len(got) != 0 {
				t.Errorf("routes = %v, want none", got)
			}
		})
	}
}

// TestCloseDuringStart closes the master while children are starting, at
// every point of their start: each StartLocal either succeeds or fails, and
// Close still leaves nothing behind.
func TestCloseDuringStart(t *testing.T) {
	for _, via := range []bool{false, true} {
		step := 2 * time.Millisecond
		if testing.Short() {
			step = 6 * time.Millisecond
		}
		for delay := time.Duration(0); delay < 60*time.Millisecond; delay += step {
			t.Run(fmt.Sprintf("via=%v/delay=%v", via, delay), func(t *testing.T) {
				testutil.VerifyNone(t)
				ctx := testContext(t)
				m, _ := newMaster(t, spindle.Config{Grace: time.Second, ChildGrace: 300 * time.Millisecond})
				var parent *spindle.Context
				if via {
					parent = startLocal(t, ctx, m, "parent")
				}
				var wg sync.WaitGroup
				errs := make([]error, 8)
				for i := range errs {
					wg.Go(func() {
						if parent != nil {
							_, errs[i] = parent.StartLocal(ctx, spindle.LocalOptions{})
						} else {
							_, errs[i] = m.StartLocal(ctx, spindle.LocalOptions{})
						}
					})
				}
				time.Sleep(delay)
				start := time.Now()
				m.Close()
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("Close took %v", d)
				}
				wg.Wait()
				for _, err := range errs {
					if errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("StartLocal hung until the test's deadline: %v", err)
					}
				}
			})
		}
	}
}

// TestShutdownStuck: Context.Shutdown of a context that cannot even read its
// SHUTDOWN (its reader is stuck) has its parent kill it after the grace
// period, for a child of the master and for a grandchild.
func TestShutdownStuck(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out two grace periods (about 3 s)")
	}
	testutil.VerifyNone(t)
	ctx := testContext(t)
	const grace = 300 * time.Millisecond
	m, _ := newMaster(t, spindle.Config{ChildGrace: grace})
	c := startLocal(t, ctx, m, "c")
	g := startVia(t, ctx, c, "g")
	stuck := startLocal(t, ctx, m, "stuck")
	for _, x := range []*spindle.Context{g, stuck} {
		if _, err := x.CallAsync(ctx, "hang_inline", nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	for _, x := range []*spindle.Context{g, stuck} {
		start := time.Now()
		if err := x.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown(%v): %v", x, err)
		}
		// Grace, then the exit slack (1 s) the context would have had.
		if d := time.Since(start); d < grace || d > grace+2500*time.Millisecond {
			t.Errorf("Shutdown(%v) took %v, want the grace period %v plus about 1 s", x, d, grace)
		}
		waitClosed(t, x.Disconnected(), time.Second, x.String()+".Disconnected()")
		processGone(t, x.PID(), 5*time.Second)
	}
	if got, want := m.Router().Routes(), []uint32{c.ID()}; !slices.Equal(got, want) {
		t.Errorf("routes = %v, want %v", got, want)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("g's parent after killing g: %v", err)
	}
}
