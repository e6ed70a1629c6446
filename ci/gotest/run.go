package gotest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/target"
)

// ErrNotCached is a run that passed whose result could not be recorded in
// the action cache: Result is complete, the test passed.
var ErrNotCached = errors.New("gotest: the test passed, but its result was not cached")

// Salt is the salt of every test action's key: it keeps them apart from
// the steps of job files, and is bumped when what a test sees changes.
const Salt = "spindle exec/1"

// The defaults of Options' limits.
const (
	DefaultMemoryBytes = 1 << 30
	DefaultOutputBytes = 64 << 20
	DefaultDiskBytes   = 1 << 30
	// DefaultTimeout is a test's time limit when it has no -test.timeout
	// (or -test.timeout=0); TimeoutMargin is added to one it has.
	DefaultTimeout = time.Hour
	TimeoutMargin  = time.Minute
)

// Options is one run of a test binary. The zero value of each field but
// Binary means its default.
type Options struct {
	// Binary is the path of the test binary (GOOS=wasip1 GOARCH=wasm).
	Binary string
	// Args are its arguments: the -test.* flags go test passes, and the
	// test's own after them.
	Args []string
	// Dir is the package directory, seen at /src (default: the working
	// directory, which is where go test starts its -exec program).
	Dir string
	// Root, if set, is seen at /src instead of Dir, which must be inside
	// it and is then the working directory (/src/REL): for tests that read
	// files above their package ("../testdata"). ModuleRoot finds the
	// usual one.
	Root string
	// Inputs narrow what of Dir (or Root) the test sees: package ci's glob
	// patterns (default ["**"], everything but .git).
	Inputs []string
	// Env is the test's environment beyond PWD, HOME and TMPDIR, which
	// the workspace sets. Nothing of this process's environment is passed
	// unless named here.
	Env map[string]string
	// Targets are where it may run, in package target's syntax or names
	// of Inventory (a group names each of its hosts); default ["local"].
	Targets   []string
	Inventory *target.Inventory
	// Fleet starts the targets' contexts; default a new one of the Master.
	Fleet *spindle.Fleet
	// SlotDir, if set, spreads concurrent runs over Targets (see "Fan-out"
	// in the package doc).
	SlotDir string
	// Cache is the action cache; nil disables caching.
	Cache *ci.ActionCache
	// CacheTests takes the test as hermetic: a passing run is cached and
	// reused though the test has the real clock and randomness.
	CacheTests bool
	// The test's limits (see "Bounds" in the package doc).
	MemoryBytes, OutputBytes, DiskBytes int64
	Timeout                             time.Duration
	// Stdout and Stderr receive the test's output as it is written (or
	// replayed from the cache); nil discards it.
	Stdout, Stderr io.Writer
}

// Result is how a run ended.
type Result struct {
	// ExitCode is the test binary's exit code (0 passed, 1 failed).
	ExitCode int
	// Key is the run's action key.
	Key string
	// Cache is ci.CacheHit, ci.CacheMiss, or ci.CacheOff with NotCached
	// saying why.
	Cache     string
	NotCached string
	// Target is where it ran (on a hit, where the run it replays ran).
	Target string
	// Duration is how long it ran (on a hit, how long that run took).
	Duration time.Duration
	// Created is when a hit's entry was recorded.
	Created time.Time
	// Lacks lists what wasip1 lacks that the test's output shows it
	// failed on (at most 8 kinds, in the order first seen); set for a run
	// that failed, empty otherwise.
	Lacks []Lack
}

// Run runs the test binary o.Binary on one of o.Targets of m's tree, or
// replays it from the cache. A run refused before it started is a
// *UsageError; a test that trapped or passed a limit is a
// *spindle.TaskError (Result still names the target); a target that
// could not be reached or was lost, another error.
func Run(ctx context.Context, m *spindle.Master, o Options) (*Result, error) {
	tf, err := parseTestFlags(o.Args)
	if err != nil {
		return nil, err
	}
	wasm, err := readBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	dir := cmp.Or(o.Dir, ".")
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, usagef("package directory: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, usagef("package directory %s is not a directory", dir)
	}
	root, work := dir, ""
	if o.Root != "" {
		if root, err = filepath.Abs(o.Root); err != nil {
			return nil, usagef("root: %v", err)
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, usagef("package directory %s is not inside the root %s", dir, root)
		}
		if rel != "." {
			work = filepath.ToSlash(rel)
		}
	}
	inputs := o.Inputs
	if len(inputs) == 0 {
		inputs = []string{"**"}
	}
	filter, err := ci.NewFilter(inputs)
	if err != nil {
		return nil, usagef("%v", err)
	}
	targets, err := resolveTargets(o.Targets, o.Inventory)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
		if tf.timeout > 0 {
			timeout = tf.timeout + TimeoutMargin
		}
	}
	mod, err := m.AddModule(wasm)
	if err != nil {
		return nil, fmt.Errorf("gotest: store %s: %w", o.Binary, err)
	}
	tree, err := m.Store().PutDir(root, filter.Include)
	if err != nil {
		return nil, fmt.Errorf("gotest: store %s: %w", root, err)
	}
	a := &ci.Action{
		Module: mod, Args: o.Args, Env: o.Env, InputRoot: tree, Dir: work,
		Timeout:     timeout,
		MemoryBytes: cmp.Or(o.MemoryBytes, DefaultMemoryBytes),
		OutputBytes: cmp.Or(o.OutputBytes, DefaultOutputBytes),
		DiskBytes:   cmp.Or(o.DiskBytes, DefaultDiskBytes),
		Clock:       true, Random: true,
		Platform: ci.Platform, Salt: Salt,
	}
	res := &Result{Key: a.Key(), Cache: ci.CacheOff}
	_, res.NotCached = a.Cacheable()
	cacheable := false
	switch {
	case o.Cache == nil:
		res.NotCached = "not cached: no action cache"
	case tf.count:
		res.NotCached = "not cached: -test.count asks for a fresh run"
	case !o.CacheTests:
		res.NotCached += " (--cache takes a passing test as hermetic and caches it)"
	default:
		cacheable, res.NotCached, res.Cache = true, "", ci.CacheMiss
	}
	if cacheable {
		if e, ok := o.Cache.Get(res.Key); ok && e.ExitCode == 0 {
			stdout, ok1 := m.Store().Get(e.Stdout)
			stderr, ok2 := m.Store().Get(e.Stderr)
			if ok1 && ok2 {
				res.Cache, res.Target, res.Duration, res.Created = ci.CacheHit, e.Target, e.Duration, e.Created
				if err := replay(o.Stdout, stdout); err != nil {
					return res, err
				}
				return res, replay(o.Stderr, stderr)
			}
			// Its blobs are gone from the store: run it again.
		}
	}
	stdout := newTee(o.Stdout, a.OutputBytes)
	stderr := newTee(o.Stderr, a.OutputBytes)
	var lacks lackScan
	task := spindle.Task{
		Module: mod, Task: filepath.Base(o.Binary), Args: a.Args, Env: a.Env,
		Stdout: &lineScanner{w: stdout, scan: &lacks}, Stderr: &lineScanner{w: stderr, scan: &lacks},
		Clock: a.Clock, Random: a.Random,
		Limits: spindle.Limits{
			Timeout: a.Timeout, MemoryPages: uint32((a.MemoryBytes + 65535) / 65536),
			OutputBytes: a.OutputBytes, DiskBytes: a.DiskBytes,
		},
		Workspace: &spindle.Workspace{Input: tree, Dir: work},
	}
	fl := o.Fleet
	if fl == nil {
		fl = spindle.NewFleet(m)
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	first, release := PickSlot(o.SlotDir, names, dir)
	defer release()
	var c *spindle.Context
	var errs []error
	for i := range targets {
		t := targets[(first+i)%len(targets)]
		if c, err = fl.Get(ctx, t.Target); err == nil {
			res.Target = t.Name
			break
		}
		fl.Forget(t.Target)
		errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
		if ctx.Err() != nil {
			break
		}
	}
	if c == nil {
		return res, fmt.Errorf("gotest: no target could be started: %w", errors.Join(errs...))
	}
	began := time.Now()
	tr, err := c.Run(ctx, task)
	res.Duration = time.Since(began)
	if err != nil {
		return res, err
	}
	res.ExitCode = tr.ExitCode
	if res.ExitCode != 0 {
		res.Lacks = lacks.result()
	}
	out, cut1 := stdout.kept()
	errOut, cut2 := stderr.kept()
	if !cacheable || res.ExitCode != 0 || cut1 || cut2 {
		return res, nil
	}
	e := &ci.CacheEntry{Key: res.Key, ExitCode: 0, Target: res.Target, Duration: res.Duration, Created: time.Now()}
	if e.Stdout, err = m.Store().Put(out); err == nil {
		if e.Stderr, err = m.Store().Put(errOut); err == nil {
			err = o.Cache.Put(e)
		}
	}
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrNotCached, err)
	}
	return res, nil
}

// ModuleRoot returns the nearest directory at or above dir that holds a
// go.mod: the module dir's package belongs to.
func ModuleRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod in %s or above it", abs)
		}
	}
}

// readBinary reads a test binary and checks that it is a wasm module.
func readBinary(path string) ([]byte, error) {
	if path == "" {
		return nil, usagef("no test binary given")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, usagef("test binary %s: %v", path, pe.Err)
		}
		return nil, usagef("test binary: %v", err)
	}
	switch {
	case bytes.HasPrefix(b, []byte("\x00asm\x01\x00\x00\x00")):
		return b, nil
	case bytes.HasPrefix(b, []byte("\x7fELF")), bytes.HasPrefix(b, []byte("MZ")),
		bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}):
		return nil, usagef("test binary %s is a native executable, not wasm: build it with GOOS=wasip1 GOARCH=wasm", path)
	}
	return nil, usagef("test binary %s is not a wasm module (no \\0asm header): build it with GOOS=wasip1 GOARCH=wasm", path)
}

// namedTarget is a parsed target and the text that named it.
type namedTarget struct {
	Name   string
	Target target.Target
}

// resolveTargets parses texts, names of inv expanding to their hosts.
func resolveTargets(texts []string, inv *target.Inventory) ([]namedTarget, error) {
	if len(texts) == 0 {
		texts = []string{"local"}
	}
	var out []namedTarget
	for _, s := range texts {
		t, err := target.Parse(s)
		if err == nil {
			out = append(out, namedTarget{s, t})
			continue
		}
		if inv == nil {
			return nil, usagef("target %q: %v", s, err)
		}
		named, ierr := inv.Resolve(s)
		if ierr != nil {
			return nil, usagef("target %q: %v", s, ierr)
		}
		for _, n := range named {
			out = append(out, namedTarget{n.Name, n.Target})
		}
	}
	if len(out) == 0 {
		return nil, usagef("targets %q name no host", texts)
	}
	return out, nil
}

func replay(w io.Writer, b []byte) error {
	if w == nil || len(b) == 0 {
		return nil
	}
	_, err := w.Write(b)
	return err
}

// tee passes a stream on and keeps its first max bytes for the cache.
type tee struct {
	w   io.Writer
	max int64
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
	cut bool         // guarded by mu: more than max bytes came
}

func newTee(w io.Writer, max int64) *tee { return &tee{w: w, max: max} }

// kept returns the bytes kept and whether some were not.
func (t *tee) kept() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.Bytes(), t.cut
}

func (t *tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	if room := t.max - int64(t.buf.Len()); int64(len(p)) <= room {
		t.buf.Write(p)
	} else {
		t.cut = true
	}
	t.mu.Unlock()
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}
