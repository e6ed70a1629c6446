package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Test statuses, of Test.Status and Package.Status.
const (
	StatusPass = "pass"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// Formats that Parse knows: the values of a job step's report key.
const (
	FormatGoTest = "go-test-json"
	FormatTAP    = "tap"
)

// Defaults of Options' bounds.
const (
	DefaultMaxPackages    = 1000
	DefaultMaxTests       = 10000
	DefaultMaxOutput      = 64 << 10
	DefaultMaxTotalOutput = 16 << 20

	// maxLine is the longest line a parser reads; the rest of a longer
	// one is dropped.
	maxLine = 1 << 20
)

// ErrFormat is returned by Parse for a format it does not know.
var ErrFormat = errors.New("report: unknown format")

// Options bound what a parser keeps and name TAP's package. The zero value
// means the defaults. A parser copies it; it is not retained.
type Options struct {
	// Name is the name of the Package that TAP results are filed under;
	// "tap" if empty. ParseGoTest takes package names from the stream.
	Name string

	// MaxPackages is the number of packages listed; results of more
	// packages are dropped. Default DefaultMaxPackages.
	MaxPackages int

	// MaxTests is the number of tests listed across the report; later
	// tests are still counted in their package's Pass, Fail and Skip.
	// Default DefaultMaxTests.
	MaxTests int

	// MaxOutput is the number of bytes of output kept for each test,
	// each package and the report: the first and the last half of it.
	// Default DefaultMaxOutput.
	MaxOutput int

	// MaxTotalOutput is the number of bytes of output kept in all.
	// Default DefaultMaxTotalOutput.
	MaxTotalOutput int
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxPackages, DefaultMaxPackages)
	def(&o.MaxTests, DefaultMaxTests)
	def(&o.MaxOutput, DefaultMaxOutput)
	def(&o.MaxTotalOutput, DefaultMaxTotalOutput)
	if o.Name == "" {
		o.Name = "tap"
	}
	return o
}

// Report is the result of one test step: its packages in the order they
// first appeared. It is a plain value: safe to read from many goroutines,
// not to modify while others read it.
type Report struct {
	Packages []Package

	// Output holds the lines that were not part of the format (not a
	// test2json event), in order.
	Output string

	// Truncated reports that something was left out to stay within
	// Options: a package, a test, output, or part of a long line.
	Truncated bool
}

// Package is one Go package, or the one package of a TAP stream. Like
// Report, it is a plain value.
type Package struct {
	Name string

	// Status is StatusPass, StatusFail or StatusSkip (a Go package with
	// no test files, a TAP plan of 1..0).
	Status string

	// Message says why the package failed when no test says it: the
	// build failed, the stream bailed out or ended early, the plan did
	// not match. Empty otherwise.
	Message string

	// Pass, Fail and Skip count the package's tests and subtests by
	// status, including those not listed in Tests.
	Pass, Fail, Skip int

	Elapsed time.Duration
	Tests   []Test // in the order they started

	// Output is the package's own output: build errors, "FAIL pkg",
	// coverage lines; for TAP, the lines before the first test.
	Output    string
	Truncated bool // Tests or Output left something out
}

// Test is one test or subtest, a plain value.
type Test struct {
	Name    string // subtests as "Parent/sub"
	Status  string // StatusPass, StatusFail or StatusSkip
	Elapsed time.Duration

	// Message is the reason the format gave for a skip or a failure (a
	// TAP directive or diagnostic), or why a test that never finished
	// failed. It may be empty. For go test, a skipped test's Message is
	// the last message it logged (t.Skip's reason), and a failed test's,
	// when it failed on what wasip1 lacks, the line that says so.
	Message string

	// Lacks, for a failed test, names what wasip1 lacks that the test's
	// output shows it failed on ("subprocesses", "pipes", ...; see Lack),
	// and is empty for any other test or failure.
	Lacks string

	Output    string
	Truncated bool // Output lost bytes in the middle
}

// Parse parses r in format (FormatGoTest or FormatTAP).
func Parse(format string, r io.Reader, opt Options) (*Report, error) {
	switch format {
	case FormatGoTest:
		return ParseGoTest(r, opt)
	case FormatTAP:
		return ParseTAP(r, opt)
	}
	return nil, fmt.Errorf("report: parse %q: %w", format, ErrFormat)
}

// Summary says in one line what passed, failed and was skipped, e.g.
// "12 passed, 1 failed, 2 skipped in 3 packages". Packages that failed
// with no failing test, listed failures on what wasip1 lacks ("; 2 of
// the failures on what wasip1 lacks (subprocesses 2)"), and a truncated
// report are mentioned after it.
func (r *Report) Summary() string {
	var pass, fail, skip, pkgFail int
	for _, p := range r.Packages {
		pass += p.Pass
		fail += p.Fail
		skip += p.Skip
		if p.Status == StatusFail && p.Fail == 0 {
			pkgFail++
		}
	}
	s := fmt.Sprintf("%d passed, %d failed, %d skipped in %s", pass, fail, skip, plural(len(r.Packages), "package"))
	if pkgFail > 0 {
		s += fmt.Sprintf("; %s failed outside any test", plural(pkgFail, "package"))
	}
	if lack := r.Lacking(); len(lack) > 0 {
		n, kinds := 0, make([]string, len(lack))
		for i, t := range lack {
			n += t.Count
			kinds[i] = fmt.Sprintf("%s %d", t.Reason, t.Count)
		}
		s += fmt.Sprintf("; %d of the failures on what wasip1 lacks (%s)", n, strings.Join(kinds, ", "))
	}
	if r.Truncated {
		s += " (truncated)"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// output keeps the first and the last bytes written to it, at most max in
// all, and counts the bytes between them that it left out.
type output struct {
	head    []byte
	tail    []byte // a ring once rotating
	start   int    // of the oldest byte in tail, when rotating
	omitted int64
	budget  *int // bytes of output the whole parse may still keep
	max     int
}

func newOutput(max int, budget *int) *output {
	return &output{max: max, budget: budget}
}

func (o *output) writeString(s string) {
	hmax := o.max / 2
	tmax := o.max - hmax
	if len(o.tail) == 0 && o.omitted == 0 {
		n := min(len(s), hmax-len(o.head), *o.budget)
		o.head = append(o.head, s[:n]...)
		*o.budget -= n
		s = s[n:]
	}
	// Once the tail has begun to give way it may not grow, or its bytes
	// would be out of order.
	if o.omitted == 0 {
		n := min(len(s), tmax-len(o.tail), *o.budget)
		o.tail = append(o.tail, s[:n]...)
		*o.budget -= n
		s = s[n:]
	}
	if len(s) == 0 {
		return
	}
	// Full, or out of budget: the oldest bytes of the tail make way, as
	// many as arrive.
	o.omitted += int64(len(s))
	if len(o.tail) == 0 {
		return
	}
	if len(s) > len(o.tail) {
		s = s[len(s)-len(o.tail):]
	}
	for len(s) > 0 {
		n := copy(o.tail[o.start:], s)
		s = s[n:]
		o.start = (o.start + n) % len(o.tail)
	}
}

func (o *output) truncated() bool { return o != nil && o.omitted > 0 }

func (o *output) String() string {
	if o == nil {
		return ""
	}
	var b strings.Builder
	b.Write(o.head)
	if o.omitted > 0 {
		if len(o.head) > 0 && o.head[len(o.head)-1] != '\n' {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[... %d bytes of output left out ...]\n", o.omitted)
	}
	b.Write(o.tail[o.start:])
	b.Write(o.tail[:o.start])
	return b.String()
}

// lines reads lines of at most maxLine bytes, without their "\n" or "\r\n".
type lines struct {
	r   *bufio.Reader
	buf []byte
}

// eachLine calls fn with each line of r (cut at maxLine: then cut is true)
// and returns the reader's error, nil at its end.
func eachLine(r io.Reader, fn func(line []byte, cut bool)) error {
	l := newLines(r)
	for {
		line, cut, err := l.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(line, cut)
	}
}

func newLines(r io.Reader) *lines {
	return &lines{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line, whether it was cut at maxLine, and io.EOF
// after the last line (a last line without "\n" is still returned first).
// Any other error is the reader's.
func (l *lines) next() (line []byte, cut bool, err error) {
	l.buf = l.buf[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		if len(l.buf)+len(frag) > maxLine {
			frag = frag[:max(0, maxLine-len(l.buf))]
			cut = true
		}
		l.buf = append(l.buf, frag...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(l.buf) > 0:
			return trimEOL(l.buf), cut, nil
		case err != nil:
			return nil, cut, err
		}
		return trimEOL(l.buf), cut, nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
