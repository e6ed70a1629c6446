package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/ci/report"
	"github.com/spindle-hq/spindle/target"
)

const ciUsage = `usage: spindle ci [flags] JOBFILE

Runs the jobs of a job file (YAML; see the ci package docs) as sandboxed
wasm actions on a tree of contexts. A step whose grants are deterministic
(no clock, no random, no secrets) is cached by its action key: an
unchanged rerun replays it without running anything.

flags:
  -w, --workspace DIR  the directory the steps' inputs come from (default ".")
  --toolbox DIR        the toolbox (toolbox.lock and its .wasm files; default
                       bin/toolbox, else "toolbox" beside this binary)
  --cache-dir DIR      the action cache and blob store (default
                       $XDG_CACHE_HOME/spindle; "-" keeps them in memory)
  --parallel N         at most N steps running at once (default 4)
  --no-cache           run every step; a result that differs from the
                       cached one for the same key is reported as nondeterminism
  --retries N          retries of a step whose context failed (default 2)
  --no-sandbox         start the step contexts without OS layers (by default
                       each has no_new_privs, rlimits and Landlock where the
                       kernel allows; its layers are printed when it starts)
  --secret NAME[=VAR]  give the job file's secret NAME the value of this
                       process's environment variable VAR (default NAME);
                       repeatable
  --secret-file NAME=PATH  give secret NAME the contents of the file PATH
  --trust-secrets      take the secrets' values from the sources the job
                       file names (env or file): only for a job file as
                       trusted as this machine; by default a secret the
                       file asks for must be given with --secret
  -i, --inventory F    an inventory file for the jobs' targets
  --artifacts DIR      write every step's outputs to DIR/JOB/STEP/
  --junit FILE         write the steps' test reports as JUnit XML
  --json               one JSON event per line on stdout (summary last)
  -q, --quiet          no log lines, only results
  -v, --verbose        the tree's own log records on stderr, each
                       transport's command line (ssh, sudo, ...) included;
                       -vvv also each step of the bootstrap
` + connUsage + `
exit status: 0 every step passed; 1 a step failed (or was skipped because
one failed); 3 a step could not run (context lost or unreachable, bad
module); 2 bad usage or job file; 130 interrupted. The first Ctrl-C (or
SIGTERM) stops the steps and prints the results so far; a second quits at
once.
`

// The exit codes of spindle ci.
const (
	exitCIFailed      = 1
	exitUsage         = 2
	exitCIInfra       = 3
	exitInterrupted   = 130
	defaultToolboxDir = "bin/toolbox"
)

type ciOpts struct {
	file, workspace, toolbox, cacheDir, inventory, artifacts, junit string
	parallel, retries                                               int
	noCache, asJSON, quiet, noSandbox, trustSecrets                 bool
	secretEnv, secretFile                                           map[string]string
	conn                                                            connFlags // --ssh-config, --connect-timeout, --host-key-checking, -K, -v
	cn                                                              *conn     // what conn gave: set by cmdCI, else runCI makes one without a password
}

func parseCIArgs(args []string, stderr io.Writer) (*ciOpts, error) {
	o := &ciOpts{secretEnv: map[string]string{}, secretFile: map[string]string{}}
	fs := flag.NewFlagSet("ci", flag.ContinueOnError)
	fs.Func("secret", "", func(v string) error {
		name, env, ok := strings.Cut(v, "=")
		if !ok {
			env = name
		}
		if name == "" || env == "" {
			return fmt.Errorf("--secret %q: want NAME or NAME=VAR", v)
		}
		o.secretEnv[name] = env
		return nil
	})
	fs.Func("secret-file", "", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("--secret-file %q: want NAME=PATH", v)
		}
		o.secretFile[name] = path
		return nil
	})
	fs.BoolVar(&o.trustSecrets, "trust-secrets", false, "")
	for _, n := range []string{"w", "workspace"} {
		fs.StringVar(&o.workspace, n, ".", "")
	}
	fs.StringVar(&o.toolbox, "toolbox", "", "")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "")
	for _, n := range []string{"i", "inventory"} {
		fs.StringVar(&o.inventory, n, "", "")
	}
	fs.StringVar(&o.artifacts, "artifacts", "", "")
	fs.StringVar(&o.junit, "junit", "", "")
	fs.IntVar(&o.parallel, "parallel", 4, "")
	fs.IntVar(&o.retries, "retries", 2, "")
	fs.BoolVar(&o.noCache, "no-cache", false, "")
	fs.BoolVar(&o.noSandbox, "no-sandbox", false, "")
	fs.BoolVar(&o.asJSON, "json", false, "")
	for _, n := range []string{"q", "quiet"} {
		fs.BoolVar(&o.quiet, n, false, "")
	}
	o.conn.register(fs)
	pos, err := parseFlags(fs, args) // flags may follow the job file
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, errors.New("a job file is needed")
	case len(pos) > 1:
		return nil, fmt.Errorf("one job file, not %d (%s)", len(pos), strings.Join(pos, " "))
	}
	o.file = pos[0]
	if o.parallel < 1 {
		return nil, fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
	}
	if o.retries < 0 {
		return nil, fmt.Errorf("--retries %d: must not be negative", o.retries)
	}
	return o, nil
}

func cmdCI(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return cmdCIBench(args[1:], stdout, stderr)
	}
	o, err := parseCIArgs(args, stderr)
	if isHelp(err) {
		fmt.Fprint(stdout, ciUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "ci", err)
	}
	// -K asks before anything else can print, and before Ctrl-C means
	// stopping a run.
	cn, code := o.conn.connect(stderr, "spindle ci", nil)
	if cn == nil {
		return code
	}
	o.cn = cn
	pr := newCIPrinter(stdout, stderr, o)
	defer pr.finish()
	ctx, stop := interruptContext(pr.line.Writer(stderr), "spindle ci") // its messages never share the status line's line
	defer stop()
	return runCI(ctx, o, pr, stdout, stderr)
}

// ciSetup is what a run needs besides the master: the parsed file and the
// options of ci.Run.
func ciSetup(o *ciOpts) (*ci.File, ci.Options, error) {
	var opts ci.Options
	f, err := ci.ParseJobFile(o.file)
	if err != nil {
		return nil, opts, err
	}
	opts.Workspace, opts.Parallel, opts.NoCache, opts.Artifacts = o.workspace, o.parallel, o.noCache, o.artifacts
	opts.Retries = o.retries
	opts.Sandbox = !o.noSandbox
	if o.retries == 0 {
		opts.Retries = -1 // ci.Options: negative means none
	}
	if st, err := os.Stat(o.workspace); err != nil || !st.IsDir() {
		return nil, opts, fmt.Errorf("workspace %s is not a directory", o.workspace)
	}
	if opts.Toolbox, err = loadToolbox(o.toolbox); err != nil {
		return nil, opts, err
	}
	if o.inventory != "" {
		if opts.Inventory, err = target.LoadInventory(o.inventory); err != nil {
			return nil, opts, err
		}
	}
	if opts.Secrets, err = ciSecrets(f, o); err != nil {
		return nil, opts, err
	}
	return f, opts, nil
}

// ciSecrets gives the job file's secrets their values: from the flags, or
// with --trust-secrets from the sources the file names. The job file may
// come from a stranger: by default it chooses none of the master's
// environment variables or files.
func ciSecrets(f *ci.File, o *ciOpts) (map[string][]byte, error) {
	if o.trustSecrets {
		if len(o.secretEnv)+len(o.secretFile) > 0 {
			return nil, errors.New("--trust-secrets takes every secret from the job file's own sources: give no --secret or --secret-file with it")
		}
		return ci.ResolveSecrets(f, os.LookupEnv)
	}
	for _, m := range []map[string]string{o.secretEnv, o.secretFile} {
		for name := range m {
			if _, ok := f.Secrets[name]; !ok {
				return nil, fmt.Errorf("secret %s: given, but the job file declares no such secret", name)
			}
		}
	}
	out := map[string][]byte{}
	for name := range f.Secrets {
		switch env, file := o.secretEnv[name], o.secretFile[name]; {
		case env != "" && file != "":
			return nil, fmt.Errorf("secret %s: given by both --secret and --secret-file", name)
		case env != "":
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("secret %s: environment variable %s is not set", name, env)
			}
			out[name] = []byte(v)
		case file != "":
			v, err := ci.ReadSecretFile(file)
			if err != nil {
				return nil, fmt.Errorf("secret %s: %w", name, err)
			}
			out[name] = v
		default:
			return nil, fmt.Errorf("secret %s: the job file asks for it; give it with --secret %s[=VAR] or --secret-file %s=PATH (or --trust-secrets to use the file's own source)", name, name, name)
		}
	}
	return out, nil
}

// loadToolbox loads dir, or the default toolbox if dir is empty and one
// exists (none is not an error then: steps naming tools say so).
func loadToolbox(dir string) (*ci.Toolbox, error) {
	if dir != "" {
		return ci.LoadToolbox(dir)
	}
	cands := []string{defaultToolboxDir}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "toolbox"))
	}
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "toolbox.lock")); err == nil {
			return ci.LoadToolbox(d)
		}
	}
	return nil, nil
}

// ciCacheDir is the action cache's directory beside the master's caches
// ("" keeps it in memory, as the master's are).
func ciCacheDir(m *spindle.Master) string {
	if m.CacheDir() == "" {
		return ""
	}
	return filepath.Join(m.CacheDir(), "ci")
}

func runCI(ctx context.Context, o *ciOpts, pr *ciPrinter, stdout, stderr io.Writer) int {
	// The ci package's errors start "ci: ", as this line does.
	say := func(err error) { fmt.Fprintf(stderr, "spindle ci: %s\n", strings.TrimPrefix(err.Error(), "ci: ")) }
	f, opts, err := ciSetup(o)
	if err != nil {
		say(err)
		return exitUsage
	}
	cn := o.cn
	if cn == nil {
		cn = &conn{flags: &o.conn}
	}
	// Task logs come as events; the logger shows warnings, and with -v
	// the tree's records (-vvv: the bootstrap steps too).
	level, shown := slog.LevelInfo, slog.LevelWarn
	switch {
	case o.conn.verbosity >= 3:
		level, shown = spindle.LevelTrace, spindle.LevelTrace
	case o.conn.verbosity > 0:
		level, shown = slog.LevelDebug, slog.LevelDebug
	}
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(pr.line.Writer(stderr), shown), LogLevel: level, CacheDir: o.cacheDir})
	if err != nil {
		say(err)
		return exitCIInfra
	}
	defer m.Close()
	if opts.Cache, err = ci.OpenActionCache(ciCacheDir(m)); err != nil {
		say(err)
		return exitCIInfra
	}
	opts.Fleet = spindle.NewFleet(m)
	opts.Fleet.Sandbox = opts.Sandbox
	cn.apply(opts.Fleet)
	opts.Events = pr.event
	sum, err := ci.Run(ctx, m, f, opts)
	pr.finish()
	if err != nil && sum == nil {
		say(err)
		return exitUsage
	}
	if !o.asJSON {
		printCISummary(stdout, sum)
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, sum); err != nil {
			say(err)
			return exitCIInfra
		}
	}
	if err != nil {
		say(err)
		return exitCIInfra
	}
	return ciExit(ctx, sum)
}

// ciExit is the exit status of a run.
func ciExit(ctx context.Context, sum *ci.Summary) int {
	switch {
	case ctx.Err() != nil || sum.Cancelled > 0:
		return exitInterrupted
	case sum.Failed > 0:
		return exitCIFailed
	case sum.Errors > 0:
		return exitCIInfra
	case sum.Skipped > 0:
		return exitCIFailed
	}
	return 0
}

// ciPrinter shows a run's events: prefixed log lines and one line per
// finished step on stdout, a progress line on stderr when it is a
// terminal (erased before every other line, so they never mix), or JSON
// lines.
type ciPrinter struct {
	o    *ciOpts
	out  io.Writer
	json bool        // one JSON event per line
	line *statusLine // its lock guards the counts and every write

	done, hits, bad int
}

func newCIPrinter(stdout, stderr io.Writer, o *ciOpts) *ciPrinter {
	p := &ciPrinter{o: o, out: stdout}
	if o.asJSON {
		p.json = true
	} else {
		p.out = forTerminal(stdout)
	}
	p.line = newStatusLine(stderr, !o.asJSON, "ci", func() string {
		return fmt.Sprintf("%d done (%d hits, %d not passed)", p.done, p.hits, p.bad)
	})
	return p
}

func (p *ciPrinter) event(e ci.Event) {
	name := e.Job + "/" + e.Step
	switch {
	case p.json:
		b, _ := json.Marshal(e)
		p.line.print(func() { fmt.Fprintf(p.out, "%s\n", jsonSafe(b)) })
	case e.Type == ci.EventStepStarted:
		p.line.begin(name)
	case e.Type == ci.EventLog && !p.o.quiet:
		p.line.print(func() { fmt.Fprintf(p.out, "%s | %s\n", name, escapeLine(e.Line)) })
	case e.Type == ci.EventTarget && !p.o.quiet:
		p.line.print(func() { fmt.Fprintf(p.out, "target %s: sandbox %s\n", escapeLine(e.Target), escapeLine(e.Line)) })
	case e.Type == ci.EventStepFinished:
		p.line.finish(name, func() { p.finished(name, e.Result) })
	}
}

// finished counts and prints a finished step; the line's lock is held
// (it guards done, hits and bad).
func (p *ciPrinter) finished(name string, r *ci.StepResult) {
	p.done++
	if r.Cache == ci.CacheHit {
		p.hits++
	}
	if r.Status != ci.Passed {
		p.bad++
	}
	where := ""
	if r.Target != "" {
		where = " on " + r.Target
	}
	line := fmt.Sprintf("%s: %s (%s)%s %s", name, r.Status, cacheWord(r), where, round(r.Duration))
	if r.Error != "" {
		line += ": " + cut(r.Error, maxErrorLine)
	}
	fmt.Fprintln(p.out, escapeLine(line))
	if r.Hint != "" {
		fmt.Fprintf(p.out, "    hint: %s\n", escapeLine(r.Hint))
	}
	if r.Report != nil {
		printReasons(p.out, r.Report)
	}
}

// maxReasons is how many reasons of each kind a step's line lists.
const maxReasons = 5

// printReasons lists, under a step's line, why its tests were skipped and
// what wasip1 lacks that its failed tests needed, most common first.
func printReasons(w io.Writer, rep *report.Report) {
	list := func(what string, ts []report.Tally, say func(report.Tally) string) {
		for i, t := range ts {
			if i == maxReasons {
				fmt.Fprintf(w, "    %s: %d more reasons\n", what, len(ts)-i)
				return
			}
			fmt.Fprintf(w, "    %s: %s\n", what, escapeLine(say(t)))
		}
	}
	list("skipped", rep.Skips(), func(t report.Tally) string {
		return fmt.Sprintf("%d × %s (first %s)", t.Count, cmp.Or(t.Reason, "no reason given"), t.First)
	})
	list("needs what wasip1 lacks", rep.Lacking(), func(t report.Tally) string {
		return fmt.Sprintf("%s: %d failed (first %s)", t.Reason, t.Count, t.First)
	})
}

// maxErrorLine bounds the error text of a step's line: the whole of it is
// in --json and the results.
const maxErrorLine = 1000

// cut returns s cut to at most n bytes at a rune boundary, "…" added
// when it was cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func cacheWord(r *ci.StepResult) string {
	if r.Status == ci.Skipped || r.Status == ci.Cancelled {
		return "not run"
	}
	if r.Cache == ci.CacheOff && r.NotCached != "" {
		return "not cached: " + r.NotCached
	}
	return "cache " + r.Cache
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func (p *ciPrinter) finish() {
	p.line.close()
	p.line.print(func() { flush(p.out) })
}

// printCISummary prints the results table and the recap line.
func printCISummary(w io.Writer, sum *ci.Summary) {
	if sum == nil {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nJOB\tSTEP\tSTATUS\tCACHE\tTIME\tTARGET")
	for _, r := range sum.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", escapeLine(r.Job), escapeLine(r.Step), r.Status, r.Cache, round(r.Duration), escapeLine(r.Target))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d steps: %d passed, %d failed, %d errors, %d skipped; cache: %d hits, %d misses, %d not cacheable",
		len(sum.Steps), sum.Passed, sum.Failed, sum.Errors, sum.Skipped, sum.Hits, sum.Misses, sum.Uncached)
	if sum.Nondeterministic > 0 {
		fmt.Fprintf(w, "; %d NONDETERMINISTIC", sum.Nondeterministic)
	}
	fmt.Fprintf(w, "; %s\n", round(sum.Duration))
}

// writeJUnit writes the reports of every step that has one.
func writeJUnit(path string, sum *ci.Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ci.WriteJUnit(f, sum); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
