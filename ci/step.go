package ci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/report"
	"github.com/spindle-hq/spindle/target"
)

func (r *runner) emit(e Event) {
	if r.opts.Events == nil {
		return
	}
	e.Elapsed = time.Since(r.start)
	r.evMu.Lock()
	defer r.evMu.Unlock()
	r.opts.Events(e)
}

// runJob waits for the run's needs, then runs its steps in order.
func (r *runner) runJob(ctx context.Context, s *runState, states map[*JobRun]*runState) {
	jr := s.run
	var overlays []string
	var blocked string
	for _, need := range jr.Needs {
		ns := states[need]
		<-ns.done // it sees ctx too, and ends at once when it is done
		if !ns.ok && blocked == "" {
			blocked = need.Name
		}
		overlays = append(overlays, ns.outputs...)
	}
	r.emit(Event{Type: EventJobStarted, Job: jr.Name})
	timeout := jr.Job.Timeout
	if timeout <= 0 {
		timeout = DefaultJobTimeout
	}
	jctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.ok = blocked == ""
	first := r.pickTarget(jr.Job.Name) // the run's target; the next ones are for retries
	for _, st := range jr.Steps {
		var res *StepResult
		switch {
		case ctx.Err() != nil:
			res = &StepResult{Job: jr.Name, Step: st.Name, Status: Cancelled, Cache: CacheOff, Error: "the run was stopped"}
		case blocked != "":
			res = &StepResult{
				Job: jr.Name, Step: st.Name, Status: Skipped, Cache: CacheOff,
				Error: r.mask.String(fmt.Sprintf("not run: %s did not pass", blocked)),
			}
		default:
			res = r.runStep(jctx, jr, st, overlays, first)
			if jctx.Err() != nil && ctx.Err() == nil && res.Status != Passed {
				res.Status, res.Kind = Failed, "timeout"
				res.Error = fmt.Sprintf("job %s passed its timeout of %v", jr.Name, timeout)
			}
		}
		s.results = append(s.results, res)
		r.emit(Event{Type: EventStepFinished, Job: jr.Name, Step: st.Name, Target: res.Target, Result: res, Attempt: res.Attempts})
		if res.Status != Passed {
			s.ok = false
			if blocked == "" {
				blocked = jr.Name + "/" + st.Name
			}
			continue
		}
		if res.OutputTree != "" {
			overlays = append(overlays, res.OutputTree)
			s.outputs = append(s.outputs, res.OutputTree)
		}
	}
	status := Passed
	if !s.ok {
		status = Failed
	}
	r.emit(Event{Type: EventJobFinished, Job: jr.Name, Status: status})
}

// runStep prepares a step's action and runs it, or replays it from the
// cache.
func (r *runner) runStep(ctx context.Context, jr *JobRun, st *Step, overlays []string, first int) *StepResult {
	res := &StepResult{Job: jr.Name, Step: st.Name, Cache: CacheOff}
	infra := func(kind string, err error) *StepResult { return r.infra(res, kind, err) }
	mod, err := r.module(st)
	if err != nil {
		return infra("module", err)
	}
	in, err := r.inputTree(st.Inputs)
	if err != nil {
		return infra("workspace", err)
	}
	if len(overlays) > 0 {
		if in, err = r.st.Merge(in, overlays...); err != nil {
			return infra("workspace", err)
		}
	}
	a := r.action(st, mod, in)
	res.Key = a.Key()
	cacheable, why := a.Cacheable()
	if !cacheable {
		res.NotCached = why
		return r.execute(ctx, jr, st, a, res, nil, first)
	}
	old, hit := r.cache.Get(res.Key)
	if hit && !r.opts.NoCache {
		if out := r.replay(jr, st, old, res); out != nil {
			return out
		}
		// Its blobs are gone from the store: run it again.
	}
	if r.opts.NoCache {
		res.NotCached = "--no-cache"
	} else {
		res.Cache = CacheMiss
	}
	// Identical actions in flight are merged: one runs, the others wait
	// for it and report its result as theirs.
	for {
		r.mu.Lock()
		f, ok := r.flights[res.Key]
		if !ok {
			f = &actionFlight{done: make(chan struct{})}
			r.flights[res.Key] = f
			r.mu.Unlock()
			f.res = r.execute(ctx, jr, st, a, res, old, first)
			r.mu.Lock()
			delete(r.flights, res.Key)
			r.mu.Unlock()
			close(f.done)
			cp := *f.res // the caller may change its own
			return &cp
		}
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			res.Status, res.Error = Cancelled, "the run was stopped"
			return res
		}
		if f.res.Status == Passed || f.res.Status == Failed {
			cp := *f.res
			cp.Job, cp.Step, cp.Nondeterministic = jr.Name, st.Name, false
			return &cp
		}
		// The other run could not finish it: one of the waiters runs it now.
	}
}

// infra marks res as an infrastructure failure of kind: the step could
// not be run.
func (r *runner) infra(res *StepResult, kind string, err error) *StepResult {
	res.Status, res.Kind, res.Error = Error, kind, r.mask.String(err.Error())
	return res
}

// action is the step's action, its limits' defaults filled in.
func (r *runner) action(st *Step, mod, input string) *Action {
	a := st.Action(mod, input, r.f.Salt)
	a.Timeout = or(a.Timeout, DefaultStepTimeout)
	a.MemoryBytes = or(a.MemoryBytes, DefaultMemoryBytes)
	a.OutputBytes = or(a.OutputBytes, DefaultOutputBytes)
	a.DiskBytes = or(a.DiskBytes, DefaultDiskBytes)
	return a
}

func or[T int64 | time.Duration](v, d T) T {
	if v > 0 {
		return v
	}
	return d
}

// complete reports whether the store still holds every blob e names.
func (r *runner) complete(e *CacheEntry) bool {
	if !r.st.Has(e.Stdout) || !r.st.Has(e.Stderr) {
		return false
	}
	if e.OutputTree == "" {
		return true
	}
	blobs, err := r.st.Blobs(e.OutputTree)
	if err != nil {
		return false
	}
	for _, b := range blobs {
		if !r.st.Has(b) {
			return false
		}
	}
	return true
}

// replay reports a cached action as the step's result, its output logged
// again (masked again: the secrets may not be those of the run that made
// it), or returns nil if the store lacks a blob of it.
func (r *runner) replay(jr *JobRun, st *Step, e *CacheEntry, res *StepResult) *StepResult {
	stdout, ok1 := r.st.Get(e.Stdout)
	stderr, ok2 := r.st.Get(e.Stderr)
	if !ok1 || !ok2 || !r.complete(e) {
		return nil
	}
	res.Cache, res.Target, res.ExitCode, res.OutputTree = CacheHit, e.Target, e.ExitCode, e.OutputTree
	res.Stdout, res.Stderr = e.Stdout, e.Stderr
	stdout, stderr = []byte(r.mask.String(string(stdout))), []byte(r.mask.String(string(stderr)))
	r.emit(Event{Type: EventStepStarted, Job: jr.Name, Step: st.Name, Target: e.Target})
	r.emitLines(jr.Name, st.Name, e.Target, "stdout", stdout)
	r.emitLines(jr.Name, st.Name, e.Target, "stderr", stderr)
	r.judge(st, res, stdout)
	return res
}

// judge sets the status of a step that ran to its exit.
func (r *runner) judge(st *Step, res *StepResult, stdout []byte) {
	res.Status = Passed
	switch {
	case res.ExitCode != 0:
		res.Status, res.Kind = Failed, "exit"
		res.Error = fmt.Sprintf("exit status %d", res.ExitCode)
	case st.FailIfOutput && len(bytes.TrimSpace(stdout)) > 0:
		res.Status, res.Kind = Failed, "output"
		res.Error = "the step wrote to stdout (fail-if-output)"
	}
	if st.Report != "" {
		rep, err := parseReport(st.Report, stdout)
		if err != nil {
			res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + r.mask.String("report: "+err.Error())
		}
		res.Report = rep
		if rep != nil && res.Status == Passed && failedTests(rep) {
			res.Status, res.Kind, res.Error = Failed, "tests", rep.Summary()
		}
	}
}

func parseReport(format string, stdout []byte) (*report.Report, error) {
	return report.Parse(format, bytes.NewReader(stdout), report.Options{})
}

// execute runs the action, on the job's targets in turn while the
// failure is the infrastructure's, and records it in the cache. old is
// the cache's entry for the key, if any, for the nondeterminism check.
func (r *runner) execute(ctx context.Context, jr *JobRun, st *Step, a *Action, res *StepResult, old *CacheEntry, first int) *StepResult {
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		res.Status, res.Error = Cancelled, "the run was stopped"
		return res
	}
	secrets := map[string][]byte{}
	for _, name := range st.Secrets {
		secrets[name] = r.opts.Secrets[name]
	}
	targets := jr.Targets
	if len(targets) == 0 {
		targets = []string{"local"}
	}
	var last *StepResult
	for attempt := range r.opts.Retries + 1 {
		tname := targets[(first+attempt)%len(targets)]
		res.resetAttempt()
		res.Attempts = attempt + 1
		res.Target = tname
		out := r.attempt(ctx, jr, st, a, tname, secrets, res)
		last = out
		if out.Status != Error || (out.Kind != "connect" && out.Kind != "lost") || ctx.Err() != nil {
			break // the step's own failure, or one another target would repeat
		}
	}
	if last.Status == Error && ctx.Err() != nil {
		last.Status, last.Error = Cancelled, "the run was stopped"
	}
	if last.Status != Passed && last.Status != Failed || res.Stdout == "" {
		return last // only a command that ran to its exit is a result to keep
	}
	entry := &CacheEntry{
		Key: res.Key, ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr,
		OutputTree: res.OutputTree, Target: res.Target, Duration: res.Duration, Created: time.Now(),
	}
	if old != nil && r.opts.NoCache {
		if old.ExitCode != entry.ExitCode || old.Stdout != entry.Stdout || old.OutputTree != entry.OutputTree {
			res.Nondeterministic = true
			res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + fmt.Sprintf(
				"nondeterministic: the same action gave exit %d, stdout %s, outputs %s on %s, and now exit %d, stdout %s, outputs %s",
				old.ExitCode, short(old.Stdout), short(old.OutputTree), old.Target, entry.ExitCode, short(entry.Stdout), short(entry.OutputTree))
		}
	}
	if res.NotCached == "" || (r.opts.NoCache && res.NotCached == "--no-cache") {
		if err := r.cache.Put(entry); err != nil {
			res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + err.Error()
		}
	}
	return res
}

// resetAttempt clears what one attempt of a step decides, so a retry
// that passes keeps nothing of the attempt that failed before it.
func (res *StepResult) resetAttempt() {
	res.Status, res.Kind, res.Error, res.ExitCode = "", "", "", 0
	res.Class, res.Hint = "", ""
	res.OutputTree, res.Stdout, res.Stderr, res.Report = "", "", "", nil
	res.Duration = 0
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return h
}

// pickTarget spreads a job's runs over its targets, round robin.
func (r *runner) pickTarget(job string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.rr[job]
	r.rr[job]++
	return i
}

// attempt runs the action once on tname.
func (r *runner) attempt(ctx context.Context, jr *JobRun, st *Step, a *Action, tname string,
	secrets map[string][]byte, res *StepResult,
) *StepResult {
	infra := func(kind string, err error) *StepResult { return r.infra(res, kind, err) }
	t, err := r.target(tname)
	if err != nil {
		return infra("connect", err)
	}
	c, err := r.fleet.Get(ctx, t)
	if err != nil {
		r.fleet.Forget(t)
		res = infra("connect", err)
		var se *spindle.StartError
		if errors.As(err, &se) {
			res.Class, res.Hint = string(se.Class), r.mask.String(se.Hint)
		}
		return res
	}
	r.reportTarget(ctx, tname, c)
	r.emit(Event{Type: EventStepStarted, Job: jr.Name, Step: st.Name, Target: tname, Attempt: res.Attempts})
	stdout := r.newLog(jr.Name, st.Name, tname, "stdout", a.OutputBytes)
	stderr := r.newLog(jr.Name, st.Name, tname, "stderr", a.OutputBytes)
	sctx, cancel := context.WithTimeout(ctx, a.Timeout+10*time.Second) // the task's own limit comes first
	defer cancel()
	began := time.Now()
	tr, err := c.Run(sctx, spindle.Task{
		Module: a.Module, Args: a.Args, Env: a.Env, Stdout: stdout, Stderr: stderr,
		Clock: a.Clock, Random: a.Random,
		Limits: spindle.Limits{
			Timeout: a.Timeout, MemoryPages: uint32((a.MemoryBytes + 65535) / 65536),
			OutputBytes: a.OutputBytes, DiskBytes: a.DiskBytes,
		},
		Workspace: &spindle.Workspace{Input: a.InputRoot, Outputs: a.Outputs, Stdin: a.Stdin, Secrets: secrets},
	})
	res.Duration = time.Since(began)
	stdout.Close()
	stderr.Close()
	var te *spindle.TaskError
	switch {
	case errors.As(err, &te):
		switch te.Kind {
		case "workspace", "not_found", "invalid_call":
			return infra(te.Kind, te)
		case "cancelled":
			if ctx.Err() != nil {
				res.Status, res.Error = Cancelled, "the run was stopped"
				return res
			}
			return infra("lost", te)
		}
		res.Status, res.Kind, res.ExitCode = Failed, te.Kind, te.ExitCode
		res.Error = r.mask.String(te.Message)
		return res
	case err != nil:
		if ctx.Err() != nil {
			res.Status, res.Error = Cancelled, "the run was stopped"
			return res
		}
		r.fleet.Forget(t)
		return infra("lost", err)
	}
	res.ExitCode, res.OutputTree = tr.ExitCode, tr.OutputTree
	if res.Stdout, err = r.st.Put(stdout.Bytes()); err != nil {
		return infra("store", err)
	}
	if res.Stderr, err = r.st.Put(stderr.Bytes()); err != nil {
		return infra("store", err)
	}
	r.judge(st, res, stdout.Bytes())
	return res
}

// reportTarget emits an EventTarget with c's OS layers, the first time
// tname is used.
func (r *runner) reportTarget(ctx context.Context, tname string, c *spindle.Context) {
	r.mu.Lock()
	seen := r.ready[tname]
	r.ready[tname] = true
	r.mu.Unlock()
	if seen {
		return
	}
	var sb spindle.SandboxResult
	line := ""
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a context that does not answer delays no step
	defer cancel()
	if err := c.Call(cctx, "sandbox", nil, &sb); err != nil {
		line = "unknown: " + err.Error()
	} else if !sb.Sandboxed {
		line = "off (not started with Sandbox)"
	} else {
		line = sb.Report
	}
	r.emit(Event{Type: EventTarget, Target: tname, Line: line})
}

// target parses a target text once.
func (r *runner) target(text string) (target.Target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.targets[text]; ok {
		return t, nil
	}
	if err, ok := r.badTgts[text]; ok {
		return nil, err
	}
	t, err := target.Parse(text)
	if err != nil && r.opts.Inventory != nil {
		var named []target.Named
		if named, err = r.opts.Inventory.Resolve(text); err == nil {
			if len(named) != 1 {
				err = fmt.Errorf("target %q names %d hosts: a job's targets list each host (use a matrix to fan out)", text, len(named))
			} else {
				t = named[0].Target
			}
		}
	}
	if err != nil {
		r.badTgts[text] = err
		return nil, err
	}
	r.targets[text] = t
	return t, nil
}

// module returns the hash of the step's module, added to the master's
// store.
func (r *runner) module(st *Step) (string, error) {
	key := "tool:" + st.Tool
	switch {
	case st.Module != "":
		key = "module:" + st.Module
	case st.Hash != "":
		key = "hash:" + st.Hash
	}
	r.mu.Lock()
	e := r.modules[key]
	if e == nil {
		e = &moduleEntry{}
		r.modules[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() { e.hash, e.err = r.loadModule(st) })
	return e.hash, e.err
}

func (r *runner) loadModule(st *Step) (string, error) {
	var path string
	switch {
	case st.Tool != "":
		if r.opts.Toolbox == nil {
			return "", fmt.Errorf("step %s names tool %q, but no toolbox is loaded (make toolbox, or --toolbox DIR)", st.Name, st.Tool)
		}
		t, err := r.opts.Toolbox.Resolve(st.Tool)
		if err != nil {
			return "", err
		}
		path = t.Path
	case st.Module != "":
		path = st.Module
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(r.f.Path), path)
		}
	default:
		if r.st.Has(st.Hash) {
			return st.Hash, nil
		}
		if r.opts.Toolbox != nil {
			if t, ok := r.opts.Toolbox.ByHash(st.Hash); ok {
				path = t.Path
				break
			}
		}
		return "", fmt.Errorf("step %s: no module with hash %s in the toolbox or the store", st.Name, st.Hash)
	}
	h, err := r.m.AddModuleFile(path)
	if err != nil {
		return "", err
	}
	if st.Hash != "" && h != st.Hash {
		return "", fmt.Errorf("step %s: %s has sha256 %s, not %s", st.Name, path, h, st.Hash)
	}
	return h, nil
}

// inputTree returns the digest of the workspace files the patterns take,
// built once per distinct pattern list in a run.
func (r *runner) inputTree(patterns []string) (string, error) {
	if len(patterns) == 0 {
		patterns = []string{"**"}
	}
	key := strings.Join(patterns, "\x00")
	r.mu.Lock()
	e := r.inputs[key]
	if e == nil {
		e = &inputTree{}
		r.inputs[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() {
		filter, err := NewFilter(patterns)
		if err != nil {
			e.err = err
			return
		}
		e.digest, e.err = r.st.PutDir(r.opts.Workspace, filter.Include)
	})
	return e.digest, e.err
}

// writeArtifacts writes every step's outputs under opts.Artifacts.
func (r *runner) writeArtifacts(ctx context.Context, sum *Summary) error {
	for _, sr := range sum.Steps {
		if sr.OutputTree == "" {
			continue
		}
		rel := filepath.Join(safeName(sr.Job), safeName(sr.Step))
		if !filepath.IsLocal(rel) || strings.HasPrefix(rel, ".") {
			return fmt.Errorf("ci: artifacts of %s/%s: not a name for a directory", sr.Job, sr.Step)
		}
		dst := filepath.Join(r.opts.Artifacts, rel)
		if err := os.RemoveAll(dst); err != nil {
			return fmt.Errorf("ci: artifacts: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("ci: artifacts: %w", err)
		}
		if err := r.m.Blobs().Materialize(ctx, sr.OutputTree, dst); err != nil {
			return fmt.Errorf("ci: artifacts of %s/%s: %w", sr.Job, sr.Step, err)
		}
	}
	return nil
}

// safeName makes a job run's name a file name: "test (goarch=arm64)"
// becomes "test_goarch=arm64_".
func safeName(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '/' || c == ' ' || c == '(' || c == ')' || c == ',' || c < ' ' {
			return '_'
		}
		return c
	}, s)
}
