// Command wasitest runs the WebAssembly/wasi-testsuite's prebuilt wasip1
// tests through a real `spindle run`, with the semantics of the suite's own
// runner (its test-runner/): `make wasi-testsuite` runs it, and .ci/run runs
// that.
//
//	go run ./tools/wasitest [-suite DIR] [-spindle bin/spindle] [-known FILE] [-j 2] [-timeout 60s] [-v]
//
// DIR holds the suite (default: ../shared/wasi-testsuite beside this
// checkout, or beside the main checkout of a worktree, or beside the
// origin of a local clone): every directory under it with a manifest.json is a
// test suite (its "name" is the suite's name), and every NAME.wasm in one is
// a test, specified by NAME.json beside it (no file: the defaults). A spec
// is the suite's legacy form, the only one its wasip1 tests use:
//
//	{"args": [...], "env": {"K": "V"}, "root": "DIR", "stdout": "...", "stderr": "...", "exit_code": N}
//
// A test runs as
//
//	spindle run --stdin - [--mount COPY:/] [--env K=V]... NAME.wasm -- ARGS...
//
// where COPY is a fresh copy of the spec's root directory (relative to the
// spec; the suite's own tree is never written, and may be read-only), made
// writable, and removed afterwards. As the suite's runner does, the test's
// stdin is a pipe that stays open while its expected stdout, then stderr,
// is read: each must begin with the spec's text (the runner reads that
// many bytes and compares). Then stdin is closed and the exit status must
// be exit_code (default 0). A test past -timeout is killed and fails.
//
// Output: one line per failing test ("FAIL ID: why"), one line of counts
// per suite, and a last line "N passed, N failed". A failure listed in the
// -known file (tools/wasitest/known-failures.txt: "ID reason" a line, the
// reason required) is printed as "known" and not counted as failed; a
// listed test that passes is an error too, so the list stays true.
//
// Exit status: 0 every test passed or failed as listed; 1 an unlisted
// failure, or a listed test passed; 2 the run could not start (no suite at
// DIR, no spindle binary, a bad spec or known-failures file).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFail    = 1
	exitCantRun = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasitest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	r := runner{Spindle: "bin/spindle", Jobs: 2, Timeout: 60 * time.Second}
	suite := fs.String("suite", "", "the wasi-testsuite checkout (prod/testsuite-base); default "+suiteBeside+" beside this checkout (see locateSuite)")
	known := fs.String("known", "tools/wasitest/known-failures.txt", "the known failures, \"ID reason\" a line (\"\" for none)")
	fs.StringVar(&r.Spindle, "spindle", r.Spindle, "the spindle binary to run the tests with")
	fs.IntVar(&r.Jobs, "j", r.Jobs, "tests run at once")
	fs.DurationVar(&r.Timeout, "timeout", r.Timeout, "a test's time limit, spindle's start included")
	verbose := fs.Bool("v", false, "print a line for every test, passed ones too")
	if err := fs.Parse(args); err != nil {
		return exitCantRun
	}
	if fs.NArg() > 0 || r.Jobs < 1 || r.Timeout <= 0 {
		fs.Usage()
		return exitCantRun
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "wasitest: %v\n", err)
		return exitCantRun
	}
	if _, err := os.Stat(r.Spindle); err != nil {
		return fail(fmt.Errorf("no spindle binary: %v (make build makes bin/spindle)", err))
	}
	if *suite == "" {
		p, err := locateSuite()
		if err != nil {
			return fail(err)
		}
		*suite = p
	}
	suites, err := findSuites(*suite)
	if err != nil {
		return fail(err)
	}
	var list knownList
	if *known != "" {
		if list, err = readKnown(*known); err != nil {
			return fail(err)
		}
	}
	results := r.runAll(suites)
	return report(stdout, suites, results, list, *verbose)
}
