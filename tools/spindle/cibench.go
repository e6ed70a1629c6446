package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/target"
)

const ciBenchUsage = `usage: spindle ci bench [--json] [--runs N] [--toolbox DIR] [--probe FILE.wasm] [--demo JOBFILE]

Measures spindle ci, as medians of N runs (default 5):
  rerun_20_steps   an unchanged rerun of a 20-step job on a two-level local
                   tree: this binary run as "spindle ci" end to end (all
                   cache hits); goal <= 100 ms
  first_20_steps   the first run of the same job (all misses)
  gofmt_500        a gofmt -l step over 500 Go files on a warm context (the
                   module compiled), and gofmt itself run as a plain task on
                   the same context and files; goal: step <= task + 30 ms
  demo_cold, demo_warm, demo_hits   the demo job file (--demo, default
                   ci/spindle.yaml) with an empty cache, with the compiled
                   modules cached but no action cache, and all hits
The probe module (examples/wasm/ciprobe) comes from --probe, default
bin/wasm/ciprobe.wasm (make wasm-go); gofmt from the toolbox (make toolbox).
`

type ciBenchFigure struct {
	Name   string  `json:"name"`
	Median float64 `json:"median_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
	Note   string  `json:"note,omitempty"`
}

func cmdCIBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ci bench", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	runs := fs.Int("runs", 5, "")
	toolbox := fs.String("toolbox", "", "")
	probe := fs.String("probe", "bin/wasm/ciprobe.wasm", "")
	demo := fs.String("demo", "ci/spindle.yaml", "")
	pos, err := parseFlags(fs, args)
	switch {
	case isHelp(err):
		fmt.Fprint(stdout, ciBenchUsage)
		return 0
	case err == nil && *runs < 1:
		err = fmt.Errorf("--runs %d: must be at least 1", *runs)
	case err == nil:
		err = errNoArgs(pos)
	}
	if err != nil {
		return usageError(stderr, "ci bench", err)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "spindle ci bench: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "spindle-ci-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "spindle ci bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b := &ciBench{exe: exe, dir: dir, runs: *runs, stderr: stderr}
	var figs []ciBenchFigure
	fail := func(err error) int {
		fmt.Fprintf(stderr, "spindle ci bench: %v\n", err)
		return 1
	}
	ws, err := benchWorkspace(filepath.Join(dir, "ws"), 500)
	if err != nil {
		return fail(err)
	}
	f, err := b.twentySteps(ws, *probe)
	if err != nil {
		return fail(err)
	}
	first, rerun, err := b.rerun(ws, f)
	if err != nil {
		return fail(err)
	}
	figs = append(figs, first, rerun)
	tb, err := loadToolbox(*toolbox)
	if err == nil && tb == nil {
		err = fmt.Errorf("no toolbox found (run make toolbox, or pass --toolbox DIR)")
	}
	if err != nil {
		return fail(err)
	}
	gofmt, err := b.gofmt(ws, tb)
	if err != nil {
		return fail(err)
	}
	figs = append(figs, gofmt...)
	demoFigs, err := b.demo(*demo, *toolbox)
	if err != nil {
		return fail(err)
	}
	figs = append(figs, demoFigs...)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(figs)
		return 0
	}
	fmt.Fprintf(stdout, "%-16s %10s %10s %10s  %s\n", "figure", "median ms", "min", "max", "note")
	for _, fg := range figs {
		fmt.Fprintf(stdout, "%-16s %10.1f %10.1f %10.1f  %s\n", fg.Name, fg.Median, fg.Min, fg.Max, fg.Note)
	}
	return 0
}

type ciBench struct {
	exe    string
	dir    string
	runs   int
	stderr io.Writer
}

// benchWorkspace writes n small Go files in 25 packages.
func benchWorkspace(dir string, n int) (string, error) {
	for i := range n {
		pkg := fmt.Sprintf("pkg%02d", i%25)
		p := filepath.Join(dir, pkg, fmt.Sprintf("f%03d.go", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		src := fmt.Sprintf("package %s\n\n// F%d returns its argument plus %d.\nfunc F%d(x int) int {\n\treturn x + %d\n}\n", pkg, i, i, i, i)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// twentySteps writes the 20-step job file: two jobs of ten probe steps, on
// local:w1 and on local:w2/local:w2a.
func (b *ciBench) twentySteps(ws, probe string) (string, error) {
	abs, err := filepath.Abs(probe)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("probe module: %w (run make wasm-go)", err)
	}
	var sb strings.Builder
	sb.WriteString("jobs:\n")
	for j, tgt := range []string{"local:w1", "local:w2/local:w2a"} {
		fmt.Fprintf(&sb, "  j%d:\n    targets: [%q]\n    steps:\n", j, tgt)
		// Each step its own action: the env differs between the jobs.
		for s := range 10 {
			fmt.Fprintf(&sb, "      - name: s%d\n        module: %q\n        args: [cat, /src/pkg%02d/f%03d.go]\n        env: {JOB: j%d}\n", s, abs, s, s, j)
		}
	}
	f := filepath.Join(b.dir, "twenty.yaml")
	return f, os.WriteFile(f, []byte(sb.String()), 0o644)
}

// spindleCI runs this binary as spindle ci and returns its wall time.
func (b *ciBench) spindleCI(ws, file, cacheDir string, extra ...string) (time.Duration, string, error) {
	args := append([]string{"ci", "-q", "--cache-dir", cacheDir, "-w", ws}, extra...)
	args = append(args, file)
	// The demo's cold run is the longest (tens of seconds); a run ten
	// times that is stuck, not slow.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, out.String(), fmt.Errorf("spindle %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return d, out.String(), nil
}

func (b *ciBench) rerun(ws, file string) (ciBenchFigure, ciBenchFigure, error) {
	var firsts, reruns []time.Duration
	for i := range b.runs {
		cache := filepath.Join(b.dir, fmt.Sprintf("cache-rerun-%d", i))
		d, _, err := b.spindleCI(ws, file, cache)
		if err != nil {
			return ciBenchFigure{}, ciBenchFigure{}, err
		}
		firsts = append(firsts, d)
		d, out, err := b.spindleCI(ws, file, cache)
		if err != nil {
			return ciBenchFigure{}, ciBenchFigure{}, err
		}
		if !strings.Contains(out, "cache: 20 hits") {
			return ciBenchFigure{}, ciBenchFigure{}, fmt.Errorf("the rerun was not all cache hits:\n%s", out)
		}
		reruns = append(reruns, d)
	}
	return figure("first_20_steps", firsts, "all misses: 3 local contexts started, probe compiled once per machine"),
		figure("rerun_20_steps", reruns, "100% cache hits, end to end (process start to exit); goal <= 100 ms"), nil
}

// gofmt measures a gofmt step against gofmt itself run as a plain task
// (its workspace mounted directly) on the same warm context.
func (b *ciBench) gofmt(ws string, tb *ci.Toolbox) ([]ciBenchFigure, error) {
	tool, err := tb.Resolve("gofmt")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	m, err := spindle.NewMaster(spindle.Config{CacheDir: filepath.Join(b.dir, "cache-gofmt")})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	hash, err := m.AddModuleFile(tool.Path)
	if err != nil {
		return nil, err
	}
	fleet := spindle.NewFleet(m)
	tg, _ := target.Parse("local")
	c, err := fleet.Get(ctx, tg)
	if err != nil {
		return nil, err
	}
	var direct []time.Duration
	for i := range b.runs + 1 {
		start := time.Now()
		res, err := c.Run(ctx, spindle.Task{Module: hash, Task: "gofmt", Args: []string{"-l", "."},
			Mounts: []spindle.Mount{{Host: ws, Guest: "/src", ReadOnly: true}}, Env: map[string]string{"PWD": "/src"},
			Limits: spindle.Limits{Timeout: time.Minute}})
		if err != nil {
			return nil, fmt.Errorf("gofmt as a task: %w", err)
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("gofmt as a task: exit %d", res.ExitCode)
		}
		if i > 0 { // the first run compiles
			direct = append(direct, time.Since(start))
		}
	}
	job := filepath.Join(b.dir, "gofmt.yaml")
	if err := os.WriteFile(job, []byte("jobs:\n  fmt:\n    steps:\n      - name: gofmt\n        tool: gofmt\n        args: [-l, .]\n        inputs: [\"**/*.go\"]\n        fail-if-output: true\n"), 0o644); err != nil {
		return nil, err
	}
	f, err := ci.ParseJobFile(job)
	if err != nil {
		return nil, err
	}
	var steps []time.Duration
	for range b.runs {
		start := time.Now()
		sum, err := ci.Run(ctx, m, f, ci.Options{Workspace: ws, Toolbox: tb, NoCache: true, Fleet: fleet})
		if err != nil {
			return nil, err
		}
		if !sum.OK() || len(sum.Steps) != 1 {
			return nil, fmt.Errorf("gofmt step did not pass: %+v", sum.Steps)
		}
		steps = append(steps, time.Since(start))
	}
	fd, fs := figure("gofmt_500_task", direct, "gofmt -l over 500 files as a plain task on a warm local context (mounted directly)"),
		figure("gofmt_500_step", steps, "the same as a whole spindle ci run of one step, same context (tree, key, materialize, run, collect)")
	fs.Note += fmt.Sprintf("; step - task = %.1f ms, goal <= 30 ms", fs.Median-fd.Median)
	return []ciBenchFigure{fd, fs}, nil
}

// demo runs the demo job file cold, warm and all hits.
func (b *ciBench) demo(file, toolbox string) ([]ciBenchFigure, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("demo job file: %w", err)
	}
	var extra []string
	if toolbox != "" {
		extra = []string{"--toolbox", toolbox}
	}
	var cold, warm, hits []time.Duration
	for i := range b.runs {
		cache := filepath.Join(b.dir, fmt.Sprintf("cache-demo-%d", i))
		d, _, err := b.spindleCI(".", file, cache, extra...)
		if err != nil {
			return nil, err
		}
		cold = append(cold, d)
		if d, _, err = b.spindleCI(".", file, cache, append(extra, "--no-cache")...); err != nil {
			return nil, err
		}
		warm = append(warm, d)
		if d, _, err = b.spindleCI(".", file, cache, extra...); err != nil {
			return nil, err
		}
		hits = append(hits, d)
		os.RemoveAll(cache)
	}
	return []ciBenchFigure{
		figure("demo_cold", cold, "first run, empty compile and action caches"),
		figure("demo_warm", warm, "--no-cache with the compiled modules cached"),
		figure("demo_hits", hits, "unchanged rerun, all cache hits"),
	}, nil
}

func figure(name string, ds []time.Duration, note string) ciBenchFigure {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ciBenchFigure{Name: name, Median: ms(median(ds)), Min: ms(percentile(ds, 0)), Max: ms(percentile(ds, 100)), Note: note}
}
