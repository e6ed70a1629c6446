package spindle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spindle-hq/spindle/broker"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// Defaults for Config's zero values.
const (
	DefaultMasterGrace    = 5 * time.Second
	DefaultChildGrace     = 3 * time.Second
	defaultConnectTimeout = 30 * time.Second
)

// Config configures a Master. The zero value means the defaults.
type Config struct {
	// Name of the master context in logs; "master" by default.
	Name string
	// Logger receives the master's records and every record forwarded from
	// the tree (with a "context" attribute naming where it came from). nil
	// discards them.
	Logger *slog.Logger
	// LogLevel is the level below which children do not even send records.
	// The zero value is slog.LevelInfo.
	LogLevel slog.Level
	// MaxMessageSize bounds every message in the tree (it is handed to every
	// child). 0 means wire.DefaultMaxMessageSize.
	MaxMessageSize uint32
	// Unidirectional forbids siblings from talking to each other through
	// their parent, everywhere in the tree.
	Unidirectional bool
	// Grace is how long Close waits for the tree to shut down before killing
	// what is left; 0 means DefaultMasterGrace.
	Grace time.Duration
	// ChildGrace is the grace period each child gives its own children;
	// 0 means DefaultChildGrace.
	ChildGrace time.Duration
	// ConnectTimeout bounds starting one child, handshake included; 0 means
	// 30 s.
	ConnectTimeout time.Duration
	// StallTimeout is how long the master waits for room on a direct
	// child's stream while the child takes no bytes at all before it cuts
	// the child off as stalled (see routing.Config.StallTimeout); 0 means
	// routing.DefaultStallTimeout.
	StallTimeout time.Duration
	// Executable is the binary re-executed for local children; empty means
	// this program (os.Executable). It must call MaybeRunChild.
	Executable string
	// CacheDir is where the master and its local children keep wasm
	// modules and their compiled code, so a module crosses the wire and
	// compiles once per machine. Empty means $XDG_CACHE_HOME/spindle (or
	// ~/.cache/spindle); "-" keeps everything in memory. Contexts on other
	// machines or running as other users use their own user's cache.
	CacheDir string
}

// Master is the root of a context tree. It is safe for concurrent use.
type Master struct {
	n *node
}

// NewMaster starts a master broker and router.
func NewMaster(cfg Config) (*Master, error) {
	if cfg.Name == "" {
		cfg.Name = "master"
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultMasterGrace
	}
	if cfg.ChildGrace <= 0 {
		cfg.ChildGrace = DefaultChildGrace
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.Executable == "" {
		cfg.Executable = executable()
	}
	cfg.CacheDir = resolveCacheDir(cfg.CacheDir)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := broker.New(broker.Config{Logger: log, Grace: cfg.Grace})
	r := routing.New(b, routing.Config{MaxMessageSize: cfg.MaxMessageSize, Unidirectional: cfg.Unidirectional, StallTimeout: cfg.StallTimeout})
	n, err := newNode(cfg.Name, b, r, log, nil, cfg.CacheDir, false)
	if err != nil {
		b.Close()
		return nil, err
	}
	n.exe = cfg.Executable
	n.childGrace = cfg.ChildGrace
	n.logLevel = cfg.LogLevel
	n.connectTO = cfg.ConnectTimeout
	if err := n.serve(); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := r.AddHandler(n.onForwardLog, routing.HandlerOptions{Handle: wire.HandleForwardLog}); err != nil {
		b.Close()
		return nil, err
	}
	return &Master{n: n}, nil
}

// CacheDir is the directory the master keeps its caches below, as
// Config.CacheDir resolved it ("" when they are in memory only). Tools
// that keep caches of their own (spindle ci's action cache) put them
// beside.
func (m *Master) CacheDir() string { return m.n.cacheDir }

// Router returns the master's router, for sending and receiving messages
// directly.
func (m *Master) Router() *routing.Router { return m.n.r }

// Close shuts the whole tree down: SHUTDOWN to every child, up to
// Config.Grace for the tree to leave, then every remaining child is killed;
// it returns once every child has been reaped and every goroutine has
// exited. It is idempotent.
func (m *Master) Close() error {
	m.n.b.Shutdown(0)
	<-m.n.b.Done()
	return nil
}

// Done is closed when the master has finished shutting down.
func (m *Master) Done() <-chan struct{} { return m.n.b.Done() }

// LocalOptions configures a local child context.
type LocalOptions struct {
	// Name of the context; "local.<id>" by default.
	Name string
	// Sandbox: see ChildOptions.Sandbox.
	Sandbox bool
}

// StartLocal starts a child context on this machine, as a direct child of
// the master.
func (m *Master) StartLocal(ctx context.Context, opts LocalOptions) (*Context, error) {
	return m.Start(ctx, ChildOptions{Name: opts.Name, Sandbox: opts.Sandbox})
}

// ChildOptions says how to start a child context: which connection method,
// and that method's settings. The zero value is a local child.
type ChildOptions struct {
	// Name of the context; derived from the method by default
	// ("ssh.<host>", "sudo.<user>", "local.<id>", ...).
	Name string
	// Method is "local" (the default), "ssh", "sudo", "docker", "podman" or
	// "kubectl".
	Method string
	// User: ssh login user; sudo target user (default root); container
	// user; for local, run the child as this user (root only).
	User string
	// Host and Port for ssh (the system ssh client, so ~/.ssh/config,
	// agents and ProxyJump apply).
	Host string
	Port int
	// Identity is an ssh private key file; HostKeyCheck sets ssh's
	// StrictHostKeyChecking ("yes", "no", "accept-new"; empty: ssh's config
	// decides); SSHOptions are extra "-o K=V" options; KeepAlive sets
	// ServerAliveInterval. BatchMode is on unless NoBatch.
	Identity     string
	HostKeyCheck string
	SSHOptions   []string
	KeepAlive    time.Duration
	NoBatch      bool
	// SSHConfig is an ssh client config file (ssh -F). Its path is read
	// by the ssh that starts the child, on the machine of the context that
	// starts it: for Context.Start, that context's machine.
	SSHConfig string
	// Container for docker and podman exec (and kubectl's -c); Pod,
	// Namespace and KubeContext for kubectl exec.
	Container   string
	Pod         string
	Namespace   string
	KubeContext string
	// Password answers sudo's password prompt. It is written to sudo's
	// prompt only: never in argv, logs or errors.
	Password string
	// ConnectTimeout bounds the start; 0 means Config.ConnectTimeout.
	ConnectTimeout time.Duration
	// Sandbox makes the child confine its own process, right after the
	// handshake and before it serves anything, with the OS's layers under
	// wasm: no_new_privs, rlimits (4096 descriptors, no core dumps) and
	// Landlock (file access only to its cache dir and its work root, no
	// program execution). It keeps its
	// cache in a "sandbox" directory below the one it would use, so that
	// nothing it writes is read by a context that is not sandboxed. A
	// sandboxed context is a leaf: it refuses to start children. Its
	// "sandbox" function says which layers are active (docs/SECURITY.md).
	Sandbox bool
}

func (o *ChildOptions) wire() *wire.StartChild {
	return &wire.StartChild{Name: o.Name, Method: o.Method, User: o.User, Host: o.Host, Port: o.Port,
		Identity: o.Identity, HostKeyCheck: o.HostKeyCheck, SSHOptions: o.SSHOptions, SSHConfig: o.SSHConfig, KeepAliveNs: int64(o.KeepAlive),
		NoBatch: o.NoBatch, Container: o.Container, Namespace: o.Namespace, Pod: o.Pod, KubeContext: o.KubeContext,
		ConnectTimeout: int64(o.ConnectTimeout), Password: o.Password, Sandbox: o.Sandbox}
}

// Start starts a child context as a direct child of the master. A failed
// start is a *StartError.
func (m *Master) Start(ctx context.Context, opts ChildOptions) (*Context, error) {
	spec, err := m.n.transport(opts.wire())
	if err != nil {
		return nil, err
	}
	c, err := m.n.startChild(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &Context{m: m, id: c.id, name: c.name, parent: 0, pid: c.cmd.Process.Pid, sentBinary: c.sentBinary}, nil
}

// Context is a handle on one context of the tree. It is a small value safe
// for concurrent use; it stays valid (and fails with ErrNoRoute or
// ErrDisconnected) after the context is gone.
type Context struct {
	m          *Master
	id         uint32
	name       string
	parent     uint32
	pid        int
	sentBinary bool
}

// SentBinary reports whether starting the context had to send the broker
// binary (false when the remote cache had it, and for local children).
func (c *Context) SentBinary() bool { return c.sentBinary }

// ID returns the context's ID.
func (c *Context) ID() uint32 { return c.id }

// Name returns the context's name.
func (c *Context) Name() string { return c.name }

// Parent returns the ID of the context that started this one.
func (c *Context) Parent() uint32 { return c.parent }

// PID returns the context's process ID, on its own machine.
func (c *Context) PID() int { return c.pid }

func (c *Context) String() string { return fmt.Sprintf("%s(%d)", c.name, c.id) }

// Call runs the native function fn in the context with args (msgpack-
// encoded; nil for none) and decodes its result into result (unless nil).
func (c *Context) Call(ctx context.Context, fn string, args, result any) error {
	p, err := c.CallAsync(ctx, fn, args)
	if err != nil {
		return err
	}
	return p.Wait(ctx, result)
}

// PendingCall is a call in flight; see Context.CallAsync.
type PendingCall struct {
	p  *routing.Pending
	fn string
	c  *Context
}

// CallAsync starts a call and returns without waiting for the reply, so
// many calls can be in flight at once (pipelining).
func (c *Context) CallAsync(ctx context.Context, fn string, args any) (*PendingCall, error) {
	req := wire.CallRequest{Fn: fn}
	if args != nil {
		var err error
		if req.Args, err = msgpack.Marshal(args); err != nil {
			return nil, fmt.Errorf("spindle: call %s on %s: encode args: %w", fn, c, err)
		}
	}
	body, err := msgpack.Marshal(&req)
	if err != nil {
		return nil, fmt.Errorf("spindle: call %s on %s: %w", fn, c, err)
	}
	p, err := c.m.n.r.CallAsync(ctx, c.id, wire.HandleCall, wire.EncMsgpack, body)
	if err != nil {
		return nil, fmt.Errorf("spindle: call %s on %s: %w", fn, c, err)
	}
	return &PendingCall{p: p, fn: fn, c: c}, nil
}

// Wait waits for the reply and decodes it into result (unless nil).
func (p *PendingCall) Wait(ctx context.Context, result any) error {
	reply, err := p.p.Wait(ctx)
	if err != nil {
		return fmt.Errorf("spindle: call %s on %s: %w", p.fn, p.c, err)
	}
	if result == nil {
		return nil
	}
	if err := wire.Unmarshal(reply.Body, result); err != nil {
		return fmt.Errorf("spindle: call %s on %s: decode result: %w", p.fn, p.c, err)
	}
	return nil
}

// Ping checks the context answers.
func (c *Context) Ping(ctx context.Context) error {
	return c.Call(ctx, "ping", nil, nil)
}

// StartLocal starts a child context on this context's machine, as its child
// (the master reaches it through this context).
func (c *Context) StartLocal(ctx context.Context, opts LocalOptions) (*Context, error) {
	return c.Start(ctx, ChildOptions{Name: opts.Name, Sandbox: opts.Sandbox})
}

// Start starts a child of this context, by any connection method: the
// transport runs on this context's machine, as this context's user. A
// failed start is a *StartError, classed by this context.
func (c *Context) Start(ctx context.Context, opts ChildOptions) (*Context, error) {
	req := opts.wire()
	body, err := msgpack.Marshal(req)
	if err != nil {
		return nil, &StartError{Class: ClassOther, Name: opts.Name, Detail: oneLine(err.Error()), Err: err}
	}
	reply, err := c.m.n.r.Call(ctx, c.id, wire.HandleStartChild, wire.EncMsgpack, body)
	if err != nil {
		return nil, remoteStartError(ctx, c, req, err)
	}
	var st wire.ChildStarted
	if err := wire.Unmarshal(reply.Body, &st); err != nil {
		return nil, &StartError{Class: ClassOther, Name: opts.Name, Detail: "undecodable reply from context " + c.name, Err: err}
	}
	return &Context{m: c.m, id: st.ID, name: st.Name, parent: c.id, pid: st.PID, sentBinary: st.SentBinary}, nil
}

// Disconnected is closed once the context is gone (and its routes with it).
func (c *Context) Disconnected() <-chan struct{} { return c.m.n.r.Disconnected(c.id) }

// Shutdown asks the context to shut down with its subtree and waits until it
// has gone. If it has not gone within its grace period (stuck, or ignoring
// SHUTDOWN), its parent kills it. It returns when the context is gone or ctx
// is done.
func (c *Context) Shutdown(ctx context.Context) error {
	n := c.m.n
	gone := c.Disconnected()
	m := &wire.Message{Enc: wire.EncMsgpack, Dst: c.id, Handle: wire.HandleShutdown}
	if err := n.r.Send(ctx, m); err != nil {
		return fmt.Errorf("spindle: shutdown %s: %w", c, err)
	}
	timer := time.NewTimer(n.childGrace + exitSlack)
	defer timer.Stop()
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("spindle: shutdown %s: %w", c, ctx.Err())
	case <-timer.C:
	}
	n.log.Warn("context did not shut down within its grace period; killing it", "context", c.name)
	if err := c.kill(ctx); err != nil && !errors.Is(err, routing.ErrNotFound) {
		return fmt.Errorf("spindle: shutdown %s: kill: %w", c, err)
	}
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("spindle: shutdown %s: %w", c, ctx.Err())
	}
}

// kill asks the context's parent to kill it at once.
func (c *Context) kill(ctx context.Context) error {
	n := c.m.n
	if c.parent == n.r.ID() {
		return n.stopChild(c.id)
	}
	body, _ := msgpack.Marshal(&wire.Route{ID: c.id})
	_, err := n.r.Call(ctx, c.parent, wire.HandleStopChild, wire.EncMsgpack, body)
	return err
}

// resolveCacheDir turns a configured cache dir into the one to use: "" is
// the user's cache dir, "-" (or no usable home) memory only ("").
func resolveCacheDir(dir string) string {
	switch dir {
	case "":
		if d, err := os.UserCacheDir(); err == nil {
			return filepath.Join(d, "spindle")
		}
		return ""
	case "-":
		return ""
	}
	return dir
}

// OptionsFor converts one hop of a target (see package target) to the
// options that start it.
func OptionsFor(h target.Hop) ChildOptions {
	o := ChildOptions{Name: h.Name, Method: h.Method, User: h.User, Host: h.Host, Port: h.Port,
		Identity: h.Identity, HostKeyCheck: h.HostKeyCheck, SSHOptions: h.SSHOptions, SSHConfig: h.SSHConfig, KeepAlive: h.KeepAlive,
		NoBatch: h.Method == "ssh" && !h.Batch, Container: h.Container, Pod: h.Pod, Namespace: h.Namespace,
		KubeContext: h.KubeContext, ConnectTimeout: h.ConnectTimeout}
	if h.Method == "local" {
		o.Method = ""
	}
	return o
}

// StartTarget starts every hop of a target chain (e.g.
// "ssh://bastion/ssh://web1/sudo://root", parsed by target.Parse), each
// through the one before, and returns the last. A failed start is a
// *StartError naming the hop.
func (m *Master) StartTarget(ctx context.Context, t target.Target) (*Context, error) {
	var c *Context
	for i, h := range t {
		var err error
		if c == nil {
			c, err = m.Start(ctx, OptionsFor(h))
		} else {
			c, err = c.Start(ctx, OptionsFor(h))
		}
		if err != nil {
			return nil, withHop(err, i, h)
		}
	}
	if c == nil {
		return nil, &StartError{Class: ClassRefused, Detail: "empty target"}
	}
	return c, nil
}
