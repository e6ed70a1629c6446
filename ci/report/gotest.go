package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// event is one line of test2json output (cmd/test2json documents it).
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64 // seconds
	Output      string
	ImportPath  string // of build-output and build-fail events
	FailedBuild string // of a package's fail event: the build that failed
}

// parser is the state of one parse, in either format.
type parser struct {
	opt    Options
	budget int // of output bytes left to keep

	pkgs   []*pkgState
	byName map[string]*pkgState
	tests  int // listed across the report

	builds    map[string]*output // go: build-output by ImportPath
	buildSeen []string           // go: ImportPaths in order

	out       *output // the report's own output
	truncated bool
}

type pkgState struct {
	p           Package
	out         *output
	tests       []*testState
	byName      map[string]*testState
	done        bool   // a result arrived
	failedBuild string // go: FailedBuild of the result
	prefix      string // go: the failed build's output, put before out
	truncated   bool
}

type testState struct {
	t        Test
	out      *output
	done     bool
	lastLog  string // go: the last message it logged
	lackLine string // go: the first line that names what wasip1 lacks
}

// note reads one line of a go test's output for its reasons.
func (ts *testState) note(line string) {
	if m := logMessage(line); m != "" {
		ts.lastLog = m
	}
	if ts.t.Lacks == "" {
		if what := Lack(line); what != "" {
			ts.t.Lacks, ts.lackLine = what, cut(strings.TrimSpace(line), maxReason)
		}
	}
}

func newParser(opt Options) *parser {
	opt = opt.withDefaults()
	p := &parser{
		opt:    opt,
		budget: opt.MaxTotalOutput,
		byName: map[string]*pkgState{},
		builds: map[string]*output{},
	}
	p.out = p.newOutput()
	return p
}

func (p *parser) newOutput() *output { return newOutput(p.opt.MaxOutput, &p.budget) }

// pkg returns the package named name, making it if there is room; nil if
// there is not.
func (p *parser) pkg(name string) *pkgState {
	if ps, ok := p.byName[name]; ok {
		return ps
	}
	if len(p.pkgs) >= p.opt.MaxPackages {
		p.truncated = true
		return nil
	}
	ps := &pkgState{p: Package{Name: name}, out: p.newOutput(), byName: map[string]*testState{}}
	p.pkgs = append(p.pkgs, ps)
	p.byName[name] = ps
	return ps
}

// test returns the test named name of ps, making it if there is room; nil
// if there is not.
func (p *parser) test(ps *pkgState, name string) *testState {
	if ts, ok := ps.byName[name]; ok {
		return ts
	}
	if p.tests >= p.opt.MaxTests {
		ps.truncated = true
		return nil
	}
	p.tests++
	ts := &testState{t: Test{Name: name}, out: p.newOutput()}
	ps.tests = append(ps.tests, ts)
	ps.byName[name] = ts
	return ts
}

// count adds a result to ps's counts.
func count(ps *pkgState, status string) {
	switch status {
	case StatusPass:
		ps.p.Pass++
	case StatusFail:
		ps.p.Fail++
	case StatusSkip:
		ps.p.Skip++
	}
}

// ParseGoTest parses the output of `go test -json` (see the package doc).
// Lines that are not events are kept in Report.Output; they are never an
// error. The error is the reader's, returned with the report of what was
// read before it.
func ParseGoTest(r io.Reader, opt Options) (*Report, error) {
	p := newParser(opt)
	err := eachLine(r, func(line []byte, cut bool) {
		if cut {
			// A cut event cannot be decoded; what it said is lost.
			p.truncated = true
			return
		}
		var e event
		if t := bytes.TrimSpace(line); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &e) != nil || e.Action == "" {
			p.out.writeString(string(line) + "\n")
			return
		}
		p.goEvent(&e)
	})
	rep := p.finishGo()
	if err != nil {
		return rep, fmt.Errorf("report: reading go test -json output: %w", err)
	}
	return rep, nil
}

func (p *parser) goEvent(e *event) {
	switch e.Action {
	case "build-output":
		b, ok := p.builds[e.ImportPath]
		if !ok {
			if len(p.builds) >= p.opt.MaxPackages {
				p.truncated = true
				return
			}
			b = p.newOutput()
			p.builds[e.ImportPath] = b
			p.buildSeen = append(p.buildSeen, e.ImportPath)
		}
		b.writeString(e.Output)
		return
	case "build-fail":
		return
	}
	if e.Package == "" {
		// Not an event this parser knows; keep what it printed.
		p.out.writeString(e.Output)
		return
	}
	ps := p.pkg(e.Package)
	if ps == nil {
		return
	}
	if e.Test == "" {
		switch e.Action {
		case StatusPass, StatusFail, StatusSkip:
			ps.done = true
			ps.p.Status = e.Action
			ps.p.Elapsed = seconds(e.Elapsed)
			ps.failedBuild = e.FailedBuild
		default: // start, output, bench
			ps.out.writeString(e.Output)
		}
		return
	}
	switch e.Action {
	case StatusPass, StatusFail, StatusSkip:
		count(ps, e.Action)
		if ts := p.test(ps, e.Test); ts != nil {
			ts.done = true
			ts.t.Status = e.Action
			ts.t.Elapsed = seconds(e.Elapsed)
		}
	default: // run, output, pause, cont, bench
		if ts := p.test(ps, e.Test); ts != nil {
			ts.out.writeString(e.Output)
			ts.note(e.Output)
		}
	}
}

func seconds(s float64) time.Duration {
	if s <= 0 || s > 1e9 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// finishGo settles what has no result yet and builds the Report.
func (p *parser) finishGo() *Report {
	claimed := map[string]bool{}
	for _, ps := range p.pkgs {
		for _, ts := range ps.tests {
			if !ts.done {
				ts.t.Status = StatusFail
				ts.t.Message = "no result: the test binary ended before the test did"
				count(ps, StatusFail)
			}
			switch {
			case ts.t.Status == StatusSkip:
				ts.t.Message = ts.lastLog
			case ts.t.Status == StatusFail && ts.t.Lacks != "":
				ts.t.Message = cmp.Or(ts.t.Message, ts.lackLine)
			default:
				ts.t.Lacks = ""
			}
		}
		switch {
		case !ps.done:
			ps.p.Status = StatusFail
			ps.p.Message = "no result: the output ended before the package did"
		case ps.failedBuild != "":
			ps.p.Message = "build failed: " + ps.failedBuild
			if b, ok := p.builds[ps.failedBuild]; ok {
				claimed[ps.failedBuild] = true
				ps.prefix = b.String()
				ps.truncated = ps.truncated || b.truncated()
			}
		}
	}
	// Build output that no package claimed is still output.
	for _, ip := range p.buildSeen {
		if !claimed[ip] {
			b := p.builds[ip]
			p.out.writeString(b.String())
			p.truncated = p.truncated || b.truncated()
		}
	}
	return p.report()
}

// report builds the Report from the parser's state.
func (p *parser) report() *Report {
	r := &Report{Output: p.out.String(), Truncated: p.truncated || p.out.truncated()}
	for _, ps := range p.pkgs {
		pk := ps.p
		pk.Output = ps.prefix + ps.out.String()
		pk.Truncated = ps.truncated || ps.out.truncated()
		for _, ts := range ps.tests {
			t := ts.t
			t.Output = ts.out.String()
			t.Truncated = ts.out.truncated()
			pk.Truncated = pk.Truncated || t.Truncated
			pk.Tests = append(pk.Tests, t)
		}
		r.Truncated = r.Truncated || pk.Truncated
		r.Packages = append(r.Packages, pk)
	}
	return r
}
