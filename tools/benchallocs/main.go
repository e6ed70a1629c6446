// Command benchallocs checks the allocations per operation of the hot-path
// benchmarks against a committed baseline (docs/bench-allocs.txt): `make
// bench-allocs` runs it, and `make check` and .ci/run run that.
//
//	go run ./tools/benchallocs [-baseline docs/bench-allocs.txt] [-count 3] [-update]
//
// For each "bench" line of the baseline it runs, from the current directory
// (the module root),
//
//	go test -run '^$' -bench REGEXP -benchmem -benchtime N x -count K -cpu 2 PACKAGE
//
// and takes, per benchmark, the minimum allocs/op over the K runs. A
// benchmark whose allocs/op exceed its baseline by more than the
// tolerance (max(1, 10% of the baseline rounded up)) is a regression; a
// benchmark the bench lines select that has no baseline entry, and an
// entry whose benchmark did not run, are errors too. Any of them exits 1, one line each. A benchmark more
// than the tolerance below its baseline is reported as an improvement (exit
// 0): -update rewrites the entries from this run's figures.
//
// Times are printed (the median ns/op of the runs) and never compared: on
// shared machines they vary by 2x from run to run, while the number of
// allocations is a property of the code.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: 0 all within the baseline, 1 a regression or a baseline out
// of step with the benchmarks, 2 the check could not run.
const (
	exitOK      = 0
	exitFail    = 1
	exitCantRun = 2
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchallocs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("baseline", "docs/bench-allocs.txt", "the baseline file: bench lines and entries")
	update := fs.Bool("update", false, "rewrite the baseline's entries from this run")
	c := checker{Go: "go", Count: 3, CPU: 2, Dir: ".", Log: stderr}
	fs.StringVar(&c.Go, "go", c.Go, "the go command")
	fs.IntVar(&c.Count, "count", c.Count, "runs of each benchmark (the minimum allocs/op counts)")
	fs.StringVar(&c.Dir, "C", c.Dir, "the module root to run go test in")
	if err := fs.Parse(args); err != nil {
		return exitCantRun
	}
	if fs.NArg() > 0 || c.Count < 1 {
		fs.Usage()
		return exitCantRun
	}
	text, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "benchallocs: %v\n", err)
		return exitCantRun
	}
	base, err := parseBaseline(string(text))
	if err != nil {
		fmt.Fprintf(stderr, "benchallocs: %s: %v\n", *path, err)
		return exitCantRun
	}
	got, err := c.measure(base.Benches)
	if err != nil {
		fmt.Fprintf(stderr, "benchallocs: %v\n", err)
		return exitCantRun
	}
	if *update {
		if err := os.WriteFile(*path, []byte(base.withEntries(got.entries())), 0o644); err != nil {
			fmt.Fprintf(stderr, "benchallocs: %v\n", err)
			return exitCantRun
		}
		printTable(stdout, base, got)
		fmt.Fprintf(stdout, "benchallocs: wrote %d entries to %s\n", len(got), *path)
		return exitOK
	}
	printTable(stdout, base, got)
	rep := compare(base.Entries, got)
	for _, line := range rep.Improved {
		fmt.Fprintln(stdout, "benchallocs: improved: "+line)
	}
	for _, line := range rep.Failures {
		fmt.Fprintln(stdout, "benchallocs: FAIL: "+line)
	}
	if len(rep.Improved) > 0 {
		fmt.Fprintf(stdout, "benchallocs: lower the baseline: go run ./tools/benchallocs -update (then commit %s)\n", *path)
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintf(stdout, "benchallocs: %d failures (allocs/op against %s; after an intended change: -update and commit it)\n",
			len(rep.Failures), *path)
		return exitFail
	}
	fmt.Fprintf(stdout, "benchallocs: %d benchmarks within their baseline allocs/op\n", len(got))
	return exitOK
}
