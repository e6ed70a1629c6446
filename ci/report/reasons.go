package report

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// maxReason bounds the text kept as a test's reason (Test.Message taken
// from its output).
const maxReason = 200

// logLine matches a line the testing package logs for t.Log, t.Skip and
// t.Error: indented, "file_test.go:12: " then the message.
// (Compiled at first use: package init runs at every context's start.)
var logLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s+[\w.\-]+\.go:\d+: (.*)$`) })

// logMessage returns the message of a test's log line, cut to maxReason
// bytes, or "" for a line that is not one.
func logMessage(line string) string {
	m := logLine().FindStringSubmatch(strings.TrimRight(line, "\r\n"))
	if m == nil {
		return ""
	}
	return cut(strings.TrimSpace(m[1]), maxReason)
}

// Lack names what wasip1 lacks when line is Go's wasip1 error for it,
// and "" otherwise. Go's port says so in its own words: ENOSYS prints as
// "Not implemented on wasip1" after the operation ("fork/exec /bin/true:
// Not implemented on wasip1"), os.Executable as "Executable not
// implemented for wasip1". Its network is in-process (a program's own
// listeners and dialers reach each other, nothing else): a connection
// out fails with the port's capitalised errno text ("connect: Connection
// refused", where Linux says "connection refused"), a lookup with
// "Connection reset by peer", and a goroutine waiting on it shows
// net_fake.go in a dump. The names are "subprocesses",
// "pipes", "file ownership", "os.Executable", "outside network", or for another
// call the operation itself ("flock"). Only lines that name wasip1 (or
// its fake network) are recognised, so a report of native tests never
// has one.
func Lack(line string) string {
	const enosys = ": Not implemented on wasip1"
	switch {
	case strings.Contains(line, enosys):
		op := line[:strings.Index(line, enosys)]
		if i := strings.LastIndex(op, ": "); i >= 0 {
			op = op[i+2:]
		}
		op, _, _ = strings.Cut(strings.TrimSpace(op), " ")
		switch op {
		case "fork/exec", "exec", "wait", "wait4":
			return "subprocesses"
		case "pipe", "pipe2":
			return "pipes"
		case "chown", "lchown", "fchown":
			return "file ownership"
		case "":
			return "a system call"
		}
		return cut(op, 40)
	case strings.Contains(line, "Executable not implemented for wasip1"):
		return "os.Executable"
	case strings.Contains(line, "connect: Connection refused"),
		strings.Contains(line, "lookup ") && strings.Contains(line, ": Connection reset by peer"),
		strings.Contains(line, "/net_fake.go:"):
		return "outside network"
	}
	return ""
}

// A Tally counts the listed tests that share a reason.
type Tally struct {
	Reason string
	Count  int
	First  string // "package TestName" of the first of them
}

// Skips counts the listed skipped tests by their Message ("" when none
// was given), most common first.
func (r *Report) Skips() []Tally {
	return r.tally(func(t *Test) (string, bool) { return t.Message, t.Status == StatusSkip })
}

// Lacking counts the listed failed tests by what wasip1 lacks that they
// failed on (Test.Lacks), most common first; tests that failed for
// another reason are not in it.
func (r *Report) Lacking() []Tally {
	return r.tally(func(t *Test) (string, bool) { return t.Lacks, t.Status == StatusFail && t.Lacks != "" })
}

// tally counts the tests for which key says true by the reason it gives,
// most common first, ties in the order they were first seen.
func (r *Report) tally(key func(*Test) (string, bool)) []Tally {
	var out []Tally
	at := map[string]int{}
	for _, p := range r.Packages {
		for i := range p.Tests {
			reason, ok := key(&p.Tests[i])
			if !ok {
				continue
			}
			j, seen := at[reason]
			if !seen {
				j = len(out)
				at[reason] = j
				out = append(out, Tally{Reason: reason, First: p.Name + " " + p.Tests[i].Name})
			}
			out[j].Count++
		}
	}
	slices.SortStableFunc(out, func(a, b Tally) int { return cmp.Compare(b.Count, a.Count) })
	return out
}

// cut returns s cut to at most n bytes at a rune boundary, "…" added when
// it was cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
