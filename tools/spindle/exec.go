package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/ci/gotest"
	"github.com/spindle-hq/spindle/target"
)

const execUsage = `usage: spindle exec [flags] TEST.wasm [TEST FLAGS...]
       GOOS=wasip1 GOARCH=wasm go test -exec 'spindle exec [flags]' ./...

Runs a Go test binary built for wasip1 in the sandbox of a context of the
tree, as go test's -exec program: the package directory (the working
directory) read-only at /src, which is the test's working directory, a
private writable /tmp (TMPDIR) and /home, and nothing else. Its output is
streamed as it is written; spindle exec exits with its exit code. The test
gets the real clock and randomness, so it is not cached unless --cache is
given. The same binary installed (or linked) as go_wasip1_wasm_exec on PATH
is found by go test without -exec; its flags then come from
$SPINDLE_EXEC_FLAGS.

flags:
  -t, --target T       where to run; repeatable: concurrent test binaries
                       (go test -p) spread over the targets (default "local";
                       spindle run -t syntax, or an --inventory host or group)
  -i, --inventory F    an inventory file for the targets
  --cache              take the test as hermetic: cache a passing run by its
                       action key (binary, flags, env, package tree, limits)
                       and replay it when nothing changed; a hit says so on
                       stderr. go test -count=N always runs
  --cache-dir DIR      the action cache and blob store (default
                       $XDG_CACHE_HOME/spindle; "-" keeps them in memory)
  --env K=V            an environment variable for the test; K alone passes
                       this process's value; repeatable (nothing else of the
                       environment reaches the test)
  --inputs PATTERN     what of the package directory the test sees (the glob
                       patterns of spindle ci's inputs; default "**");
                       repeatable
  --module             the view at /src is the package's whole module (the
                       nearest directory above with a go.mod), the package
                       directory its working directory: for tests that read
                       ../ files. --inputs are then relative to the module,
                       and every file they take is in each test's cache key
                       (and hashed for each: narrow them in a big module)
  --memory SIZE        the test's memory (default 1GiB, at most 4GiB)
  --output-bytes SIZE  its stdout and stderr together (default 64MiB)
  --disk SIZE          what it may write to /tmp and /home (default 1GiB)
  --timeout D          its time limit (default its -test.timeout plus 1m,
                       or 1h without one)
  --events FILE        append one JSON line per run to FILE: package
                       directory, key, cache status, target, exit code, time
  --no-sandbox         start the contexts without OS layers under wasm
  -v, --verbose        say on stderr where each test ran and its cache status;
                       -vv the tree's log records too
` + connUsage + `
exit status: the test's (0 passed, 1 failed); 2 bad usage, a flag the
sandbox cannot honour (-coverprofile, -cpuprofile, ...), a file that is
not a wasip1 binary; 3 a target could not be reached or was lost; 1 when
the test trapped or passed a limit (said on stderr); 130 interrupted.
`

// printLacks says what wasip1 lacks that a failed test ran into, so
// that such a failure is not a mystery.
func printLacks(w io.Writer, lacks []gotest.Lack) {
	if len(lacks) == 0 {
		return
	}
	fmt.Fprintln(w, "spindle exec: the test failed on what wasip1 lacks, in any sandbox:")
	for _, l := range lacks {
		fmt.Fprintf(w, "  %s: %s\n", l.What, escapeLine(l.Line))
	}
	fmt.Fprintln(w, "  a test that needs it cannot pass under GOOS=wasip1: skip it there (t.Skip when\n"+
		"  runtime.GOOS == \"wasip1\"), or leave it out with go test -skip")
}

// execEnvFlags is where spindle exec, run as go_wasip1_wasm_exec, finds its
// flags.
const execEnvFlags = "SPINDLE_EXEC_FLAGS"

// execName is the name go test looks for on PATH for GOOS=wasip1
// GOARCH=wasm when no -exec is given.
const execName = "go_wasip1_wasm_exec"

type execOpts struct {
	targets, inputs      []string
	env                  map[string]string
	inventory, cacheDir  string
	events               string
	cache, noSandbox     bool
	module               bool
	memory, output, disk int64
	timeout              time.Duration
	conn                 connFlags
	binary               string
	args                 []string
}

func parseExecArgs(args []string) (*execOpts, error) {
	o := &execOpts{env: map[string]string{}}
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, n := range []string{"t", "target"} {
		fs.Func(n, "", func(v string) error { o.targets = append(o.targets, v); return nil })
	}
	for _, n := range []string{"i", "inventory"} {
		fs.StringVar(&o.inventory, n, "", "")
	}
	fs.BoolVar(&o.cache, "cache", false, "")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "")
	fs.Func("env", "", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			val, ok = os.LookupEnv(k)
			if !ok {
				return fmt.Errorf("--env %s: not set in this process's environment (give %s=VALUE)", k, k)
			}
		}
		if k == "" || strings.ContainsAny(k, "\x00") {
			return fmt.Errorf("--env %q: want K=V or K", v)
		}
		o.env[k] = val
		return nil
	})
	fs.Func("inputs", "", func(v string) error { o.inputs = append(o.inputs, v); return nil })
	size := func(name string, dst *int64, max int64) {
		fs.Func(name, "", func(v string) (err error) {
			*dst, err = parseSize("--"+name, v, max)
			return err
		})
	}
	size("memory", &o.memory, 4<<30)
	size("output-bytes", &o.output, maxOutputBytes)
	size("disk", &o.disk, 1<<40)
	fs.Func("timeout", "", func(v string) (err error) { o.timeout, err = parseTimeout(v); return err })
	fs.StringVar(&o.events, "events", "", "")
	fs.BoolVar(&o.noSandbox, "no-sandbox", false, "")
	fs.BoolVar(&o.module, "module", false, "")
	o.conn.register(fs)
	// The flags end at the test binary: what follows is the test's.
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err, args)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return nil, errors.New("a test binary is needed (spindle exec is go test's -exec program: go test -exec 'spindle exec' ./...)")
	}
	o.binary, o.args = rest[0], rest[1:]
	return o, nil
}

// isExecName reports whether argv0 is the name go test finds on PATH.
func isExecName(argv0 string) bool { return filepath.Base(argv0) == execName }

// cmdExecAsGo is spindle run as go_wasip1_wasm_exec: its flags from
// $SPINDLE_EXEC_FLAGS (split at spaces), then go test's arguments.
func cmdExecAsGo(args []string, stdout, stderr io.Writer) int {
	return cmdExec(append(strings.Fields(os.Getenv(execEnvFlags)), args...), stdout, stderr)
}

func cmdExec(args []string, stdout, stderr io.Writer) int {
	o, err := parseExecArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, execUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "exec", err)
	}
	ctx, stop := interruptContext(stderr, "spindle exec")
	defer stop()
	// go test sends SIGQUIT to a test past its timeout, then kills it.
	ctx, stopQuit := signal.NotifyContext(ctx, syscall.SIGQUIT)
	defer stopQuit()
	return runExec(ctx, o, stdout, stderr)
}

func runExec(ctx context.Context, o *execOpts, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "spindle exec: %v\n", strings.TrimPrefix(err.Error(), "gotest: "))
		return code
	}
	var inv *target.Inventory
	if o.inventory != "" {
		var err error
		if inv, err = target.LoadInventory(o.inventory); err != nil {
			return fail(exitUsage, err)
		}
	}
	cn := &conn{flags: &o.conn}
	level, shown := slog.LevelInfo, slog.LevelWarn
	if o.conn.verbosity >= 2 {
		level, shown = slog.LevelDebug, slog.LevelDebug
	}
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(stderr, shown), LogLevel: level, CacheDir: o.cacheDir})
	if err != nil {
		return fail(exitCIInfra, err)
	}
	defer m.Close()
	var cache *ci.ActionCache
	slots := ""
	if dir := m.CacheDir(); dir != "" {
		slots = filepath.Join(dir, "exec-slots")
	} else {
		slots = filepath.Join(os.TempDir(), fmt.Sprintf("spindle-exec-slots-%d", os.Getuid()))
	}
	if cache, err = ci.OpenActionCache(ciCacheDir(m)); err != nil {
		return fail(exitCIInfra, err)
	}
	fl := spindle.NewFleet(m)
	fl.Sandbox = !o.noSandbox
	cn.apply(fl)
	dir, _ := os.Getwd()
	root := ""
	if o.module {
		var err error
		if root, err = gotest.ModuleRoot(dir); err != nil {
			return fail(exitUsage, fmt.Errorf("--module: %w", err))
		}
	}
	res, err := gotest.Run(ctx, m, gotest.Options{
		Binary: o.binary, Args: o.args, Dir: dir, Root: root, Inputs: o.inputs, Env: o.env,
		Targets: o.targets, Inventory: inv, Fleet: fl, SlotDir: slots,
		Cache: cache, CacheTests: o.cache,
		MemoryBytes: o.memory, OutputBytes: o.output, DiskBytes: o.disk, Timeout: o.timeout,
		Stdout: stdout, Stderr: stderr,
	})
	code := 0
	var ue *gotest.UsageError
	var te *spindle.TaskError
	switch {
	case ctx.Err() != nil:
		code = exitInterrupted
		fmt.Fprintln(stderr, "spindle exec: interrupted")
	case errors.As(err, &ue):
		return fail(exitUsage, err)
	case errors.As(err, &te):
		// A trap, a limit, a timeout: the test failed, and says why.
		code = 1
		fmt.Fprintf(stderr, "spindle exec: the test binary stopped on %s: %s: %s\n", res.Target, escapeLine(te.Kind), escapeLine(te.Message))
	case err != nil && res != nil && res.Cache == ci.CacheHit:
		code = exitCIInfra
		fmt.Fprintf(stderr, "spindle exec: replaying the cached output: %v\n", err)
	case errors.Is(err, gotest.ErrNotCached):
		fmt.Fprintf(stderr, "spindle exec: %v\n", err) // it passed: only the cache failed
	case err != nil:
		return fail(exitCIInfra, err)
	default:
		code = res.ExitCode
	}
	if res != nil {
		printLacks(stderr, res.Lacks)
		if res.Cache == ci.CacheHit {
			fmt.Fprintf(stderr, "spindle exec: cache hit %.12s: passed on %s in %s, %s ago; not run again\n",
				res.Key, res.Target, round(res.Duration), round(time.Since(res.Created)))
		} else if o.conn.verbosity > 0 {
			why := "cache " + res.Cache
			if res.NotCached != "" {
				why = res.NotCached
			}
			fmt.Fprintf(stderr, "spindle exec: ran on %s in %s, exit %d, key %.12s, %s\n", res.Target, round(res.Duration), res.ExitCode, res.Key, why)
		}
		if o.events != "" {
			if err := appendExecEvent(o.events, dir, o.binary, res, code); err != nil {
				fmt.Fprintf(stderr, "spindle exec: --events: %v\n", err)
			}
		}
	}
	return code
}

// execEvent is one line of --events.
type execEvent struct {
	Dir       string  `json:"dir"`
	Binary    string  `json:"binary"`
	Key       string  `json:"key"`
	Cache     string  `json:"cache"`
	NotCached string  `json:"not_cached,omitempty"`
	Target    string  `json:"target"`
	ExitCode  int     `json:"exit_code"`
	Seconds   float64 `json:"seconds"`
}

// appendExecEvent appends one line to path: a single write with O_APPEND,
// so the lines of concurrent processes never mix.
func appendExecEvent(path, dir, binary string, res *gotest.Result, code int) error {
	b, err := json.Marshal(execEvent{Dir: dir, Binary: filepath.Base(binary), Key: res.Key, Cache: res.Cache,
		NotCached: res.NotCached, Target: res.Target, ExitCode: code, Seconds: res.Duration.Seconds()})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
