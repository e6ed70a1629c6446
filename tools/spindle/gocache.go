package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gocache"
	"github.com/spindle-hq/spindle/target"
)

const gocacheUsage = `usage: spindle gocache [flags]
       GOCACHEPROG='/abs/path/bin/spindle gocache [flags]' go build ./...

Serves the go command's build cache (GOCACHEPROG, Go 1.24 and later) from
a cache directory of its own: every output is checked against its output
ID (the sha256 of its bytes) before it is kept, and the directory is
trimmed by age and, if asked, by size. go starts it once per go command and
reads its archives and binaries from the directory, so go build -toolexec
'spindle toolexec' mounts (or ships) it as it does GOCACHE.

With -t the cache is also held by a context of the tree (ssh://cache1,
...; nothing installed there but sh), started at the first get this
directory misses or the first put: such a get asks that context, whose
hit comes back into this directory, and every put is sent there too, so
CI machines that point at one context share one Go build cache. (go's
action IDs include each package's directory unless -trimpath is given:
machines share what they build at the same paths.) The context keeps it
in spindle/gocache-served/ under its user's cache directory, trimmed at
most once an hour by the --max-age and --shared-max-size of the spindle
gocache whose turn it is. When the context cannot be reached, fails or
stops answering,
that is said once on stderr and the build goes on with this directory
alone: a cache never fails a build. The context is trusted with the
builds that use it (docs/SECURITY.md): give jobs that run untrusted code
natively --read-only, or a cache of their own.

A context that failed is not asked again for 5 minutes by any spindle
gocache of this directory with the same -t and connection flags: each go
command starts its own, and a host that hangs would cost each of them
its --connect-timeout. To empty
the cache, remove the directory. go still needs a GOCACHE of its own (its
fuzzing corpus and trim state live there).

flags:
  --dir DIR         the cache directory, an absolute path (default
                    $SPINDLE_GOCACHE, else spindle/gocache under the user's
                    cache directory: $XDG_CACHE_HOME or ~/.cache)
  -t, --target T    also keep the cache in this context of the tree
  --read-only       with -t: take the context's hits, send it no puts
                    (keeps a job's outputs out of the shared cache; not a
                    boundary against code that runs with the host's
                    credentials in reach: see docs/SECURITY.md)
  --max-age D       remove what was not used for D, at least 1h (default
                    120h); a trim runs at most once an hour
  --max-size SIZE   then remove the least recently used outputs while
                    the directory holds more than SIZE (default no bound);
                    what was used in the last hour always stays
  --shared-max-size SIZE  with -t: the same bound for the context's cache
                    (default 20GiB), applied by the session whose turn it
                    is, at most once an hour
  -v, --verbose     at the end, one line on stderr: gets, hits, puts, and
                    what a trim removed; -vv and -vvv add the tree's log
` + connUsageNoBecome + `
exit status: 0; 2 bad usage or an unusable directory (said on stderr); 1
when go's requests could not be followed or its pipe failed.
`

// gocacheDirEnv names the default cache directory of spindle gocache.
const gocacheDirEnv = "SPINDLE_GOCACHE"

const (
	gocacheDefaultAge = 120 * time.Hour
	gocacheTrimEvery  = time.Hour
	// gocacheMaxShared is the largest output a shared cache holds.
	gocacheMaxShared = 1 << 30
	// gocacheChunk is the most bytes of an output one call carries: a
	// larger one crosses in chunks, so that what a session holds in
	// memory stays bounded (gocacheSends and gocache.MaxGets calls).
	gocacheChunk = 1 << 20
	// gocacheSends is how many senders take the puts to the shared cache,
	// from a queue of at most gocacheQueue; a put never waits: one that
	// finds the queue full is kept here only.
	gocacheSends = 8
	gocacheQueue = 4096
	// gocacheSharedMaxSize is the default bound of the cache the context
	// holds (--shared-max-size).
	gocacheSharedMaxSize = 20 << 30
	// gocacheCallTimeout bounds one call to the shared cache (at most a
	// chunk each way): a context that stops answering is out of use
	// after it.
	gocacheCallTimeout = 30 * time.Second
	// gocacheCloseGrace is how long the end of a session waits for the
	// puts still being sent.
	gocacheCloseGrace = 30 * time.Second
	// gocacheRetry is how long a context that failed is not asked again,
	// by any session of the directory (its mark, gocacheDownMark).
	gocacheRetry = 5 * time.Minute
)

type gocacheOpts struct {
	dir         string
	target      string
	readOnly    bool
	maxAge      time.Duration
	maxBytes    int64
	sharedBytes int64
	conn        connFlags
}

func parseGocacheArgs(args []string) (*gocacheOpts, error) {
	o := &gocacheOpts{maxAge: gocacheDefaultAge, sharedBytes: gocacheSharedMaxSize}
	fs := flag.NewFlagSet("gocache", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.dir, "dir", "", "")
	for _, n := range []string{"t", "target"} {
		fs.Func(n, "", func(v string) error {
			if o.target != "" {
				return errors.New("-t given twice: the cache is kept in one context")
			}
			if _, err := target.Parse(v); err != nil {
				return err
			}
			o.target = v
			return nil
		})
	}
	fs.BoolVar(&o.readOnly, "read-only", false, "")
	fs.Func("max-age", "", func(v string) (err error) { o.maxAge, err = parseDurationFlag("--max-age", v); return err })
	fs.Func("max-size", "", func(v string) (err error) { o.maxBytes, err = parseSize("--max-size", v, 1<<50); return err })
	fs.Func("shared-max-size", "", func(v string) (err error) {
		o.sharedBytes, err = parseSize("--shared-max-size", v, 1<<50)
		return err
	})
	o.conn.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, argError(pos)
	}
	if o.conn.askPass {
		return nil, errors.New("-K: the go command starts spindle gocache without a terminal to ask on; give the sudo hop's user a NOPASSWD rule")
	}
	if o.readOnly && o.target == "" {
		return nil, errors.New("--read-only is for a cache held by a context: give -t")
	}
	if o.maxAge < gocache.TrimGrace {
		return nil, fmt.Errorf("--max-age %v: at least %v (what was used in the last hour always stays)", o.maxAge, gocache.TrimGrace)
	}
	if o.dir != "" && !filepath.IsAbs(o.dir) {
		// go starts spindle gocache in the module's directory: a relative
		// one would be a cache per module.
		return nil, fmt.Errorf("--dir %q: want an absolute path (go runs spindle gocache in each module's directory)", o.dir)
	}
	if o.dir == "" {
		o.dir = os.Getenv(gocacheDirEnv)
		if o.dir != "" && !filepath.IsAbs(o.dir) {
			return nil, fmt.Errorf("$%s %q: want an absolute path", gocacheDirEnv, o.dir)
		}
	}
	if o.dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory (%v): give --dir", err)
		}
		o.dir = filepath.Join(d, "spindle", "gocache")
	}
	return o, nil
}

func cmdGocache(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseGocacheArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, gocacheUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "gocache", err)
	}
	var mu sync.Mutex // say is called from the session's goroutines
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "spindle gocache: "+format+"\n", a...)
	}
	d, err := gocache.Open(o.dir)
	if err != nil {
		say("%v", strings.TrimPrefix(err.Error(), "gocache: "))
		return exitUsage
	}
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		say("reading the go command's GOCACHEPROG requests on stdin; go starts it: GOCACHEPROG='%s gocache ...' go build", os.Args[0])
	}
	// The trim runs beside the session: go waits for the first response.
	trimmed := make(chan struct{})
	var trim gocache.TrimStats
	var didTrim bool
	go func() {
		defer close(trimmed)
		var err error
		if trim, didTrim, err = d.TrimIfDue(time.Now(), gocacheTrimEvery, o.maxAge, o.maxBytes); err != nil {
			say("%v", err)
		}
	}()
	defer func() { <-trimmed }()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	var b gocache.Backend = gocache.DirBackend{Dir: d}
	var shared *sharedCache
	if o.target != "" {
		shared = newSharedCache(d, o, say)
		if o.conn.verbosity >= 2 {
			shared.logw = stderr
		}
		b = shared
	}
	st, err := gocache.Serve(ctx, stdin, stdout, b, gocache.Config{Logger: log})
	if o.conn.verbosity > 0 {
		line := fmt.Sprintf("%d gets, %d hits (%s), %d puts (%s)", st.Gets, st.Hits, humanBytes(uint64(st.HitBytes)), st.Puts, humanBytes(uint64(st.PutBytes)))
		if st.Failed > 0 {
			line += fmt.Sprintf(", %d refused", st.Failed)
		}
		if shared != nil {
			line += fmt.Sprintf("; on %s: %d hits, %d puts sent", o.target, shared.hits.Load(), shared.sent.Load())
			if n := shared.skipped.Load(); n > 0 {
				line += fmt.Sprintf(", %d not sent (busy)", n)
			}
		}
		if <-trimmed; didTrim {
			line += fmt.Sprintf("; trimmed %s: %d files (%s) removed, %d outputs (%s) kept", d.Root(), trim.Removed, humanBytes(uint64(trim.RemovedBytes)), trim.Kept, humanBytes(uint64(trim.KeptBytes)))
		}
		say("%s", line)
	}
	if err != nil {
		say("%v", err)
		return 1
	}
	return 0
}

// sharedCache is the Backend of spindle gocache -t: its Dir, and the cache
// a context serves (servedCache). It is safe for concurrent use.
//
// Its session ctx ends when the shared cache goes out of use (fail) or at
// Close: every call and the context's start are made under it, so a
// context that stops answering costs one call's timeout, once.
type sharedCache struct {
	local *gocache.Dir
	o     *gocacheOpts
	say   func(string, ...any)
	ctx   context.Context
	stop  context.CancelFunc
	queue chan queuedPut // the puts to send; closed by Close
	wg    sync.WaitGroup // the senders
	// callTimeout is gocacheCallTimeout (shorter in tests).
	callTimeout time.Duration
	logw        io.Writer // the tree's log (-vv), or nil
	sendOnce    sync.Once

	startOnce sync.Once
	started   chan struct{}    // closed when the start has ended
	m         *spindle.Master  // set before started closes, if the start succeeded
	cx        *spindle.Context // likewise

	lost                atomic.Bool // out of use: this Dir alone from then on
	lostOnce            sync.Once
	startedAny, closing atomic.Bool
	hits, sent, skipped atomic.Int64
	chunked             atomic.Int64 // chunked uploads begun
	uploads             atomic.Int64 // numbers the chunked uploads of this session
	uploadPrefix        string       // names them, apart from other sessions'

	// inflight holds the outputs being uploaded in chunks, each with a
	// channel closed when its upload ends: a sender with another action
	// of the same output waits for it, then asks again, so that a large
	// output crosses once per session.
	inflightMu sync.Mutex
	inflight   map[string]chan struct{}
}

// queuedPut is a put kept here, to be sent.
type queuedPut struct {
	args gocachePut
	path string
}

func newSharedCache(d *gocache.Dir, o *gocacheOpts, say func(string, ...any)) *sharedCache {
	ctx, stop := context.WithCancel(context.Background())
	s := &sharedCache{local: d, o: o, say: say, ctx: ctx, stop: stop, queue: make(chan queuedPut, gocacheQueue), started: make(chan struct{}),
		callTimeout: gocacheCallTimeout}
	s.uploadPrefix = rand.Text()[:16]
	return s
}

// begin starts the master and the context, once, in the background.
func (s *sharedCache) begin() {
	s.startedAny.Store(true)
	go func() {
		defer close(s.started)
		if down, ok := s.downSince(); ok {
			s.fail(down)
			return
		}
		t, _ := target.Parse(s.o.target)
		cn := &conn{flags: &s.o.conn}
		logw, level := io.Discard, slog.LevelError+4
		if s.logw != nil {
			logw, level = s.logw, s.o.conn.runLevel()
		}
		// A store in memory: the outputs cross as call arguments and
		// replies, never as blobs of the on-disk store (whose room is
		// for modules and compiled code).
		m, err := spindle.NewMaster(spindle.Config{CacheDir: "-", Logger: cn.logger(logw, level), LogLevel: level})
		if err != nil {
			s.fail(err)
			return
		}
		fl := spindle.NewFleet(m)
		cn.apply(fl)
		cx, err := fl.Start(s.ctx, t)
		if err != nil {
			m.Close()
			s.fail(err)
			return
		}
		if err := s.call(s.ctx, cx, "gocache.open", gocacheOpen{MaxAge: s.o.maxAge, MaxBytes: s.o.sharedBytes}, nil); err != nil {
			// s.call put the cache out of use, which released the
			// waiters; the shutdown is bounded, as Close's.
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = cx.Shutdown(sctx)
			cancel()
			m.Close()
			return
		}
		s.m, s.cx = m, cx
		os.Remove(s.downMark())
	}()
}

// downMark is the file whose presence says the context failed, and when
// (its mtime), for the sessions of this directory.
func (s *sharedCache) downMark() string {
	sum := sha256.Sum256([]byte(s.o.target + "\x00" + strings.Join(s.o.conn.args(), "\x00")))
	return filepath.Join(s.local.Root(), ".down-"+hex.EncodeToString(sum[:8]))
}

// downSince reports a failure of the context within gocacheRetry, as the
// mark says it: what it was (its first 300 bytes) and when.
func (s *sharedCache) downSince() (*recentlyDown, bool) {
	f, err := os.Open(s.downMark())
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || time.Since(fi.ModTime()) > gocacheRetry {
		return nil, false
	}
	b, _ := io.ReadAll(io.LimitReader(f, 300))
	return &recentlyDown{ago: time.Since(fi.ModTime()).Round(time.Second), why: strings.TrimSpace(string(b))}, true
}

// recentlyDown is the failure of a session that did not ask the context,
// because its mark says it failed within gocacheRetry: it is not marked
// again, which would put the retry off for good.
type recentlyDown struct {
	ago time.Duration
	why string
}

func (e *recentlyDown) Error() string {
	return fmt.Sprintf("it failed %v ago (%s); asked again %v after that", e.ago, e.why, gocacheRetry)
}

// context returns the context, starting it at the first use, or nil when
// the shared cache is not to be used.
func (s *sharedCache) context(ctx context.Context) *spindle.Context {
	if s.lost.Load() {
		return nil
	}
	s.startOnce.Do(s.begin)
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil
	case <-s.ctx.Done():
		return nil
	}
	if s.cx == nil || s.lost.Load() {
		return nil
	}
	return s.cx
}

// callCtx is the ctx of one call: it ends with parent, with the session,
// or after gocacheCallTimeout.
func (s *sharedCache) callCtx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, s.callTimeout)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// fail puts the shared cache out of use, says so once, and ends the calls
// in flight. After Close began, it says nothing: the session is over.
func (s *sharedCache) fail(err error) {
	s.lost.Store(true)
	if !s.closing.Load() {
		s.lostOnce.Do(func() {
			// The text may be the host's: escaped and cut short.
			why := escapeLine(err.Error())
			if len(why) > 300 {
				why = why[:300] + "..."
			}
			s.say("the cache on %s is out of use (%s); going on with %s alone", s.o.target, why, s.local.Root())
			if _, marked := errors.AsType[*recentlyDown](err); !marked {
				_ = os.WriteFile(s.downMark(), []byte(why+"\n"), 0o600)
			}
		})
	}
	s.stop()
}

// call makes one call to the context, taking any failure for the shared
// cache's.
func (s *sharedCache) call(ctx context.Context, cx *spindle.Context, fn string, args, result any) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	err := cx.Call(cctx, fn, args, result)
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, context.DeadlineExceeded) && s.ctx.Err() == nil:
		s.fail(fmt.Errorf("%s: no answer within %v", fn, s.callTimeout))
	default:
		s.fail(fmt.Errorf("%s: %w", fn, err))
	}
	return err
}

// Get implements gocache.Backend.
func (s *sharedCache) Get(ctx context.Context, action []byte) (gocache.Entry, bool, error) {
	if e, ok, err := s.local.Get(action); ok || err != nil || len(action) != gocache.IDSize {
		return e, ok, err
	}
	cx := s.context(ctx)
	if cx == nil {
		return gocache.Entry{}, false, nil
	}
	// The host's reply is decoded by the checked path (wire.Unmarshal,
	// within the tree's message bound), then held to a chunk.
	var hit gocacheHit
	if s.call(ctx, cx, "gocache.get", gocacheGet{Action: hex.EncodeToString(action)}, &hit) != nil || hit.Miss {
		return gocache.Entry{}, false, nil
	}
	output, ok := decodeID(hit.Output)
	if !ok || hit.Size < 0 || hit.Size > gocacheMaxShared || len(hit.Data) > gocacheChunk || (hit.Data != nil && int64(len(hit.Data)) != hit.Size) {
		s.fail(fmt.Errorf("gocache.get: a malformed hit (output %.80q, %d bytes, %d sent)", hit.Output, hit.Size, len(hit.Data)))
		return gocache.Entry{}, false, nil
	}
	var body io.Reader = bytes.NewReader(hit.Data)
	if _, size, ok := s.local.Output(output); ok && size == hit.Size {
		body = strings.NewReader("") // here already: the entry is all that is new
	} else if hit.Data == nil && hit.Size > 0 {
		body = &chunkReader{ctx: ctx, s: s, cx: cx, output: hit.Output, size: hit.Size}
	}
	e, err := s.local.Put(action, output, hit.Size, body)
	switch {
	case err == nil:
	case errors.Is(err, gocache.ErrMismatch) && ctx.Err() == nil && !s.lost.Load():
		s.fail(fmt.Errorf("gocache.get: %w", err)) // the host's bytes are not the output's
		return gocache.Entry{}, false, nil
	default:
		return gocache.Entry{}, false, err // this machine's (a full disk...): a miss, logged
	}
	s.hits.Add(1)
	e.Time = hit.Time
	return e, true, nil
}

// chunkReader reads an output from the context, a chunk a call.
type chunkReader struct {
	ctx    context.Context
	s      *sharedCache
	cx     *spindle.Context
	output string
	size   int64
	off    int64
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		var chunk []byte
		if err := r.s.call(r.ctx, r.cx, "gocache.read", gocacheRead{Output: r.output, Offset: r.off}, &chunk); err != nil {
			return 0, err
		}
		if len(chunk) == 0 || int64(len(chunk)) > min(gocacheChunk, r.size-r.off) {
			err := fmt.Errorf("gocache.read at %d of %d: %d bytes", r.off, r.size, len(chunk))
			r.s.fail(err)
			return 0, err
		}
		r.buf, r.off = chunk, r.off+int64(len(chunk))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Put implements gocache.Backend: into the Dir, then, unless --read-only,
// queued for the senders. It never waits for the context: go reads no
// other request while a put is being answered.
func (s *sharedCache) Put(ctx context.Context, action, output []byte, size int64, body io.Reader) (gocache.Entry, error) {
	e, err := s.local.Put(action, output, size, body)
	if err != nil || s.o.readOnly || size > gocacheMaxShared || s.lost.Load() {
		return e, err
	}
	s.sendOnce.Do(func() {
		s.startOnce.Do(s.begin)
		for range gocacheSends {
			s.wg.Go(s.sender)
		}
	})
	select {
	case s.queue <- queuedPut{gocachePut{Action: hex.EncodeToString(action), Output: hex.EncodeToString(output), Size: size}, e.Path}:
	default:
		s.skipped.Add(1)
	}
	return e, nil
}

// sender sends queued puts until Close closes the queue; once the cache
// is out of use, it drops them.
func (s *sharedCache) sender() {
	var buf []byte // a chunk's, made at the first chunked send
	for q := range s.queue {
		cx := s.context(s.ctx)
		if cx == nil {
			continue
		}
		if s.send(cx, q.args, q.path, &buf) == nil {
			s.sent.Add(1)
		}
	}
}

// send sends the output at path: whole when it fits a chunk, else after
// asking whether the context has it, in chunks read into *buf.
func (s *sharedCache) send(cx *spindle.Context, args gocachePut, path string, buf *[]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err // trimmed meanwhile: not sent
	}
	defer f.Close()
	var done gocachePutReply
	if args.Size <= gocacheChunk {
		args.Data = make([]byte, args.Size)
		if _, err := io.ReadFull(f, args.Data); err != nil {
			return err
		}
		return s.call(s.ctx, cx, "gocache.put", args, &done)
	}
	if *buf == nil {
		*buf = make([]byte, gocacheChunk)
	}
	release, err := s.claim(args.Output)
	if err != nil {
		return err
	}
	defer release()
	if err := s.call(s.ctx, cx, "gocache.put", args, &done); err != nil || done.Done {
		return err
	}
	args.Upload = fmt.Sprintf("%s-%d", s.uploadPrefix, s.uploads.Add(1))
	s.chunked.Add(1)
	for args.Offset = 0; args.Offset < args.Size; args.Offset += int64(len(args.Data)) {
		n, err := io.ReadFull(f, (*buf)[:min(gocacheChunk, args.Size-args.Offset)])
		if err != nil {
			return err
		}
		args.Data = (*buf)[:n]
		if err := s.call(s.ctx, cx, "gocache.put", args, &done); err != nil {
			return err
		}
	}
	if !done.Done {
		err := fmt.Errorf("gocache.put: %d bytes sent, not taken", args.Size)
		s.fail(err)
		return err
	}
	return nil
}

// claim makes this sender the one uploading output, once no other is: it
// waits for an upload of output in progress to end (or for the session's
// ctx), and returns the function that ends this one.
func (s *sharedCache) claim(output string) (release func(), err error) {
	for {
		s.inflightMu.Lock()
		wait, busy := s.inflight[output]
		if !busy {
			if s.inflight == nil {
				s.inflight = make(map[string]chan struct{})
			}
			done := make(chan struct{})
			s.inflight[output] = done
			s.inflightMu.Unlock()
			return func() {
				s.inflightMu.Lock()
				delete(s.inflight, output)
				s.inflightMu.Unlock()
				close(done)
			}, nil
		}
		s.inflightMu.Unlock()
		select {
		case <-wait:
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		}
	}
}

// Close implements gocache.Backend: it waits (at most gocacheCloseGrace)
// for the puts being sent, then shuts the context down. A session that
// never needed the context never started it.
func (s *sharedCache) Close(ctx context.Context) error {
	close(s.queue)
	sent := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(sent)
	}()
	grace := time.NewTimer(gocacheCloseGrace)
	select {
	case <-sent:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	s.closing.Store(true)
	s.stop() // ends what is left, and a start under way
	<-sent
	if !s.startedAny.Load() {
		return nil
	}
	<-s.started
	if s.m == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.cx.Shutdown(sctx)
	_ = s.m.Close()
	return nil
}
