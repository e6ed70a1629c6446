// Package report turns what a test step printed into a test report: it
// parses `go test -json` output and TAP into a Report of packages and tests
// with their status, time and output, summarises it in one line, and writes
// it as JUnit XML.
//
// # Go test -json
//
// ParseGoTest reads the event stream of `go test -json` (test2json: one
// JSON object per line with Action, Package, Test, Elapsed, Output). Each
// package becomes a Package, each test and subtest ("TestA/sub") a Test
// with the output test2json attributed to it. A package that failed to
// build has no tests, Status "fail" and a Message naming the build that
// failed; its compiler output (the build-output events) is in its Output.
// A test or package that started but has no result when the stream ends
// (the test binary was killed, or timed out) failed, with a Message saying
// so. Lines that are not test2json events are kept, in order, in
// Report.Output.
//
// # Reasons
//
// A skipped Go test's Message is the last message it logged (t.Skip's
// reason, without the "file_test.go:12: " before it), and Report.Skips
// counts skipped tests by it. A Go test that failed on what wasip1 lacks
// has Lacks set to what ("subprocesses", "pipes", "outside network", ...;
// see Lack, which knows the words Go's wasip1 port uses for it, and no
// others), its Message the line that said so; Report.Lacking counts them
// and Summary mentions them. Reasons are read from the whole stream, not
// the kept output, but only listed tests (see Bounds) are counted.
//
// # TAP
//
// ParseTAP reads the Test Anything Protocol, versions 13 and 14, into a
// Report with one Package (named by Options.Name): the plan ("1..N", also
// last, and "1..0 # SKIP why" for nothing run), test lines ("ok" and
// "not ok", with an optional number and description), the SKIP and TODO
// directives, YAML diagnostics blocks ("---" to "..."; their message and
// duration_ms are read, the whole block is kept as the test's output),
// "Bail out!", and TAP 14 subtests (indented by four spaces, named
// "parent/child"). A skipped test, and a "not ok" test marked TODO, have
// Status "skip"; an "ok" test marked TODO passed. The package failed when
// a test failed, when the stream bailed out, or when the plan is missing or
// does not match the number of tests. Comments and other lines go to the
// output of the test before them.
//
// # JUnit
//
// Report.WriteJUnit writes <testsuites> with one <testsuite> per package
// and one <testcase> per test (classname the package), <failure> and
// <skipped> elements, and time attributes in seconds. A package that failed
// without a failing test (a build failure, a bail out) gets one extra
// testcase named "(package)" that carries the failure, so that tools
// counting failures see it. Any bytes may appear in names and output: bytes
// that are not UTF-8 become U+FFFD and characters XML 1.0 does not allow
// (most control characters) are removed, so the document is always
// well-formed.
//
// # Bounds
//
// Everything a parser keeps is bounded by Options, whose zero value means
// the defaults: at most MaxPackages packages (default 1000) and MaxTests
// tests (default 10000) are listed, though every result is still counted in
// Pass, Fail and Skip; each test's, package's and the report's output keeps
// its first and last MaxOutput/2 bytes (default 64 KiB in all), the bytes
// in between replaced by a line saying how many were left out; all output
// together is held to MaxTotalOutput (default 16 MiB); and a line is read
// up to 1 MiB, the rest of a longer one dropped. Whatever was left out is
// flagged: Test.Truncated, Package.Truncated, Report.Truncated (the last
// also set when anything below it was cut).
//
// # Concurrency
//
// The parse functions keep no state between calls and may run concurrently.
// A Report is a plain value: it is not safe to modify while another
// goroutine reads it; reading it (Summary, WriteJUnit) from several
// goroutines at once is safe.
package report
