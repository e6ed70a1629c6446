package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The test's own reading of JUnit XML, to decode what WriteJUnit wrote.
type (
	xSuites struct {
		XMLName  xml.Name `xml:"testsuites"`
		Name     string   `xml:"name,attr"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Skipped  int      `xml:"skipped,attr"`
		Time     string   `xml:"time,attr"`
		Suites   []xSuite `xml:"testsuite"`
	}
	xSuite struct {
		Name      string  `xml:"name,attr"`
		Tests     int     `xml:"tests,attr"`
		Failures  int     `xml:"failures,attr"`
		Skipped   int     `xml:"skipped,attr"`
		Time      string  `xml:"time,attr"`
		Cases     []xCase `xml:"testcase"`
		SystemOut string  `xml:"system-out"`
	}
	xCase struct {
		Name      string    `xml:"name,attr"`
		Classname string    `xml:"classname,attr"`
		Time      string    `xml:"time,attr"`
		Failure   *xMessage `xml:"failure"`
		Skipped   *xMessage `xml:"skipped"`
		SystemOut string    `xml:"system-out"`
	}
	xMessage struct {
		Message string `xml:"message,attr"`
		Body    string `xml:",chardata"`
	}
)

// decodeJUnit writes r as JUnit and decodes it back, checking the counts
// and time attributes agree with the testcases.
func decodeJUnit(t *testing.T, r *Report, name string) xSuites {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteJUnit(&buf, name); err != nil {
		t.Fatalf("WriteJUnit: %v", err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte(xml.Header)) {
		t.Errorf("JUnit XML does not start with the XML header: %.80q", buf.Bytes())
	}
	var doc xSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("decoding the JUnit XML: %v\n%s", err, buf.Bytes())
	}
	var tests, failures, skipped int
	for _, s := range doc.Suites {
		var f, sk int
		for _, c := range s.Cases {
			if c.Failure != nil {
				f++
			}
			if c.Skipped != nil {
				sk++
			}
			if _, err := strconv.ParseFloat(c.Time, 64); err != nil {
				t.Errorf("testcase %s: time %q: %v", c.Name, c.Time, err)
			}
		}
		if s.Tests != len(s.Cases) || s.Failures != f || s.Skipped != sk {
			t.Errorf("suite %s says %d/%d/%d tests/failures/skipped, has %d/%d/%d", s.Name, s.Tests, s.Failures, s.Skipped, len(s.Cases), f, sk)
		}
		if _, err := strconv.ParseFloat(s.Time, 64); err != nil {
			t.Errorf("suite %s: time %q: %v", s.Name, s.Time, err)
		}
		tests += s.Tests
		failures += f
		skipped += sk
	}
	if doc.Name != xmlText(name) || doc.Tests != tests || doc.Failures != failures || doc.Skipped != skipped {
		t.Errorf("testsuites %q says %d/%d/%d, suites add up to %d/%d/%d", doc.Name, doc.Tests, doc.Failures, doc.Skipped, tests, failures, skipped)
	}
	return doc
}

func findCase(doc xSuites, suiteSuffix, name string) *xCase {
	for _, s := range doc.Suites {
		if !strings.HasSuffix(s.Name, suiteSuffix) {
			continue
		}
		for i := range s.Cases {
			if s.Cases[i].Name == name {
				return &s.Cases[i]
			}
		}
	}
	return nil
}

func TestJUnitGoTest(t *testing.T) {
	r, err := ParseGoTest(bytes.NewReader(realGoTestJSON(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeJUnit(t, r, "ci: go test")
	if doc.Name != "ci: go test" || len(doc.Suites) != 4 || doc.Tests != 10 || doc.Failures != 4 || doc.Skipped != 2 {
		t.Errorf("testsuites %q: %d suites, %d/%d/%d tests/failures/skipped; want 4 suites, 10/4/2", doc.Name, len(doc.Suites), doc.Tests, doc.Failures, doc.Skipped)
	}
	fail := findCase(doc, "/mixed", "TestFail")
	if fail == nil || fail.Failure == nil || fail.Classname != "example.com/fixture/mixed" {
		t.Fatalf("TestFail = %+v, want a failure in class example.com/fixture/mixed", fail)
	}
	// \x01 is not allowed in XML and is gone; \xff is not UTF-8 and is U+FFFD.
	if !strings.Contains(fail.Failure.Body, "boom:  <&> \uFFFD") {
		t.Errorf("TestFail failure body %q, want the test's output, made valid", fail.Failure.Body)
	}
	if skip := findCase(doc, "/mixed", "TestSub/skip"); skip == nil || skip.Skipped == nil || !strings.Contains(skip.SystemOut, "sub skipped") {
		t.Errorf("TestSub/skip = %+v, want skipped with its output", skip)
	}
	if pass := findCase(doc, "/mixed", "TestPass"); pass == nil || pass.Failure != nil || pass.Skipped != nil || !strings.Contains(pass.SystemOut, "all good") {
		t.Errorf("TestPass = %+v, want passed with its output", pass)
	}
	build := findCase(doc, "/broken", packageCase)
	if build == nil || build.Failure == nil || !strings.Contains(build.Failure.Message, "build failed") || !strings.Contains(build.Failure.Body, "cannot use") {
		t.Errorf("broken's %s = %+v, want the build failure", packageCase, build)
	}
}

func TestJUnitTAP(t *testing.T) {
	r, err := ParseTAP(strings.NewReader("1..3\nok 1 - a\nnot ok 2 - b\n  ---\n  message: wrong\n  ...\nok 3 - c # SKIP later\n"), Options{Name: "shell tests"})
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeJUnit(t, r, "tap")
	if len(doc.Suites) != 1 || doc.Suites[0].Name != "shell tests" || doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 {
		t.Fatalf("got %+v", doc)
	}
	if b := findCase(doc, "shell tests", "b"); b == nil || b.Failure == nil || b.Failure.Message != "wrong" {
		t.Errorf("b = %+v, want a failure with the message", b)
	}
	if c := findCase(doc, "shell tests", "c"); c == nil || c.Skipped == nil || c.Skipped.Message != "later" {
		t.Errorf("c = %+v, want skipped with the reason", c)
	}
}

// TestJUnitAnyBytes: every byte value, broken UTF-8 and XML's own
// metacharacters in names, messages and output still give a document that
// decodes, with the text as xmlText made it.
func TestJUnitAnyBytes(t *testing.T) {
	var all []byte
	for b := range 256 {
		all = append(all, byte(b))
	}
	nasty := []string{
		string(all),
		"\xed\xa0\x80 surrogate \xef\xbf\xbe U+FFFE \xf4\x90\x80\x80 too big",
		`]]> <![CDATA[ x ]]> "quoted" 'single' &amp; <tag attr="v">`,
		"line\r\nbreaks\rand\ttabs\n",
	}
	for i, s := range nasty {
		r := &Report{Packages: []Package{{
			Name: s, Status: StatusFail, Message: s, Output: s,
			Fail: 1, Pass: 1, Skip: 1,
			Tests: []Test{
				{Name: s, Status: StatusFail, Message: s, Output: s},
				{Name: s + "2", Status: StatusPass, Output: s},
				{Name: s + "3", Status: StatusSkip, Message: s, Output: s},
			},
		}}}
		doc := decodeJUnit(t, r, s)
		want := xmlText(s)
		for _, r := range want {
			if !xmlChar(r) {
				t.Errorf("case %d: xmlText left %U", i, r)
			}
		}
		if !utf8.ValidString(want) {
			t.Errorf("case %d: xmlText(%q) = %q, not UTF-8", i, s, want)
		}
		c := doc.Suites[0].Cases
		if doc.Name != want || doc.Suites[0].Name != want || len(c) != 3 || c[0].Name != want || c[0].Classname != want ||
			c[0].Failure.Message != want || c[0].Failure.Body != want || c[1].SystemOut != want || c[2].Skipped.Message != want {
			t.Errorf("case %d: decoded %+v, want every text %q", i, doc, want)
		}
	}
	if got, want := xmlText("a\x00b\x1fc\xffd\U0001F600"), "abc\uFFFDd\U0001F600"; got != want {
		t.Errorf("xmlText = %q, want %q", got, want)
	}
}

type failingWriter struct{ n int }

var errFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errFull
	}
	return len(p), nil
}

func TestJUnitWriteError(t *testing.T) {
	r := &Report{Packages: []Package{{Name: "p", Status: StatusPass, Pass: 1, Tests: []Test{{Name: "T", Status: StatusPass}}}}}
	for _, n := range []int{0, 50, 200} {
		if err := r.WriteJUnit(&failingWriter{n: n}, "s"); !errors.Is(err, errFull) {
			t.Errorf("WriteJUnit to a writer failing after %d bytes = %v, want errFull", n, err)
		}
	}
}

// FuzzGoTest and FuzzTAP: any bytes parse without panicking, within the
// bounds, to a report whose counts cover its listed tests and whose JUnit
// XML decodes.
func FuzzGoTest(f *testing.F) {
	f.Add([]byte(`{"Action":"run","Package":"p","Test":"T"}` + "\n" + `{"Action":"fail","Package":"p","Test":"T","Elapsed":0.5}` + "\n"))
	f.Add([]byte(`{"ImportPath":"p [p.test]","Action":"build-output","Output":"# p\n"}` + "\n" + `{"Action":"fail","Package":"p","FailedBuild":"p [p.test]"}`))
	f.Add([]byte("not json\n{\"Action\":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseGoTest(bytes.NewReader(data), Options{MaxTests: 20, MaxOutput: 256, MaxPackages: 5})
		checkFuzzed(t, r, err)
	})
}

func FuzzTAP(f *testing.F) {
	f.Add([]byte("TAP version 13\n1..2\nok 1 - a\nnot ok 2 - b # TODO x\n  ---\n  message: m\n  ...\n"))
	f.Add([]byte("1..1\n# Subtest: s\n    ok 1 - c\n    1..1\nok 1 - s\nBail out! no\n"))
	f.Add([]byte("ok\r\n1..0 # skip\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseTAP(bytes.NewReader(data), Options{MaxTests: 20, MaxOutput: 256})
		checkFuzzed(t, r, err)
	})
}

func checkFuzzed(t *testing.T, r *Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	listed := 0
	for _, p := range r.Packages {
		var pass, fail, skip int
		for _, tt := range p.Tests {
			switch tt.Status {
			case StatusPass:
				pass++
			case StatusFail:
				fail++
			case StatusSkip:
				skip++
			default:
				t.Errorf("test %q has status %q", tt.Name, tt.Status)
			}
			if len(tt.Output) > 256+len(marker(tt.Output)) {
				t.Errorf("test %q kept %d bytes of output, over the bound", tt.Name, len(tt.Output))
			}
		}
		if pass > p.Pass || fail > p.Fail || skip > p.Skip {
			t.Errorf("package %q counts %d/%d/%d, lists %d/%d/%d", p.Name, p.Pass, p.Fail, p.Skip, pass, fail, skip)
		}
		switch p.Status {
		case StatusPass, StatusFail, StatusSkip:
		default:
			t.Errorf("package %q has status %q", p.Name, p.Status)
		}
		listed += len(p.Tests)
	}
	if listed > 20 || len(r.Packages) > 5 {
		t.Errorf("listed %d tests in %d packages, over the bounds", listed, len(r.Packages))
	}
	decodeJUnit(t, r, "fuzz")
	_ = r.Summary()
}
