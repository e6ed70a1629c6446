package report

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// The JUnit XML elements, as Jenkins, GitLab and GitHub read them.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr,omitempty"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Cases     []junitCase `xml:"testcase"`
		SystemOut *junitText  `xml:"system-out"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitMessage `xml:"failure"`
		Skipped   *junitMessage `xml:"skipped"`
		SystemOut *junitText    `xml:"system-out"`
	}
	junitMessage struct {
		Message string `xml:"message,attr,omitempty"`
		Body    string `xml:",innerxml"` // escaped by textXML
	}
	// junitText is element text escaped by textXML, so that newlines stay
	// newlines for people reading the file (encoding/xml writes &#xA;).
	junitText struct {
		Body string `xml:",innerxml"`
	}
)

// packageCase is the name of the testcase that carries the failure of a
// package that failed without a failing test.
const packageCase = "(package)"

// WriteJUnit writes r as a JUnit XML document whose <testsuites> is named
// suiteName (see the package doc). A failed test's output is the body of
// its <failure>; other tests' output is their <system-out>; a package's
// own output is its suite's <system-out>. The error is w's.
func (r *Report) WriteJUnit(w io.Writer, suiteName string) error {
	doc := junitSuites{Name: xmlText(suiteName)}
	var total time.Duration
	for _, p := range r.Packages {
		s := junitSuite{Name: xmlText(p.Name), Time: secs(p.Elapsed)}
		class := xmlText(p.Name)
		failed := false
		for _, t := range p.Tests {
			c := junitCase{Name: xmlText(t.Name), Classname: class, Time: secs(t.Elapsed)}
			out := textXML(t.Output)
			switch t.Status {
			case StatusFail:
				failed = true
				s.Failures++
				c.Failure = &junitMessage{Message: xmlText(cmp.Or(t.Message, "failed")), Body: out}
			case StatusSkip:
				s.Skipped++
				c.Skipped = &junitMessage{Message: xmlText(cmp.Or(t.Message, "skipped"))}
				c.SystemOut = text(out)
			default:
				c.SystemOut = text(out)
			}
			s.Cases = append(s.Cases, c)
		}
		note := ""
		if listed, all := len(p.Tests), p.Pass+p.Fail+p.Skip; listed < all {
			note = fmt.Sprintf("[report truncated: %d of %d tests listed]\n", listed, all)
		}
		if p.Status == StatusFail && !failed {
			s.Failures++
			s.Cases = append(s.Cases, junitCase{
				Name: packageCase, Classname: class, Time: secs(p.Elapsed),
				Failure: &junitMessage{Message: xmlText(cmp.Or(p.Message, "package failed")), Body: textXML(p.Output)},
			})
			s.SystemOut = text(textXML(note))
		} else {
			s.SystemOut = text(textXML(p.Output + note))
		}
		s.Tests = len(s.Cases)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Skipped += s.Skipped
		total += p.Elapsed
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = secs(total)

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("report: writing JUnit XML: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("report: writing JUnit XML: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("report: writing JUnit XML: %w", err)
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// text returns escaped as element text, nil (no element) if empty.
func text(escaped string) *junitText {
	if escaped == "" {
		return nil
	}
	return &junitText{Body: escaped}
}

// textXML returns s made valid (xmlText) and escaped as element text: "&",
// "<" and ">" as entities, "\r" as a character reference (a parser would
// turn a raw one into "\n"), everything else as it is.
func textXML(s string) string {
	return textEscaper.Replace(xmlText(s))
}

var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")

// xmlText returns s with each byte that is not UTF-8 replaced by U+FFFD and
// each character that XML 1.0 does not allow removed.
func xmlText(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case xmlChar(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// xmlChar reports whether XML 1.0 allows r: #x9 | #xA | #xD | [#x20-#xD7FF]
// | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}
