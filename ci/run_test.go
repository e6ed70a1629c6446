package ci_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	spindle.MaybeRunChild(nil)
	testutil.VerifyTestMain(m)
}

// probe is the path of examples/wasm/ciprobe built for wasip1.
func probe(t *testing.T) string {
	t.Helper()
	return testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
}

// env is one test's master, workspace and job file directory.
type env struct {
	t     *testing.T
	m     *spindle.Master
	ws    string // the workspace
	dir   string // where job files go
	probe string
	cache *ci.ActionCache

	mu     sync.Mutex
	events []ci.Event
}

func newEnv(t *testing.T, cacheDir string) *env {
	t.Helper()
	testutil.VerifyNone(t)
	m, err := spindle.NewMaster(spindle.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e := &env{t: t, m: m, ws: t.TempDir(), dir: t.TempDir(), probe: probe(t)}
	e.cache, err = ci.OpenActionCache(filepath.Join(t.TempDir(), "ac"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) write(rel, content string) {
	e.t.Helper()
	p := filepath.Join(e.ws, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// job parses a job file; PROBE in it is replaced by the probe's path.
func (e *env) job(yaml string) *ci.File {
	e.t.Helper()
	yaml = strings.ReplaceAll(yaml, "PROBE", e.probe)
	f, err := ci.ParseJob(filepath.Join(e.dir, "job.yaml"), []byte(yaml))
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *env) run(f *ci.File, opts ci.Options) *ci.Summary {
	e.t.Helper()
	// A guard against a hang, not a timing: a run that compiles its
	// modules afresh in three contexts under -race on a loaded 2-core
	// machine took up to 120 s.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	return e.runCtx(ctx, f, opts)
}

func (e *env) runCtx(ctx context.Context, f *ci.File, opts ci.Options) *ci.Summary {
	e.t.Helper()
	opts.Workspace = e.ws
	if opts.Cache == nil {
		opts.Cache = e.cache
	}
	e.mu.Lock()
	e.events = nil
	e.mu.Unlock()
	next := opts.Events
	opts.Events = func(ev ci.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
		if next != nil {
			next(ev)
		}
	}
	sum, err := ci.Run(ctx, e.m, f, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return sum
}

// logs returns the log lines of job/step, in order.
func (e *env) logs(job, step string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		if ev.Type == ci.EventLog && ev.Job == job && ev.Step == step {
			out = append(out, ev.Line)
		}
	}
	return out
}

func step(t *testing.T, sum *ci.Summary, job, name string) *ci.StepResult {
	t.Helper()
	for _, s := range sum.Steps {
		if s.Job == job && s.Step == name {
			return s
		}
	}
	t.Fatalf("no step %s/%s in %d results", job, name, len(sum.Steps))
	return nil
}

// caches returns "step=cache" for every step, in order.
func caches(sum *ci.Summary) string {
	var parts []string
	for _, s := range sum.Steps {
		parts = append(parts, s.Step+"="+s.Cache)
	}
	return strings.Join(parts, " ")
}

func requirePassed(t *testing.T, sum *ci.Summary) {
	t.Helper()
	for _, s := range sum.Steps {
		if s.Status != ci.Passed {
			t.Fatalf("%s/%s: %s (%s): %s", s.Job, s.Step, s.Status, s.Kind, s.Error)
		}
	}
}

const keyJob = `
jobs:
  j:
    steps:
      - name: a
        module: PROBE
        args: [cat, /src/a.txt]
        inputs: [a.txt]
      - name: b
        module: PROBE
        args: [cat, /src/b.txt]
        inputs: [b.txt]
      - name: envstep
        module: PROBE
        args: [env, FOO]
        inputs: [a.txt]
        env: {FOO: "1"}
`

// TestCacheKeys changes one component of one step's key at a time:
// exactly that step runs again, the others are hits.
func TestCacheKeys(t *testing.T) {
	e := newEnv(t, "")
	e.write("a.txt", "alpha\n")
	e.write("b.txt", "beta\n")
	f := e.job(keyJob)
	sum := e.run(f, ci.Options{})
	requirePassed(t, sum)
	if got := caches(sum); got != "a=miss b=miss envstep=miss" {
		t.Fatalf("first run: %s", got)
	}
	if got := e.logs("j", "a"); len(got) != 1 || got[0] != "alpha" {
		t.Fatalf("a's log: %q", got)
	}
	sum = e.run(f, ci.Options{})
	requirePassed(t, sum)
	if got := caches(sum); got != "a=hit b=hit envstep=hit" {
		t.Fatalf("unchanged rerun: %s", got)
	}
	if got := e.logs("j", "a"); len(got) != 1 || got[0] != "alpha" {
		t.Fatalf("a's replayed log: %q", got)
	}

	// One input file.
	e.write("b.txt", "beta 2\n")
	sum = e.run(f, ci.Options{})
	if got := caches(sum); got != "a=hit b=miss envstep=hit" {
		t.Fatalf("after changing b.txt: %s", got)
	}
	if got := e.logs("j", "b"); len(got) != 1 || got[0] != "beta 2" {
		t.Fatalf("b's log: %q", got)
	}
	// A file no step takes changes nothing.
	e.write("c.txt", "unused\n")
	if got := caches(e.run(f, ci.Options{})); got != "a=hit b=hit envstep=hit" {
		t.Fatalf("after adding an unused file: %s", got)
	}
	// One environment variable.
	f2 := e.job(strings.Replace(keyJob, `FOO: "1"`, `FOO: "2"`, 1))
	sum = e.run(f2, ci.Options{})
	if got := caches(sum); got != "a=hit b=hit envstep=miss" {
		t.Fatalf("after changing FOO: %s", got)
	}
	if got := e.logs("j", "envstep"); len(got) != 1 || got[0] != "FOO=2" {
		t.Fatalf("envstep's log: %q", got)
	}
	// One argument.
	f3 := e.job(strings.Replace(keyJob, "[cat, /src/a.txt]", "[cat, ./a.txt]", 1))
	if got := caches(e.run(f3, ci.Options{})); got != "a=miss b=hit envstep=hit" {
		t.Fatalf("after changing a's args: %s", got)
	}
	// A tool version: the same program with a different hash (a custom
	// section appended: still a valid module).
	wasm, err := os.ReadFile(e.probe)
	if err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(t.TempDir(), "probe-v2.wasm")
	section := append([]byte{0, 9, 8}, "version2x"...)
	section[1] = byte(len(section) - 2)
	if err := os.WriteFile(v2, append(wasm, section...), 0o644); err != nil {
		t.Fatal(err)
	}
	f4 := e.job(strings.Replace(keyJob, "module: PROBE\n        args: [cat, /src/b.txt]", "module: "+v2+"\n        args: [cat, /src/b.txt]", 1))
	if got := caches(e.run(f4, ci.Options{})); got != "a=hit b=miss envstep=hit" {
		t.Fatalf("after changing b's module: %s", got)
	}
	// A salt changes every key.
	f5 := e.job("salt: two\n" + keyJob)
	if got := caches(e.run(f5, ci.Options{})); got != "a=miss b=miss envstep=miss" {
		t.Fatalf("after a salt: %s", got)
	}
}

// TestNondeterministicGrantsNotCached: a step granted the clock or real
// randomness runs every time and says why.
func TestNondeterministicGrantsNotCached(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: clock, module: PROBE, args: [time], grants: {clock: true}}
      - {name: random, module: PROBE, args: [rand], grants: {random: true}}
      - {name: plain, module: PROBE, args: [rand]}
`)
	var first []string
	for i := range 2 {
		sum := e.run(f, ci.Options{})
		requirePassed(t, sum)
		for _, name := range []string{"clock", "random"} {
			s := step(t, sum, "j", name)
			if s.Cache != ci.CacheOff || !strings.Contains(s.NotCached, name) {
				t.Fatalf("run %d: %s: cache %s, not cached %q", i, name, s.Cache, s.NotCached)
			}
		}
		lines := append(e.logs("j", "clock"), e.logs("j", "random")...)
		lines = append(lines, e.logs("j", "plain")...)
		if i == 0 {
			first = lines
			if got := step(t, sum, "j", "plain").Cache; got != ci.CacheMiss {
				t.Fatalf("plain: %s", got)
			}
			continue
		}
		if got := step(t, sum, "j", "plain").Cache; got != ci.CacheHit {
			t.Fatalf("plain on the second run: %s", got)
		}
		if lines[0] == first[0] || lines[1] == first[1] {
			t.Fatalf("clock and random gave the same output twice: %q then %q", first, lines)
		}
		if lines[2] != first[2] {
			t.Fatalf("deterministic randomness differs: %q then %q", first[2], lines[2])
		}
	}
}

// TestOutputsFlow: a step's outputs are in the input tree of the steps
// after it and of the jobs that need its job, and in --artifacts.
func TestOutputsFlow(t *testing.T) {
	e := newEnv(t, "")
	e.write("in.txt", "input\n")
	f := e.job(`
jobs:
  gen:
    steps:
      - name: make
        module: PROBE
        args: [write, /out/gen/v.txt, generated, ";", write, /out/other.txt, x]
        outputs: [gen, other.txt]
      - name: same-job
        module: PROBE
        args: [cat, /src/gen/v.txt]
  use:
    needs: [gen]
    steps:
      - name: read
        module: PROBE
        args: [cat, /src/gen/v.txt, ";", echo, "", ";", cat, /src/in.txt, ";", ls, /src]
`)
	art := t.TempDir()
	sum := e.run(f, ci.Options{Artifacts: art})
	requirePassed(t, sum)
	if got := strings.Join(e.logs("gen", "same-job"), "|"); got != "generated" {
		t.Fatalf("same-job read %q", got)
	}
	if got := strings.Join(e.logs("use", "read"), "|"); got != "generated|input|gen in.txt other.txt" {
		t.Fatalf("read got %q", got)
	}
	b, err := os.ReadFile(filepath.Join(art, "gen", "make", "gen", "v.txt"))
	if err != nil || string(b) != "generated" {
		t.Fatalf("artifact: %q, %v", b, err)
	}
	// The rerun is all hits, and the dependent step still sees the files.
	sum = e.run(f, ci.Options{})
	if got := caches(sum); got != "make=hit same-job=hit read=hit" {
		t.Fatalf("rerun: %s", got)
	}
}

// TestMissingOutput: a step that exits 0 without a declared output fails.
func TestMissingOutput(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: s, module: PROBE, args: [echo, hi], outputs: [nothing.txt]}
`)
	sum := e.run(f, ci.Options{})
	s := step(t, sum, "j", "s")
	if s.Status != ci.Failed || s.Kind != "outputs" || !strings.Contains(s.Error, "nothing.txt") {
		t.Fatalf("got %s %s: %s", s.Status, s.Kind, s.Error)
	}
}

// TestFailingStep: a failing step fails its job with its output shown; the
// steps after it and the jobs needing it are skipped, never run.
func TestFailingStep(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  a:
    steps:
      - {name: bad, module: PROBE, args: [stderr, it broke here, ";", exit, "3"]}
      - {name: after, module: PROBE, args: [echo, should not run]}
  b:
    needs: [a]
    steps:
      - {name: dep, module: PROBE, args: [echo, nor this]}
  c:
    steps:
      - {name: independent, module: PROBE, args: [echo, ok]}
`)
	sum := e.run(f, ci.Options{})
	bad := step(t, sum, "a", "bad")
	if bad.Status != ci.Failed || bad.ExitCode != 3 || bad.Kind != "exit" {
		t.Fatalf("bad: %s %s exit %d: %s; logs %q", bad.Status, bad.Kind, bad.ExitCode, bad.Error, e.logs("a", "bad"))
	}
	if got := e.logs("a", "bad"); len(got) != 1 || got[0] != "it broke here" {
		t.Fatalf("bad's output: %q", got)
	}
	for _, s := range []*ci.StepResult{step(t, sum, "a", "after"), step(t, sum, "b", "dep")} {
		if s.Status != ci.Skipped {
			t.Fatalf("%s: %s", s.Step, s.Status)
		}
	}
	if s := step(t, sum, "c", "independent"); s.Status != ci.Passed {
		t.Fatalf("independent: %s", s.Status)
	}
	if sum.OK() || sum.Failed != 1 || sum.Skipped != 2 || sum.Passed != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	// A failure is a result too: cached, and the same again.
	sum = e.run(f, ci.Options{})
	if s := step(t, sum, "a", "bad"); s.Cache != ci.CacheHit || s.Status != ci.Failed || s.ExitCode != 3 {
		t.Fatalf("rerun of bad: %s %s %d", s.Cache, s.Status, s.ExitCode)
	}
}

// TestFailIfOutput: gofmt -l style steps fail when they print.
func TestFailIfOutput(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: quiet, module: PROBE, args: [echo, ""], fail-if-output: true}
      - {name: loud, module: PROBE, args: [echo, file.go], fail-if-output: true}
`)
	sum := e.run(f, ci.Options{})
	if s := step(t, sum, "j", "quiet"); s.Status != ci.Passed {
		t.Fatalf("quiet: %s: %s", s.Status, s.Error)
	}
	if s := step(t, sum, "j", "loud"); s.Status != ci.Failed || s.Kind != "output" {
		t.Fatalf("loud: %s %s", s.Status, s.Kind)
	}
}

// TestMatrixAcrossContexts: a matrix of six runs with three distinct keys
// on three local contexts runs each key once, and every blob crosses each
// edge of the tree at most once.
func TestMatrixAcrossContexts(t *testing.T) {
	e := newEnv(t, "-")                                      // memory-only stores: blobs must travel
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	e.write("data.bin", string(data))
	for i := range 20 {
		e.write(fmt.Sprintf("src/f%02d.txt", i), fmt.Sprintf("file %d\n", i))
	}
	fleet := spindle.NewFleet(e.m)
	var ctxs []*spindle.Context
	for _, name := range []string{"local:m1", "local:m2", "local:m3"} {
		tg, err := target.Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := fleet.Get(context.Background(), tg)
		if err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, c)
	}
	f := e.job(`
jobs:
  m:
    targets: [local:m1, local:m2, local:m3]
    matrix:
      group: [a, b, c]
      copy: ["1", "2"]
    steps:
      - name: s
        module: PROBE
        args: [ls, /src/src]
        env: {GROUP: "${{ matrix.group }}"}
`)
	sum := e.run(f, ci.Options{Fleet: fleet, Parallel: 6})
	requirePassed(t, sum)
	if len(sum.Steps) != 6 {
		t.Fatalf("%d step results, want 6", len(sum.Steps))
	}
	var runs int64
	for _, c := range ctxs {
		var st spindle.StatsResult
		if err := c.Call(context.Background(), "stats", nil, &st); err != nil {
			t.Fatal(err)
		}
		runs += st.Instantiations
	}
	if runs != 3 {
		t.Fatalf("%d instances ran in the tree, want 3 (one per distinct key); caches: %s", runs, caches(sum))
	}
	// Each edge carried the probe and the input tree at most once.
	probeBytes, _ := os.Stat(e.probe)
	for _, c := range ctxs {
		blobs, n := e.m.Blobs().ServedTo(c.ID())
		if n > probeBytes.Size()+int64(len(data))+64<<10 {
			t.Fatalf("edge to %s carried %d bytes in %d blobs: more than the probe (%d) and the inputs once", c, n, blobs, probeBytes.Size())
		}
	}
}

// TestRetryOnLostContext: a context killed in the middle of a step is an
// infrastructure failure: the step runs again on another target of the
// job and passes. A step that fails by itself is never retried.
func TestRetryOnLostContext(t *testing.T) {
	e := newEnv(t, "")
	fleet := spindle.NewFleet(e.m)
	tg, _ := target.Parse("local:k1")
	k1, err := fleet.Get(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	f := e.job(`
jobs:
  j:
    targets: [local:k1, local:k2]
    steps:
      - {name: slow, module: PROBE, args: [sleep, "3000", ";", echo, done], grants: {clock: true}}
`)
	var once sync.Once
	sum := e.run(f, ci.Options{Fleet: fleet, Events: func(ev ci.Event) {
		if ev.Type == ci.EventStepStarted && ev.Target == "local:k1" {
			once.Do(func() {
				go func() {
					time.Sleep(300 * time.Millisecond)
					syscall.Kill(k1.PID(), syscall.SIGKILL)
				}()
			})
		}
	}})
	s := step(t, sum, "j", "slow")
	if s.Status != ci.Passed || s.Attempts != 2 || s.Target != "local:k2" || s.Kind != "" || s.Error != "" {
		t.Fatalf("slow: %s %q on %s after %d attempts: %q", s.Status, s.Kind, s.Target, s.Attempts, s.Error)
	}
	if got := e.logs("j", "slow"); len(got) != 1 || got[0] != "done" {
		t.Fatalf("log: %q", got)
	}

	f = e.job(`
jobs:
  j:
    targets: [local:k2, local:k3]
    steps:
      - {name: fails, module: PROBE, args: [exit, "4"]}
`)
	sum = e.run(f, ci.Options{Fleet: fleet})
	if s := step(t, sum, "j", "fails"); s.Status != ci.Failed || s.Attempts != 1 {
		t.Fatalf("fails: %s after %d attempts", s.Status, s.Attempts)
	}
}

// TestUnreachableTarget: a target that cannot start is an error status
// (exit 3 in the CLI), and the next target is tried.
func TestUnreachableTarget(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    targets: ["ssh://nobody@127.0.0.1:1?timeout=5s"]
    steps:
      - {name: s, module: PROBE, args: [echo, hi]}
  k:
    targets: ["ssh://nobody@127.0.0.1:1?timeout=5s", local]
    steps:
      - {name: s, module: PROBE, args: [echo, hello]} # not j/s's action: that one would be merged with it
`)
	sum := e.run(f, ci.Options{Retries: 1})
	if s := step(t, sum, "j", "s"); s.Status != ci.Error || s.Kind != "connect" || s.Class != "unreachable" ||
		s.Error != "hop 1 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused" {
		t.Fatalf("j/s: %s %s %s: %s", s.Status, s.Kind, s.Class, s.Error)
	}
	// The retry that passed keeps nothing of the attempt that could not connect.
	if s := step(t, sum, "k", "s"); s.Status != ci.Passed || s.Target != "local" || s.Kind != "" || s.Class != "" || s.Error != "" {
		t.Fatalf("k/s: %s %q %q on %s: %q", s.Status, s.Kind, s.Class, s.Target, s.Error)
	}
}

// TestSecrets: a secret reaches only the steps that name it, as a file;
// such a step is never cached; the value never appears in any event,
// result, stored output or error, in any of its forms.
func TestSecrets(t *testing.T) {
	e := newEnv(t, "")
	secret := "hunter2-the-secret-value"
	t.Setenv("CI_TEST_TOKEN", secret)
	e.write("enc.txt", base64.StdEncoding.EncodeToString([]byte(secret))+"\n")
	f := e.job(`
secrets:
  TOKEN: {env: CI_TEST_TOKEN}
jobs:
  j:
    steps:
      - name: uses
        module: PROBE
        secrets: [TOKEN]
        args: [cat, /run/secrets/TOKEN, ";", echo, "", ";", cat, /src/enc.txt, ";", stderr, "x", ";", cat, /run/secrets/TOKEN, ";", exit, "1"]
`)
	secrets, err := ci.ResolveSecrets(f, os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	sum := e.run(f, ci.Options{Secrets: secrets})
	s := step(t, sum, "j", "uses")
	if s.Cache != ci.CacheOff || !strings.Contains(s.NotCached, "secret") {
		t.Fatalf("uses: cache %s (%s)", s.Cache, s.NotCached)
	}
	lines := e.logs("j", "uses")
	if len(lines) < 2 || lines[0] != "***" {
		t.Fatalf("uses printed %q: want the secret masked", lines)
	}
	check := func(what, s string) {
		t.Helper()
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(s, form) {
				t.Fatalf("%s holds the secret (%q): %q", what, form, s)
			}
		}
	}
	e.mu.Lock()
	for _, ev := range e.events {
		check("event", fmt.Sprintf("%+v %+v", ev, ev.Result))
	}
	e.mu.Unlock()
	for _, r := range sum.Steps {
		check("result", fmt.Sprintf("%+v", *r))
		for _, d := range []string{r.Stdout, r.Stderr} {
			if b, ok := e.m.Store().Get(d); ok {
				check("stored output", string(b))
			}
		}
	}
	// A step that does not name the secret does not see it.
	f2 := e.job(`
secrets:
  TOKEN: {env: CI_TEST_TOKEN}
jobs:
  k:
    steps:
      - {name: other, module: PROBE, args: [stat, /run/secrets/TOKEN]}
`)
	sum = e.run(f2, ci.Options{Secrets: secrets})
	requirePassed(t, sum)
	if got := e.logs("k", "other"); len(got) != 1 || !strings.Contains(got[0], "No such file") {
		t.Fatalf("other saw %q", got)
	}
}

// TestAbusiveSteps: loops, memory and disk bombs, output floods and
// symlink escapes are contained, reported, and the context keeps serving.
func TestAbusiveSteps(t *testing.T) {
	e := newEnv(t, "")
	if err := os.Symlink("/etc/passwd", filepath.Join(e.ws, "evil")); err != nil {
		t.Fatal(err)
	}
	e.write("ok.txt", "fine\n")
	f := e.job(`
jobs:
  loop:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [loop], timeout: 1s}]
  memory:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [alloc, "500"], memory: 64MiB}]
  flood:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [flood, "100000000"], output-bytes: 1MiB}]
  disk:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [disk, /tmp/big, "100000000"], disk: 4MiB}]
  escape-in:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [cat, /src/evil]}]
  escape-out:
    targets: [local:abuse]
    steps: [{name: s, module: PROBE, args: [symlink, ../../../../../../etc/passwd, /out/link], outputs: [link]}]
  after:
    targets: [local:abuse]
    needs: [loop, memory, flood, disk, escape-in, escape-out]
    steps: [{name: s, module: PROBE, args: [cat, /src/ok.txt]}]
`)
	// "after" needs the failing jobs, so it would be skipped: run it
	// separately once the others are done.
	after := f.Jobs[len(f.Jobs)-1]
	f.Jobs = f.Jobs[:len(f.Jobs)-1]
	art := t.TempDir()
	sum := e.run(f, ci.Options{Parallel: 6, Artifacts: art})
	want := map[string]string{"loop": "timeout", "memory": "memory", "flood": "output_limit", "disk": "exit", "escape-in": "exit"}
	for job, kind := range want {
		s := step(t, sum, job, "s")
		if s.Status != ci.Failed || s.Kind != kind {
			t.Errorf("%s: %s %s: %s", job, s.Status, s.Kind, s.Error)
		}
	}
	if got := strings.Join(e.logs("escape-in", "s"), "|"); strings.Contains(got, "root:") {
		t.Fatalf("the symlink reached /etc/passwd: %q", got)
	}
	if got := strings.Join(e.logs("disk", "s"), "|"); !strings.Contains(got, "No space left on device") {
		t.Errorf("disk bomb: %q", got)
	}
	if s := step(t, sum, "escape-out", "s"); s.Status != ci.Passed {
		t.Fatalf("escape-out: %s %s", s.Status, s.Error)
	}
	link := filepath.Join(art, "escape-out", "s", "link")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the output symlink was not kept as a symlink: %v %v", fi, err)
	}
	f.Jobs = []*ci.Job{after}
	after.Needs = nil
	sum = e.run(f, ci.Options{})
	requirePassed(t, sum)
	if got := e.logs("after", "s"); len(got) != 1 || got[0] != "fine" {
		t.Fatalf("after: %q", got)
	}
}

// TestCancel: stopping the run (Ctrl-C in the CLI) ends the running steps
// at once and reports them cancelled; nothing is left running (checked by
// VerifyNone when the master closes).
func TestCancel(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: forever, module: PROBE, args: [loop], timeout: 5m}
      - {name: next, module: PROBE, args: [echo, never]}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	sum := e.runCtx(ctx, f, ci.Options{Events: func(ev ci.Event) {
		if ev.Type == ci.EventStepStarted {
			go func() { time.Sleep(200 * time.Millisecond); cancel() }()
		}
	}})
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Run took %v after the cancel", d)
	}
	if s := step(t, sum, "j", "forever"); s.Status != ci.Cancelled {
		t.Fatalf("forever: %s %s", s.Status, s.Error)
	}
	if s := step(t, sum, "j", "next"); s.Status == ci.Passed {
		t.Fatalf("next ran")
	}
	if _, ok := e.cache.Get(step(t, sum, "j", "forever").Key); ok {
		t.Fatal("a cancelled step was cached")
	}
}

// TestStdinStreams: a step's stdin is a file of its input tree.
func TestStdinStreams(t *testing.T) {
	e := newEnv(t, "")
	e.write("in/data.txt", "line one\nline two\n")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: s, module: PROBE, args: [stdin], stdin: in/data.txt}
`)
	sum := e.run(f, ci.Options{})
	requirePassed(t, sum)
	if got := strings.Join(e.logs("j", "s"), "|"); got != "line one|line two" {
		t.Fatalf("got %q", got)
	}
}

// TestWorkspaceView: what a step sees: its inputs read-only at /src (its
// working directory), writable /out, /tmp and /home, /dev/null, and ENOENT
// elsewhere.
func TestWorkspaceView(t *testing.T) {
	e := newEnv(t, "")
	e.write("a.go", "package a\n")
	e.write("skip/b.txt", "no\n")
	f := e.job(`
jobs:
  j:
    steps:
      - name: s
        module: PROBE
        inputs: ["**/*.go"]
        args: [ls, ".", ";", env, PWD, ";", env, HOME, ";", env, TMPDIR, ";", write, /tmp/t, x, ";", write, /home/h, x,
               ";", write, /dev/null, gone, ";", cat, /dev/null, ";", stat, /.editorconfig, ";", stat, /etc/passwd, ";", stat, /src/skip]
      - {name: ro, module: PROBE, args: [write, /src/new.txt, x]}
`)
	sum := e.run(f, ci.Options{})
	if s := step(t, sum, "j", "s"); s.Status != ci.Passed {
		t.Fatalf("s: %s %s", s.Status, s.Error)
	}
	got := e.logs("j", "s")
	want := []string{
		"a.go", "PWD=/src", "HOME=/home", "TMPDIR=/tmp",
		"/.editorconfig: stat /.editorconfig: No such file or directory",
		"/etc/passwd: stat /etc/passwd: No such file or directory",
		"/src/skip: stat /src/skip: No such file or directory",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the step saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := step(t, sum, "j", "ro"); s.Status != ci.Failed {
		t.Fatalf("writing /src: %s", s.Status)
	}
}

// TestNondeterminismFlagged: --no-cache runs a cached step again and flags
// a result that differs from the cached one for the same key (here the
// cache is doctored: a deterministic step cannot differ by itself).
func TestNondeterminismFlagged(t *testing.T) {
	e := newEnv(t, "")
	f := e.job(`
jobs:
  j:
    steps:
      - {name: s, module: PROBE, args: [echo, same]}
`)
	sum := e.run(f, ci.Options{})
	requirePassed(t, sum)
	key := step(t, sum, "j", "s").Key
	sum = e.run(f, ci.Options{NoCache: true})
	if s := step(t, sum, "j", "s"); s.Nondeterministic || s.Cache != ci.CacheOff {
		t.Fatalf("an identical rerun: nondeterministic %v, cache %s", s.Nondeterministic, s.Cache)
	}
	old, ok := e.cache.Get(key)
	if !ok {
		t.Fatal("no cache entry")
	}
	forged := *old
	forged.Stdout, _ = e.m.Store().Put([]byte("different\n"))
	if err := e.cache.Put(&forged); err != nil {
		t.Fatal(err)
	}
	sum = e.run(f, ci.Options{NoCache: true})
	s := step(t, sum, "j", "s")
	if !s.Nondeterministic || sum.Nondeterministic != 1 || !strings.Contains(s.Error, "nondeterministic") {
		t.Fatalf("not flagged: %+v", s)
	}
}

// TestTestReport: a step's go test -json output becomes its report; a
// failing test fails the step even when the command exits 0.
func TestTestReport(t *testing.T) {
	e := newEnv(t, "")
	stream := `{"Action":"start","Package":"example.com/p"}
{"Action":"run","Package":"example.com/p","Test":"TestA"}
{"Action":"output","Package":"example.com/p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"example.com/p","Test":"TestA","Elapsed":0.01}
{"Action":"run","Package":"example.com/p","Test":"TestB"}
{"Action":"output","Package":"example.com/p","Test":"TestB","Output":"    b_test.go:9: wrong answer\n"}
{"Action":"fail","Package":"example.com/p","Test":"TestB","Elapsed":0.02}
{"Action":"fail","Package":"example.com/p","Elapsed":0.05}
`
	e.write("go-test.json", stream)
	f := e.job(`
jobs:
  t:
    steps:
      - {name: report, module: PROBE, args: [cat, /src/go-test.json], report: go-test-json}
`)
	sum := e.run(f, ci.Options{})
	s := step(t, sum, "t", "report")
	if s.Status != ci.Failed || s.Kind != "tests" || s.Report == nil {
		t.Fatalf("report step: %s %s report %v", s.Status, s.Kind, s.Report)
	}
	p := s.Report.Packages[0]
	if p.Pass != 1 || p.Fail != 1 || !strings.Contains(s.Error, "1 passed, 1 failed") {
		t.Fatalf("package %s: %d passed, %d failed; error %q", p.Name, p.Pass, p.Fail, s.Error)
	}
	var junit bytes.Buffer
	if err := ci.WriteJUnit(&junit, sum); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`t/report: example.com/p`, `TestB`, `wrong answer`} {
		if !strings.Contains(junit.String(), want) {
			t.Fatalf("JUnit lacks %q:\n%s", want, junit.String())
		}
	}
}
