package main

import (
	"bytes"
	"context"
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
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/wire"
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
...; nothing installed there but sh): a get this directory misses asks
that context, whose hit comes back into this directory, and every put is
sent there too, so CI machines that point at one context share one Go
build cache. The context keeps it in its cache directory (gocache-served/
under ~/.cache/spindle there), trimmed by the same bounds. Outputs of more
than 64 MiB stay in this directory only. When the context cannot be
reached or is lost, that is said once on stderr and the build goes on
with this directory alone: a cache never fails a build.

flags:
  --dir DIR         the cache directory (default $SPINDLE_GOCACHE, else
                    spindle/gocache under the user's cache directory)
  -t, --target T    also keep the cache in this context of the tree
  --max-age D       remove what was not used for D (default 120h); a
                    trim runs at most once an hour
  --max-size SIZE   then remove the least recently used outputs while
                    the directory holds more than SIZE (default no bound);
                    what was used in the last hour always stays
  -v, --verbose     at the end, one line on stderr: gets, hits, puts
` + connUsage + `
exit status: 0; 2 bad usage or an unusable directory (said on stderr); 1
when go's requests could not be followed.
`

// gocacheDirEnv names the default cache directory of spindle gocache.
const gocacheDirEnv = "SPINDLE_GOCACHE"

const (
	gocacheDefaultAge = 120 * time.Hour
	gocacheTrimEvery  = time.Hour
	// gocacheMaxShared is the largest output a shared cache holds: one
	// blob crosses the tree as one message.
	gocacheMaxShared = 64 << 20
	// gocacheSends bounds the puts being sent to the shared cache at once
	// (each holds its output in memory until it has been sent).
	gocacheSends = 8
	// gocacheCallTimeout bounds one call to the shared cache.
	gocacheCallTimeout = 2 * time.Minute
	// gocacheServedDir is the served cache, under the context's cache
	// directory.
	gocacheServedDir = "gocache-served"
)

type gocacheOpts struct {
	dir      string
	target   string
	maxAge   time.Duration
	maxBytes int64
	conn     connFlags
}

func parseGocacheArgs(args []string) (*gocacheOpts, error) {
	o := &gocacheOpts{maxAge: gocacheDefaultAge}
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
	fs.Func("max-age", "", func(v string) (err error) { o.maxAge, err = parseDurationFlag("--max-age", v); return err })
	fs.Func("max-size", "", func(v string) (err error) { o.maxBytes, err = parseSize("--max-size", v, 1<<50); return err })
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
	if o.dir == "" {
		o.dir = os.Getenv(gocacheDirEnv)
	}
	if o.dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no cache directory (%v): give --dir", err)
		}
		o.dir = filepath.Join(d, "spindle", "gocache")
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return nil, err
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
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "spindle gocache: "+format+"\n", a...) }
	d, err := gocache.Open(o.dir)
	if err != nil {
		say("%v", strings.TrimPrefix(err.Error(), "gocache: "))
		return exitUsage
	}
	if _, _, err := d.TrimIfDue(time.Now(), gocacheTrimEvery, o.maxAge, o.maxBytes); err != nil {
		say("%v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	var b gocache.Backend = gocache.DirBackend{Dir: d}
	var shared *sharedCache
	if o.target != "" {
		shared = startShared(d, o, say)
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
		}
		say("%s", line)
	}
	if err != nil {
		say("%v", err)
		return 1
	}
	return 0
}

// gocacheGet and gocachePut are the arguments of the served cache's
// functions; IDs are lower-case hex.
type gocacheGet struct {
	Action string `msgpack:"action"`
}

type gocachePut struct {
	Action string    `msgpack:"action"`
	Output string    `msgpack:"output"`
	Size   int64     `msgpack:"size"`
	Time   time.Time `msgpack:"time"`
}

// gocacheHit is the reply of gocache.get.
type gocacheHit struct {
	Miss   bool      `msgpack:"miss,omitempty"`
	Output string    `msgpack:"output,omitempty"`
	Size   int64     `msgpack:"size,omitempty"`
	Time   time.Time `msgpack:"time"`
}

// sharedCache is the Backend of spindle gocache -t: its Dir, and the cache
// a context serves (gocacheFuncs). It is safe for concurrent use.
type sharedCache struct {
	local *gocache.Dir
	name  string
	say   func(string, ...any)
	sends chan struct{} // slots of the puts being sent
	wg    sync.WaitGroup

	started chan struct{} // closed when the start has ended
	m       *spindle.Master
	cx      *spindle.Context // nil when the start failed; set before started closes

	lost       atomic.Bool // the context failed us: this Dir alone from then on
	lostOnce   sync.Once
	hits, sent atomic.Int64
}

// startShared starts the master and the context in the background: go
// waits for the first response of a GOCACHEPROG, and a context over ssh
// takes a while. Gets and puts that come first wait for it.
func startShared(d *gocache.Dir, o *gocacheOpts, say func(string, ...any)) *sharedCache {
	s := &sharedCache{local: d, name: o.target, say: say, sends: make(chan struct{}, gocacheSends), started: make(chan struct{})}
	go func() {
		defer close(s.started)
		t, _ := target.Parse(o.target)
		cn := &conn{flags: &o.conn}
		m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(io.Discard, slog.LevelError)})
		if err != nil {
			s.fail(err)
			return
		}
		fl := spindle.NewFleet(m)
		cn.apply(fl)
		cx, err := fl.Start(context.Background(), t)
		if err != nil {
			m.Close()
			s.fail(err)
			return
		}
		s.m, s.cx = m, cx
	}()
	return s
}

// context returns the context once started, or nil when it is not to be
// used.
func (s *sharedCache) context(ctx context.Context) *spindle.Context {
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil
	}
	if s.cx == nil || s.lost.Load() {
		return nil
	}
	return s.cx
}

// fail says once that the shared cache is out of use, and why.
func (s *sharedCache) fail(err error) {
	s.lost.Store(true)
	s.lostOnce.Do(func() {
		s.say("the cache on %s is out of use (%v); going on with %s alone", s.name, err, s.local.Root())
	})
}

// failCall takes a failed call: a refused or malformed one fails the
// call only, anything else (a lost context, a timeout) the whole shared
// cache.
func (s *sharedCache) failCall(what string, err error) {
	if errors.Is(err, routing.ErrBadRequest) || errors.Is(err, routing.ErrNotFound) {
		s.say("%s on %s: %v", what, s.name, err)
		return
	}
	s.fail(fmt.Errorf("%s: %w", what, err))
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
	cctx, cancel := context.WithTimeout(ctx, gocacheCallTimeout)
	defer cancel()
	var hit gocacheHit
	if err := cx.Call(cctx, "gocache.get", gocacheGet{Action: hex.EncodeToString(action)}, &hit); err != nil {
		s.failCall("get", err)
		return gocache.Entry{}, false, nil
	}
	output, err := hex.DecodeString(hit.Output)
	switch {
	case hit.Miss:
		return gocache.Entry{}, false, nil
	case err != nil || !modules.ValidHash(hit.Output) || hit.Size < 0 || hit.Size > gocacheMaxShared:
		s.say("get on %s: a malformed hit (output %.80q, %d bytes): a miss", s.name, hit.Output, hit.Size)
		return gocache.Entry{}, false, nil
	}
	if err := s.m.Blobs().Pull(cctx, cx.ID(), []string{hit.Output}); err != nil {
		s.failCall("get", err)
		return gocache.Entry{}, false, nil
	}
	defer s.m.Store().Release(hit.Output)
	b, ok := s.m.Store().Get(hit.Output)
	if !ok {
		return gocache.Entry{}, false, nil
	}
	e, err := s.local.Put(action, output, hit.Size, bytes.NewReader(b))
	if err != nil {
		return gocache.Entry{}, false, err
	}
	s.hits.Add(1)
	e.Time = hit.Time
	return e, true, nil
}

// Put implements gocache.Backend: into the Dir, then sent to the context
// in the background (Close waits for it). A put waits for the context's
// start, and for a slot when gocacheSends are being sent.
func (s *sharedCache) Put(ctx context.Context, action, output []byte, size int64, body io.Reader) (gocache.Entry, error) {
	e, err := s.local.Put(action, output, size, body)
	if err != nil || size > gocacheMaxShared {
		return e, err
	}
	cx := s.context(ctx)
	if cx == nil {
		return e, nil
	}
	select {
	case s.sends <- struct{}{}:
	case <-ctx.Done():
		return e, nil
	}
	b, rerr := os.ReadFile(e.Path)
	h := modules.Hash(b)
	if rerr != nil || h != hex.EncodeToString(output) {
		<-s.sends
		return e, nil // replaced or trimmed meanwhile: not sent
	}
	if _, err := s.m.Store().Put(b); err != nil {
		<-s.sends
		return e, nil
	}
	s.wg.Go(func() {
		defer func() { <-s.sends }()
		defer s.m.Store().Release(h)
		cctx, cancel := context.WithTimeout(context.Background(), gocacheCallTimeout)
		defer cancel()
		args := gocachePut{Action: hex.EncodeToString(action), Output: h, Size: size, Time: e.Time}
		if err := cx.Call(cctx, "gocache.put", args, nil); err != nil {
			s.failCall("put", err)
			return
		}
		s.sent.Add(1)
	})
	return e, nil
}

// Close implements gocache.Backend: it waits for the puts being sent, then
// shuts the context down.
func (s *sharedCache) Close(ctx context.Context) error {
	s.wg.Wait()
	<-s.started
	if s.m == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.cx != nil {
		_ = s.cx.Shutdown(sctx)
	}
	return s.m.Close()
}

// gocacheFuncs are the native functions of the cache a context serves to
// spindle gocache -t: gocache.get and gocache.put, in
// CallInfo.CacheDir/gocache-served. Only the master may call them: a put
// says which output an action has, which nothing can check.
func gocacheFuncs() map[string]spindle.Func {
	var (
		once sync.Once
		dir  *gocache.Dir
		derr error
	)
	open := func(call *spindle.CallInfo) (*gocache.Dir, error) {
		if call.Src != 0 {
			return nil, fmt.Errorf("gocache: context %d is not the master: %w", call.Src, routing.ErrRefused)
		}
		once.Do(func() {
			if call.CacheDir == "" {
				derr = fmt.Errorf("gocache: context %d keeps no cache directory", call.Router.ID())
				return
			}
			if dir, derr = gocache.Open(filepath.Join(call.CacheDir, gocacheServedDir)); derr == nil {
				if _, _, err := dir.TrimIfDue(time.Now(), gocacheTrimEvery, gocacheDefaultAge, 0); err != nil {
					call.Log.Warn("gocache: trim", "err", err)
				}
			}
		})
		return dir, derr
	}
	hexID := func(what, s string) ([]byte, error) {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != gocache.IDSize || hex.EncodeToString(b) != s {
			return nil, fmt.Errorf("gocache: %s %.80q: %w: want 64 lower-case hex digits", what, s, routing.ErrBadRequest)
		}
		return b, nil
	}
	return map[string]spindle.Func{
		"gocache.get": {Fn: func(_ context.Context, call *spindle.CallInfo, args []byte) (any, error) {
			d, err := open(call)
			if err != nil {
				return nil, err
			}
			var a gocacheGet
			if err := wire.Unmarshal(args, &a); err != nil {
				return nil, fmt.Errorf("gocache.get: %w: %v", routing.ErrBadRequest, err)
			}
			action, err := hexID("action", a.Action)
			if err != nil {
				return nil, err
			}
			e, ok, err := d.Get(action)
			if err != nil || !ok || e.Size > gocacheMaxShared {
				return gocacheHit{Miss: true}, nil
			}
			h := hex.EncodeToString(e.Output)
			if !call.Blobs.Store().Has(h) {
				// The master pulls the output from this context's store.
				b, err := os.ReadFile(e.Path)
				if err != nil || call.Blobs.Store().PutVerified(h, b) != nil {
					return gocacheHit{Miss: true}, nil
				}
			}
			return gocacheHit{Output: h, Size: e.Size, Time: e.Time}, nil
		}},
		"gocache.put": {Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
			d, err := open(call)
			if err != nil {
				return nil, err
			}
			var a gocachePut
			if err := wire.Unmarshal(args, &a); err != nil {
				return nil, fmt.Errorf("gocache.put: %w: %v", routing.ErrBadRequest, err)
			}
			action, err := hexID("action", a.Action)
			if err != nil {
				return nil, err
			}
			output, err := hexID("output", a.Output)
			if err != nil {
				return nil, err
			}
			if a.Size < 0 || a.Size > gocacheMaxShared {
				return nil, fmt.Errorf("gocache.put: %d bytes: %w (at most %d)", a.Size, routing.ErrBadRequest, gocacheMaxShared)
			}
			b, err := call.Blobs.Ensure(ctx, a.Output) // from the master, checked against its hash
			if err != nil {
				return nil, fmt.Errorf("gocache.put: the output: %w", err)
			}
			if _, err := d.Put(action, output, a.Size, bytes.NewReader(b)); err != nil {
				return nil, fmt.Errorf("gocache.put: %w", err)
			}
			return nil, nil
		}},
	}
}
