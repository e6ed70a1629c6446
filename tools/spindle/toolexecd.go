package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gotool"
	"github.com/spindle-hq/spindle/target"
	"golang.org/x/sys/unix"
)

// The toolexec server keeps what a tool run needs resident across the go
// command's many spindle toolexec processes: one master, a context per
// target, the tools added once and compiled once in each context. The
// first spindle toolexec of a build starts it (detached, in a session of
// its own); every run connects to its unix socket, sends its planned
// invocation and receives the tool's output and exit status; the server
// exits once no run has come for --idle, or when spindle toolexec --stop
// asks (after the runs under way, its contexts shut down). One server serves one
// (spindle binary, tools, targets, user): its socket is
// $TMPDIR/spindle-toolexec-UID/HASH.sock, in a directory only the user can
// enter, and it serves only connections of its own uid (SO_PEERCRED).
//
// The protocol: the client writes one toolRequest as a JSON line (at most
// maxToolRequest bytes); the server answers with frames, a kind byte and a
// big-endian uint32 length, then that many bytes: 'o' stdout, 'e'
// stderr, and last 'x', a toolReply as JSON. A client that goes away
// cancels its run.

// toolRequest is one run, as the client planned it.
type toolRequest struct {
	Tool    string            `json:"tool"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Mounts  []gotool.Mount    `json:"mounts"`
	Files   []string          `json:"files,omitempty"` // gotool's Invocation.Files
	Work    string            `json:"work,omitempty"`
	Ship    bool              `json:"ship,omitempty"` // ship even to a context of this machine
	Key     string            `json:"key"`            // spreads runs over the targets
	Memory  int64             `json:"memory"`
	Timeout time.Duration     `json:"timeout"`
	// Stop asks the server to exit (spindle toolexec --stop): it answers
	// once its runs have ended and its master is closed.
	Stop bool `json:"stop,omitempty"`
}

// toolReply ends a run.
type toolReply struct {
	Exit    int    `json:"exit"`
	Target  string `json:"target"`
	Error   string `json:"error,omitempty"`
	Kind    string `json:"kind,omitempty"`    // a TaskError's kind
	Class   string `json:"class,omitempty"`   // "usage", "infra" or "task" when Error is set
	Elapsed int64  `json:"elapsed,omitempty"` // ns, in the server
	Shipped bool   `json:"shipped,omitempty"` // the run's files were shipped, not granted

	local bool // the failure was this machine's (shipping), not the target's: not retried
}

const (
	maxToolRequest   = 16 << 20
	toolDefaultIdle  = 30 * time.Second
	toolServerStart  = 60 * time.Second // bound on a server's start, as a client waits for it
	frameHeaderBytes = 5
)

// serverID is what tells o's server from another's, besides the binary
// and the tools: the targets and the flags that reach them.
func (o *toolexecOpts) serverID() []string { return append(o.conn.args(), o.targets...) }

// toolServerPaths are a server's socket, lock, pid and log files.
type toolServerPaths struct{ sock, lock, pid, log string }

// serverPaths names the server of the spindle binary exe, tools directory
// and id (toolexecOpts.serverID), for this user, and makes its directory
// (0700, checked).
func serverPaths(exe, toolsDir string, id []string) (toolServerPaths, error) {
	dir := filepath.Join(os.TempDir(), "spindle-toolexec-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return toolServerPaths{}, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return toolServerPaths{}, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return toolServerPaths{}, fmt.Errorf("%s is not a directory of uid %d that only it can enter (%v)", dir, os.Getuid(), fi.Mode())
	}
	h := sha256.New()
	if fi, err := os.Stat(exe); err == nil {
		// A rebuilt spindle gets a server of its own.
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", exe, fi.Size(), fi.ModTime().UnixNano())
	}
	abs, _ := filepath.Abs(toolsDir)
	fmt.Fprintf(h, "%s\x00%s", abs, strings.Join(id, "\x00"))
	name := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:16])
	return toolServerPaths{sock: name + ".sock", lock: name + ".lock", pid: name + ".pid", log: name + ".log"}, nil
}

// writeFrame writes one frame.
func writeFrame(w io.Writer, kind byte, p []byte) error {
	var hdr [frameHeaderBytes]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// frameWriter is a task's stdout or stderr, as frames on a connection
// shared with the other stream; safe for concurrent use.
type frameWriter struct {
	mu   *sync.Mutex
	w    io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := writeFrame(f.w, f.kind, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ---- client

// runViaServer runs req on the server for toolsDir and targets, starting
// it if none answers, and copies the tool's output to stdout and stderr.
func runViaServer(ctx context.Context, o *toolexecOpts, toolsDir string, req *toolRequest, stdout, stderr io.Writer) (*toolReply, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	paths, err := serverPaths(exe, toolsDir, o.serverID())
	if err != nil {
		return nil, fmt.Errorf("toolexec server: %w", err)
	}
	conn, err := dialServer(ctx, o, toolsDir, paths)
	if err != nil {
		return nil, err
	}
	return exchange(ctx, conn, paths, req, stdout, stderr)
}

// exchange sends req on conn, copies the output frames to stdout and
// stderr, and returns the reply. It closes conn.
func exchange(ctx context.Context, conn net.Conn, paths toolServerPaths, req *toolRequest, stdout, stderr io.Writer) (*toolReply, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("toolexec server: %w", err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	var hdr [frameHeaderBytes]byte
	buf := make([]byte, 0, 64<<10)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("toolexec server %s went away mid-run (its log: %s): %w", paths.sock, paths.log, err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxToolRequest {
			return nil, fmt.Errorf("toolexec server: a frame of %d bytes", n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("toolexec server went away mid-run: %w", err)
		}
		switch hdr[0] {
		case 'o':
			stdout.Write(buf)
		case 'e':
			stderr.Write(buf)
		case 'x':
			var rep toolReply
			if err := json.Unmarshal(buf, &rep); err != nil {
				return nil, fmt.Errorf("toolexec server: bad reply: %w", err)
			}
			return &rep, nil
		default:
			return nil, fmt.Errorf("toolexec server: a frame of kind %q", hdr[0])
		}
	}
}

// stopServer is spindle toolexec --stop: it asks o's server to exit and
// waits until it has (its runs ended, its contexts shut down).
func stopServer(o *toolexecOpts, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "spindle toolexec --stop: %v\n", err)
		return exitCIInfra
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	paths, err := serverPaths(exe, toolsDir(o.tools), o.serverID())
	if err != nil {
		return fail(err)
	}
	ctx, cancel := interruptContext(stderr, "spindle toolexec --stop")
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", paths.sock)
	if err != nil {
		fmt.Fprintf(stdout, "spindle toolexec --stop: no server is running for these flags (%s)\n", paths.sock)
		return 0
	}
	if _, err := exchange(ctx, conn, paths, &toolRequest{Stop: true}, stdout, stderr); err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return fail(err)
	}
	return 0
}

// dialServer connects to the server, starting it first if none answers:
// under the lock file, so that of the go command's concurrent runs one
// starts it and the others wait for it.
func dialServer(ctx context.Context, o *toolexecOpts, toolsDir string, p toolServerPaths) (net.Conn, error) {
	var d net.Dialer
	if c, err := d.DialContext(ctx, "unix", p.sock); err == nil {
		return c, nil
	}
	lock, err := os.OpenFile(p.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("toolexec server: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("toolexec server: lock %s: %w", p.lock, err)
	}
	if c, err := d.DialContext(ctx, "unix", p.sock); err == nil {
		return c, nil
	}
	os.Remove(p.sock) // a dead server's
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{"toolexec", "--serve", "--tools", toolsDir, "--idle", o.idle.String()}, o.conn.args()...)
	for _, t := range o.targets {
		args = append(args, "-t", t)
	}
	logf, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("toolexec server: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "SPINDLE_TOOLEXEC_SOCK="+p.sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("toolexec server: start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies while this process lives
	deadline := time.NewTimer(toolServerStart)
	defer deadline.Stop()
	for {
		if c, err := d.DialContext(ctx, "unix", p.sock); err == nil {
			return c, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("toolexec server exited at start (%v): %s", err, lastLines(p.log, 5))
		case <-deadline.C:
			return nil, fmt.Errorf("toolexec server did not answer within %v (its log: %s)", toolServerStart, p.log)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lastLines is the last n lines of a file, for an error.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}

// ---- server

// toolServer serves tool runs until idle.
type toolServer struct {
	m       *spindle.Master
	fl      *spindle.Fleet
	modules map[string]string // tool name -> module hash
	targets []string
	chains  []target.Target
	log     *slog.Logger

	ln       net.Listener
	stopOnce sync.Once
	stopped  chan struct{} // closed by stop

	mu       sync.Mutex
	stoppers []net.Conn  // guarded by mu: the --stop clients, answered at exit
	busy     []int       // guarded by mu: runs in progress per target
	down     []time.Time // guarded by mu: until when a target that failed is passed over
	active   int         // guarded by mu: runs in progress
	lastEnd  time.Time
}

// targetDownFor is how long a target that could not be started, or was
// lost, is passed over by pick while another is up.
const targetDownFor = 30 * time.Second

// serveTools is spindle toolexec --serve: it listens on the socket the
// client named (SPINDLE_TOOLEXEC_SOCK) until no run has come for idle.
func serveTools(o *toolexecOpts, stderr io.Writer) int {
	sockPath := os.Getenv("SPINDLE_TOOLEXEC_SOCK")
	if sockPath == "" {
		fmt.Fprintln(stderr, "spindle toolexec --serve: started by spindle toolexec only (no SPINDLE_TOOLEXEC_SOCK)")
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := &toolServer{modules: map[string]string{}, targets: o.targets, busy: make([]int, len(o.targets)),
		down: make([]time.Time, len(o.targets)), log: log, lastEnd: time.Now(), stopped: make(chan struct{})}
	for _, t := range o.targets {
		c, err := target.Parse(t)
		if err != nil {
			log.Error("bad target", "target", t, "err", err)
			return exitUsage
		}
		s.chains = append(s.chains, c)
	}
	m, err := spindle.NewMaster(spindle.Config{Logger: log, LogLevel: slog.LevelWarn})
	if err != nil {
		log.Error("master", "err", err)
		return exitCIInfra
	}
	closeMaster := sync.OnceFunc(func() { m.Close() })
	defer closeMaster()
	s.m, s.fl = m, spindle.NewFleet(m)
	s.fl.Defaults = o.conn.defaults()
	for _, name := range gotool.Tools {
		wasm, err := os.ReadFile(filepath.Join(o.tools, name+".wasm"))
		if err != nil {
			log.Error("tool", "err", err)
			return exitUsage
		}
		if s.modules[name], err = m.AddModule(wasm); err != nil {
			log.Error("tool", "name", name, "err", err)
			return exitUsage
		}
	}
	os.Remove(sockPath)
	ln, err := net.Listen("unix", sockPath)
	if err != nil {
		log.Error("listen", "err", err)
		return exitCIInfra
	}
	defer os.Remove(sockPath)
	pidPath := strings.TrimSuffix(sockPath, ".sock") + ".pid"
	os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	defer os.Remove(pidPath)
	log.Info("serving", "sock", sockPath, "targets", o.targets, "idle", o.idle)
	s.ln = ln
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.idleWatch(o.idle)
	}()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.stop() // ends the idle watch too, whatever closed the listener
			wg.Wait()
			closeMaster()
			os.Remove(sockPath)
			os.Remove(pidPath)
			s.mu.Lock()
			stoppers := s.stoppers
			s.mu.Unlock()
			if len(stoppers) == 0 {
				log.Info("idle: exiting")
			} else {
				log.Info("stopped: exiting")
			}
			for _, c := range stoppers {
				b, _ := json.Marshal(toolReply{})
				writeFrame(c, 'x', b)
				c.Close()
			}
			return 0
		}
		if !sameUser(c) {
			log.Warn("refused a connection of another user")
			c.Close()
			continue
		}
		s.begin()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.end()
			s.serve(c)
		}()
	}
}

// sameUser reports whether the peer of c runs as this process's uid.
func sameUser(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || cerr != nil {
		return false
	}
	return int(cred.Uid) == os.Getuid()
}

func (s *toolServer) begin() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *toolServer) end() {
	s.mu.Lock()
	s.active--
	s.lastEnd = time.Now()
	s.mu.Unlock()
}

// idleWatch stops the server once no run has been in progress for idle;
// it returns then, or when the server was stopped otherwise.
func (s *toolServer) idleWatch(idle time.Duration) {
	tick := time.NewTicker(min(idle/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stopped:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		done := s.active == 0 && time.Since(s.lastEnd) >= idle
		s.mu.Unlock()
		if done {
			s.stop()
			return
		}
	}
}

// stop closes the listener: the accept loop then waits for the runs under
// way, closes the master and exits. Safe to call more than once.
func (s *toolServer) stop() {
	s.stopOnce.Do(func() {
		close(s.stopped)
		s.ln.Close()
	})
}

// pick takes the least busy target, the key's choice among equals, of
// those not tried yet (tried[i]) and not down; when every untried one is
// down, the one up soonest. It returns -1 once every target was tried.
func (s *toolServer) pick(key string, tried []bool) int {
	h := sha256.Sum256([]byte(key))
	start := int(binary.BigEndian.Uint64(h[:8]) % uint64(len(s.targets)))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	best := -1
	better := func(j int) bool {
		switch bDown, jDown := s.down[best].After(now), s.down[j].After(now); {
		case bDown != jDown:
			return bDown
		case jDown:
			return s.down[j].Before(s.down[best])
		}
		return s.busy[j] < s.busy[best]
	}
	for i := range s.targets {
		j := (start + i) % len(s.targets)
		if !tried[j] && (best < 0 || better(j)) {
			best = j
		}
	}
	if best >= 0 {
		s.busy[best]++
	}
	return best
}

// markDown passes over target i for targetDownFor.
func (s *toolServer) markDown(i int) {
	s.mu.Lock()
	s.down[i] = time.Now().Add(targetDownFor)
	s.mu.Unlock()
}

func (s *toolServer) release(i int) {
	s.mu.Lock()
	s.busy[i]--
	s.mu.Unlock()
}

// serve runs one client's request.
func (s *toolServer) serve(c net.Conn) {
	kept := false // a --stop client's connection stays open until the exit
	defer func() {
		if !kept {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br := bufio.NewReaderSize(c, 64<<10)
	line, err := br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) && len(line) < maxToolRequest {
		var more []byte
		more, err = br.ReadSlice('\n')
		line = append(append([]byte(nil), line...), more...)
	}
	var req toolRequest
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var mu sync.Mutex
	reply := func(r toolReply) {
		b, _ := json.Marshal(r)
		mu.Lock()
		writeFrame(c, 'x', b)
		mu.Unlock()
	}
	hash := s.modules[req.Tool]
	switch {
	case err != nil:
		reply(toolReply{Exit: exitUsage, Error: "bad request: " + err.Error(), Class: "usage"})
		return
	case req.Stop:
		s.mu.Lock()
		s.stoppers = append(s.stoppers, c)
		s.mu.Unlock()
		kept = true
		s.log.Info("asked to stop")
		s.stop()
		return
	case hash == "":
		reply(toolReply{Exit: exitUsage, Error: fmt.Sprintf("no tool %q", req.Tool), Class: "usage"})
		return
	}
	// The client going away (go killed it) cancels the run.
	go func() {
		io.Copy(io.Discard, br)
		cancel()
	}()
	began := time.Now()
	var rep toolReply
	tried := make([]bool, len(s.targets))
	var wrote atomic.Bool // output reached the client: a retry would repeat it
	stdout := countedWriter{frameWriter{&mu, c, 'o'}, &wrote}
	stderr := countedWriter{frameWriter{&mu, c, 'e'}, &wrote}
	// A target that cannot be started, or is lost before the run said
	// anything, is passed over, and the run goes to another: tool runs
	// are idempotent (each writes its own outputs in $WORK), and a build
	// over several machines need not fail for one that is down.
	for i := s.pick(req.Key, tried); i >= 0; i = s.pick(req.Key, tried) {
		tried[i] = true
		rep = s.runOn(ctx, i, hash, &req, stdout, stderr)
		s.release(i)
		if rep.Class != "infra" || rep.local || wrote.Load() || ctx.Err() != nil {
			break
		}
		s.markDown(i)
		s.log.Warn("target failed: passed over for a while, the run tried on another if one is left", "target", s.targets[i], "err", rep.Error)
	}
	rep.Elapsed = int64(time.Since(began))
	reply(rep)
}

// runOn runs req on target i and says how it went.
func (s *toolServer) runOn(ctx context.Context, i int, hash string, req *toolRequest, stdout, stderr io.Writer) toolReply {
	rep := toolReply{Target: s.targets[i]}
	cx, err := s.fl.Get(ctx, s.chains[i])
	if err != nil {
		s.fl.Forget(s.chains[i])
		rep.Exit, rep.Error, rep.Class = exitCIInfra, err.Error(), "infra"
		return rep
	}
	rep.Shipped = req.Ship || needsShip(s.chains[i])
	res, err := runPlanned(ctx, s.m.Store(), cx, hash, req, rep.Shipped, stdout, stderr)
	var te *spindle.TaskError
	switch {
	case errors.As(err, &te):
		rep.Exit, rep.Error, rep.Kind, rep.Class = 1, te.Message, te.Kind, "task"
	case errors.As(err, new(shipError)):
		rep.Exit, rep.Error, rep.Class, rep.local = exitCIInfra, err.Error(), "infra", true
	case err != nil:
		s.fl.Forget(s.chains[i]) // lost: the next run starts it again
		rep.Exit, rep.Error, rep.Class = exitCIInfra, err.Error(), "infra"
	default:
		rep.Exit = res.ExitCode
	}
	return rep
}

// countedWriter notes in wrote that something was written through it.
type countedWriter struct {
	w     io.Writer
	wrote *atomic.Bool
}

func (c countedWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		c.wrote.Store(true)
	}
	return c.w.Write(p)
}
