package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/target"
	"github.com/spindle-hq/spindle/wire"
)

// What spindle facts and spindle stat share: the target flags, the run of
// a reactor battery on every target (at most --parallel at once, through
// the same fleet, with --become as a sudo hop appended to each chain), the
// typed decode of its output, and the recap. A battery that only looks is
// never "changed": each target is ok, failed or unreachable.

// inspectUsage documents the flags every looking verb takes.
const inspectUsage = `  -t, --target T      where to run, as for spindle run (a target chain or a
                      host pattern of the --inventory); repeatable, each
                      target run once (two spellings of one chain too, as
                      spindle run -h says)
  -i, --inventory F   an inventory file of hosts and groups
  -l, --limit P       keep only the selected targets P also names; repeatable
  --become            run as root through a sudo hop appended to each target
                      (sudo://root; -K asks for its password)
  --become-user U     run as U instead of root (implies --become)
  --timeout D         the battery's time limit on each target (default 30s)
  --parallel N        at most N targets at once (default 20)
  --json              one JSON object per target per line
  -v, --verbose       show the tree's log records
`

// inspectOpts are the target flags of spindle facts and spindle stat.
type inspectOpts struct {
	targetFlags
	timeout  time.Duration
	parallel int
	asJSON   bool
	conn     connFlags
}

func (o *inspectOpts) register(fs *flag.FlagSet) {
	o.targetFlags.register(fs)
	fs.Func("timeout", "", func(v string) (err error) { o.timeout, err = parseTimeout(v); return err })
	fs.IntVar(&o.parallel, "parallel", 20, "")
	fs.BoolVar(&o.asJSON, "json", false, "")
	o.conn.register(fs)
}

// check validates the flags after parsing and fills in the defaults.
func (o *inspectOpts) check() error {
	switch {
	case len(o.targets) == 0:
		return errNoTargets
	case o.parallel < 1:
		return fmt.Errorf("--parallel %d: must be at least 1", o.parallel)
	}
	o.becomeDefaults()
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	return nil
}

// inspectRecap counts a run's targets by status.
type inspectRecap struct{ ok, failed, unreachable int }

func (r *inspectRecap) add(status string) {
	switch status {
	case "ok":
		r.ok++
	case "unreachable":
		r.unreachable++
	default:
		r.failed++
	}
}

// fanOut runs battery on every target o selects: each(ctx, fl, hash, nt,
// mask) does one target's work (mask hides the -K password in text from
// the target) and returns print, which writes its row, under the status
// line's lock, and returns the target's status ("ok", "failed",
// "unreachable"). header, if not nil, is written once before any row. It
// prints the recap and the summary and returns the exit status.
func fanOut(o *inspectOpts, cmd, battery string, stdout, stderr io.Writer, header func(names []string),
	each func(ctx context.Context, fl *spindle.Fleet, hash string, nt target.Named, mask func(string) string) func() string) int {
	targets, code, done := o.resolve(cmd, o.conn.sshConfig, stderr)
	if done {
		return code
	}
	wasm, pinned, err := loadBattery(battery)
	if err != nil {
		fmt.Fprintf(stderr, "spindle %s: %v\n", cmd, err)
		return exitUsage
	}
	var chains []target.Target
	names := make([]string, len(targets))
	for i, nt := range targets {
		chains = append(chains, nt.Target)
		names[i] = nt.Name
	}
	cn, code := o.conn.connect(stderr, "spindle "+cmd, chains)
	if cn == nil {
		return code
	}
	level := o.conn.runLevel()
	var tally inspectRecap // guarded by bar's lock
	bar := newStatusLine(stderr, len(targets) > 1, cmd, func() string {
		return fmt.Sprintf("%d/%d done: %d ok, %d failed, %d unreachable",
			tally.ok+tally.failed+tally.unreachable, len(targets), tally.ok, tally.failed, tally.unreachable)
	})
	defer bar.close()
	ctx, stop := interruptContext(bar.Writer(stderr), "spindle "+cmd)
	defer stop()
	m, err := spindle.NewMaster(spindle.Config{Logger: cn.logger(bar.Writer(forTerminal(stderr)), level), LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "spindle %s: %v\n", cmd, err)
		return 1
	}
	defer m.Close()
	if !pinned && o.conn.verbosity > 0 {
		fmt.Fprintf(bar.Writer(stderr), "spindle %s: the %s battery is not pinned by hash (this spindle was not built by make build)\n", cmd, battery)
	}
	hash, err := m.AddModule(wasm)
	if err != nil {
		fmt.Fprintf(stderr, "spindle %s: %v\n", cmd, err)
		return exitUsage
	}
	fl := spindle.NewFleet(m)
	cn.apply(fl)
	if header != nil {
		bar.print(func() { header(names) })
	}
	began := time.Now()
	status := make([]string, len(targets)) // only the status is kept: results are printed, then dropped
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i, nt := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bar.begin(nt.Name)
			print := each(ctx, fl, hash, nt, cn.mask)
			bar.finish(nt.Name, func() {
				status[i] = print()
				tally.add(status[i])
			})
		}()
	}
	wg.Wait()
	bar.close()
	if !o.asJSON {
		printInspectRecap(stdout, names, status)
	}
	fmt.Fprintf(stderr, "%d %s: %d ok, %d failed, %d unreachable in %s\n",
		len(targets), plural(len(targets), "target", "targets"), tally.ok, tally.failed, tally.unreachable, time.Since(began).Round(time.Millisecond))
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case tally.failed > 0:
		return exitCIFailed
	case tally.unreachable > 0:
		return exitCIInfra
	}
	return 0
}

// runBattery runs t in the last context of nt's chain and decodes its
// output into out (with wire.Unmarshal: it came from the target). It
// returns the target's status and, unless ok, why; sshConfig is
// --ssh-config, for the hint of a start that failed.
func runBattery(ctx context.Context, fl *spindle.Fleet, nt target.Named, t spindle.Task, out any, sshConfig string) (string, *runError) {
	c, err := fl.Start(ctx, nt.Target)
	if err != nil {
		return "unreachable", startFailure(ctx, nt, err, sshConfig)
	}
	res, err := c.Run(ctx, t)
	if err != nil {
		e := runFailure(ctx, err)
		if e.Kind == kindLost || e.Kind == kindInterrupted {
			return "unreachable", e
		}
		return "failed", e
	}
	if err := wire.Unmarshal(res.Output, out); err != nil {
		return "failed", &runError{Kind: "output", Message: fmt.Sprintf("the battery's output: %v", err)}
	}
	return "ok", nil
}

// printFailure writes the row of a target that failed or could not be
// reached, as spindle sh does. Everything from the target is escaped.
func printFailure(w io.Writer, name, status string, e *runError) {
	if status == "unreachable" {
		fmt.Fprintf(w, "%s | UNREACHABLE! => %s\n", escapeLine(name), escapeLine(e.Message))
		if e.Hint != "" {
			fmt.Fprintf(w, "    hint: %s\n", escapeLine(e.Hint))
		}
		return
	}
	fmt.Fprintf(w, "%s | FAILED! => %s: %s\n", escapeLine(name), e.Kind, escapeLine(e.Message))
}

// printInspectRecap writes one line per target, by name: Ansible's recap,
// in which looking never changes anything.
func printInspectRecap(w io.Writer, names, status []string) {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	width := 20
	for _, n := range names {
		width = max(width, len(escapeLine(n)))
	}
	fmt.Fprintln(w, "\nRECAP")
	for _, i := range idx {
		var r inspectRecap
		r.add(status[i])
		fmt.Fprintf(w, "%-*s : ok=%d changed=0 unreachable=%d failed=%d\n", width, escapeLine(names[i]), r.ok, r.unreachable, r.failed)
	}
}
