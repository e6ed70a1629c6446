package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gotest"
	"github.com/spindle-hq/spindle/ci/gotool"
	"github.com/spindle-hq/spindle/target"
)

const toolexecUsage = `usage: spindle toolexec [flags] TOOL [ARGS...]
       spindle toolexec --stop [flags]
       go build -toolexec '/abs/path/bin/spindle toolexec [flags]' ./...

Runs the Go toolchain's compile, asm and link, as go build -toolexec
invokes them, as wasm commands in the sandbox of a context of the tree:
the same tools built for wasip1 from this Go's GOROOT (make gotools puts
them in bin/gotools/, beside bin/spindle). Each invocation sees only the
directories its arguments name, at their own paths: GOROOT, the build
cache and the module cache read-only, a package's directory read-only,
and the build's work directory ($WORK) read-write, where it writes its
output; nothing else of the machine. Their outputs are the native tools'
byte for byte. Any other tool go runs (cgo, vet, buildid, pack, cover) runs
natively, as without -toolexec. The go command stays the planner: its
build cache decides what runs. A source file may be a symlink only
relative and within its directory (shipped with what it leads to): the
sandbox follows no other, and such a run fails saying so. A link that
needs the external linker (cgo beyond the standard library's, as
-lSOMETHING) fails with "running gcc failed": no sandbox has gcc; build
such a program with CGO_ENABLED=0, or without -toolexec.

The first run of a build starts a server (spindle toolexec --serve, in a
session of its own) that keeps one master, a context per target and the
compiled tools resident: each later run is a fresh instance of a tool
compiled once, not a reload. It serves only its own user, through a
socket under $TMPDIR/spindle-toolexec-UID/, and exits after --idle with no
run; a rebuilt spindle, other --tools, targets or connection flags get
their own.

On a context of this machine (local:NAME, sudo://USER and chains of
them) the directories are granted as mounts. On any other (a hop of ssh,
a container, ...) the run is shipped: the files it names (the archives its
importcfg lists, the package's sources, its action directory in $WORK) go
as trees at the same paths, each blob once per context, and what it writes
in $WORK comes back and is written there before go reads it (into the
run's own directories only, bounded in files and bytes). --ship ships
to a context of this machine too. The wasm sandbox and its mounts are the
boundary: the contexts run without the OS layers of spindle exec's
(Landlock would confine them to their cache and work root, where a
granted run's files are not).

go runs at most -p tools at once (default: this machine's CPUs); with
targets on other machines, raise it to what they can run together
(go build -p 16 -toolexec ...).

flags:
  -t, --target T     where to run; repeatable: concurrent tool runs (go
                     build -p) spread over the targets (default "local");
                     one that cannot be started or is lost (before the run
                     printed anything) is passed over for 30s and the run
                     goes to another
  --tools DIR        the wasip1 tools: DIR/compile.wasm, asm.wasm, link.wasm
                     and DIR/VERSION, the Go version they were built with
                     (default $SPINDLE_GOTOOLS, else gotools/ beside this
                     binary)
  --memory SIZE      each run's memory (default 2GiB, at most 4GiB)
  --timeout D        each run's time limit (default 10m)
  --idle D           how long the server waits for another run before it
                     exits (default 30s)
  --ship             ship the tool's files even to a context of this
                     machine, as to another's
  --stop             stop the server of these flags (targets, --tools,
                     connection flags) instead of running a tool: it
                     takes no new run, finishes those under way, shuts
                     its contexts down and exits, and --stop returns
                     then (at the end of a CI job, say); with no server
                     running it says so and exits 0
  --no-server        run the tool from this process, starting its context
                     and loading the tool again (slow; for debugging)
  -v, --verbose      say on stderr each run's tool, target and time (go
                     keeps a tool's stderr with its action and prints it
                     again when it takes the action from its cache: on a
                     warm build most of these lines are replays)
` + connUsageNoBecome + `
exit status: the tool's; 2 bad usage, missing or mismatched tools (said on
stderr); 3 a target could not be reached or was lost; 1 when the tool
trapped or passed a limit (said on stderr); 130 interrupted.
`

// toolsEnv names the directory of the wasip1 tools.
const toolsEnv = "SPINDLE_GOTOOLS"

// The defaults of spindle toolexec's limits.
const (
	toolDefaultMemory  = 2 << 30
	toolDefaultTimeout = 10 * time.Minute
	toolMaxMemory      = 4 << 30
)

type toolexecOpts struct {
	targets  []string
	tools    string
	memory   int64
	timeout  time.Duration
	idle     time.Duration
	noServer bool
	ship     bool
	serve    bool
	stop     bool
	conn     connFlags
	argv     []string
}

func parseToolexecArgs(args []string) (*toolexecOpts, error) {
	o := &toolexecOpts{memory: toolDefaultMemory, timeout: toolDefaultTimeout, idle: toolDefaultIdle}
	fs := flag.NewFlagSet("toolexec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, n := range []string{"t", "target"} {
		fs.Func(n, "", func(v string) error {
			if strings.Contains(v, "/pkg/tool/") {
				// go build -toolexec 'spindle toolexec -t' put the tool's
				// path where the target was missing.
				return errors.New("the tool go runs, where a target was wanted: -t needs one (local:NAME, ssh://HOST, ...)")
			}
			o.targets = append(o.targets, v)
			return nil
		})
	}
	fs.StringVar(&o.tools, "tools", "", "")
	fs.Func("memory", "", func(v string) (err error) { o.memory, err = parseSize("--memory", v, toolMaxMemory); return err })
	fs.Func("timeout", "", func(v string) (err error) { o.timeout, err = parseTimeout(v); return err })
	fs.Func("idle", "", func(v string) (err error) { o.idle, err = parseDurationFlag("--idle", v); return err })
	fs.BoolVar(&o.noServer, "no-server", false, "")
	fs.BoolVar(&o.ship, "ship", false, "")
	fs.BoolVar(&o.serve, "serve", false, "")
	fs.BoolVar(&o.stop, "stop", false, "")
	o.conn.register(fs)
	// The tool's own flags follow its path: parsing stops there.
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err, args)
	}
	o.argv = fs.Args()
	if o.idle <= 0 {
		return nil, fmt.Errorf("--idle %v: must be positive", o.idle)
	}
	if o.conn.askPass {
		return nil, errors.New("-K: go build runs spindle toolexec without a terminal to ask on; give the sudo hop's user a NOPASSWD rule")
	}
	if o.stop && len(o.argv) > 0 {
		return nil, fmt.Errorf("--stop takes no tool (%s given)", o.argv[0])
	}
	if len(o.argv) == 0 && !o.serve && !o.stop {
		return nil, errors.New("no tool named (go build -toolexec passes the tool's path and its arguments)")
	}
	if len(o.targets) == 0 {
		o.targets = []string{"local"}
	}
	if o.timeout == 0 {
		o.timeout = toolDefaultTimeout
	}
	return o, nil
}

func cmdToolexec(args []string, stdout, stderr io.Writer) int {
	o, err := parseToolexecArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, toolexecUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "toolexec", err)
	}
	if o.serve {
		return serveTools(o, stderr)
	}
	if o.stop {
		return stopServer(o, stdout, stderr)
	}
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "spindle toolexec: %v\n", err)
		return exitUsage
	}
	inv, err := gotool.Plan(o.argv, cwd, os.Environ())
	if errors.Is(err, gotool.ErrNative) {
		return execNative(o.argv, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "spindle toolexec: %v\n", strings.TrimPrefix(err.Error(), "gotool: "))
		return exitUsage
	}
	ctx, stop := interruptContext(stderr, "spindle toolexec")
	defer stop()
	return runTool(ctx, o, inv, stdout, stderr)
}

// execNative replaces this process with the native tool: what go would
// have run without -toolexec.
func execNative(argv []string, stderr io.Writer) int {
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(stderr, "spindle toolexec: %s: %v\n", argv[0], err)
	return exitUsage
}

// toolsDir is where the wasip1 tools are: --tools, $SPINDLE_GOTOOLS, or
// gotools/ beside this binary.
func toolsDir(flagDir string) string {
	if flagDir != "" {
		return flagDir
	}
	if d := os.Getenv(toolsEnv); d != "" {
		return d
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			return filepath.Join(filepath.Dir(exe), "gotools")
		}
	}
	return "gotools"
}

// loadTool reads the wasip1 build of inv's tool, after checking that it
// was built with the Go of inv's GOROOT.
func loadTool(dir string, inv *gotool.Invocation) ([]byte, error) {
	want, err := goVersion(filepath.Join(inv.GOROOT, "VERSION"))
	if err != nil {
		return nil, fmt.Errorf("the Go version of %s: %w", inv.GOROOT, err)
	}
	got, err := goVersion(filepath.Join(dir, "VERSION"))
	if err != nil {
		return nil, fmt.Errorf("no wasip1 tools in %s (%w): build them with make gotools, or name them with --tools", dir, err)
	}
	if got != want {
		return nil, fmt.Errorf("the wasip1 tools in %s were built with %s, the go command's GOROOT %s is %s: rebuild them with make gotools", dir, got, inv.GOROOT, want)
	}
	wasm, err := os.ReadFile(filepath.Join(dir, inv.Tool+".wasm"))
	if err != nil {
		return nil, fmt.Errorf("%w: build the tools with make gotools", err)
	}
	return wasm, nil
}

// goVersion is the first line of a Go VERSION file (go1.26.8).
func goVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 4096))
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "go") {
		return "", fmt.Errorf("%s does not start with a Go version", path)
	}
	return strings.TrimSpace(sc.Text()), nil
}

func runTool(ctx context.Context, o *toolexecOpts, inv *gotool.Invocation, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "spindle toolexec: %s: %s\n", inv.Tool, escapeLine(err.Error()))
		return code
	}
	var chains []target.Target
	for _, s := range o.targets {
		t, err := target.Parse(s)
		if err != nil {
			return fail(exitUsage, err)
		}
		chains = append(chains, t)
	}
	dir := toolsDir(o.tools)
	wasm, err := loadTool(dir, inv)
	if err != nil {
		return fail(exitUsage, err)
	}
	if !o.noServer {
		return runToolViaServer(ctx, o, dir, inv, stdout, stderr)
	}
	cn := &conn{flags: &o.conn}
	shown := slog.LevelWarn
	if o.conn.verbosity >= 2 {
		shown = slog.LevelDebug
	}
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(stderr, shown), LogLevel: shown})
	if err != nil {
		return fail(exitCIInfra, err)
	}
	defer m.Close()
	hash, err := m.AddModule(wasm)
	if err != nil {
		return fail(exitUsage, err)
	}
	names := make([]string, len(o.targets))
	copy(names, o.targets)
	slots := ""
	if dir := m.CacheDir(); dir != "" {
		slots = filepath.Join(dir, "toolexec-slots")
	}
	first, release := gotest.PickSlot(slots, names, inv.Work+"\x00"+strings.Join(inv.Args, "\x00"))
	defer release()
	fl := spindle.NewFleet(m)
	cn.apply(fl)
	began := time.Now()
	c, err := fl.Start(ctx, chains[first])
	if err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return fail(exitCIInfra, err)
	}
	ship := o.ship || needsShip(chains[first])
	res, err := runPlanned(ctx, m.Store(), c, hash, toolRequestOf(o, inv), ship, stdout, stderr)
	var te *spindle.TaskError
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case errors.As(err, &te):
		return fail(1, fmt.Errorf("stopped on %s: %s: %s", o.targets[first], te.Kind, te.Message))
	case err != nil:
		return fail(exitCIInfra, err)
	}
	if o.conn.verbosity > 0 {
		fmt.Fprintf(stderr, "spindle toolexec: %s ran on %s%s in %s, exit %d\n", inv.Tool, o.targets[first], shippedNote(ship), round(time.Since(began)), res.ExitCode)
	}
	return res.ExitCode
}

// toolRequestOf is the run of inv under o.
func toolRequestOf(o *toolexecOpts, inv *gotool.Invocation) *toolRequest {
	return &toolRequest{Tool: inv.Tool, Args: inv.Args, Env: inv.Env, Mounts: inv.Mounts,
		Files: inv.Files, Work: inv.Work, Ship: o.ship,
		Key: inv.Work + "\x00" + strings.Join(inv.Args, "\x00"), Memory: o.memory, Timeout: o.timeout}
}

// runToolViaServer runs inv on the toolexec server (toolexecd.go).
func runToolViaServer(ctx context.Context, o *toolexecOpts, dir string, inv *gotool.Invocation, stdout, stderr io.Writer) int {
	began := time.Now()
	rep, err := runViaServer(ctx, o, dir, toolRequestOf(o, inv), stdout, stderr)
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "spindle toolexec: %s: %s\n", inv.Tool, escapeLine(err.Error()))
		return exitCIInfra
	case rep.Class == "task":
		fmt.Fprintf(stderr, "spindle toolexec: %s: stopped on %s: %s: %s\n", inv.Tool, rep.Target, escapeLine(rep.Kind), escapeLine(rep.Error))
	case rep.Error != "":
		fmt.Fprintf(stderr, "spindle toolexec: %s: %s\n", inv.Tool, escapeLine(rep.Error))
	}
	if o.conn.verbosity > 0 {
		fmt.Fprintf(stderr, "spindle toolexec: %s ran on %s%s in %s (%s in the server), exit %d\n",
			inv.Tool, rep.Target, shippedNote(rep.Shipped), round(time.Since(began)), round(time.Duration(rep.Elapsed)), rep.Exit)
	}
	return rep.Exit
}

// shippedNote marks a shipped run in -v's line.
func shippedNote(shipped bool) string {
	if shipped {
		return " (shipped)"
	}
	return ""
}
