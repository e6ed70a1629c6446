package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gocache"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// The cache a context serves to spindle gocache -t: native functions of
// every spindle context (gocacheFuncs), on a gocache.Dir under the
// context's cache directory. IDs cross as lower-case hex; an output's
// bytes cross as call arguments and replies, at most gocacheChunk a
// call, and are checked against the output ID where they are kept.
//
//	gocache.open {max_age, max_bytes}           opens the directory and trims it if due
//	gocache.get  {action}                       -> {miss} or {output, size, time, data if size <= gocacheChunk}
//	gocache.read {output, offset}               -> the next chunk of the output
//	gocache.put  {action, output, size, data}   a whole output, or (no data) -> {done} when the context has it;
//	             {..., upload, offset, data}    else the chunks, in order, under an upload name
//
// Only the master (context 0) may call them.

// gocacheServedDir is the served cache, under the context's cache
// directory.
const gocacheServedDir = "gocache-served"

// gocacheUploads is where chunked puts gather, under the served cache.
// An upload is abandoned once it has had no chunk for gocacheUploadIdle
// (a live one gets one at least every gocacheCallTimeout): each new
// upload, and each open, removes those.
const (
	gocacheUploads    = "uploads"
	gocacheUploadIdle = 4 * gocacheCallTimeout
)

type gocacheOpen struct {
	MaxAge   time.Duration `msgpack:"max_age"`
	MaxBytes int64         `msgpack:"max_bytes"`
}

type gocacheGet struct {
	Action string `msgpack:"action"`
}

// gocacheHit is the reply of gocache.get.
type gocacheHit struct {
	Miss   bool      `msgpack:"miss,omitempty"`
	Output string    `msgpack:"output,omitempty"`
	Size   int64     `msgpack:"size,omitempty"`
	Time   time.Time `msgpack:"time"`
	Data   []byte    `msgpack:"data,omitempty"`
}

type gocacheRead struct {
	Output string `msgpack:"output"`
	Offset int64  `msgpack:"offset"`
}

type gocachePut struct {
	Action string `msgpack:"action"`
	Output string `msgpack:"output"`
	Size   int64  `msgpack:"size"`
	Data   []byte `msgpack:"data,omitempty"`
	Upload string `msgpack:"upload,omitempty"`
	Offset int64  `msgpack:"offset,omitempty"`
}

type gocachePutReply struct {
	Done bool `msgpack:"done"`
}

// decodeID decodes a hex ID, in the one spelling modules.ValidHash takes.
func decodeID(s string) ([]byte, bool) {
	if !modules.ValidHash(s) {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// servedCache is one context's served cache. It is safe for concurrent
// use.
type servedCache struct {
	mu      sync.Mutex
	dir     *gocache.Dir // guarded by mu; nil until opened
	uploads string       // guarded by mu
}

// gocacheFuncs are the functions of the served cache.
func gocacheFuncs() map[string]spindle.Func {
	sc := &servedCache{}
	fn := func(f func(ctx context.Context, d *gocache.Dir, args []byte) (any, error)) spindle.Func {
		return spindle.Func{Fn: func(ctx context.Context, call *spindle.CallInfo, args []byte) (any, error) {
			if call.Src != 0 {
				return nil, fmt.Errorf("gocache: context %d is not the master: %w", call.Src, routing.ErrRefused)
			}
			d, err := sc.open(call, gocacheOpen{MaxAge: gocacheDefaultAge})
			if err != nil {
				return nil, err
			}
			return f(ctx, d, args)
		}}
	}
	return map[string]spindle.Func{
		"gocache.open": {Fn: func(_ context.Context, call *spindle.CallInfo, args []byte) (any, error) {
			if call.Src != 0 {
				return nil, fmt.Errorf("gocache: context %d is not the master: %w", call.Src, routing.ErrRefused)
			}
			var a gocacheOpen
			if err := wire.Unmarshal(args, &a); err != nil {
				return nil, fmt.Errorf("gocache.open: %w: %v", routing.ErrBadRequest, err)
			}
			_, err := sc.open(call, a)
			return nil, err
		}},
		"gocache.get":  fn(sc.get),
		"gocache.read": fn(sc.read),
		"gocache.put":  fn(sc.put),
	}
}

// open opens the directory at the first call, trimmed (if due) by the
// bounds of the first gocache.open, or by the defaults.
func (sc *servedCache) open(call *spindle.CallInfo, bounds gocacheOpen) (*gocache.Dir, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.dir != nil {
		return sc.dir, nil
	}
	root := call.CacheDir
	if root == "" {
		// A context the master started without one (its own is in
		// memory): the user's, as a context of its own would have.
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("gocache: context %d has no cache directory: %v", call.Router.ID(), err)
		}
		root = filepath.Join(d, "spindle")
	}
	d, err := gocache.Open(filepath.Join(root, gocacheServedDir))
	if err != nil {
		return nil, err
	}
	uploads := filepath.Join(d.Root(), gocacheUploads)
	if err := os.MkdirAll(uploads, 0o700); err != nil {
		return nil, fmt.Errorf("gocache: %w", err)
	}
	sweepUploads(uploads)
	// The trim walks the directory: beside the calls, not in this one.
	// Its goroutine is the context process's; it ends with the walk (one
	// pass over the directory) or with the process, and a trim cut short
	// by the process's end is resumed at the next one due.
	log := call.Log
	go func() {
		if _, _, err := d.TrimIfDue(time.Now(), gocacheTrimEvery, max(bounds.MaxAge, gocache.TrimGrace), max(bounds.MaxBytes, 0)); err != nil {
			log.Warn("gocache: trim", "err", err)
		}
	}()
	sc.dir, sc.uploads = d, uploads
	return d, nil
}

// sweepUploads removes the abandoned uploads in dir.
func sweepUploads(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	now := time.Now()
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > gocacheUploadIdle {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ids decodes the action and output of a call.
func ids(fn, action, output string) (a, o []byte, err error) {
	var ok bool
	if a, ok = decodeID(action); !ok {
		return nil, nil, fmt.Errorf("%s: action %.80q: %w: want 64 lower-case hex digits", fn, action, routing.ErrBadRequest)
	}
	if output == "" {
		return a, nil, nil
	}
	if o, ok = decodeID(output); !ok {
		return nil, nil, fmt.Errorf("%s: output %.80q: %w: want 64 lower-case hex digits", fn, output, routing.ErrBadRequest)
	}
	return a, o, nil
}

func (sc *servedCache) get(_ context.Context, d *gocache.Dir, args []byte) (any, error) {
	var a gocacheGet
	if err := wire.Unmarshal(args, &a); err != nil {
		return nil, fmt.Errorf("gocache.get: %w: %v", routing.ErrBadRequest, err)
	}
	action, _, err := ids("gocache.get", a.Action, "")
	if err != nil {
		return nil, err
	}
	e, ok, err := d.Get(action)
	if err != nil || !ok || e.Size > gocacheMaxShared {
		return gocacheHit{Miss: true}, nil
	}
	hit := gocacheHit{Output: hex.EncodeToString(e.Output), Size: e.Size, Time: e.Time}
	if e.Size <= gocacheChunk {
		if hit.Data, err = os.ReadFile(e.Path); err != nil || int64(len(hit.Data)) != e.Size {
			return gocacheHit{Miss: true}, nil // trimmed or replaced meanwhile
		}
	}
	return hit, nil
}

func (sc *servedCache) read(_ context.Context, d *gocache.Dir, args []byte) (any, error) {
	var a gocacheRead
	if err := wire.Unmarshal(args, &a); err != nil {
		return nil, fmt.Errorf("gocache.read: %w: %v", routing.ErrBadRequest, err)
	}
	output, ok := decodeID(a.Output)
	if !ok || a.Offset < 0 {
		return nil, fmt.Errorf("gocache.read: output %.80q at %d: %w", a.Output, a.Offset, routing.ErrBadRequest)
	}
	f, err := os.Open(d.OutputPath(output))
	if err != nil {
		return nil, fmt.Errorf("gocache.read: output %s: %w", a.Output, routing.ErrNotFound)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || a.Offset >= fi.Size() {
		return nil, fmt.Errorf("gocache.read: output %s at %d: %w: past its end", a.Output, a.Offset, routing.ErrBadRequest)
	}
	b := make([]byte, min(gocacheChunk, fi.Size()-a.Offset))
	n, err := f.ReadAt(b, a.Offset)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("gocache.read: output %s at %d: %w: %v", a.Output, a.Offset, routing.ErrBadRequest, err)
	}
	return b[:n], nil
}

func (sc *servedCache) put(_ context.Context, d *gocache.Dir, args []byte) (any, error) {
	var a gocachePut
	if err := wire.Unmarshal(args, &a); err != nil {
		return nil, fmt.Errorf("gocache.put: %w: %v", routing.ErrBadRequest, err)
	}
	action, output, err := ids("gocache.put", a.Action, a.Output)
	if err != nil {
		return nil, err
	}
	if output == nil || a.Size < 0 || a.Size > gocacheMaxShared || a.Offset < 0 || a.Offset+int64(len(a.Data)) > a.Size {
		return nil, fmt.Errorf("gocache.put: output %.80q, %d bytes at %d of %d: %w", a.Output, len(a.Data), a.Offset, a.Size, routing.ErrBadRequest)
	}
	switch {
	case a.Upload == "" && int64(len(a.Data)) == a.Size:
		// The whole output (or an empty one).
		_, err := d.Put(action, output, a.Size, bytes.NewReader(a.Data))
		if err != nil {
			return nil, fmt.Errorf("gocache.put: %w", err)
		}
		return gocachePutReply{Done: true}, nil
	case a.Upload == "":
		// Is it here already? Then the entry is all that is new.
		if _, size, ok := d.Output(output); ok && size == a.Size {
			if _, err := d.Put(action, output, a.Size, strings.NewReader("")); err == nil {
				return gocachePutReply{Done: true}, nil
			}
			// Trimmed meanwhile: let the master send it.
		}
		return gocachePutReply{}, nil
	}
	return sc.chunk(d, action, output, a)
}

// chunk appends a chunk of an upload and, at its last, keeps the output.
func (sc *servedCache) chunk(d *gocache.Dir, action, output []byte, a gocachePut) (any, error) {
	if len(a.Upload) > 64 || strings.Trim(a.Upload, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" || len(a.Data) == 0 {
		return nil, fmt.Errorf("gocache.put: upload %.80q of %d bytes: %w", a.Upload, len(a.Data), routing.ErrBadRequest)
	}
	sc.mu.Lock()
	uploads := sc.uploads
	sc.mu.Unlock()
	path := filepath.Join(uploads, a.Upload+"-"+a.Output)
	flags := os.O_WRONLY | os.O_APPEND
	if a.Offset == 0 {
		flags |= os.O_CREATE | os.O_TRUNC
		sweepUploads(uploads)
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gocache.put: upload %s: a chunk at %d of an upload not begun: %w", a.Upload, a.Offset, routing.ErrBadRequest)
	}
	if err != nil {
		return nil, fmt.Errorf("gocache.put: upload %s: %w", a.Upload, err)
	}
	fail := func(err error) (any, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("gocache.put: upload %s: %w", a.Upload, err))
	}
	if fi.Size() != a.Offset {
		return fail(fmt.Errorf("gocache.put: upload %s: a chunk at %d, the upload has %d bytes: %w", a.Upload, a.Offset, fi.Size(), routing.ErrBadRequest))
	}
	if _, err := f.Write(a.Data); err != nil {
		return fail(fmt.Errorf("gocache.put: upload %s: %w", a.Upload, err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("gocache.put: upload %s: %w", a.Upload, err))
	}
	if a.Offset+int64(len(a.Data)) < a.Size {
		return gocachePutReply{}, nil
	}
	defer os.Remove(path)
	r, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gocache.put: upload %s: %w", a.Upload, err)
	}
	defer r.Close()
	if _, err := d.Put(action, output, a.Size, r); err != nil {
		return nil, fmt.Errorf("gocache.put: %w", err)
	}
	return gocachePutReply{Done: true}, nil
}
