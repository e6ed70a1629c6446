package gocache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Bounds of a session (see the package doc).
const (
	// MaxRequestLine bounds one request's JSON line.
	MaxRequestLine = 64 << 10
	// DefaultMaxBody is the largest output kept when Config.MaxBody is 0.
	DefaultMaxBody = 4 << 30
	// MaxGets bounds the gets being answered at once.
	MaxGets = 16
	// maxBodySize is the largest BodySize the protocol is followed
	// through (its base64 still fits an int64).
	maxBodySize = 1 << 60
)

// The protocol's commands.
const (
	cmdGet   = "get"
	cmdPut   = "put"
	cmdClose = "close"
)

// request is one request of the go command.
type request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

// response answers a request (or, with ID 0, says what we serve).
type response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

// Backend answers a session's requests.
type Backend interface {
	// Get returns the entry of action; false is a miss. An error is
	// logged and answered as a miss. ctx ends with the session.
	Get(ctx context.Context, action []byte) (Entry, bool, error)
	// Put stores the output of action: size bytes of body, hashing to
	// output. It must read body to its end (or past size). An error is
	// the put's answer: go drops the output.
	Put(ctx context.Context, action, output []byte, size int64, body io.Reader) (Entry, error)
	// Close ends the session: what Put began must be done or abandoned.
	// An error is logged; close is answered without it, since go would
	// fail its command for it.
	Close(ctx context.Context) error
}

// DirBackend is the Backend of a Dir alone.
type DirBackend struct{ *Dir }

// Get implements Backend.
func (b DirBackend) Get(_ context.Context, action []byte) (Entry, bool, error) {
	return b.Dir.Get(action)
}

// Put implements Backend.
func (b DirBackend) Put(_ context.Context, action, output []byte, size int64, body io.Reader) (Entry, error) {
	return b.Dir.Put(action, output, size, body)
}

// Close implements Backend.
func (DirBackend) Close(context.Context) error { return nil }

// Config configures a session. The zero value is the defaults.
type Config struct {
	// MaxBody is the largest output put that is kept (DefaultMaxBody when
	// 0); a larger one is read, discarded and refused.
	MaxBody int64
	// Logger takes a record for each get that failed (answered as a
	// miss); nil discards them.
	Logger *slog.Logger
}

// Stats counts what a session did.
type Stats struct {
	Gets, Hits int
	HitBytes   int64
	Puts       int // puts kept
	PutBytes   int64
	Failed     int // requests answered with an error
}

// ErrProtocol is input that is not the protocol: the session ends.
var ErrProtocol = errors.New("gocache: protocol error")

// Serve runs one session: it says what it serves on out, then answers the
// requests read from in until close (after b.Close) or the end of in. It
// returns ErrProtocol (wrapped, with what was wrong) for input it cannot
// follow, and the write error when out fails.
func Serve(ctx context.Context, in io.Reader, out io.Writer, b Backend, cfg Config) (Stats, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &session{w: bufio.NewWriter(out), b: b, cfg: cfg, log: log, gets: make(chan struct{}, MaxGets)}
	if err := s.reply(&response{KnownCommands: []string{cmdGet, cmdPut, cmdClose}}); err != nil {
		return Stats{}, err
	}
	// The requests' ctx ends with the session: gets still running when the
	// input ends (the go command died) are abandoned, not waited out.
	rctx, cancel := context.WithCancel(ctx)
	err := s.loop(rctx, ctx, bufio.NewReaderSize(in, 64<<10))
	cancel()
	s.wg.Wait()
	if !s.closed {
		if cerr := b.Close(ctx); cerr != nil {
			log.Warn("gocache: close", "err", cerr)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = s.werr
	}
	return s.stats, err
}

// session is one Serve.
type session struct {
	b    Backend
	cfg  Config
	log  *slog.Logger
	gets chan struct{} // slots of the gets in flight
	wg   sync.WaitGroup

	closed bool // owned by loop: close was answered

	mu    sync.Mutex
	w     *bufio.Writer // guarded by mu
	werr  error         // guarded by mu: the first write error
	stats Stats         // guarded by mu
}

// loop reads and answers requests, with ctx for gets and puts and cctx
// for the backend's Close.
func (s *session) loop(ctx, cctx context.Context, br *bufio.Reader) error {
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return nil // the go command went away without a close
		}
		if err != nil {
			return err
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			return fmt.Errorf("%w: request %.80q: %v", ErrProtocol, line, err)
		}
		switch req.Command {
		case cmdGet:
			if err := s.get(ctx, req); err != nil {
				return err
			}
		case cmdPut:
			if err := s.put(ctx, br, req); err != nil {
				return err
			}
		case cmdClose:
			// go fails the command on an error here ("failed to trim
			// cache"): a backend that could not finish is logged instead.
			s.wg.Wait()
			if err := s.b.Close(cctx); err != nil {
				s.log.Warn("gocache: close", "err", err)
			}
			s.closed = true
			return s.reply(&response{ID: req.ID})
		default:
			if req.BodySize > 0 {
				return fmt.Errorf("%w: request %d: unknown command %q with a body", ErrProtocol, req.ID, req.Command)
			}
			s.fail(req.ID, fmt.Errorf("gocache: unknown command %q", req.Command))
		}
		if err := s.writeErr(); err != nil {
			return err
		}
	}
}

// get answers a get from a goroutine of its own, once a slot is free.
func (s *session) get(ctx context.Context, req request) error {
	if req.BodySize > 0 {
		return fmt.Errorf("%w: get %d with a body", ErrProtocol, req.ID)
	}
	select {
	case s.gets <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.wg.Go(func() {
		defer func() { <-s.gets }()
		e, ok, err := s.b.Get(ctx, req.ActionID)
		if err != nil {
			s.log.Warn("gocache: get failed; answered as a miss", "action", fmt.Sprintf("%x", req.ActionID), "err", err)
			ok = false
		}
		res := &response{ID: req.ID, Miss: !ok}
		s.mu.Lock()
		s.stats.Gets++
		if ok {
			s.stats.Hits++
			s.stats.HitBytes += e.Size
			res.OutputID, res.Size, res.Time, res.DiskPath = e.Output, e.Size, &e.Time, e.Path
		}
		s.mu.Unlock()
		_ = s.reply(res)
	})
	return nil
}

// put reads a put's body and answers it. Only a body it cannot read to
// its end (so that the next request cannot be found) ends the session.
func (s *session) put(ctx context.Context, br *bufio.Reader, req request) error {
	if req.BodySize < 0 || req.BodySize > maxBodySize {
		return fmt.Errorf("%w: put %d: BodySize %d", ErrProtocol, req.ID, req.BodySize)
	}
	body := &bodyReader{q: quoted{br: br, max: (req.BodySize + 2) / 3 * 4}}
	if req.BodySize > 0 {
		if err := body.start(); err != nil {
			return fmt.Errorf("%w: put %d: %v", ErrProtocol, req.ID, err)
		}
	} else {
		body.q.done = true
	}
	var e Entry
	var err error
	if req.BodySize > s.cfg.MaxBody {
		err = fmt.Errorf("gocache: put %x: %d bytes, more than the %d kept", req.ActionID, req.BodySize, s.cfg.MaxBody)
	} else {
		e, err = s.b.Put(ctx, req.ActionID, req.OutputID, req.BodySize, body)
	}
	if ferr := body.finish(); ferr != nil {
		return fmt.Errorf("%w: put %d: %v", ErrProtocol, req.ID, ferr)
	}
	if err != nil {
		s.fail(req.ID, err)
		return nil
	}
	s.mu.Lock()
	s.stats.Puts++
	s.stats.PutBytes += e.Size
	s.mu.Unlock()
	return s.reply(&response{ID: req.ID, DiskPath: e.Path})
}

// fail answers request id with err.
func (s *session) fail(id int64, err error) {
	s.mu.Lock()
	s.stats.Failed++
	s.mu.Unlock()
	_ = s.reply(&response{ID: id, Err: err.Error()})
}

// reply writes one response line.
func (s *session) reply(res *response) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr == nil {
		s.w.Write(b)
		s.w.WriteByte('\n')
		s.werr = s.w.Flush()
	}
	return s.werr
}

func (s *session) writeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.werr
}

// readLine returns the next non-empty line, without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull || (err == nil && len(line) > MaxRequestLine) {
			return nil, fmt.Errorf("%w: a request line longer than %d bytes", ErrProtocol, MaxRequestLine)
		}
		if err == io.EOF && len(bytes.TrimSpace(line)) > 0 {
			return nil, fmt.Errorf("%w: input ended inside a request", ErrProtocol)
		}
		if err != nil {
			return nil, err
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return bytes.Clone(line), nil
		}
	}
}

// bodyReader is a put's body: a JSON string of base64 on a line of its
// own, decoded as it is read.
type bodyReader struct {
	q   quoted
	dec io.Reader
}

// start reads up to the string's opening quote.
func (r *bodyReader) start() error {
	for {
		c, err := r.q.br.ReadByte()
		switch {
		case err == io.EOF:
			return errors.New("input ended before the body")
		case err != nil:
			return err
		case c == '"':
			r.dec = base64.NewDecoder(base64.StdEncoding, &r.q)
			return nil
		case c != '\n' && c != '\r' && c != ' ' && c != '\t':
			return fmt.Errorf("the body is not a JSON string (%q)", c)
		}
	}
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.dec == nil {
		return 0, io.EOF
	}
	return r.dec.Read(p)
}

// finish reads what is left of the body, through its closing quote.
func (r *bodyReader) finish() error {
	if r.dec != nil {
		_, _ = io.Copy(io.Discard, r.dec) // a bad base64 body failed the put already
	}
	_, err := io.Copy(io.Discard, &r.q)
	return err
}

// quoted reads the bytes of a JSON string up to its closing quote (base64
// has no escapes), at most max of them.
type quoted struct {
	br      *bufio.Reader
	max, n  int64
	pending []byte
	done    bool
	err     error // sticky: the string cannot be followed to its end
}

func (q *quoted) Read(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	if len(q.pending) == 0 {
		if q.done {
			return 0, io.EOF
		}
		s, err := q.br.ReadSlice('"')
		switch {
		case err == nil:
			s, q.done = s[:len(s)-1], true
		case err == bufio.ErrBufferFull:
		case err == io.EOF:
			q.err = errors.New("input ended inside the body")
		default:
			q.err = err
		}
		if q.n += int64(len(s)); q.err == nil && q.n > q.max {
			q.err = errors.New("the body is longer than its BodySize")
		}
		if q.err != nil {
			return 0, q.err
		}
		q.pending = s
	}
	n := copy(p, q.pending)
	q.pending = q.pending[n:]
	return n, nil
}
