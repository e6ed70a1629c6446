package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultGrace is the grace period of a graceful shutdown when Config.Grace
// is zero.
const DefaultGrace = 3 * time.Second

// flushTimeout bounds how long a shutting-down broker waits for frames
// already queued on its non-keep-alive streams (the one to its parent) to be
// written before it closes them.
const flushTimeout = 500 * time.Millisecond

// Config configures a Broker. The zero value is usable.
type Config struct {
	// Logger receives the broker's own records. nil discards them.
	Logger *slog.Logger
	// Grace is how long a graceful shutdown waits for keep-alive streams to
	// close before closing them itself. 0 means DefaultGrace.
	Grace time.Duration
}

// Broker owns the streams and goroutines of one process. It is safe for
// concurrent use.
type Broker struct {
	log   *slog.Logger
	grace time.Duration

	life   context.Context // done once the shutdown sequence has closed the streams
	cancel context.CancelFunc

	streamWG sync.WaitGroup // stream readers and writers
	goWG     sync.WaitGroup // Go goroutines and the loop

	mu         sync.Mutex
	streams    map[*Stream]struct{} // guarded by mu: open streams
	stopping   bool                 // guarded by mu: Shutdown has begun
	onShutdown []func()             // guarded by mu
	onExit     []func()             // guarded by mu
	deferred   []func()             // guarded by mu: work for the loop
	streamGone chan struct{}        // guarded by mu: closed and replaced when a keep-alive stream is removed

	wakeLoop     chan struct{} // 1-buffered: deferred has work
	shutdownCh   chan struct{} // closed when Shutdown begins
	shutdownOnce sync.Once
	force        chan struct{} // closed by Close: cut any grace period short
	forceOnce    sync.Once
	done         chan struct{} // closed when the sequence has finished
}

// New returns a running broker.
func New(cfg Config) *Broker {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	b := &Broker{
		log:        log,
		grace:      cfg.Grace,
		streams:    make(map[*Stream]struct{}),
		streamGone: make(chan struct{}),
		wakeLoop:   make(chan struct{}, 1),
		shutdownCh: make(chan struct{}),
		force:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	b.life, b.cancel = context.WithCancel(context.Background())
	b.goWG.Add(1)
	go b.loop()
	return b
}

// Logger returns the broker's logger.
func (b *Broker) Logger() *slog.Logger { return b.log }

// Context returns the broker's lifetime context, cancelled when the shutdown
// sequence closes the streams. Goroutines started with Go watch it.
func (b *Broker) Context() context.Context { return b.life }

// ShuttingDown is closed when Shutdown begins.
func (b *Broker) ShuttingDown() <-chan struct{} { return b.shutdownCh }

// Done is closed when the shutdown sequence has finished and every goroutine
// the broker started has exited.
func (b *Broker) Done() <-chan struct{} { return b.done }

// OnShutdown registers fn to run, on the shutdown goroutine, when a
// shutdown begins (before the grace period).
func (b *Broker) OnShutdown(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onShutdown = append(b.onShutdown, fn)
}

// OnExit registers fn to run after every stream has closed and its OnClose
// hook has returned, before the broker waits for its Go goroutines.
func (b *Broker) OnExit(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onExit = append(b.onExit, fn)
}

// NewStream starts serving rwc as a stream. The broker owns the stream (and
// through it rwc) from then on, even when NewStream fails: on error rwc has
// been closed.
//
// When rwc is a syscall.Conn (a socket's net.Conn, an *os.File, or a pair
// of pipes that gives the write end's), the stream writes with writev on the
// descriptor its SyscallConn returns, which must be the one rwc writes to
// and be in non-blocking mode (as Go's pollable files and sockets are):
// a small frame then goes out from the sender's goroutine with one
// non-blocking writev, without a hand-off to the writer goroutine.
func (b *Broker) NewStream(rwc io.ReadWriteCloser, cfg StreamConfig) (*Stream, error) {
	if cfg.Handler == nil {
		rwc.Close()
		return nil, fmt.Errorf("broker: stream %s: no handler", cfg.Name)
	}
	s := newStream(b, rwc, cfg)
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		rwc.Close()
		return nil, fmt.Errorf("broker: open stream %s: %w", cfg.Name, ErrShutdown)
	}
	b.streams[s] = struct{}{}
	b.streamWG.Add(2)
	b.mu.Unlock()
	go func() {
		defer b.streamWG.Done()
		s.writeLoop()
		// The writer ends only once the stream is closed, whatever closed
		// it: the close hook runs here even while the reader is stuck in a
		// Handler.
		<-s.done
		if s.cfg.OnClose != nil {
			s.cfg.OnClose(s, s.Err())
		}
		// Gone only once its hook has run: the shutdown sequence, waiting
		// for keep-alive streams, sees a child's cleanup done before it
		// closes the parent.
		b.removeStream(s)
	}()
	go func() {
		defer b.streamWG.Done()
		s.readLoop()
	}()
	return s, nil
}

func (b *Broker) removeStream(s *Stream) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.streams, s)
	if s.cfg.KeepAlive {
		close(b.streamGone)
		b.streamGone = make(chan struct{})
	}
}

// Streams returns the streams open now.
func (b *Broker) Streams() []*Stream {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Stream, 0, len(b.streams))
	for s := range b.streams {
		out = append(out, s)
	}
	return out
}

// Go runs fn on a goroutine owned by the broker. fn must return soon after
// ctx (the broker's lifetime context) is done.
func (b *Broker) Go(fn func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return ErrShutdown
	}
	b.goWG.Add(1)
	go func() {
		defer b.goWG.Done()
		fn(b.life)
	}()
	return nil
}

// Defer queues fn to run on the broker's loop goroutine, after every function
// deferred before it. A function that panics is logged and starts a shutdown.
func (b *Broker) Defer(fn func()) error {
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		return ErrShutdown
	}
	b.deferred = append(b.deferred, fn)
	b.mu.Unlock()
	select {
	case b.wakeLoop <- struct{}{}:
	default:
	}
	return nil
}

// DeferSync runs fn on the loop goroutine and waits for it, or for ctx.
func (b *Broker) DeferSync(ctx context.Context, fn func() error) error {
	res := make(chan error, 1)
	if err := b.Defer(func() { res <- fn() }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.life.Done():
		return ErrShutdown
	}
}

// Timer is a callback scheduled with AfterFunc.
type Timer struct{ t *time.Timer }

// Stop cancels the timer; it reports whether the callback had not yet been
// queued.
func (t *Timer) Stop() bool { return t.t.Stop() }

// AfterFunc runs fn on the loop goroutine after d, unless the timer is
// stopped or the broker is shutting down by then.
func (b *Broker) AfterFunc(d time.Duration, fn func()) *Timer {
	return &Timer{t: time.AfterFunc(d, func() { _ = b.Defer(fn) })}
}

func (b *Broker) loop() {
	defer b.goWG.Done()
	for {
		select {
		case <-b.wakeLoop:
		case <-b.life.Done():
			return
		}
		b.mu.Lock()
		work := b.deferred
		b.deferred = nil
		b.mu.Unlock()
		for _, fn := range work {
			b.runDeferred(fn)
		}
	}
}

func (b *Broker) runDeferred(fn func()) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("deferred function panicked; shutting down", "panic", p)
			b.Shutdown(0)
		}
	}()
	fn()
}

// Shutdown begins the shutdown sequence (see the package documentation) and
// returns at once. grace <= 0 means the configured grace. Only the first
// call has an effect.
func (b *Broker) Shutdown(grace time.Duration) {
	b.shutdownOnce.Do(func() {
		if grace <= 0 {
			grace = b.grace
		}
		b.mu.Lock()
		b.stopping = true
		hooks := b.onShutdown
		b.mu.Unlock()
		close(b.shutdownCh)
		go b.sequence(grace, hooks)
	})
}

// Close shuts down with no grace period (children are not waited for; a
// graceful shutdown already under way stops waiting) and waits for the
// sequence to finish. It is idempotent.
func (b *Broker) Close() error {
	b.forceOnce.Do(func() { close(b.force) })
	b.Shutdown(time.Nanosecond)
	<-b.done
	return nil
}

// Wait waits for the shutdown sequence to finish, or for ctx.
func (b *Broker) Wait(ctx context.Context) error {
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Broker) sequence(grace time.Duration, hooks []func()) {
	defer close(b.done)
	for _, fn := range hooks {
		fn()
	}
	// Graceful part: wait for keep-alive streams (children) to go away.
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		alive := 0
		for s := range b.streams {
			if s.cfg.KeepAlive {
				alive++
			}
		}
		gone := b.streamGone
		b.mu.Unlock()
		if alive == 0 {
			break
		}
		select {
		case <-gone:
			continue
		case <-b.force:
		case <-deadline.C:
			b.log.Warn("grace period over; closing remaining streams", "streams", alive, "grace", grace)
		}
		break
	}
	// Forced part: flush what is queued for the parent, then close all.
	flushCtx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	for _, s := range b.Streams() {
		if !s.cfg.KeepAlive {
			_ = s.Flush(flushCtx)
		}
	}
	cancel()
	for _, s := range b.Streams() {
		s.fail(fmt.Errorf("broker: stream %s: %w", s.cfg.Name, ErrShutdown))
	}
	b.streamWG.Wait()
	b.mu.Lock()
	exits := b.onExit
	b.mu.Unlock()
	for _, fn := range exits {
		fn()
	}
	b.cancel()
	b.goWG.Wait()
}
