package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/target"
)

const shUsage = `usage: spindle sh -t PATTERN [flags] -- PROGRAM [ARGS...]

Runs one program on each target, as Ansible's command module does: no
shell, exactly PROGRAM and ARGS. It runs the sh battery (a wasm module
shipped with spindle, bin/batteries/sh.wasm, pinned by its hash) with an
exec grant of exactly that argv and nothing else: the target's context
checks the grant before it starts the program, in a process group of its
own that is killed when the program exits or times out.

A PROGRAM without a slash is looked for, on the target, in
/usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin and /bin, in
that order (each granted with the same ARGS); give an absolute path to run
anything else. Its environment is PATH (those directories) and the --env
variables, nothing else; its working directory is / unless --chdir.

flags:
  -t, --target T      where to run, as for spindle run (a target chain or a
                      host pattern of the --inventory); repeatable, each
                      target run once (two spellings of one chain too, as
                      spindle run -h says)
  -i, --inventory F   an inventory file of hosts and groups
  -l, --limit P       keep only the selected targets P also names; repeatable
  --become            run as root through a sudo hop appended to each target
                      (sudo://root; -K asks for its password)
  --become-user U     run as U instead of root (implies --become)
  --env K=V           an environment variable for the program; repeatable
  --chdir DIR         the program's working directory (absolute; default /)
  --timeout D         the program's time limit on each target (default 30s)
  --output-bytes N    what each target's program may print, stdout and
                      stderr together (default 1MiB); the rest is dropped
  --parallel N        at most N targets at once (default 20)
  --json              one JSON object per target per line: {"target",
                      "status", "rc", "stdout", "error": {...}}
  -v, --verbose       show the tree's log records (each exec's record too)
` + connUsage + `
output: per target, "NAME | CHANGED | rc=0 >>" and what the program wrote,
indented (the first 64 KiB); FAILED when it exited non-zero, timed out
(rc=124) or was refused; UNREACHABLE when the target could not be started.
Then a recap, one line per target: ok, changed, unreachable, failed. A
command that ran successfully is "changed" (spindle cannot know what it
did), as Ansible counts its command module.

exit status: 0 every target ok; 1 a program failed somewhere; 3 a target
could not be reached (and none failed); 2 bad usage; 130 interrupted.
`

// shSearchDirs is where a PROGRAM without a slash is looked for on a
// target, in order; also the PATH the program gets.
var shSearchDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

type shOpts struct {
	targetFlags
	env      map[string]string
	chdir    string
	timeout  time.Duration
	outBytes int64
	parallel int
	asJSON   bool
	conn     connFlags
	argv     []string
}

func parseShArgs(args []string) (*shOpts, error) {
	o := &shOpts{env: map[string]string{}}
	fs := flag.NewFlagSet("sh", flag.ContinueOnError)
	o.targetFlags.register(fs)
	fs.Func("env", "", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || strings.ContainsRune(v, 0) {
			return fmt.Errorf("--env %q: want K=V", v)
		}
		o.env[k] = val
		return nil
	})
	fs.StringVar(&o.chdir, "chdir", "", "")
	fs.Func("timeout", "", func(v string) (err error) { o.timeout, err = parseTimeout(v); return err })
	fs.Func("output-bytes", "", func(v string) (err error) {
		o.outBytes, err = parseSize("--output-bytes", v, maxOutputBytes)
		return err
	})
	fs.IntVar(&o.parallel, "parallel", 20, "")
	fs.BoolVar(&o.asJSON, "json", false, "")
	o.conn.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) == 0:
		return nil, errors.New("no program given (spindle sh -t TARGET -- PROGRAM [ARGS...])")
	case len(o.targets) == 0:
		return nil, errNoTargets
	case o.parallel < 1:
		return nil, fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
	case o.chdir != "" && (!path.IsAbs(o.chdir) || path.Clean(o.chdir) != o.chdir):
		return nil, fmt.Errorf("--chdir %q: want a clean absolute path", o.chdir)
	case pos[0] == "" || strings.HasSuffix(pos[0], "/") || (strings.Contains(pos[0], "/") && !path.IsAbs(pos[0])):
		return nil, fmt.Errorf("program %q: want a name (looked for in %s) or an absolute path", pos[0], strings.Join(shSearchDirs, ", "))
	}
	for _, a := range pos {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("argument %q holds NUL", a)
		}
	}
	o.becomeDefaults()
	if o.timeout == 0 {
		o.timeout = host.DefaultExecTimeout
	}
	o.argv = pos
	return o, nil
}

// shGrants is the exec grant of exactly argv: its program at its absolute
// path, or in each of shSearchDirs, with each argument quoted.
func (o *shOpts) shGrants() []spindle.ExecGrant {
	args := make([]string, len(o.argv)-1)
	for i, a := range o.argv[1:] {
		args[i] = host.QuoteArg(a)
	}
	env := map[string]string{"PATH": strings.Join(shSearchDirs, ":")}
	for k, v := range o.env {
		env[k] = v
	}
	g := spindle.ExecGrant{Args: args, Env: env, Dir: o.chdir, Timeout: o.timeout, OutputBytes: o.outBytes}
	if path.IsAbs(o.argv[0]) {
		g.Path = path.Clean(o.argv[0])
		return []spindle.ExecGrant{g}
	}
	var out []spindle.ExecGrant
	for _, d := range shSearchDirs {
		g.Path = d + "/" + o.argv[0]
		out = append(out, g)
	}
	return out
}

// shLine is one target's outcome in --json mode.
type shLine struct {
	Target          string    `json:"target"`
	Status          string    `json:"status"` // "changed", "failed" or "unreachable"
	RC              *int      `json:"rc,omitempty"`
	Stdout          string    `json:"stdout"` // stdout and stderr as written, the first 64 KiB
	StdoutTruncated bool      `json:"stdout_truncated,omitempty"`
	Error           *runError `json:"error,omitempty"`
}

func cmdSh(args []string, stdout, stderr io.Writer) int {
	o, err := parseShArgs(args)
	if isHelp(err) {
		fmt.Fprint(stdout, shUsage)
		return 0
	}
	if err != nil {
		return usageError(stderr, "sh", err)
	}
	targets, code, done := o.resolve("sh", o.conn.sshConfig, stderr)
	if done {
		return code
	}
	wasm, pinned, err := loadBattery("sh")
	if err != nil {
		fmt.Fprintf(stderr, "spindle sh: %v\n", err)
		return exitUsage
	}
	var chains []target.Target
	for _, nt := range targets {
		chains = append(chains, nt.Target)
	}
	cn, code := o.conn.connect(stderr, "spindle sh", chains)
	if cn == nil {
		return code
	}
	level := o.conn.runLevel()
	var tally shRecap // guarded by bar's lock
	bar := newStatusLine(stderr, len(targets) > 1, "sh", func() string {
		return fmt.Sprintf("%d/%d done: %d changed, %d failed, %d unreachable",
			tally.changed+tally.failed+tally.unreachable, len(targets), tally.changed, tally.failed, tally.unreachable)
	})
	defer bar.close()
	ctx, stop := interruptContext(bar.Writer(stderr), "spindle sh")
	defer stop()
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(bar.Writer(forTerminal(stderr)), level), LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "spindle sh: %v\n", err)
		return 1
	}
	defer m.Close()
	if !pinned && o.conn.verbosity > 0 {
		fmt.Fprintln(bar.Writer(stderr), "spindle sh: the sh battery is not pinned by hash (this spindle was not built by make build)")
	}
	hash, err := m.AddModule(wasm)
	if err != nil {
		fmt.Fprintf(stderr, "spindle sh: %v\n", err)
		return exitUsage
	}
	task := spindle.Task{Module: hash, Task: "sh", Args: append([]string{"--"}, o.argv...), Exec: o.shGrants(),
		Limits: spindle.Limits{Timeout: o.timeout + 10*time.Second}}
	fl := spindle.NewFleet(m)
	cn.apply(fl)
	began := time.Now()
	lines := make([]shLine, len(targets))
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, nt := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bar.begin(nt.Name)
			out := newCapBuffer(maxCollectedBytes)
			t := task
			t.Stdout, t.Stderr = out, out
			l := shLineOf(runOn(ctx, fl, nt, t, o.conn.sshConfig), out)
			if l.Error != nil {
				l.Error.Message = cn.mask(l.Error.Message)
			}
			lines[i] = l
			bar.finish(nt.Name, func() {
				tally.add(l)
				if o.asJSON {
					b, _ := json.Marshal(l)
					fmt.Fprintf(stdout, "%s\n", jsonSafe(b))
					return
				}
				printShLine(stdout, l, out.summary())
			})
		}()
	}
	wg.Wait()
	bar.close()
	r := tally
	if !o.asJSON {
		printShRecap(stdout, lines)
	}
	fmt.Fprintf(stderr, "%d %s: %d changed, %d failed, %d unreachable in %s\n",
		len(lines), plural(len(lines), "target", "targets"), r.changed, r.failed, r.unreachable, time.Since(began).Round(time.Millisecond))
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case r.failed > 0:
		return exitCIFailed
	case r.unreachable > 0:
		return exitCIInfra
	}
	return 0
}

// shLineOf makes spindle run's outcome of the sh battery a row of sh.
func shLineOf(l runLine, out *capBuffer) shLine {
	s := shLine{Target: l.Target}
	s.Stdout, s.StdoutTruncated = out.text()
	switch {
	case l.ExitCode != nil:
		s.RC = l.ExitCode
		s.Status = "changed"
		if *l.ExitCode != 0 {
			s.Status = "failed"
			s.Error = &runError{Kind: "exit", Message: shExitMessage(*l.ExitCode)}
		}
	case l.Error != nil && (l.Error.Kind == kindConnect || l.Error.Kind == kindLost || l.Error.Kind == kindInterrupted):
		s.Status, s.Error = "unreachable", l.Error
	default:
		s.Status, s.Error = "failed", l.Error
	}
	return s
}

// shExitMessage says what the sh battery's exit status means.
func shExitMessage(rc int) string {
	switch rc {
	case 124:
		return "exit status 124: timed out, its process group was killed"
	case 125:
		return "exit status 125: killed by a signal, or could not be started"
	case 126:
		return "exit status 126: not granted"
	case 127:
		return "exit status 127: not installed on the target"
	}
	return fmt.Sprintf("exit status %d", rc)
}

// shRecap counts an sh run's targets.
type shRecap struct{ changed, failed, unreachable int }

func (r *shRecap) add(l shLine) {
	switch l.Status {
	case "changed":
		r.changed++
	case "unreachable":
		r.unreachable++
	default:
		r.failed++
	}
}

// printShLine writes one target's result, as Ansible's ad-hoc command
// does: a header line, then what the program wrote, indented. Everything
// from the target is escaped.
func printShLine(w io.Writer, l shLine, out string) {
	switch {
	case l.Status == "unreachable":
		fmt.Fprintf(w, "%s | UNREACHABLE! => %s\n", escapeLine(l.Target), escapeLine(l.Error.Message))
		if l.Error.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", escapeLine(l.Error.Hint))
		}
		return
	case l.RC == nil:
		fmt.Fprintf(w, "%s | FAILED! => %s: %s\n", escapeLine(l.Target), l.Error.Kind, escapeLine(l.Error.Message))
	default:
		fmt.Fprintf(w, "%s | %s | rc=%d >>\n", escapeLine(l.Target), strings.ToUpper(l.Status), *l.RC)
	}
	if out != "" {
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", escapeLine(line))
		}
	}
}

// printShRecap writes one line per target, by name: Ansible's recap.
func printShRecap(w io.Writer, lines []shLine) {
	sorted := append([]shLine(nil), lines...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Target < sorted[j].Target })
	width := 20
	for _, l := range sorted {
		width = max(width, len(escapeLine(l.Target)))
	}
	fmt.Fprintln(w, "\nRECAP")
	for _, l := range sorted {
		var r shRecap
		r.add(l)
		ok := 0
		if l.Status == "changed" {
			ok = 1
		}
		fmt.Fprintf(w, "%-*s : ok=%d changed=%d unreachable=%d failed=%d\n", width, escapeLine(l.Target), ok, r.changed, r.unreachable, r.failed)
	}
}
