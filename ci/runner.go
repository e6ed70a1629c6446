package ci

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/mask"
	"github.com/spindle-hq/spindle/ci/report"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/target"
)

// Options configure Run. The zero value runs on local contexts with an
// in-memory action cache and no toolbox.
type Options struct {
	// Workspace is the directory the steps' inputs come from (default
	// the current directory).
	Workspace string
	// Toolbox resolves the steps' tool names; nil: a step naming a tool
	// fails.
	Toolbox *Toolbox
	// Cache is the action cache; nil keeps one in memory for this run.
	Cache *ActionCache
	// Parallel bounds the steps running at once across the tree (cache
	// hits are not counted); default 4.
	Parallel int
	// NoCache runs every step even when the cache has it, and compares
	// the result with the cached one: a difference is reported as
	// nondeterminism (StepResult.Nondeterministic).
	NoCache bool
	// Retries is how many times a step whose context failed (lost,
	// unreachable, could not start) is tried again on another target of
	// its job; default 2. A step that failed by itself is never retried.
	Retries int
	// Secrets are the values of the job file's secrets (ResolveSecrets).
	Secrets map[string][]byte
	// Fleet starts and keeps the contexts of the jobs' targets; nil: a
	// fleet of this run's own. A caller that passes one may use its
	// contexts too (they stay up after Run).
	Fleet *spindle.Fleet
	// Sandbox starts the contexts that run steps (the last hop of each
	// target) with OS layers under wasm (spindle.ChildOptions.Sandbox);
	// only for a fleet of Run's own. Each context's layers are reported in
	// an EventTarget.
	Sandbox bool
	// Inventory resolves target names that are hosts or groups.
	Inventory *target.Inventory
	// Events receives the run's events as they happen, one call at a
	// time (Run serializes them); it must not block for long.
	Events func(Event)
	// Artifacts, if set, is a directory where every step's outputs are
	// written when the run ends, as Artifacts/JOB/STEP/PATH.
	Artifacts string
	// MaxLogLine bounds one log line of an event (longer ones are cut,
	// marked "…"); default 4096.
	MaxLogLine int
}

// Status is how a step or a job ended.
type Status string

// The statuses.
const (
	Passed    Status = "passed"
	Failed    Status = "failed"    // the step ran and failed: exit code, trap, limit, fail-if-output
	Error     Status = "error"     // infrastructure: the step could not be run (context lost, bad module)
	Skipped   Status = "skipped"   // not run: an earlier step or a needed job did not pass
	Cancelled Status = "cancelled" // the run was stopped
)

// The cache statuses of a step.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
	CacheOff  = "off" // not cacheable (StepResult.NotCached says why), or NoCache
)

// StepResult is the outcome of one step of one job run.
type StepResult struct {
	Job    string `json:"job"`
	Step   string `json:"step"`
	Target string `json:"target,omitempty"` // where it ran (for a hit: where it first ran)
	Status Status `json:"status"`
	Cache  string `json:"cache"`
	// NotCached says why a step was not looked up in the cache.
	NotCached string        `json:"not_cached,omitempty"`
	Key       string        `json:"key,omitempty"`
	ExitCode  int           `json:"exit_code"`
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
	// Kind is the failure's kind: a task kind of docs/abi.md ("exit",
	// "timeout", "memory", ...), "output" for fail-if-output, or for
	// Error "connect", "lost", "module", "workspace".
	Kind string `json:"kind,omitempty"`
	// Class says how the target's contexts failed to start, for Kind
	// "connect": a spindle.StartClass ("unreachable", "auth", ...). Hint
	// is the start's obvious fix, when there is one.
	Class      string         `json:"class,omitempty"`
	Hint       string         `json:"hint,omitempty"`
	OutputTree string         `json:"output_tree,omitempty"`
	Stdout     string         `json:"stdout,omitempty"` // digests in the master's store
	Stderr     string         `json:"stderr,omitempty"`
	Report     *report.Report `json:"report,omitempty"`
	// Nondeterministic is set when NoCache ran a step whose result differs
	// from the cached one for the same key.
	Nondeterministic bool `json:"nondeterministic,omitempty"`
	Attempts         int  `json:"attempts"`
}

// Summary is the outcome of a whole run.
type Summary struct {
	Passed, Failed, Errors, Skipped, Cancelled int
	Hits, Misses, Uncached                     int
	Nondeterministic                           int
	Steps                                      []*StepResult // in job-run, then step order
	Duration                                   time.Duration
}

// OK reports whether every step passed.
func (s *Summary) OK() bool { return s.Failed+s.Errors+s.Skipped+s.Cancelled == 0 }

// runner is one Run.
type runner struct {
	m     *spindle.Master
	st    *modules.Store
	f     *File
	opts  Options
	fleet *spindle.Fleet
	cache *ActionCache
	mask  *mask.Masker
	sem   chan struct{}
	start time.Time

	evMu sync.Mutex // serializes opts.Events

	mu      sync.Mutex
	inputs  map[string]*inputTree    // guarded by mu: filter key -> tree
	modules map[string]*moduleEntry  // guarded by mu: step source -> module hash
	flights map[string]*actionFlight // guarded by mu: key -> the run of it in progress
	targets map[string]target.Target // guarded by mu: target text -> parsed
	badTgts map[string]error         // guarded by mu
	rr      map[string]int           // guarded by mu: job -> next target index
	ready   map[string]bool          // guarded by mu: targets reported in an EventTarget
}

type inputTree struct {
	once   sync.Once
	digest string
	err    error
}

type moduleEntry struct {
	once sync.Once
	hash string
	err  error
}

type actionFlight struct {
	done chan struct{}
	res  *StepResult
}

// runState is one job run's progress.
type runState struct {
	run     *JobRun
	done    chan struct{}
	ok      bool
	outputs []string // output trees of its steps, in order
	results []*StepResult
}

// Run runs the job file's jobs on m's tree and returns when all have ended
// or ctx is done (then the steps in progress are cancelled and reported as
// such). The error is for a run that could not start (a bad file, bad
// secrets: the Summary is nil) or artifacts that could not be written
// (with the Summary); step failures are in the Summary.
func Run(ctx context.Context, m *spindle.Master, f *File, opts Options) (*Summary, error) {
	runs, err := f.Expand()
	if err != nil {
		return nil, err
	}
	if opts.Workspace == "" {
		opts.Workspace = "."
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 2
	}
	if opts.MaxLogLine <= 0 {
		opts.MaxLogLine = 4096
	}
	if opts.Cache == nil {
		opts.Cache, _ = OpenActionCache("")
	}
	var secrets [][]byte
	for _, name := range slices.Sorted(maps.Keys(opts.Secrets)) {
		secrets = append(secrets, opts.Secrets[name])
	}
	mk, err := mask.New(secrets)
	if err != nil {
		return nil, fmt.Errorf("ci: secrets: %w", err)
	}
	if opts.Fleet == nil {
		opts.Fleet = spindle.NewFleet(m)
		opts.Fleet.Sandbox = opts.Sandbox
	}
	r := &runner{
		m: m, st: m.Store(), f: f, opts: opts, fleet: opts.Fleet, cache: opts.Cache, mask: mk,
		sem: make(chan struct{}, opts.Parallel), start: time.Now(),
		inputs: map[string]*inputTree{}, modules: map[string]*moduleEntry{}, flights: map[string]*actionFlight{},
		targets: map[string]target.Target{}, badTgts: map[string]error{},
		rr: map[string]int{}, ready: map[string]bool{},
	}
	states := make(map[*JobRun]*runState, len(runs))
	for _, jr := range runs {
		states[jr] = &runState{run: jr, done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, jr := range runs {
		s := states[jr]
		wg.Go(func() {
			defer close(s.done)
			r.runJob(ctx, s, states)
		})
	}
	wg.Wait()
	sum := &Summary{Duration: time.Since(r.start)}
	for _, jr := range runs {
		sum.Steps = append(sum.Steps, states[jr].results...)
	}
	for _, sr := range sum.Steps {
		switch sr.Status {
		case Passed:
			sum.Passed++
		case Failed:
			sum.Failed++
		case Error:
			sum.Errors++
		case Skipped:
			sum.Skipped++
		case Cancelled:
			sum.Cancelled++
		}
		switch sr.Cache {
		case CacheHit:
			sum.Hits++
		case CacheMiss:
			sum.Misses++
		case CacheOff:
			if sr.Status != Skipped {
				sum.Uncached++
			}
		}
		if sr.Nondeterministic {
			sum.Nondeterministic++
		}
	}
	var err2 error
	if opts.Artifacts != "" {
		err2 = r.writeArtifacts(ctx, sum)
	}
	r.emit(Event{Type: EventSummary, Summary: sum})
	return sum, err2
}
