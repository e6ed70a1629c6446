package spindle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// childEnv names the environment variable that turns a process into a child
// broker: its value is the file descriptor of the stream to the parent.
const childEnv = "SPINDLE_CHILD_FD"

// childFDs are the descriptors a local child gets its stream on, "read,write":
// one end of a socketpair its parent writes to, and the write end of a pipe
// back. The way up is a pipe because a round trip over pipes costs about half
// what one over a socket does (docs/RATIONALE.md: a socket's reader wakes the
// writer's poller at every read, a pipe's only when it was full). The way
// down stays a socket because its buffer can be 4 MiB where a pipe holds at
// most fs.pipe-max-size (1 MiB), and bulk data mostly flows down.
const childFDs = "3,4"

const (
	socketBuffer = 4 << 20 // SO_SNDBUF asked for on the way down (capped at net.core.wmem_max)
	pipeBuffer   = 1 << 20 // the capacity asked for on the way up (capped at fs.pipe-max-size)
)

// Reaping after a child's stream closes: SIGTERM if it has not exited after
// reapTermAfter, SIGKILL after reapKillAfter.
const (
	reapTermAfter = 50 * time.Millisecond
	reapKillAfter = time.Second
)

// ErrChildStart marks every failure to start a child (exec, handshake,
// route announcement): errors.Is(err, spindle.ErrChildStart).
var ErrChildStart = errors.New("spindle: child start failed")

// childProc is a direct child process and its stream.
type childProc struct {
	id     uint32
	name   string
	cmd    *exec.Cmd
	stream *broker.Stream // set under node.mu before the child is listed in node.children
	exited chan struct{}  // closed once the process has been reaped
	status string         // how it exited; written before exited is closed

	tailMu sync.Mutex
	tail   []string // guarded by tailMu: last lines of the child's stderr, for start errors

	sentBinary   bool          // the bootstrap had to send the broker binary (set before the child is listed)
	transportUp  bool          // the bootstrap script answered: the transport itself worked
	connectTO    time.Duration // bounds its bootstrap and handshake
	cacheDir     string        // Hello.CacheDir for it: ours for a local child of our user, else its own default
	sandbox      bool          // Hello.Sandbox for it
	outDone      chan struct{} // closed when its output has been read to the end
	stdin        io.Writer     // the stream toward the child, for a secret
	secretPrompt string
	secretMu     sync.Mutex
	secret       string // guarded by secretMu: written once when secretPrompt appears on stderr, until disarmed
	answered     bool   // guarded by secretMu: the secret was written, and the transport has not answered since
	// secretRefused is set when the prompt came again after the secret was
	// written: sudo said "Sorry, try again" and asks anew (passwd_tries). The
	// start fails at once, as an authentication failure, instead of waiting
	// out the connect timeout at a prompt no one answers.
	secretRefused atomic.Bool
	errR          *os.File
}

// disarmSecret forgets the secret: once the transport has answered, nothing
// the child prints may make us write it into the stream, nor count as a
// refusal.
func (c *childProc) disarmSecret() {
	c.secretMu.Lock()
	c.secret, c.answered = "", false
	c.secretMu.Unlock()
}

// takeSecret returns the secret once; a second prompt (the secret was
// written and the transport asks again) returns again=true.
func (c *childProc) takeSecret() (s string, again bool) {
	c.secretMu.Lock()
	defer c.secretMu.Unlock()
	if c.answered {
		return "", true
	}
	s = c.secret
	c.secret = ""
	c.answered = s != ""
	return s, false
}

// drainOutput waits (briefly) until the child's output has been read, so
// tailLines holds what a transport printed before it exited.
func (c *childProc) drainOutput() {
	select {
	case <-c.outDone:
	case <-time.After(time.Second):
	}
}

func (c *childProc) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
}

func (c *childProc) addLine(line string) {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	if len(c.tail) == 20 {
		c.tail = c.tail[1:]
	}
	c.tail = append(c.tail, line)
}

func (c *childProc) tailLines() []string {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	return append([]string(nil), c.tail...)
}

// childSpec says how to start one child process.
type childSpec struct {
	name string
	// argv, when set, is a transport command (ssh, sudo, docker exec, ...)
	// that runs the bootstrap script on the other side; the stream is its
	// stdin and stdout. Unset: re-execute this binary over a socketpair.
	argv []string
	// label names the transport in errors ("ssh web1", "local").
	label string
	// connectTO bounds the bootstrap and the handshake.
	connectTO time.Duration
	// cred runs a local child as another user (root only), with HOME set to
	// home.
	cred *syscall.Credential
	home string
	// secret, if set, is written to the transport's stdin when it prints
	// secretPrompt on stderr (a sudo password); it never appears in argv,
	// logs or errors.
	secret       string
	secretPrompt string
	// sandbox is Hello.Sandbox: the child confines itself.
	sandbox bool
	// req is the request it was made from, for the hints of a failed
	// start; nil for a plain local child.
	req *wire.StartChild
}

// startChild starts a child process (see childSpec), bootstraps it if it
// is remote, does the handshake and announces its route upward.
func (n *node) startChild(ctx context.Context, spec childSpec) (*childProc, error) {
	name := spec.name
	// failed is the error of this start, failed with class and detail.
	failed := func(class StartClass, detail string, err error) *StartError {
		return &StartError{Class: class, Name: name, Label: spec.label, Detail: detail, Err: err}
	}
	if err := n.refuseIfSandboxed(); err != nil {
		err.Name, err.Label = name, spec.label
		return nil, err
	}
	id, err := n.r.AllocateID(ctx)
	if err != nil {
		return nil, failed(causeClass(ctx, n, err), "allocate an ID: "+oneLine(remoteMessage(err)), err)
	}
	if name == "" {
		name = "local." + strconv.FormatUint(uint64(id), 10)
	}
	var conn deadlineConn
	var childEnds []*os.File         // a local child's ends of its pipes
	var remoteIn, remoteOut *os.File // the transport's stdin (read end) and stdout (write end)
	if spec.argv == nil {
		down, err := socketPair()
		if err != nil {
			return nil, failed(ClassOther, "socketpair: "+err.Error(), err)
		}
		up, err := pipePair()
		if err != nil {
			down[0].Close()
			down[1].Close()
			return nil, failed(ClassOther, "pipe: "+err.Error(), err)
		}
		childEnds = []*os.File{down[1], up[1]}
		conn = &pipeConn{r: up[0], w: down[0]}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, failed(ClassOther, "pipe: "+err.Error(), err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, failed(ClassOther, "pipe: "+err.Error(), err)
		}
		remoteIn, remoteOut = inR, outW
		conn = &pipeConn{r: outR, w: inW}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		for _, f := range append([]*os.File{remoteIn, remoteOut}, childEnds...) {
			if f != nil {
				f.Close()
			}
		}
		conn.Close()
		return nil, failed(ClassOther, "pipe: "+err.Error(), err)
	}
	var cmd *exec.Cmd
	if spec.argv == nil {
		cmd = exec.Command(n.exe)
		cmd.Env = append(os.Environ(), childEnv+"="+childFDs)
		if spec.cred != nil {
			// The user's own home and cache, not ours.
			cmd.Env = append(cmd.Env, "HOME="+spec.home, "XDG_CACHE_HOME=")
		}
		cmd.Stdout, cmd.Stderr = errW, errW
		cmd.ExtraFiles = childEnds
	} else {
		cmd = exec.Command(spec.argv[0], spec.argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = remoteIn, remoteOut, errW
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: spec.cred}
	connectTO := spec.connectTO
	if connectTO <= 0 {
		connectTO = n.connectTO
	}
	n.log.Debug("starting child", "child", name, "via", n.name, "cmd", spec.commandLine(n.exe), "connect_timeout", connectTO)
	err = cmd.Start()
	for _, f := range append([]*os.File{remoteIn, remoteOut, errW}, childEnds...) {
		if f != nil {
			f.Close()
		}
	}
	if err != nil {
		conn.Close()
		errR.Close()
		return nil, failed(ClassOther, oneLine(err.Error()), err)
	}
	c := &childProc{id: id, name: name, cmd: cmd, exited: make(chan struct{}), outDone: make(chan struct{}),
		secret: spec.secret, secretPrompt: spec.secretPrompt, stdin: conn, errR: errR, connectTO: connectTO, sandbox: spec.sandbox}
	if spec.argv == nil && spec.cred == nil {
		// Same machine, same user: share our cache ("-" keeps memory only).
		c.cacheDir = n.cacheDir
		if c.cacheDir == "" {
			c.cacheDir = "-"
		}
	}
	// The stderr reader and the reaper are owned by the broker; if it is
	// already shutting down, clean up here.
	if err := n.b.Go(func(context.Context) { n.readChildOutput(c, errR) }); err != nil {
		errR.Close()
		conn.Close()
		c.kill()
		_ = cmd.Wait()
		return nil, failed(ClassCancelled, "this context is shutting down", err)
	}
	if err := n.b.Go(func(context.Context) { n.reap(c) }); err != nil {
		conn.Close()
		c.kill()
		_ = cmd.Wait()
		return nil, failed(ClassCancelled, "this context is shutting down", err)
	}
	// A transport that exits ends the start at once, even if a descendant
	// of it still holds the pipes.
	starting := make(chan struct{})
	var exitedEarly atomic.Bool
	go func() {
		select {
		case <-c.exited:
			exitedEarly.Store(true)
			_ = conn.SetDeadline(time.Unix(1, 0))
		case <-starting:
		}
	}()
	err = nil
	phase := "handshake"
	if spec.argv != nil {
		phase = "bootstrap"
		err = n.bootstrap(ctx, conn, c)
	}
	if err == nil {
		phase = "handshake"
		err = n.handshake(ctx, conn, c)
	}
	close(starting)
	if err != nil {
		conn.Close()
		c.kill()
		<-c.exited
		c.drainOutput()
		se := failed(ClassOther, "", err)
		se.Class, se.Detail = n.whyFailed(ctx, c, spec, phase, err, exitedEarly.Load())
		se.Hint = hintFor(se.Class, se.Detail, spec.req)
		if inner, ok := err.(*StartError); ok {
			se.Err = inner.Err
		} else if exitedEarly.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline was our own cut when the transport exited:
			// the cause is the stream's end, not a timeout.
			se.Err = fmt.Errorf("%w: the child exited (%v)", io.ErrUnexpectedEOF, err)
		}
		n.log.Info("child start failed", "child", name, "transport", spec.label, "pid", cmd.Process.Pid, "status", c.status, "err", err)
		return nil, se
	}
	s, err := n.r.AddChild(ctx, conn, id, name)
	if err != nil {
		c.kill()
		return nil, failed(causeClass(ctx, n, err), "add its route: "+oneLine(remoteMessage(err)), err)
	}
	// List the child only now that its stream is set: shutdownChildren and
	// stopChild use c.stream as soon as they find the child in n.children.
	n.mu.Lock()
	c.stream = s
	n.children[id] = c
	n.mu.Unlock()
	if err := n.b.Go(func(context.Context) {
		// Ends with the stream, which the broker closes at the latest
		// during shutdown.
		<-s.Done()
		n.onChildStreamClosed(c)
	}); err != nil {
		s.Close()
		n.onChildStreamClosed(c)
	}
	// A shutdown that began while the child was being added may have told
	// the children to leave before this one was listed: tell it now (a
	// second SHUTDOWN is harmless).
	select {
	case <-n.b.ShuttingDown():
		n.sendShutdown(c)
	default:
	}
	n.log.Debug("child started", "child", name, "id", id, "pid", cmd.Process.Pid)
	return c, nil
}

// commandLine is the command spec runs, for the log: shell-quoted where a
// word needs it, the bootstrap script (always the same, and long) as
// <bootstrap script>, and the secret, should it ever be in argv, masked.
// exe is what a spec without argv re-executes.
func (spec childSpec) commandLine(exe string) string {
	argv, env := spec.argv, ""
	if argv == nil {
		argv, env = []string{exe}, childEnv+"="+childFDs+" "
	}
	words := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case a == bootScript || a == "sh -c "+shellQuote(bootScript):
			words[i] = "<bootstrap script>"
			continue
		case spec.secret != "":
			a = strings.ReplaceAll(a, spec.secret, "***")
		}
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return !isShellSafe(r) }) {
			a = shellQuote(a)
		}
		words[i] = a
	}
	return env + strings.Join(words, " ")
}

// isShellSafe reports whether r needs no quoting in a shell word.
func isShellSafe(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_./=:,@+%", r)
}

// whyFailed is the class and detail of a bootstrap or handshake that
// failed with err in phase ("bootstrap" or "handshake"), once the process
// has gone and its output has been read: the same words for the same
// failure, whichever of the racing errors (EOF, a broken pipe, a deadline)
// came first.
func (n *node) whyFailed(ctx context.Context, c *childProc, spec childSpec, phase string, err error, exitedEarly bool) (StartClass, string) {
	var se *StartError
	if errors.As(err, &se) { // the bootstrap's or handshake's own verdict
		return se.Class, se.Detail
	}
	lines := c.tailLines()
	label := spec.label
	if spec.argv == nil {
		label = "the child"
	}
	timedOut := func(within string) string {
		switch {
		case phase == "handshake":
			return "the child did not answer the handshake " + within
		case c.transportUp:
			return "the bootstrap on " + label + " did not finish " + within
		}
		return label + " did not answer " + within
	}
	if c.secretRefused.Load() {
		return ClassAuth, "sudo: incorrect password (sudo asked for it again)"
	}
	connectTO := "within the connect timeout (" + c.connectTO.String() + ")"
	if !c.transportUp { // what failed may be ssh or sudo itself
		if class, line, ok := classify(lines); ok {
			if class == ClassTimeout { // ssh's ConnectTimeout: ours, by another clock
				return class, timedOut(connectTO)
			}
			return class, line
		}
	}
	select {
	case <-n.b.ShuttingDown():
		return ClassCancelled, "this context is shutting down"
	default:
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ClassTimeout, timedOut("before the caller's deadline")
	case ctx.Err() != nil:
		return ClassCancelled, "the start was cancelled"
	case errors.Is(err, os.ErrDeadlineExceeded) && !exitedEarly:
		return ClassTimeout, timedOut(connectTO)
	}
	if line := lastMeaningful(lines); line != "" {
		return ClassLost, line
	}
	if phase == "handshake" {
		return ClassLost, "the child closed its stream before the handshake"
	}
	return ClassLost, label + " closed the connection before the bootstrap finished"
}

// causeClass is the class of a failure of the start's own machinery (an
// ID, a route) with err.
func causeClass(ctx context.Context, n *node, err error) StartClass {
	select {
	case <-n.b.ShuttingDown():
		return ClassCancelled
	default:
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ClassTimeout
	case ctx.Err() != nil, errors.Is(err, routing.ErrShutdown):
		return ClassCancelled
	case errors.Is(err, routing.ErrRefused):
		return ClassRefused
	case errors.Is(err, routing.ErrDisconnected), errors.Is(err, routing.ErrNoRoute):
		return ClassLost
	}
	return ClassOther
}

// bound puts the connect timeout on conn and cuts it short when ctx ends or
// the broker shuts down. The returned release waits for a cut in progress,
// then clears the deadline, so a start that succeeded as ctx ended never
// hands on a stream with a deadline in the past.
func (n *node) bound(ctx context.Context, conn deadlineConn, timeout time.Duration) (release func()) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	var stops []func() bool
	var cuts sync.WaitGroup
	for _, c := range []context.Context{ctx, n.b.Context()} {
		cuts.Add(1)
		stop := context.AfterFunc(c, func() {
			defer cuts.Done()
			_ = conn.SetDeadline(time.Unix(1, 0))
		})
		stops = append(stops, func() bool {
			if stop() {
				cuts.Done() // it will never run
				return true
			}
			return false
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
		cuts.Wait()
		_ = conn.SetDeadline(time.Time{})
	}
}

// handshake sends Hello and waits for HelloAck on the raw connection, before
// the stream exists, within the connect timeout.
func (n *node) handshake(ctx context.Context, conn deadlineConn, c *childProc) error {
	defer n.bound(ctx, conn, c.connectTO)()
	hello := wire.Hello{
		Version:        wire.ProtocolVersion,
		ID:             c.id,
		Name:           c.name,
		ParentIDs:      append([]uint32{n.r.ID()}, n.r.ParentIDs()...),
		MaxMessageSize: n.r.MaxMessageSize(),
		LogLevel:       int(n.logLevel),
		Unidirectional: n.r.Unidirectional(),
		ShutdownGrace:  int64(n.childGrace),
		CacheDir:       c.cacheDir,
		Sandbox:        c.sandbox,
	}
	body, err := msgpack.Marshal(&hello)
	if err != nil {
		return err
	}
	m := &wire.Message{Enc: wire.EncMsgpack, Dst: c.id, Src: n.r.ID(), Auth: n.r.ID(), Handle: wire.HandleHello, Body: body}
	if _, err := conn.Write(m.AppendFrame(nil)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	n.log.Log(ctx, LevelTrace, "handshake: hello sent", "child", c.name, "id", c.id, "version", hello.Version)
	reply, err := wire.ReadMessage(conn, make([]byte, wire.HeaderLen), 1<<16)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("read hello reply: %w", err)
	}
	var ack wire.HelloAck
	if reply.Handle != wire.HandleHello || wire.Unmarshal(reply.Body, &ack) != nil {
		return &StartError{Class: ClassOther, Detail: fmt.Sprintf("the child's first frame is not a hello reply (handle %d)", reply.Handle)}
	}
	if ack.Error != "" {
		return &StartError{Class: ClassRefused, Detail: "the child refused the handshake: " + oneLine(ack.Error)}
	}
	if ack.Version != wire.ProtocolVersion || ack.ID != c.id {
		return &StartError{Class: ClassRefused, Detail: fmt.Sprintf("the child answered the handshake for protocol version %d, want %d", ack.Version, wire.ProtocolVersion)}
	}
	n.log.Log(ctx, LevelTrace, "handshake: hello acknowledged", "child", c.name, "id", c.id, "pid", ack.PID)
	return nil
}

// readChildOutput forwards the child's stdout and stderr, line by line, as
// log records tagged with its name.
func (n *node) readChildOutput(c *childProc, r *os.File) {
	defer close(c.outDone)
	defer r.Close()
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for {
		k, err := r.Read(chunk)
		buf = append(buf, chunk[:k]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := string(bytes.TrimRight(buf[:i], "\r"))
			buf = buf[i+1:]
			c.addLine(line)
			n.forwardLine(c.name, line)
		}
		// A password prompt does not end its line: answer it as soon as
		// it appears, once, and keep it out of the logs.
		if c.secretPrompt != "" && bytes.HasSuffix(buf, []byte(c.secretPrompt)) {
			buf = buf[:len(buf)-len(c.secretPrompt)]
			switch secret, again := c.takeSecret(); {
			case again:
				c.secretRefused.Store(true)
				c.kill()
			case secret != "":
				_, _ = io.WriteString(c.stdin, secret+"\n")
			}
		}
		if len(buf) > 64<<10 {
			buf = buf[:0]
		}
		if err != nil {
			if len(buf) > 0 {
				line := string(buf)
				c.addLine(line)
				n.forwardLine(c.name, line)
			}
			return
		}
	}
}

// reap waits for the child to exit. Once its stream has closed it gets
// reapTermAfter to exit by itself, then SIGTERM, then SIGKILL: no orphans, no
// zombies.
func (n *node) reap(c *childProc) {
	waited := make(chan error, 1)
	go func() { waited <- c.cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-n.b.ShuttingDown():
		err = n.reapAfterShutdown(c, waited)
	}
	c.status = exitStatus(err)
	close(c.exited)
	// A descendant of the transport may still hold its stderr: give the
	// reader a moment for the last lines, then let it go.
	_ = c.errR.SetReadDeadline(time.Now().Add(time.Second))
	n.log.Debug("child reaped", "child", c.name, "id", c.id, "status", exitStatus(err))
	n.mu.Lock()
	s := c.stream
	n.mu.Unlock()
	if s != nil {
		s.CloseWithError(fmt.Errorf("child %s exited: %s", c.name, exitStatus(err)))
	}
}

// reapAfterShutdown waits for the child while the broker shuts down: the
// broker closes the child's stream at the latest after the grace period,
// after which the child has reapTermAfter and reapKillAfter.
func (n *node) reapAfterShutdown(c *childProc, waited chan error) error {
	select {
	case err := <-waited:
		return err
	case <-n.b.Context().Done():
	}
	return termThenKill(c, waited)
}

func termThenKill(c *childProc, waited chan error) error {
	select {
	case err := <-waited:
		return err
	case <-time.After(reapTermAfter):
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-waited:
		return err
	case <-time.After(reapKillAfter - reapTermAfter):
	}
	c.kill()
	return <-waited
}

// onChildStreamClosed runs when a direct child's stream closes: forget the
// child and make sure its process goes.
func (n *node) onChildStreamClosed(c *childProc) {
	n.mu.Lock()
	if n.children[c.id] == c {
		delete(n.children, c.id)
	}
	n.mu.Unlock()
	select {
	case <-c.exited:
	case <-time.After(reapTermAfter):
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(reapKillAfter - reapTermAfter):
			c.kill()
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// selfRSS returns this process's resident set size in bytes, and its peak
// (the high-water mark since it started); -1 where /proc does not say.
func selfRSS() (rss, peak int64) {
	rss, peak = -1, -1
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return rss, peak
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak
}

// socketPair returns the two ends of a stream socketpair, the first
// pollable with a send buffer of socketBuffer (a smaller one, where the kernel
// refuses, is only slower), the second for a child.
func socketPair() ([2]*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return [2]*os.File{}, err
	}
	for _, fd := range fds {
		// The reader's buffer counts too: the kernel holds the bytes in
		// flight against both.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return [2]*os.File{}, err
	}
	return [2]*os.File{os.NewFile(uintptr(fds[0]), "spindle-down"), os.NewFile(uintptr(fds[1]), "spindle-child-down")}, nil
}

// pipePair returns a pipe's read and write ends, asking for pipeBuffer of
// capacity (a smaller one, where the kernel refuses, is only slower).
func pipePair() ([2]*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return [2]*os.File{}, err
	}
	if rc, err := w.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeBuffer) })
	}
	return [2]*os.File{r, w}, nil
}
