// Package gotest runs a Go test binary built for wasip1 as a sandboxed,
// cached action on a context of the tree: the engine of `spindle exec`,
// the program `GOOS=wasip1 GOARCH=wasm go test -exec` runs.
//
// # The action
//
// go test starts its -exec program as `PROG /path/to/pkg.test -test.flags...`
// in the package's directory. Run stores the test binary (a wasm module,
// by sha256) and the package directory (a tree, package modules) in the
// master's content-addressed store, and runs the binary as a command on
// one of Options.Targets with the file view of a spindle.Workspace:
//
//	/src    the package directory, read-only; the working directory
//	        (PWD=/src, which is what a wasip1 Go program takes as its
//	        cwd), so testdata/x and other relative paths work
//	/tmp    private and writable (TMPDIR: t.TempDir, os.CreateTemp)
//	/home   private and writable (HOME)
//	/dev/null
//
// and nothing else: no network, no subprocess. The context fetches the
// binary and the files it lacks from its parent, each crossing each edge
// of the tree once; the compiled binary is cached on disk per machine. The
// test's stdout and stderr are streamed as they are written, and Run
// returns its exit code.
//
// The package directory is taken whole (every file below it, .git
// excepted) unless Options.Inputs narrows it with the glob patterns of
// package ci. A test that reads files above its directory ("../x") does
// not find them, unless Options.Root names a directory above it (spindle
// exec --module: the module's, ModuleRoot): that is then seen at /src,
// the package directory (/src/REL) is the working directory, Inputs are
// relative to Root, and REL is in the action key.
//
// # Grants and caching
//
// A Go test binary needs a clock: the testing package's -test.timeout
// alarm, t.Parallel's scheduling, time.Sleep and every test that measures
// time read it, and under a fake clock that advances on each reading the
// alarm can fire in the middle of a long test. So a test gets the real
// clock and real randomness, as it would natively. By the rule of package
// ci such an action is not deterministic and is not cached: every run
// runs.
//
// Options.CacheTests caches it anyway, as go test and Bazel cache tests:
// the test is taken to be hermetic. Its action (package ci's Action: the
// binary's sha256, the flags in order, the environment, the digest of the
// package tree, the limits, the grants, salted with "spindle exec/1") is
// then looked up in the action cache, and a passing run (exit 0, output
// not truncated) is recorded there. A hit replays the recorded stdout,
// then stderr, and returns 0 without running anything; Result.Cache says
// so. A failing run is never recorded. A -test.count flag (go test
// -count=1, its idiom for "run again") bypasses the cache.
//
// # Flags that name files
//
// go test passes some flags whose value is a path on this machine
// (-test.coverprofile, -test.gocoverdir, -test.cpuprofile, -test.trace,
// -test.outputdir, ...). The sandbox cannot write there: Run refuses them
// with a *UsageError naming the flag, before anything runs.
//
// # What wasip1 lacks
//
// A wasip1 program has no subprocesses, pipes, file ownership or
// os.Executable, and its network is in-process (its own listeners and
// dialers reach each other, nothing outside). A test that needs one fails
// in any wasip1 runtime, in Go's own words ("fork/exec /bin/true: Not
// implemented on wasip1"). Run reads the test's output as it streams for
// those words (report.Lack) and, when the test failed, lists in
// Result.Lacks each kind found with the first line that showed it;
// spindle exec prints them after the test's output with how to skip such
// tests. Go's own testenv.MustHaveExec and the like already skip, with
// their reason, which package report counts.
//
// # Fan-out
//
// go test runs several test binaries at once (-p), each through its own
// -exec process. With several targets, Options.SlotDir spreads those
// processes: each takes the first target, starting from one chosen by the
// package directory's hash, whose lock file in SlotDir no other process
// holds (flock), so concurrent packages run on different targets while
// there are free ones. A target that cannot be started is skipped for the
// next one; a context lost in the middle of a test fails the run (its
// output was already streamed).
//
// # Bounds
//
// The test's memory is Options.MemoryBytes (default 1 GiB), its stdout and
// stderr together Options.OutputBytes (default 64 MiB), what it writes
// to /tmp and /home Options.DiskBytes (default 1 GiB), its time
// Options.Timeout (default: its -test.timeout plus one minute, so that the
// testing package's own timeout, with its goroutine dump, comes first; one
// hour without one).
//
// # Concurrency
//
// Run may be called from several goroutines, on the same Master too. An
// Options value is read, not changed.
//
// # Lifecycle
//
// Run starts the target's context through Options.Fleet (one of the
// Master's: the Master's Close ends it) and returns when the test has
// ended and its output was written, or when ctx ends.
package gotest
