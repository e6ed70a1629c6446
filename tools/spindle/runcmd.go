package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

const runUsage = `usage: spindle run [flags] MODULE.wasm [TASK] [-- ARGS...]
       spindle run -i INVENTORY -t PATTERN --list-hosts

Runs TASK of a reactor module, or a command module with ARGS, in each target.

flags:
  -t, --target T      where to run; repeatable, each target run once
                      (two spellings of one chain, as ssh://web1 and
                      ssh://root@web1:22 where ssh's config makes root
                      the user, run once, said on stderr; not two
                      aliases of one host whose IdentityFile,
                      UserKnownHostsFile, ProxyJump or ProxyCommand
                      differ, as ssh -G reads them); default
                      "local". A T that starts like a hop ("local",
                      "local:NAME", "local?...", "METHOD://...") is a target
                      chain: "ssh://user@host:port",
                      "ssh://bastion/ssh://web1/sudo://root",
                      "docker://container", "kubectl://ns/pod" (see the
                      target package docs). Any other T is a host pattern
                      of the --inventory: a host, a group, "all", a glob
                      ("web*"), or terms joined by "," or ":", each "&" to
                      intersect or "!" to exclude: "web:&prod", "web:!db",
                      "!db" (every host but db's)
  -i, --inventory F   an inventory file of hosts and groups (an example:
                      examples/inventory/hosts.ini)
  -l, --limit P       keep only the selected targets that the pattern P
                      also names ("!web3" alone drops web3 and keeps the
                      rest, target chains too); @FILE keeps those listed
                      in FILE, one name a line (a --retry-file); repeatable
  --list-hosts        print the selected names and their target chains, one
                      a line (-v: their variables too; --json: JSON lines),
                      and exit without starting anything; no MODULE needed
  --retry-file FILE   after the run, write the names of the targets that
                      failed or were unreachable to FILE (empty if none),
                      to rerun them with --limit @FILE
  --parallel N        at most N targets at once (default 20)
  --input JSON        the task's input (sent as msgpack): the argument is
                      inline JSON text, except "-" (read this process's
                      stdin) and @FILE (read the file FILE); JSON never
                      starts with @, and no other argument is read as a
                      path. A guest-SDK task whose input is a struct
                      takes a JSON object: an array or a string is
                      refused as "input: want map, got array of 1", the
                      words of every type error ('input field "name":
                      want string, got integer 3'); so is an array for
                      a struct inside it, at any depth ('input field
                      "progress": want map, got array of 2')
  --input-raw TEXT    the task's input as raw bytes (for raw tasks, e.g. C guests)
  -v, --verbose       show the tree's log records (task logs included) on stderr;
                      -vv also each transport's command line (ssh, sudo, ...)
                      with the hop and its connect timeout; -vvv also each
                      step of the bootstrap (platform, binary cached or sent,
                      handshake), from every context of the tree
  --json              one JSON object per target per line: {"target", "ok",
                      "output", "exit_code", "error": {"kind", "class",
                      "message", "hint"}, "stdout", "stderr", ...}
  --stdin FILE        a command's stdin ("-" for this process's stdin),
                      streamed as the guest reads it: the guest starts at
                      once, sees each piece as it comes and EOF when it
                      ends; several targets share "-" (or a pipe), each
                      seeing the same bytes, the fastest at most 64 MiB
                      ahead of the slowest (read whole first, at most
                      64 MiB, if there are more targets than --parallel)
  --env K=V           an environment variable for the task; repeatable
  --env-inherit       a command gets this process's environment (--env wins)
  --mount HOST:GUEST[:ro|:rw]  grant a directory (on the target; read-write
                      unless :ro); repeatable, each guest path once
  --dir HOST          grant HOST read-write at the same absolute path (HOST
                      may hold ':'); --dir HOST::GUEST[:ro] at GUEST
  --clock, --random   grant real clocks, real randomness (default: a FAKE
                      clock from 2022-01-01 whose sleeps return at once,
                      and deterministic random bytes)
  --timeout DURATION  the task's wall-time limit on each target (default
                      30s): from its instance's creation to its result.
                      It does not cover starting the contexts (that is
                      --connect-timeout), sending the module, nor its
                      compile, done once per module per machine before
                      the first call (cached on disk after; a large Go
                      guest takes seconds)
  --memory-pages N    memory limit in 64 KiB pages (default 4096); one
                      below the module's declared minimum is refused
  --output-bytes N    output limit: a reactor's output, and a command's
                      stdout and stderr together (default 16MiB, at most
                      64MiB; N in bytes or with a KiB, MiB or GiB suffix)
  --pooled            run on a warm instance (stateless reactor tasks)
` + connUsage + `

An inventory host's variables (KEY=VALUE on its line, [GROUP:vars]) reach
the task: a command module's environment holds them (--env overrides one);
a reactor gets each as a field of its --input when that is a JSON object
(the object's own fields win; --input '{}' passes the variables alone), and
no other input is changed.

Before any context starts, the master checks the input: the flags, the
targets, the module (wasm, a reactor or a command as the call needs,
its memory exported as "memory", the TASK among its exports; a
guest-SDK reactor's tasks are learnt by calling it once here, with no
task name and no grants, which compiles it into the cache its local
contexts share), and, when every target runs on this machine, that
each --mount and --dir host directory exists. A mistake is exit 2.

Intermediate hops shared by several targets (a bastion) are started once:
the fleet is a tree, and the module crosses each edge once.

output: stdout carries results only. With one target, a command's stdout
and stderr pass through as they are written; a reactor's result is printed
as JSON on stdout and its own prints go to stderr (their last line ended);
a failure is one line on stderr, a line of its own even when the guest's
last one was unfinished. With several targets, one row per target on stdout as soon as it is
known, a progress line on stderr when it is a terminal, and a recap line
on stderr; what a command wrote (the first 64 KiB) is indented below its
row, what a reactor printed goes to stderr, each line "TARGET | line".
--json prints one object per target per line: target, ok, output,
exit_code, error {kind, class, message, hint}, and the guest's stdout and
stderr (the first 64 KiB of each; stdout_truncated, stderr_truncated say
when cut). ok is false for every target the recap does not count ok: a
command that exits non-zero has exit_code and error kind "exit".

A target that could not be started fails with kind "connect" and a class:
auth, host_key, unreachable, timeout, platform, refused, lost, cancelled or
other. Its row reads "hop N TARGET: WHAT: the transport's own line", and a
hint follows on the next line when there is an obvious fix (an unknown host
key: how to accept it). A target whose context went away during its task
(the machine or the process stopped) fails with kind "lost" (class lost);
one that Ctrl-C stopped before it finished, kind "interrupted" (class
cancelled; its row says STOPPED). The recap counts them apart: "4
targets: 1 ok, 0 failed, 1 unreachable, 1 lost, 1 interrupted".

` + wasiUsage + `
exit status: 0 every target ok; 1 a task failed somewhere (a reactor's
error, a command's non-zero exit); 3 a target could not be reached or
started, or was lost during its task (and no task failed); 2 bad usage, module or input; 130
interrupted (a second Ctrl-C quits at once). With one target and a command
module, the command's own exit status, as ssh does.
`

type runOpts struct {
	targets   []string
	inventory string
	limits    []string
	listHosts bool
	retryFile string
	parallel  int
	conn      connFlags // --ssh-config, --connect-timeout, --host-key-checking, -K, -v
	inputRaw  *string
	module    string
	task      string
	args      []string
	input     string
	asJSON    bool
	stdin     string
	env       map[string]string
	mounts    []spindle.Mount
	mountArgs []string // the flag and value each of mounts came from: "--dir /srv"
	clock     bool
	random    bool
	timeout   time.Duration
	pages     uint32
	outBytes  int64
	pooled    bool
	command   bool // set by checkModule: the module exports _start
	// envInherit and devNull: see runwasi.go.
	envInherit bool
	devNull    bool
}

func parseRunArgs(args []string) (*runOpts, error) {
	o := &runOpts{env: map[string]string{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.args = args[i+1:]
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		needVal := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "t", "target":
			var v string
			if v, err = needVal(); err == nil {
				o.targets = append(o.targets, v)
			}
		case "i", "inventory":
			o.inventory, err = needVal()
		case "l", "limit":
			var v string
			if v, err = needVal(); err == nil {
				o.limits = append(o.limits, v)
			}
		case "list-hosts":
			o.listHosts = true
		case "retry-file":
			o.retryFile, err = needVal()
		case "parallel":
			var v string
			if v, err = needVal(); err == nil {
				if o.parallel, err = strconv.Atoi(v); err == nil && o.parallel < 1 {
					err = fmt.Errorf("--parallel must be at least 1")
				}
			}
		case "input":
			o.input, err = needVal()
		case "json":
			o.asJSON = true
		case "v", "verbose", "vv", "vvv", "K", "ask-become-pass", "ssh-config", "connect-timeout", "host-key-checking":
			_, err = o.conn.set(name, needVal)
		case "input-raw":
			var v string
			if v, err = needVal(); err == nil {
				o.inputRaw = &v
			}
		case "stdin":
			o.stdin, err = needVal()
		case "env":
			var v string
			if v, err = needVal(); err == nil {
				k, val, ok := strings.Cut(v, "=")
				if !ok || k == "" {
					return nil, fmt.Errorf("--env %q: want K=V", v)
				}
				o.env[k] = val
			}
		case "mount":
			var v string
			if v, err = needVal(); err == nil {
				var m spindle.Mount
				if m, err = parseMount(v); err == nil {
					err = o.addMount("--mount", v, m)
				}
			}
		case "dir":
			var v string
			if v, err = needVal(); err == nil {
				var m spindle.Mount
				if m, err = parseDir(v); err == nil {
					err = o.addMount("--dir", v, m)
				}
			}
		case "env-inherit":
			o.envInherit = true
		case "clock":
			o.clock = true
		case "random":
			o.random = true
		case "pooled":
			o.pooled = true
		case "timeout":
			var v string
			if v, err = needVal(); err == nil {
				o.timeout, err = parseTimeout(v)
			}
		case "memory-pages":
			var v string
			if v, err = needVal(); err == nil {
				n, perr := strconv.ParseUint(v, 10, 32)
				switch {
				case perr != nil || n < 1 || n > maxMemoryPages:
					err = fmt.Errorf("--memory-pages %q: want a whole number of 64 KiB pages from 1 to %d (4 GiB)", v, maxMemoryPages)
				default:
					o.pages = uint32(n)
				}
			}
		case "output-bytes":
			var v string
			if v, err = needVal(); err == nil {
				o.outBytes, err = parseSize("--output-bytes", v, maxOutputBytes)
			}
		case "h", "help":
			return nil, errHelp
		default:
			return nil, errUnknownFlag(a)
		}
		if err != nil {
			return nil, err
		}
	}
	switch len(pos) {
	case 0:
		if !o.listHosts {
			return nil, errors.New("no module given")
		}
	case 1:
		o.module = pos[0]
	case 2:
		o.module, o.task = pos[0], pos[1]
	default:
		return nil, fmt.Errorf("unexpected argument %q (put a command's arguments after --)", pos[2])
	}
	if o.input != "" && o.inputRaw != nil {
		return nil, errors.New("--input and --input-raw both given: a task has one input")
	}
	if len(o.targets) == 0 {
		if o.inventory != "" {
			return nil, fmt.Errorf("--inventory %s: name its hosts or groups with -t (-t all for every host)", o.inventory)
		}
		if len(o.limits) > 0 {
			return nil, errors.New("--limit narrows what -t selects: give -t too")
		}
		o.targets = []string{"local"}
	}
	if o.parallel == 0 {
		o.parallel = 20
	}
	return o, nil
}

var errHelp = errors.New("help")

// checkModule refuses, before any context starts, a module that is not
// wasm and a call that does not fit the module's kind: a TASK, --input or
// --pooled for a command; --stdin or ARGS for a reactor, or no TASK, or a
// TASK it cannot take. A Go program built without -buildmode=c-shared is a
// command, so its TASK is refused here, not dropped.
func checkModule(o *runOpts, wasm []byte) error {
	info, err := host.Describe(wasm)
	if err != nil {
		return err
	}
	if err := info.CheckMemory(); err != nil {
		return err
	}
	if limit := cmp.Or(o.pages, host.DefaultMemoryPages); info.MinPages > limit {
		declared := fmt.Sprintf("its memory is declared at least %d pages of 64 KiB (%s)", info.MinPages, formatSize(int64(info.MinPages)*64<<10))
		if o.pages == 0 {
			return fmt.Errorf("%s, above the default limit of %d pages: raise it with --memory-pages %d", declared, limit, info.MinPages)
		}
		return fmt.Errorf("%s: --memory-pages %d is below that, and every call would fail", declared, o.pages)
	}
	o.command = info.Kind == host.Command
	hasInput := o.input != "" || o.inputRaw != nil
	switch info.Kind {
	case host.Command:
		switch {
		case o.task != "":
			return fmt.Errorf("a command module (it exports _start) takes ARGS after --, not a TASK %q (a Go reactor is built with -buildmode=c-shared)", o.task)
		case hasInput:
			return errors.New("a command module (it exports _start) takes --stdin and ARGS, not --input")
		case o.pooled:
			return errors.New("a command module runs on a fresh instance each time: --pooled is for reactors")
		}
	default:
		tasks := info.Tasks()
		list := "none"
		if len(tasks) > 0 {
			list = strings.Join(tasks, ", ")
		}
		switch {
		case o.stdin != "" || len(o.args) > 0:
			return errors.New("a reactor module (no _start) takes a TASK and --input, not --stdin or ARGS")
		case o.task == "" && info.Dispatch && len(tasks) == 0:
			// A guest-SDK reactor names its tasks only when it runs:
			// checkTask asks it, before any context starts.
		case o.task == "":
			return fmt.Errorf("a reactor module: name a TASK (its exported tasks: %s)", list)
		case !info.Dispatch && !slices.Contains(tasks, o.task):
			return fmt.Errorf("a reactor module with no task %q (its exported tasks: %s)", o.task, list)
		}
	}
	return nil
}

// maxInputBytes bounds --input: what one RunTask carries comfortably.
const maxInputBytes = 16 << 20

// readInputFlag is the JSON text of --input v: v itself, the file named by
// @FILE, or this process's stdin for "-" (then --stdin may not read it too).
func readInputFlag(v, stdinFlag string) (string, error) {
	var r io.Reader
	switch {
	case v == "-":
		if stdinFlag == "-" {
			return "", errors.New("--input - and --stdin - both read this process's stdin")
		}
		r = os.Stdin
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return "", fmt.Errorf("--input: %w", err)
		}
		defer f.Close()
		r = f
	default:
		return v, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	if len(b) > maxInputBytes {
		return "", fmt.Errorf("--input %s: more than %d MiB", v, maxInputBytes>>20)
	}
	return string(b), nil
}

// fileHint is what an --input that is not JSON gets when it names a file:
// that @ reads one.
func fileHint(v string) string {
	if v == "-" || strings.HasPrefix(v, "@") {
		return ""
	}
	if fi, err := os.Stat(v); err == nil && !fi.IsDir() {
		return fmt.Sprintf(" (to read the file %s, write --input @%s)", v, v)
	}
	return ""
}

// maxMemoryPages is wasm32's whole address space in 64 KiB pages.
const maxMemoryPages = 65536

// parseMount parses HOST:GUEST[:ro|:rw]. The guest path must be absolute
// and clean: the guest sees exactly that name.
func parseMount(v string) (spindle.Mount, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
		return spindle.Mount{}, fmt.Errorf("--mount %q: want HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:rw", v)
	}
	g := parts[1]
	if !path.IsAbs(g) || path.Clean(g) != g {
		return spindle.Mount{}, fmt.Errorf("--mount %q: the guest path must be absolute and clean, as %s", v, path.Join("/", g))
	}
	return spindle.Mount{Host: parts[0], Guest: g, ReadOnly: len(parts) == 3 && parts[2] == "ro"}, nil
}

// parseTimeout parses --timeout's value: see parseDurationFlag.
func parseTimeout(v string) (time.Duration, error) { return parseDurationFlag("--timeout", v) }

// parseDurationFlag parses a positive duration given to the flag name; a
// bare number gets a hint ("5" suggests 5s).
func parseDurationFlag(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		if _, nerr := strconv.ParseFloat(v, 64); nerr == nil {
			return 0, fmt.Errorf("%s %q: a duration needs a unit, as %ss or %sms", name, v, v, v)
		}
		return 0, fmt.Errorf("%s %q: want a duration such as 30s or 2m", name, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q: must be positive", name, v)
	}
	return d, nil
}

// runLine is one target's outcome in --json mode.
type runLine struct {
	Target   string    `json:"target"`
	OK       bool      `json:"ok"`
	Output   any       `json:"output,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Error    *runError `json:"error,omitempty"`
	// Stdout and Stderr are what the guest wrote (a command's output, a
	// reactor's prints), the first maxCollectedBytes of each, as text
	// (invalid UTF-8 becomes U+FFFD); the flags say something was cut.
	Stdout          string `json:"stdout,omitempty"`
	Stderr          string `json:"stderr,omitempty"`
	StdoutTruncated bool   `json:"stdout_truncated,omitempty"`
	StderrTruncated bool   `json:"stderr_truncated,omitempty"`
}

// runError is why a target failed. Kind is "connect" when its contexts
// did not start (Class then says how: a spindle.StartClass, and Hint is
// its obvious fix when there is one), "lost" (class lost) when its
// context went away during the task, "interrupted" (class cancelled) when
// the run was interrupted first, "runtime" when the call failed otherwise
// (a reply that does not decode), "exit" when a command ran and exited non-zero,
// else the task's kind (docs/abi.md).
type runError struct {
	Kind    string `json:"kind"`
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	o, err := parseRunArgs(args)
	if err == errHelp {
		fmt.Fprint(stdout, runUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\nsee spindle run -h\n", err)
		return 2
	}
	if o.listHosts {
		return listHosts(o, stdout, stderr)
	}
	var input []byte
	var inputObj map[string]any // --input, when it is an object: the hosts' variables join it
	if o.inputRaw != nil {
		input = []byte(*o.inputRaw)
	}
	if o.input != "" {
		text, err := readInputFlag(o.input, o.stdin)
		if err != nil {
			fmt.Fprintf(stderr, "spindle run: %v\n", err)
			return 2
		}
		v, err := jsonToMsgpackValue(text)
		if err != nil {
			fmt.Fprintf(stderr, "spindle run: --input is not JSON: %v%s\n", err, fileHint(o.input))
			return 2
		}
		inputObj, _ = v.(map[string]any)
		if input, err = msgpack.Marshal(v); err != nil {
			fmt.Fprintf(stderr, "spindle run: --input: %v\n", err)
			return 2
		}
	}
	targets, err := selectTargets(o)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 2
	}
	targets, note := dedupeTargets(targets, o.conn.sshConfig)
	if note != "" {
		fmt.Fprintf(stderr, "spindle run: %s\n", note)
	}
	wasm, err := os.ReadFile(o.module)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 2
	}
	if err := checkModule(o, wasm); err != nil {
		fmt.Fprintf(stderr, "spindle run: %s: %v\n", o.module, err)
		return 2
	}
	if o.command {
		commandDefaults(o, os.Environ())
	}
	if err := checkMounts(o, targets); err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 2
	}
	vars, err := varsFor(targets, wasm, o.env, input, inputObj)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 2
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "spindle run: no targets matched; nothing to do")
		if o.retryFile != "" {
			writeRetryFile(o.retryFile, nil, stderr)
		}
		return 0
	}
	stdins, closeStdin, err := stdinFor(o.stdin, len(targets), o.parallel)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: --stdin: %v\n", err)
		return 2
	}
	defer closeStdin()
	var chains []target.Target
	for _, nt := range targets {
		chains = append(chains, nt.Target)
	}
	cn, code := o.conn.connect(stderr, "spindle run", chains)
	if cn == nil {
		return code
	}
	level := o.conn.runLevel()
	// One target streams straight through; several are collected per
	// target so their output does not interleave, and --json carries it in
	// each line.
	single := len(targets) == 1 && !o.asJSON
	// A command's own output streams through untouched to a pipe or a
	// file; to a terminal, escaped (see term.go). A reactor's prints are
	// not its result: they go to stderr, so stdout is only the result.
	guestOut, guestErr := forTerminal(stdout), forTerminal(stderr)
	// ownErr takes spindle's own lines, logErr the log records: with one
	// target, each on a line of its own after an unfinished guest line.
	ownErr, logErr := stderr, forTerminal(stderr)
	var join *lineJoin
	if single {
		join = &lineJoin{w: guestErr}
		guestErr, ownErr, logErr = join, join.own(), join.own()
	}
	if !o.command {
		guestOut = guestErr
	}
	// The progress line: on a terminal, with several targets. Results,
	// log records, the interrupt's messages and the recap are written
	// between two of its draws.
	var tally recap // guarded by bar's lock
	bar := newStatusLine(stderr, len(targets) > 1, "run", func() string {
		return fmt.Sprintf("%d/%d done: %s", tally.done(), len(targets), tally.counts())
	})
	defer bar.close()
	ctx, stop := interruptContext(bar.Writer(ownErr), "spindle run")
	defer stop()
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(bar.Writer(logErr), level), LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 1
	}
	defer m.Close()
	if err := checkTask(ctx, o, m.CacheDir(), wasm); err != nil {
		if ctx.Err() != nil {
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "spindle run: %s: %v\n", o.module, err)
		return 2
	}
	hash, err := m.AddModule(wasm)
	if err != nil {
		fmt.Fprintf(stderr, "spindle run: %v\n", err)
		return 2
	}
	lines := make([]runLine, len(targets))
	fl := spindle.NewFleet(m)
	cn.apply(fl)
	began := time.Now()
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, nt := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bar.begin(nt.Name)
			t := spindle.Task{Module: hash, Task: o.task, Input: input, Args: o.args, Stdin: stdins[i], Env: o.env,
				Mounts: o.mounts, Clock: o.clock, Random: o.random, Pooled: o.pooled, DevNull: o.devNull,
				Limits: spindle.Limits{Timeout: o.timeout, MemoryPages: o.pages, OutputBytes: o.outBytes}}
			t.Env, t.Input = vars[i].env, vars[i].input
			var out, errOut *capBuffer
			switch {
			case single:
				t.Stdout, t.Stderr = guestOut, guestErr
			case o.asJSON:
				out, errOut = newCapBuffer(maxCollectedBytes), newCapBuffer(maxCollectedBytes)
				t.Stdout, t.Stderr = out, errOut
			default:
				out = newCapBuffer(maxCollectedBytes)
				t.Stdout, t.Stderr = out, out
			}
			l := runOn(ctx, fl, nt, t, o.conn.sshConfig)
			if c, ok := stdins[i].(io.Closer); ok {
				c.Close() // the other targets' stdin no longer waits for this one
			}
			if o.asJSON {
				l.Stdout, l.StdoutTruncated = out.text()
				l.Stderr, l.StderrTruncated = errOut.text()
			}
			if l.Error != nil {
				l.Error.Message = cn.mask(l.Error.Message)
			}
			lines[i] = l
			// Each target's result as soon as it is known, the progress
			// line erased around it.
			bar.finish(nt.Name, func() {
				tally.add(l)
				switch {
				case o.asJSON:
					b, _ := json.Marshal(l)
					fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
				case single && (l.OK || l.ExitCode != nil): // a command's status is its own, as with ssh
					flush(guestOut)
					if !o.command {
						join.endLine() // a reactor's prints end with a line of their own
					}
					if l.Output != nil {
						b, _ := json.MarshalIndent(l.Output, "", "  ")
						fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
					}
				case single: // spindle's own message, not a result
					flush(guestOut)
					flush(guestErr)
					printLine(ownErr, l, "")
				case o.command: // a command's output is its result
					printLine(stdout, l, out.summary())
				default: // a reactor's prints are not: stderr, each line naming its target
					printLine(stdout, l, "")
					printGuestLines(stderr, nt.Name, out.summary())
				}
			})
		}()
	}
	wg.Wait()
	flush(guestOut)
	flush(guestErr)
	bar.close()
	r := tally // every target's print has run: wg.Wait orders it after them
	if len(lines) > 1 {
		fmt.Fprintf(stderr, "%d targets: %s in %s\n", len(lines), r.counts(), time.Since(began).Round(time.Millisecond))
	}
	if o.retryFile != "" {
		writeRetryFile(o.retryFile, lines, stderr)
	}
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case single && lines[0].ExitCode != nil:
		return *lines[0].ExitCode // like ssh: the command's own status
	case r.failed > 0:
		return exitCIFailed
	case r.unreachable > 0 || r.lost > 0:
		return exitCIInfra
	}
	return 0
}

// recap counts a run's targets by outcome.
type recap struct{ ok, failed, unreachable, lost, interrupted int }

// The kinds of runError that are not a task's: see runOn.
const (
	kindConnect     = "connect"     // its contexts did not start
	kindLost        = "lost"        // its context went away during the task
	kindInterrupted = "interrupted" // the run was interrupted before it finished
	kindRuntime     = "runtime"     // the runtime failed the call otherwise (a reply that does not decode)
)

// add classes a target: ok; failed (the task failed or a command exited
// non-zero); unreachable (its contexts did not start); lost (its context
// went away during the task); interrupted (Ctrl-C came first).
func (r *recap) add(l runLine) {
	switch {
	case l.OK:
		r.ok++
	case l.Error.Kind == kindConnect:
		r.unreachable++
	case l.Error.Kind == kindLost:
		r.lost++
	case l.Error.Kind == kindInterrupted:
		r.interrupted++
	default:
		r.failed++
	}
}

func (r *recap) done() int { return r.ok + r.failed + r.unreachable + r.lost + r.interrupted }

// counts is the recap's "3 ok, 0 failed, 1 unreachable", with the lost
// and interrupted targets when there are any.
func (r *recap) counts() string {
	s := fmt.Sprintf("%d ok, %d failed, %d unreachable", r.ok, r.failed, r.unreachable)
	if r.lost > 0 {
		s += fmt.Sprintf(", %d lost", r.lost)
	}
	if r.interrupted > 0 {
		s += fmt.Sprintf(", %d interrupted", r.interrupted)
	}
	return s
}

// printLine writes one target's row of the table, a hint on the next line
// when its failure has one, and the output it collected. Every piece of it
// but the status came from the target, so all of it is escaped: a row
// stays one row.
func printLine(w io.Writer, l runLine, out string) {
	status := "ok"
	detail := ""
	switch {
	case l.ExitCode != nil: // a command that ran: its status is the detail
		detail = fmt.Sprintf("exit %d", *l.ExitCode)
		if !l.OK {
			status = "FAILED"
		}
	case l.OK:
		if l.Output != nil {
			b, _ := json.Marshal(l.Output)
			detail = string(b)
		}
	default:
		status = "FAILED"
		if l.Error.Kind == kindInterrupted {
			status = "STOPPED"
		}
		detail = l.Error.Kind + ": " + strings.TrimPrefix(l.Error.Message, l.Error.Kind+": ") // "guest: guest: ..." once
		if l.Error.Kind == kindConnect {
			detail = l.Error.Message // it names the hop and the class itself
		}
	}
	fmt.Fprintf(w, "%-28s %-7s %s\n", escapeLine(l.Target), status, escapeLine(detail))
	if l.Error != nil && l.Error.Hint != "" {
		fmt.Fprintf(w, "    hint: %s\n", escapeLine(l.Error.Hint))
	}
	if out != "" {
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			fmt.Fprintf(w, "    | %s\n", escapeLine(line))
		}
	}
}

// printGuestLines writes what a reactor printed on one of several
// targets, a line at a time, each "TARGET | line", escaped as a row is.
func printGuestLines(w io.Writer, name, out string) {
	if out == "" {
		return
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(w, "%s | %s\n", escapeLine(name), escapeLine(line))
	}
}

// errInterruptedRun is the one failure of every target the run's interrupt
// stopped, at its start or during its task.
func errInterruptedRun() *runError {
	return &runError{Kind: kindInterrupted, Class: string(spindle.ClassCancelled), Message: "the run was interrupted before this target finished"}
}

// startFailure is why nt's contexts did not start (err from Fleet.Start):
// the interrupt when ctx (which ends only then) has ended, else kind
// connect with the start's class and a hint in the command line's terms
// (sshConfig is --ssh-config: see cliHint).
func startFailure(ctx context.Context, nt target.Named, err error, sshConfig string) *runError {
	if ctx.Err() != nil {
		return errInterruptedRun()
	}
	e := &runError{Kind: kindConnect, Class: string(spindle.ClassOther), Message: err.Error()}
	var se *spindle.StartError
	if errors.As(err, &se) {
		e.Class, e.Hint = string(se.Class), cliHint(se.Hint, nt.Target, se.Hop, sshConfig)
	}
	return e
}

// runFailure is why a task call (err from Context.Run) gave no result: the
// interrupt; the task's own failure (its kind); the context lost during
// it; or, for anything else the runtime refused (a reply that does not
// decode), kind runtime.
func runFailure(ctx context.Context, err error) *runError {
	var te *spindle.TaskError
	switch {
	case ctx.Err() != nil:
		return errInterruptedRun()
	case errors.As(err, &te):
		return &runError{Kind: te.Kind, Message: te.Message}
	case errors.Is(err, routing.ErrDisconnected), errors.Is(err, routing.ErrNoRoute), errors.Is(err, routing.ErrShutdown):
		return &runError{Kind: kindLost, Class: string(spindle.ClassLost), Message: "its context went away during the task",
			Hint: "the machine or the context's process may have stopped; -vv logs how its stream ended"}
	}
	return &runError{Kind: kindRuntime, Message: strings.ReplaceAll(err.Error(), "spindle: ", "")}
}

// runOn starts the target's chain of contexts and runs the task in its
// last; sshConfig is --ssh-config, for the hint of a start that failed.
func runOn(ctx context.Context, fl *spindle.Fleet, nt target.Named, t spindle.Task, sshConfig string) runLine {
	l := runLine{Target: nt.Name}
	c, err := fl.Start(ctx, nt.Target)
	if err != nil {
		l.Error = startFailure(ctx, nt, err, sshConfig)
		return l
	}
	res, err := c.Run(ctx, t)
	if err != nil {
		l.Error = runFailure(ctx, err)
		return l
	}
	l.OK = true
	if len(res.Output) > 0 {
		l.Output = decodeOutput(res.Output)
	}
	if res.Command {
		code := res.ExitCode
		l.ExitCode = &code
		if code != 0 { // failed, as the recap, the row and the retry file count it
			l.OK = false
			l.Error = &runError{Kind: "exit", Message: fmt.Sprintf("exit status %d", code)}
		}
	}
	return l
}

// jsonToMsgpackValue decodes JSON keeping whole numbers as integers, so they
// reach the guest as msgpack ints (a msgpack float does not decode into an
// int field).
func jsonToMsgpackValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// decodeOutput shows a task's output: as the value it encodes when it is
// exactly one msgpack value, else as text (raw bytes, e.g. a C guest's).
// The output is the guest's: wire.Unmarshal checks it before decoding.
func decodeOutput(b []byte) any {
	var v any
	if wire.Unmarshal(b, &v) == nil {
		return v
	}
	return string(b)
}
