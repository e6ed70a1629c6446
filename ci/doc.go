// Package ci runs CI jobs as sandboxed wasm actions, content-addressed and
// cached across the context tree; it is the Go API under `spindle ci`.
//
// A job file names jobs; a job is a list of steps; each step is an action:
// a wasip1 command module run with arguments, an environment and a built
// view of the workspace, with no network, bounded time, memory, output and
// disk, and no clock or randomness unless granted. Because a step can see
// nothing but what its action key covers, a result is reused with
// certainty: a step whose key is in the action cache is not run again.
//
// # Job files
//
// ParseJobFile (or ParseJob) reads a YAML job file:
//
//	salt: "1"                  # optional, part of every action key
//	secrets:                   # named on the master
//	  TOKEN: {env: CI_TOKEN}   # or {file: path/to/file}, relative to the job file
//	jobs:
//	  lint:                    # job name: letters, digits, _ . - (not first: . -)
//	    targets: [local]       # spindle run -t syntax, or inventory names; default [local]
//	    timeout: 10m           # the whole job; default 10m
//	    needs: [build]         # jobs this one waits for and sees the outputs of
//	    matrix:                # name -> list of scalars; the job runs for each combination
//	      goarch: [amd64, arm64]
//	    steps:
//	      - name: gofmt        # unique in the job; default: the tool, module or hash
//	        tool: gofmt        # exactly one of tool (toolbox), module (.wasm path), hash (sha256)
//	        args: [-l, .]
//	        env: {GOARCH: "${{ matrix.goarch }}"}
//	        inputs: ["**/*.go", "!**/testdata/**"]   # default ["**"]
//	        outputs: [fmt.txt] # paths under /out the step produces
//	        stdin: in.txt      # a path of the input tree, streamed as stdin
//	        timeout: 1m        # default 5m
//	        memory: 256MiB     # linear memory, whole 64KiB pages, at most 4GiB; default 256MiB
//	        output-bytes: 16MiB  # stdout and stderr together; default 16MiB
//	        disk: 1GiB         # what it may write to /out, /tmp, /home; default 1GiB
//	        grants: {clock: true, random: true}     # never cached
//	        secrets: [TOKEN]   # at /run/secrets/TOKEN; never cached
//	        fail-if-output: true  # fail when stdout is not empty
//	        report: go-test-json  # or tap
//
// The reader is strict. An unknown key (with a guess when it is close to a
// known one), a value of the wrong type, a duplicate key, a bad duration
// (a Go duration above zero, at most 24h) or size (256MiB, 1GiB, 512KiB, or
// a number of bytes), an empty list of steps, a step with none or two of
// tool, module and hash, a malformed hash, an output that is not a clean
// relative path, a repeated step name, an invalid job name, needs naming
// an unknown job or making a cycle (the error spells it: a -> b -> a), a
// matrix value that is not a scalar, ${{ matrix.NAME }} of a name the
// job's matrix lacks, a secret not declared under secrets: — each is a
// JobFileError "FILE:LINE:COL: what was wrong (expected what)". All the
// problems of a file are returned at once, joined, in file order.
//
// Anchors, aliases and merge keys ("<<: *defaults") may share settings;
// top-level keys starting with "x-" are not read, a place to define them.
// ${{ matrix.NAME }} is substituted in targets, args, env values, stdin and
// inputs, nowhere else; every value it yields is checked when the file is
// parsed.
//
// # Jobs and runs
//
// File.Expand turns jobs into JobRuns: one per combination of the matrix
// values (none: one run), named "test (goarch=amd64, goos=linux)", with the
// values substituted, in a topological order of needs. A run needs every
// run of each job its job needs.
//
// # Inputs
//
// A step's inputs are globs over the workspace (see Match and Filter):
// path.Match's syntax, plus "**" for any number of directories; "!" before
// a pattern excludes. A pattern without "**" that names a directory takes
// in everything under it; an exclusion that names a directory takes out
// everything under it. .git is never included.
//
// # The workspace
//
// A step runs with this file system and nothing else (other paths answer
// ENOENT):
//
//	/src            the step's input tree, read-only; the working directory (PWD=/src)
//	/out            the output directory, empty at the start; outputs are collected from it
//	/tmp            private and writable (TMPDIR=/tmp)
//	/home           private and writable (HOME=/home)
//	/dev/null
//	/run/secrets    one file per secret the step names, only when it names some
//
// The input tree of step N is the job's inputs (the workspace files its
// patterns take in), the outputs of the job's steps before it, and the
// outputs of the jobs its job needs. Stdin, if set, is streamed from a
// file of that tree.
//
// # Caching
//
// A step's Action holds everything that can change what it does: the
// module's sha256, the arguments in order, the environment, the digest of
// its input tree, its output paths, stdin, timeout and limits, grants,
// the names of its secrets, fail-if-output, the Platform and the file's
// salt. Action.Key is the sha256 of a canonical, versioned encoding of
// them (the environment sorted, outputs sorted and deduplicated). The
// action cache maps a key to the step's exit code, the digests of its
// stdout and stderr, and the digest of its output tree; a hit skips the
// run. Action.Cacheable refuses a step granted the real clock or real
// randomness, or reading secrets: such a step always runs, and the report
// says why it was not cached. Change the salt to rerun everything.
//
// # Running
//
// Run runs a File's runs on a spindle.Master's tree. Each run starts when
// the runs it needs have ended, on one of its job's targets (round robin
// over a job's runs); at most Options.Parallel steps execute at once
// across the tree. For each step the master stores the input tree in its
// content-addressed store (package modules; unchanged files are stat'ed,
// not read, thanks to the store's hash cache), computes the key, and:
//
//   - on a hit (ActionCache, with every blob of the entry still in the
//     store), replays the cached stdout and stderr as log events and
//     reports the cached result: nothing runs anywhere;
//   - when the same key is already running for another run, waits for
//     that one and reports its result (in-flight merging);
//   - otherwise runs the action on the run's context
//     (spindle.Task.Workspace): the context fetches the module and the
//     tree's blobs it lacks from its parent, each blob crossing each edge
//     of the tree once, runs the command, collects the outputs, and the
//     master pulls the output tree up.
//
// A step that ran to its exit (any exit code) is a result and is cached
// when cacheable; a trap, a limit or a timeout fails the step and is not
// cached. An infrastructure failure (a target that cannot start, a context
// lost in the middle of a step) is retried on the job's next target up to
// Options.Retries times; a failure of the step itself never is. With
// Options.NoCache every step runs and a result that differs from the
// cached one for the same key is reported as nondeterministic.
//
// A failed step skips the rest of its job and every run that needs it.
// The Summary lists every step's StepResult (status, cache status and
// why not cached, key, exit code, time, target, digests, test report);
// Options.Artifacts writes every step's outputs on the master, and
// WriteJUnit the test reports.
//
// Events (Options.Events) come as they happen, one at a time: job and step
// started and finished, each log line of each step's stdout and stderr,
// each target's OS layers (EventTarget), and the summary last.
//
// # Secrets
//
// The values (ResolveSecrets, from the master's environment or files)
// reach only the steps that name them, as files in a private read-only
// mount; such steps are never cached. Every log line, stored output,
// report and error passes through a ci/mask Masker first, which masks
// each secret in its exact, line-by-line, base64, URL-escaped, JSON-escaped
// and hex forms, also when split across writes.
//
// # Sandbox
//
// With Options.Sandbox the contexts that run steps start with OS layers
// under wasm (spindle.ChildOptions.Sandbox: no_new_privs, rlimits and
// Landlock where the kernel allows), and each is reported.
//
// # Bounds
//
// A job file is at most MaxFileBytes (4 MiB); the parser follows at most
// MaxAliases (1000) aliases and visits at most 2^20 YAML nodes, so nested
// aliases fail early instead of expanding; it reports at most 20
// problems. A job's matrix has at most MaxMatrixRuns (256) combinations, a
// file at most MaxRuns (1024) runs.
//
// # Concurrency
//
// Run may be called from several goroutines, on the same Master too; an
// ActionCache and a Toolbox are safe to share between runs. Events of one
// run are never delivered concurrently.
//
// ParseJob, ParseJobFile, Match and NewFilter share no state and are safe
// to call from any goroutine. File, Job, Step, JobRun and Action are plain
// values: safe for concurrent reads, not for concurrent writes. A Filter
// is immutable and safe for concurrent use.
package ci
