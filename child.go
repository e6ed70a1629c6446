package spindle

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// helloTimeout bounds how long a new child waits for its parent's Hello.
const helloTimeout = 30 * time.Second

// exitSlack is how long past its grace period a shutting-down child waits for
// its goroutines before exiting anyway: a stuck native function never keeps
// a context alive.
const exitSlack = time.Second

// IsChild reports whether this process was started as a child context.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// MaybeRunChild turns this process into a child context and never returns,
// if it was started as one; otherwise it returns at once. Call it first in
// main (and in TestMain). extra adds native functions to the built-in ones;
// they are served only by children of this binary.
func MaybeRunChild(extra map[string]Func) {
	if len(os.Args) == 2 && os.Args[1] == childArg {
		// Started by the bootstrap script: the stream is stdin and stdout.
		// Nothing else may write to stdout from now on.
		rwc, err := takeStdio()
		if err != nil {
			fmt.Fprintf(os.Stderr, "spindle child: %v\n", err)
			os.Exit(2)
		}
		os.Exit(runChild(rwc, extra))
	}
	v := os.Getenv(childEnv)
	if v == "" {
		return
	}
	os.Unsetenv(childEnv)
	rwc, err := parentStream(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "spindle: bad %s=%q: %v\n", childEnv, v, err)
		os.Exit(2)
	}
	os.Exit(runChild(rwc, extra))
}

// parentStream opens the stream a local parent passed: "R,W", a descriptor
// to read from and one to write to (see childFDs), or "FD", one end of a
// socketpair.
func parentStream(v string) (io.ReadWriteCloser, error) {
	words := strings.Split(v, ",")
	if len(words) > 2 {
		return nil, errors.New(`want "FD" or "R,W"`)
	}
	var fds []int
	for _, s := range words {
		fd, err := strconv.Atoi(s)
		if err != nil || fd < 0 {
			return nil, fmt.Errorf("not a descriptor: %q", s)
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		// exec hands descriptors over in blocking mode: make them pollable.
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, err
		}
	}
	if len(fds) == 2 {
		return &pipeConn{r: os.NewFile(uintptr(fds[0]), "parent-in"), w: os.NewFile(uintptr(fds[1]), "parent-out")}, nil
	}
	f := os.NewFile(uintptr(fds[0]), "spindle-parent")
	c, err := net.FileConn(f)
	if err != nil {
		return f, nil
	}
	f.Close()
	return c, nil
}

// childProfileEnv names a directory where each child context started with
// it in its environment (local children inherit it) writes a CPU profile
// of its whole life, cpu-PID.pprof: for performance work on the tree's
// data path (go tool pprof bin/spindle DIR/cpu-PID.pprof).
const childProfileEnv = "SPINDLE_CHILD_CPUPROFILE"

// profileCPU starts a CPU profile into dir and returns what stops it. A
// profile that cannot start is said on stderr, and the child runs anyway.
func profileCPU(dir string) (stop func()) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", os.Getpid())))
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "spindle child: %s: %v\n", childProfileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// runChild serves one child context over rwc until it shuts down, and
// returns the process exit code.
func runChild(rwc io.ReadWriteCloser, extra map[string]Func) int {
	if d := os.Getenv(childProfileEnv); d != "" {
		defer profileCPU(d)()
	}
	hello, err := readHello(rwc)
	if err != nil {
		fmt.Fprintf(os.Stderr, "spindle child: %v\n", err)
		if hello != nil && len(hello.ParentIDs) > 0 {
			return fail(rwc, hello, err)
		}
		rwc.Close()
		return 2
	}
	fwd := newForwarder(hello.Name, slog.Level(hello.LogLevel))
	log := slog.New(fwd).With("pid", os.Getpid())
	grace := time.Duration(hello.ShutdownGrace)
	b := broker.New(broker.Config{Logger: log, Grace: grace})
	var r *routing.Router
	r = routing.New(b, routing.Config{
		ID:             hello.ID,
		ParentIDs:      hello.ParentIDs,
		MaxMessageSize: hello.MaxMessageSize,
		Unidirectional: hello.Unidirectional,
		OnParentGone: func(err error) {
			log.Debug("parent stream closed; shutting down", "err", err)
			b.Shutdown(0)
		},
		// Records logged before the parent stream was up go out first.
		OnParentUp: func() { fwd.uncork(r) },
	})
	cacheDir := resolveCacheDir(hello.CacheDir)
	if hello.Sandbox && cacheDir != "" {
		cacheDir = filepath.Join(cacheDir, sandboxCacheSubdir)
	}
	n, err := newNode(hello.Name, b, r, log, extra, cacheDir, true)
	if err != nil {
		b.Close()
		return fail(rwc, hello, err)
	}
	n.exe = executable()
	n.childGrace = grace
	n.logLevel = slog.Level(hello.LogLevel)
	n.connectTO = defaultConnectTimeout
	if err := n.serve(); err != nil {
		return fail(rwc, hello, err)
	}
	ack, _ := msgpack.Marshal(&wire.HelloAck{Version: wire.ProtocolVersion, ID: hello.ID, PID: os.Getpid()})
	m := &wire.Message{Enc: wire.EncMsgpack, Dst: hello.ParentIDs[0], Src: hello.ID, Auth: hello.ID, Handle: wire.HandleHello, Body: ack}
	if _, err := rwc.Write(m.AppendFrame(nil)); err != nil {
		b.Close()
		return 2
	}
	if hello.Sandbox {
		// Before the parent stream is read: nothing runs unconfined.
		n.applySandbox()
	}
	if _, err := r.SetParent(rwc, "parent"); err != nil {
		b.Close()
		return 2
	}
	log.Debug("child context up", "id", hello.ID, "parent", hello.ParentIDs[0])
	<-b.ShuttingDown()
	select {
	case <-b.Done():
	case <-time.After(grace + exitSlack):
		fmt.Fprintf(os.Stderr, "spindle child %s: goroutines still running %v after shutdown began; exiting\n", hello.Name, grace+exitSlack)
	}
	return 0
}

func readHello(rwc io.ReadWriteCloser) (*wire.Hello, error) {
	if c, ok := rwc.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
		defer c.SetReadDeadline(time.Time{})
	}
	m, err := wire.ReadMessage(rwc, make([]byte, wire.HeaderLen), 1<<16)
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	if m.Handle != wire.HandleHello {
		return nil, fmt.Errorf("first frame is %v, not a hello", m)
	}
	var h wire.Hello
	if err := wire.Unmarshal(m.Body, &h); err != nil {
		return nil, fmt.Errorf("decode hello: %w", err)
	}
	if h.Version != wire.ProtocolVersion {
		return &h, fmt.Errorf("protocol version %d, this binary speaks %d", h.Version, wire.ProtocolVersion)
	}
	if len(h.ParentIDs) == 0 || h.ID == 0 {
		return &h, fmt.Errorf("hello without parent or ID")
	}
	return &h, nil
}

func fail(rwc io.ReadWriteCloser, h *wire.Hello, err error) int {
	ack, _ := msgpack.Marshal(&wire.HelloAck{Version: wire.ProtocolVersion, ID: h.ID, PID: os.Getpid(), Error: err.Error()})
	m := &wire.Message{Enc: wire.EncMsgpack, Dst: h.ParentIDs[0], Src: h.ID, Auth: h.ID, Handle: wire.HandleHello, Body: ack}
	_, _ = rwc.Write(m.AppendFrame(nil))
	rwc.Close()
	return 2
}

func executable() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}

// takeStdio turns this process's stdin and stdout into the stream to the
// parent: the descriptors are moved above 2 (close-on-exec) and made
// non-blocking, so they go through Go's poller and closing the stream at
// shutdown ends a read in progress; stdout then points at stderr, so a
// stray print cannot corrupt the stream, and stdin at /dev/null.
func takeStdio() (*pipeConn, error) {
	var fds [2]int
	for i := range fds {
		fd, err := unix.FcntlInt(uintptr(i), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("take stdio: %w", err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("take stdio: %w", err)
		}
		fds[i] = fd
	}
	if err := unix.Dup2(2, 1); err != nil {
		return nil, fmt.Errorf("take stdio: %w", err)
	}
	if null, err := os.Open(os.DevNull); err == nil {
		_ = unix.Dup2(int(null.Fd()), 0)
		null.Close()
	}
	return &pipeConn{r: os.NewFile(uintptr(fds[0]), "parent-in"), w: os.NewFile(uintptr(fds[1]), "parent-out")}, nil
}
