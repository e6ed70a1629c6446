package report

import (
	"strings"
	"testing"
	"time"
)

type wantTest struct {
	name, status, message string
	elapsed               time.Duration
	output                string // a substring of the test's output
}

func TestTAP(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  string
		message string // the package's
		counts  [3]int // pass, fail, skip
		tests   []wantTest
		pkgOut  string // a substring of the package's output
		elapsed time.Duration
	}{
		{
			name: "version 13 with directives and diagnostics",
			in: `TAP version 13
1..6
# preamble comment
ok 1 - first passes
not ok 2 - second fails
  ---
  message: "expected 1, got 2"
  severity: fail
  duration_ms: 12.5
  data:
    got: 2
    message: not this one
  ...
# diagnostic after the failure
ok 3 - skipped one # SKIP no database
not ok 4 - unfinished # TODO write it
ok 5 - done early # todo: remove the marker
ok 6 escaped \# hash and \\ backslash # a comment, not a directive
`,
			status: StatusFail,
			counts: [3]int{3, 1, 2},
			tests: []wantTest{
				{"first passes", StatusPass, "", 0, "ok 1 - first passes"},
				{"second fails", StatusFail, "expected 1, got 2", 12500 * time.Microsecond, "# diagnostic after the failure"},
				{"skipped one", StatusSkip, "no database", 0, ""},
				{"unfinished", StatusSkip, "TODO write it", 0, ""},
				{"done early", StatusPass, "TODO remove the marker", 0, ""},
				{`escaped # hash and \ backslash`, StatusPass, "", 0, ""},
			},
			pkgOut:  "# preamble comment",
			elapsed: 12500 * time.Microsecond,
		},
		{
			name:   "plan last, no numbers, CRLF",
			in:     "ok\r\nok - named\r\nnot ok\r\n1..3\r\n",
			status: StatusFail,
			counts: [3]int{2, 1, 0},
			tests: []wantTest{
				{"test 1", StatusPass, "", 0, ""},
				{"named", StatusPass, "", 0, ""},
				{"test 3", StatusFail, "", 0, ""},
			},
		},
		{
			name:    "bail out",
			in:      "TAP version 13\n1..3\nok 1 - a\nBail out! database down\nok 2 - b\n",
			status:  StatusFail,
			message: "Bail out! database down",
			counts:  [3]int{1, 0, 0},
			tests:   []wantTest{{"a", StatusPass, "", 0, ""}},
			pkgOut:  "ok 2 - b",
		},
		{
			name:    "plan mismatch",
			in:      "1..3\nok 1\nok 2\n",
			status:  StatusFail,
			message: "planned 3 tests, 2 ran",
			counts:  [3]int{2, 0, 0},
		},
		{
			name:    "no plan",
			in:      "ok 1 - alone\n",
			status:  StatusFail,
			message: "no plan (1 test ran)",
			counts:  [3]int{1, 0, 0},
		},
		{
			name:   "skip all",
			in:     "TAP version 14\n1..0 # SKIP no tests on this platform\n",
			status: StatusSkip,
		},
		{
			name: "version 14 subtests",
			in: `TAP version 14
1..3
# Subtest: parent
    1..2
    ok 1 - child one
    not ok 2 - child two
      ---
      message: child broke
      ...
not ok 1 - parent
ok 2 - sibling
# Subtest: outer
    # Subtest: mid
        ok 1 - leaf
        1..1
    ok 1 - mid
    1..1
ok 3
`,
			status: StatusFail,
			counts: [3]int{5, 2, 0},
			tests: []wantTest{
				{"parent", StatusFail, "", 0, "not ok 1 - parent"},
				{"parent/child one", StatusPass, "", 0, ""},
				{"parent/child two", StatusFail, "child broke", 0, "message: child broke"},
				{"sibling", StatusPass, "", 0, ""},
				{"outer", StatusPass, "", 0, ""},
				{"outer/mid", StatusPass, "", 0, ""},
				{"outer/mid/leaf", StatusPass, "", 0, ""},
			},
		},
		{
			name: "node's reporter",
			in: `TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 0.5
  ...
# Subtest: fails
not ok 2 - fails
  ---
  duration_ms: 1.25
  failureType: 'testCodeFailure'
  error: |-
    Expected values to be strictly equal
  code: 'ERR_ASSERTION'
  message: |-
    line one
    line two
  ...
1..2
`,
			status: StatusFail,
			counts: [3]int{1, 1, 0},
			tests: []wantTest{
				{"adds", StatusPass, "", 500 * time.Microsecond, ""},
				{"fails", StatusFail, "line one\nline two", 1250 * time.Microsecond, "ERR_ASSERTION"},
			},
			elapsed: 1750 * time.Microsecond,
		},
		{
			name: "a block that lost its end",
			in: `1..2
not ok 1 - broken yaml
  ---
  message: never closed
ok 2 - next
`,
			status: StatusFail,
			counts: [3]int{1, 1, 0},
			tests: []wantTest{
				{"broken yaml", StatusFail, "never closed", 0, "message: never closed"},
				{"next", StatusPass, "", 0, ""},
			},
		},
		{
			name:   "not TAP at all",
			in:     "hello\nokay then\n1..x\n",
			status: StatusFail,
			counts: [3]int{0, 0, 0},
			pkgOut: "okay then\n1..x",
		},
	}
	for _, tt := range tests {
		r, err := ParseTAP(strings.NewReader(tt.in), Options{})
		if err != nil {
			t.Errorf("%s: ParseTAP: %v", tt.name, err)
			continue
		}
		if len(r.Packages) != 1 {
			t.Errorf("%s: %d packages, want 1", tt.name, len(r.Packages))
			continue
		}
		p := r.Packages[0]
		if p.Name != "tap" || p.Status != tt.status || (tt.message != "" && p.Message != tt.message) ||
			[3]int{p.Pass, p.Fail, p.Skip} != tt.counts || p.Elapsed != tt.elapsed {
			t.Errorf("%s: package %s %s %q, %d/%d/%d, %v; want tap %s %q, %v, %v",
				tt.name, p.Name, p.Status, p.Message, p.Pass, p.Fail, p.Skip, p.Elapsed, tt.status, tt.message, tt.counts, tt.elapsed)
		}
		if !strings.Contains(p.Output, tt.pkgOut) {
			t.Errorf("%s: package output %q, want %q in it", tt.name, p.Output, tt.pkgOut)
		}
		if tt.tests == nil {
			continue
		}
		if len(p.Tests) != len(tt.tests) {
			t.Errorf("%s: %d tests, want %d: %+v", tt.name, len(p.Tests), len(tt.tests), p.Tests)
			continue
		}
		for i, w := range tt.tests {
			g := p.Tests[i]
			if g.Name != w.name || g.Status != w.status || g.Message != w.message || g.Elapsed != w.elapsed || !strings.Contains(g.Output, w.output) {
				t.Errorf("%s: test %d = %q %s %q %v, output %q; want %q %s %q %v with %q",
					tt.name, i, g.Name, g.Status, g.Message, g.Elapsed, g.Output, w.name, w.status, w.message, w.elapsed, w.output)
			}
		}
	}
}

func TestTAPBounds(t *testing.T) {
	var in strings.Builder
	in.WriteString("1..50\n")
	for i := range 50 {
		in.WriteString("ok - t\n")
		if i == 0 {
			in.WriteString("# " + strings.Repeat("d", 500) + "\n")
		}
	}
	r, err := ParseTAP(strings.NewReader(in.String()), Options{Name: "suite", MaxTests: 10, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Packages[0]
	if p.Name != "suite" || p.Status != StatusPass || p.Pass != 50 || len(p.Tests) != 10 || !p.Truncated || !r.Truncated || !p.Tests[0].Truncated {
		t.Errorf("got %s %s, %d passed, %d listed, truncated %v/%v/%v; want suite pass, 50, 10, all truncated",
			p.Name, p.Status, p.Pass, len(p.Tests), p.Truncated, r.Truncated, p.Tests[0].Truncated)
	}
	if got, want := r.Summary(), "50 passed, 0 failed, 0 skipped in 1 package (truncated)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		r    Report
		want string
	}{
		{Report{}, "0 passed, 0 failed, 0 skipped in 0 packages"},
		{Report{Packages: []Package{{Status: StatusPass, Pass: 1}}}, "1 passed, 0 failed, 0 skipped in 1 package"},
		{Report{Packages: []Package{
			{Status: StatusFail, Pass: 10, Fail: 1, Skip: 2},
			{Status: StatusPass, Pass: 2},
			{Status: StatusSkip},
		}}, "12 passed, 1 failed, 2 skipped in 3 packages"},
		{
			Report{Packages: []Package{{Status: StatusFail}, {Status: StatusFail}}, Truncated: true},
			"0 passed, 0 failed, 0 skipped in 2 packages; 2 packages failed outside any test (truncated)",
		},
	}
	for _, tt := range tests {
		if got := tt.r.Summary(); got != tt.want {
			t.Errorf("Summary(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
