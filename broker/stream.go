package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle/wire"
	"golang.org/x/sys/unix"
)

// Handler receives each frame decoded from a stream, on that stream's reader
// goroutine, in arrival order. It owns m.
type Handler func(s *Stream, m *wire.Message)

// StreamConfig configures a stream. The zero value of each field means its
// default.
type StreamConfig struct {
	// Name identifies the stream in logs and errors.
	Name string
	// MaxMessageSize bounds the body of each frame read; a larger length in a
	// header closes the stream. 0 means wire.DefaultMaxMessageSize.
	MaxMessageSize uint32
	// MaxQueued bounds the bytes waiting to be written; Send blocks while it
	// is exceeded. 0 means 4 MiB. A single frame larger than the bound is
	// accepted when the queue is empty.
	MaxQueued int
	// StallTimeout, if positive, is how long a Send may wait for room while
	// the peer takes no bytes at all: past it the stream is closed with
	// ErrStalled, so a peer that has stopped reading costs its senders at
	// most this long. 0 means no limit.
	StallTimeout time.Duration
	// KeepAlive streams (those to children) are waited for during a graceful
	// shutdown; the others are closed once the keep-alive ones are gone.
	KeepAlive bool
	// Handler receives every decoded frame. Required.
	Handler Handler
	// OnClose, if set, is called once, on a goroutine the broker owns, as
	// soon as the stream is closed (by the peer, a failed read or write, or
	// a local Close), with the stream's terminal error. It does not wait for
	// the reader, which may be stuck in a Handler: a Handler call under way
	// at the close may overlap OnClose, and at most one more may start (the
	// frame the reader had already decoded); frames still buffered are
	// dropped. A peer's clean close comes after every frame it wrote has
	// been handed over.
	OnClose func(s *Stream, err error)
	// Data is opaque to the broker; the stream's owner reads it with Data.
	Data any
}

const (
	defaultMaxQueued = 4 << 20
	// copyLimit: bodies up to this size are copied next to their header so a
	// batch of small frames becomes one contiguous buffer; larger bodies are
	// queued by reference and written with writev.
	copyLimit = 16 << 10
	// scratchMax: a frame of at most this many bytes sent on the direct
	// path is built in the stream's scratch buffer, not a fresh one.
	scratchMax     = 4 << 10
	readBufferSize = 128 << 10
	// writeChunk bounds one write when much is queued, so a peer that reads
	// slowly still shows progress to waiting senders (StallTimeout).
	writeChunk = 1 << 20
	// While the reader holds more frames than the one it is handing over,
	// the stream is corked: frames sent meanwhile (typically the replies to
	// those frames) are queued without waking the writer, and go out
	// together in one writev when the reader runs dry. A corked frame waits
	// at most corkHold, and the writer is woken once corkBytes are waiting.
	corkBytes = 64 << 10
	corkHold  = 200 * time.Microsecond
	// burstGap: a small frame sent within this long of the end of the
	// previous write, with no frame read from the peer in between, is
	// part of a burst (calls pipelined by one goroutine): it goes to the
	// writer goroutine, which writes what piles up meanwhile in one writev,
	// instead of costing a syscall of its own. A frame sent after the
	// peer's answer (a round trip at a time) or after a pause keeps the
	// direct path, and so does a large body, whose write costs more than its
	// syscall.
	burstGap = 50 * time.Microsecond
)

// Stream is a framed, bidirectional connection to one peer. All methods are
// safe for concurrent use.
type Stream struct {
	b   *Broker
	cfg StreamConfig
	rwc io.ReadWriteCloser
	w   io.Writer // rwc, or the net.Conn inside it so net.Buffers uses writev

	wake chan struct{} // 1-buffered: the writer has work
	done chan struct{} // closed when the stream is closed

	ctx    context.Context // done when the stream closes or the broker's lifetime ends
	cancel context.CancelFunc

	raw      syscall.RawConn // for writev and direct non-blocking writes; nil unless rwc is a syscall.Conn
	writevFn func(uintptr) bool
	wb       struct { // owned by the writer goroutine (writeBuffers)
		bufs net.Buffers
		err  error
	}
	directFn func(uintptr) bool
	direct   struct { // owned by whoever holds the writing token on the fast path
		bufs    [2][]byte
		iov     [][]byte
		n       int
		err     error
		scratch []byte // a small frame's bytes (cap scratchMax), reused by the next direct write
	}

	mu       sync.Mutex
	writing  bool          // guarded by mu: the writer goroutine or a direct Send holds the right to write
	queue    net.Buffers   // guarded by mu: frames waiting for the writer
	queued   int           // guarded by mu: bytes in queue plus bytes being written
	space    chan struct{} // guarded by mu: made by a blocked sender, closed by the writer when it frees space
	idle     chan struct{} // guarded by mu: made by Flush, closed by the writer when queued reaches 0
	err      error         // guarded by mu: the first error that killed the stream
	written  uint64        // guarded by mu: bytes the writer has handed to the pipe so far
	accepted uint64        // guarded by mu: bytes accepted for writing so far (written, queued or being written)
	// pooled holds the pooled bodies queued by reference (wire.Message.Detach),
	// oldest first, each with the value accepted reached once its last byte
	// was accepted: written passing it means the body is out and its buffer
	// goes back to the pool. Guarded by mu.
	pooled []pooledBody
	// corked is set by the reader while it has more frames in hand (see
	// corkBytes). corkTimer, made by the reader before it first corks,
	// bounds how long a held frame waits: the first frame held arms it
	// (corkArmed). Guarded by mu.
	corked    bool
	corkArmed bool
	corkTimer *time.Timer
	// lastWrite is when the last write ended, and readsAtWrite the frames
	// read by then (see burstGap). Guarded by mu.
	lastWrite    time.Time
	readsAtWrite uint64
	reads        atomic.Uint64 // frames read so far
	// postWatch, when set, fires StallTimeout after a Post found bytes
	// waiting; postMark is written at that moment. Both guarded by mu.
	postWatch *Timer
	postMark  uint64
	closeErr  sync.Once
}

// pooledBody is a pooled buffer queued for writing, released once the bytes up
// to end have been written.
type pooledBody struct {
	buf *wire.Buffer
	end uint64
}

// acceptLocked counts n bytes accepted for writing, the last of them buf's
// body if buf is not nil.
func (s *Stream) acceptLocked(n int, buf *wire.Buffer) {
	s.accepted += uint64(n)
	if buf != nil {
		s.pooled = append(s.pooled, pooledBody{buf: buf, end: s.accepted})
	}
}

// wroteLocked counts n more bytes written at the end of a write, notes when
// (see burstGap) and releases the pooled bodies that are now wholly out.
func (s *Stream) wroteLocked(n int) {
	s.written += uint64(n)
	s.lastWrite, s.readsAtWrite = time.Now(), s.reads.Load()
	i := 0
	for i < len(s.pooled) && s.pooled[i].end <= s.written {
		s.pooled[i].buf.Release()
		s.pooled[i] = pooledBody{}
		i++
	}
	if i > 0 {
		s.pooled = s.pooled[i:]
		if len(s.pooled) == 0 {
			s.pooled = s.pooled[:0:0] // let the array go rather than creep along it
		}
	}
}

func newStream(b *Broker, rwc io.ReadWriteCloser, cfg StreamConfig) *Stream {
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = defaultMaxQueued
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	s := &Stream{
		b: b, cfg: cfg, rwc: rwc, w: rwc,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(b.life)
	if c, ok := rwc.(net.Conn); ok {
		s.w = c
	}
	if sc, ok := rwc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
			s.directFn = s.directWrite
			s.writevFn = s.writev
		}
	}
	return s
}

// maxIOV is the most buffers one writev takes (IOV_MAX on Linux).
const maxIOV = 1024

// writeBuffers writes all of bufs to the raw descriptor, in writevs of at
// most maxIOV buffers, waiting for the descriptor to take more as needed.
// It changes the slices in bufs.
// Called by the writer goroutine only; its state is in s.wb, and the
// callback a method value made once, so a write allocates nothing.
func (s *Stream) writeBuffers(bufs net.Buffers) error {
	s.wb.bufs, s.wb.err = bufs, nil
	err := s.raw.Write(s.writevFn)
	if err == nil {
		err = s.wb.err
	}
	s.wb.bufs, s.wb.err = nil, nil
	return err
}

// writev is writeBuffers' RawConn callback.
func (s *Stream) writev(fd uintptr) bool {
	for len(s.wb.bufs) > 0 {
		iov := s.wb.bufs
		if len(iov) > maxIOV {
			iov = iov[:maxIOV]
		}
		n, err := unix.Writev(int(fd), iov)
		switch err {
		case nil:
			s.wb.bufs = trimWritten(s.wb.bufs, n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until the descriptor is writable
		default:
			s.wb.err = err
			return true
		}
	}
	return true
}

// Name returns the configured name.
func (s *Stream) Name() string { return s.cfg.Name }

// Data returns StreamConfig.Data.
func (s *Stream) Data() any { return s.cfg.Data }

// KeepAlive reports StreamConfig.KeepAlive.
func (s *Stream) KeepAlive() bool { return s.cfg.KeepAlive }

// Done is closed when the stream has been closed, by either side.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Context returns a context that is done once the stream has closed (or the
// broker's lifetime has ended). Work done on behalf of the stream's peer, such
// as forwarding its frames into another stream, runs under it, so that the
// peer's death ends it instead of leaving the reader blocked.
func (s *Stream) Context() context.Context { return s.ctx }

// Err returns the error that closed the stream, or nil while it is open.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Queued returns the number of bytes accepted by Send and not yet written.
func (s *Stream) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Send queues m for writing. It takes ownership of m.Body, which must not be
// changed afterwards. A pooled body (see wire.Message.Release) is given back
// to its pool once written. It blocks while the write queue is over its bound, until
// there is room, ctx is done, or the stream closes; on a closed stream it
// returns the stream's terminal error. Send keeps no reference to m itself
// once it returns (a large body is kept, by reference, until written).
func (s *Stream) Send(ctx context.Context, m *wire.Message) error {
	// A small body is copied next to its header: into the stream's scratch
	// buffer on the direct path, else into a frame of its own, made below
	// once the path is known. A large one is queued by reference.
	var frame []byte
	var body []byte
	var buf *wire.Buffer
	n := wire.HeaderLen + len(m.Body)
	if len(m.Body) > copyLimit {
		frame = m.AppendHeader(make([]byte, 0, wire.HeaderLen))
		body = m.Body
		buf = m.Detach()
	}
	var stall *time.Timer
	s.mu.Lock()
	for {
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		if s.queued == 0 || s.queued+n <= s.cfg.MaxQueued {
			break
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		if s.corked {
			s.wakeWriter() // the room is made by writing what is held
		}
		s.mu.Unlock()
		var stalled <-chan time.Time
		if s.cfg.StallTimeout > 0 {
			if stall == nil {
				stall = time.NewTimer(s.cfg.StallTimeout)
				defer stall.Stop()
			}
			stalled = stall.C
		}
		select {
		case <-space:
			if stall != nil {
				stall.Reset(s.cfg.StallTimeout) // the peer took bytes
			}
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("broker: send on stream %s: %w", s.cfg.Name, ctx.Err())
		case <-stalled:
			err := fmt.Errorf("broker: stream %s: %w (no bytes taken for %v)", s.cfg.Name, ErrStalled, s.cfg.StallTimeout)
			s.b.log.Error("closing stream", "stream", s.cfg.Name, "reason", err)
			s.fail(err)
			return s.Err()
		}
		s.mu.Lock()
	}
	s.acceptLocked(n, buf)
	if s.queued == 0 && !s.writing && !s.corked && s.raw != nil && !s.burstLocked(body == nil) {
		return s.sendDirectLocked(m, frame, body)
	}
	if frame == nil {
		frame = m.AppendFrame(make([]byte, 0, n))
	}
	s.queue = append(s.queue, frame)
	if body != nil {
		s.queue = append(s.queue, body)
	}
	s.queued += n
	hold := s.corked && s.queued < corkBytes
	if hold && !s.corkArmed {
		s.corkArmed = true
		s.corkTimer.Reset(corkHold)
	}
	s.mu.Unlock()
	if !hold {
		s.wakeWriter()
	}
	return nil
}

// burstLocked reports whether a frame sent now is part of a burst (see
// burstGap).
func (s *Stream) burstLocked(small bool) bool {
	return small && s.readsAtWrite == s.reads.Load() && time.Since(s.lastWrite) < burstGap
}

// setCork corks or uncorks the stream (see corkBytes); uncorking hands what
// is held to the writer. Called by the reader only.
func (s *Stream) setCork(on bool) {
	s.mu.Lock()
	s.corked = on
	held := !on && len(s.queue) > 0
	if !on && s.corkArmed {
		s.corkArmed = false
		s.corkTimer.Stop()
	}
	s.mu.Unlock()
	if held {
		s.wakeWriter()
	}
}

// corkExpired runs corkHold after a frame was first held: what is held goes
// to the writer, and the next frame held arms the clock again.
func (s *Stream) corkExpired() {
	s.mu.Lock()
	s.corkArmed = false
	held := len(s.queue) > 0
	s.mu.Unlock()
	if held {
		s.wakeWriter()
	}
}

// Post queues m for writing without waiting for room in the queue, so it
// never blocks. It is for small control frames (a route withdrawal) that must
// not wait behind a peer that has stopped reading. On a closed stream it
// returns the stream's terminal error.
//
// A Post that finds bytes still waiting starts the stall clock as a waiting
// Send does: if the peer takes no bytes for StallTimeout from then, the
// stream closes with ErrStalled. So posted frames pile up behind a peer that
// has stopped reading for at most StallTimeout, even when nobody Sends to
// it. Without a StallTimeout the caller must bound how many it posts.
func (s *Stream) Post(m *wire.Message) error {
	frame := m.AppendFrame(make([]byte, 0, wire.HeaderLen+len(m.Body)))
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.queued > 0 && s.cfg.StallTimeout > 0 && s.postWatch == nil {
		s.watchPostedLocked()
	}
	s.queue = append(s.queue, frame)
	s.queued += len(frame)
	s.acceptLocked(len(frame), nil)
	s.mu.Unlock()
	s.wakeWriter()
	return nil
}

// watchPostedLocked arms the stall clock for bytes waiting after a Post.
func (s *Stream) watchPostedLocked() {
	s.postMark = s.written
	s.postWatch = s.b.AfterFunc(s.cfg.StallTimeout, s.checkPosted)
}

// checkPosted runs StallTimeout after watchPostedLocked: a peer that has
// taken nothing since, with bytes still waiting, has stalled. One that has
// taken some is watched for another StallTimeout while bytes wait.
func (s *Stream) checkPosted() {
	s.mu.Lock()
	s.postWatch = nil
	switch {
	case s.err != nil || s.queued == 0:
		s.mu.Unlock()
	case s.written != s.postMark:
		s.watchPostedLocked()
		s.mu.Unlock()
	default:
		s.mu.Unlock()
		err := fmt.Errorf("broker: stream %s: %w (no bytes taken for %v with posted frames waiting)", s.cfg.Name, ErrStalled, s.cfg.StallTimeout)
		s.b.log.Error("closing stream", "stream", s.cfg.Name, "reason", err)
		s.fail(err)
	}
}

func (s *Stream) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sendDirectLocked is Send's fast path, taken when nothing is queued or being
// written: one non-blocking writev from the sender's goroutine, so a small
// frame reaches the peer without a goroutine hand-off. Whatever the socket
// does not take at once is queued, ahead of anything queued meanwhile, for
// the writer goroutine. Called with mu held; returns with it released.
func (s *Stream) sendDirectLocked(m *wire.Message, frame, body []byte) error {
	s.writing = true
	s.mu.Unlock()
	// The direct-write state lives in the stream (guarded by the writing
	// token) and the callback is a method value made once, so the fast path
	// allocates nothing: a small frame is built in the scratch buffer,
	// which is free again once the write returns (what the kernel did not
	// take is copied out below).
	d := &s.direct
	scratch := false
	if frame == nil {
		if size := wire.HeaderLen + len(m.Body); size <= scratchMax {
			if d.scratch == nil {
				d.scratch = make([]byte, 0, scratchMax)
			}
			frame, scratch = m.AppendFrame(d.scratch[:0]), true
		} else {
			frame = m.AppendFrame(make([]byte, 0, size))
		}
	}
	d.bufs[0], d.bufs[1] = frame, body
	d.n, d.err = 0, nil // as they stay if Write fails without calling directWrite
	d.iov = d.bufs[:1]
	if body != nil {
		d.iov = d.bufs[:2]
	}
	err := s.raw.Write(s.directFn)
	n, werr := d.n, d.err
	if err == nil && werr != nil && werr != unix.EAGAIN {
		err = werr
	}
	if n < 0 {
		n = 0
	}
	var rest net.Buffers
	if n < len(frame)+len(body) {
		rest = trimWritten(append(net.Buffers(nil), d.iov...), n)
		if scratch && n < len(frame) {
			rest[0] = append([]byte(nil), rest[0]...) // the scratch buffer is reused
		}
	}
	d.bufs[0], d.bufs[1], d.iov = nil, nil, nil
	s.mu.Lock()
	s.writing = false
	s.wroteLocked(n)
	if err != nil {
		s.mu.Unlock()
		err = fmt.Errorf("broker: write stream %s: %w", s.cfg.Name, err)
		s.fail(err)
		return err
	}
	if len(rest) > 0 {
		left := 0
		for _, b := range rest {
			left += len(b)
		}
		s.queue = append(rest, s.queue...)
		s.queued += left
	}
	pending := len(s.queue) > 0
	s.mu.Unlock()
	if pending {
		s.wakeWriter()
	}
	return nil
}

// directWrite is the callback of the fast path's RawConn.Write: one writev,
// never waiting for the socket to become writable.
func (s *Stream) directWrite(fd uintptr) bool {
	d := &s.direct
	for {
		d.n, d.err = unix.Writev(int(fd), d.iov)
		if d.err != unix.EINTR {
			return true
		}
	}
}

// takeChunkLocked moves about writeChunk bytes from the head of the queue
// into batch, cutting a buffer if needed (the bytes go out in order either
// way).
func (s *Stream) takeChunkLocked(batch net.Buffers) net.Buffers {
	total := 0
	for len(s.queue) > 0 && total < writeChunk {
		b := s.queue[0]
		if room := writeChunk - total; len(b) > room {
			batch = append(batch, b[:room])
			s.queue[0] = b[room:]
			break
		}
		batch = append(batch, b)
		total += len(b)
		s.queue[0] = nil
		s.queue = s.queue[1:]
	}
	return batch
}

// trimWritten drops the first n bytes from bufs.
func trimWritten(bufs net.Buffers, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// Flush waits until everything queued so far has been written, ctx is done
// or the stream closes.
func (s *Stream) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.err != nil || s.queued == 0 {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	s.wakeWriter() // frames held by a cork go now
	select {
	case <-idle:
		return nil
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the stream and its pipe at once; queued frames are dropped.
// It is idempotent.
func (s *Stream) Close() error {
	s.fail(ErrStreamClosed)
	return nil
}

// CloseWithError closes the stream, recording err as its terminal error if
// it has none yet.
func (s *Stream) CloseWithError(err error) { s.fail(err) }

// fail records err as the terminal error (if it is the first) and closes the
// pipe, which ends the reader and the writer.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	if s.postWatch != nil {
		s.postWatch.Stop()
		s.postWatch = nil
	}
	s.mu.Unlock()
	s.closeErr.Do(func() {
		close(s.done)
		s.cancel()
		s.rwc.Close()
	})
}

func (s *Stream) readLoop() {
	br := bufio.NewReaderSize(s.rwc, readBufferSize)
	hdr := make([]byte, wire.HeaderLen)
	s.corkTimer = time.AfterFunc(corkHold, s.corkExpired)
	s.corkTimer.Stop()
	defer s.corkTimer.Stop()
	corked := false
	var err error
	for {
		var m *wire.Message
		m, err = wire.ReadMessage(br, hdr, s.cfg.MaxMessageSize)
		if err != nil {
			break
		}
		s.reads.Add(1)
		select {
		case <-s.done:
			// Closed (locally, or by a failed write) with frames still
			// buffered: they are not handed over.
			err = io.EOF
		default:
			more := br.Buffered() >= wire.HeaderLen
			if more && !corked {
				s.setCork(true)
				corked = true
			}
			s.cfg.Handler(s, m)
			if !more && corked {
				s.setCork(false)
				corked = false
			}
			continue
		}
		break
	}
	if corked {
		s.setCork(false)
	}
	var de *wire.DecodeError
	switch {
	case errors.As(err, &de):
		s.b.log.Error("closing stream", "stream", s.cfg.Name, "reason", de.Reason)
		err = fmt.Errorf("broker: stream %s: %w", s.cfg.Name, err)
	case errors.Is(err, io.EOF):
		err = ErrPeerClosed
	default:
		err = fmt.Errorf("broker: read stream %s: %w", s.cfg.Name, err)
	}
	s.fail(err)
}

func (s *Stream) writeLoop() {
	var batch net.Buffers
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		if s.writing || len(s.queue) == 0 {
			// A direct Send is writing; it wakes us when it is done.
			s.mu.Unlock()
			continue
		}
		s.writing = true
		if s.queued <= writeChunk {
			batch, s.queue = s.queue, batch[:0]
		} else {
			batch = s.takeChunkLocked(batch[:0])
		}
		s.mu.Unlock()
		n := 0
		for _, b := range batch {
			n += len(b)
		}
		// Both writes consume the slice they are given; batch keeps its
		// array for the next round. (bufs is declared in its branch: WriteTo
		// takes its address, which puts it on the heap.)
		var err error
		if s.raw != nil {
			err = s.writeBuffers(batch)
		} else {
			bufs := batch
			_, err = bufs.WriteTo(s.w)
		}
		clear(batch)
		s.mu.Lock()
		s.writing = false
		s.queued -= n
		s.wroteLocked(n)
		if len(s.queue) > 0 {
			s.wakeWriter()
		}
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		if s.queued == 0 && s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
		s.mu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("broker: write stream %s: %w", s.cfg.Name, err))
			return
		}
	}
}
