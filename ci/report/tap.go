package report

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxTAPDepth bounds the nesting of TAP subtests; deeper lines are output.
const maxTAPDepth = 16

// tapParser is the state of one TAP parse.
type tapParser struct {
	*parser
	ps     *pkgState
	levels []tapLevel // by depth; levels[0] is the top-level stream

	last     *testState // the last test line's test, for comments after it
	lastLine bool       // the previous line was a test line: "---" may start its YAML
	yaml     *tapYAML   // the diagnostics block being read
	bailed   bool
}

type tapLevel struct {
	planned int // -1 until a plan
	skipAll bool
	count   int // test lines at this depth
	// pending holds, for a depth > 0, the subtrees of the tests that wait
	// for their parent's test line: each a test followed by its own
	// descendants, named relative to it.
	pending [][]*testState
	subName string // of the last "# Subtest: NAME" at this depth
}

type tapYAML struct {
	t     *testState // nil when the test is not listed
	lines []string
}

// ParseTAP parses TAP version 13 or 14 (see the package doc) into a Report
// with one package, named opt.Name. Lines it does not understand are
// output, never an error. The error is the reader's, returned with the
// report of what was read before it.
func ParseTAP(r io.Reader, opt Options) (*Report, error) {
	tp := &tapParser{parser: newParser(opt)}
	tp.ps = tp.pkg(tp.opt.Name)
	tp.levels = []tapLevel{{planned: -1}}
	err := eachLine(r, func(line []byte, cut bool) {
		if cut {
			tp.truncated = true
		}
		tp.line(string(line))
	})
	tp.finish()
	rep := tp.report()
	if err != nil {
		return rep, fmt.Errorf("report: reading TAP: %w", err)
	}
	return rep, nil
}

func (tp *tapParser) line(line string) {
	if tp.yaml != nil {
		trimmed := strings.TrimSpace(line)
		if trimmed == "..." {
			tp.yaml.lines = append(tp.yaml.lines, line)
			tp.endYAML()
			return
		}
		if trimmed == "" || line[0] == ' ' || line[0] == '\t' {
			tp.yaml.lines = append(tp.yaml.lines, line)
			return
		}
		// An unindented line ends a block that lost its "...".
		tp.endYAML()
	}
	if tp.bailed {
		tp.ps.out.writeString(line + "\n")
		return
	}
	lastLine := tp.lastLine
	tp.lastLine = false

	body := strings.TrimLeft(line, " ")
	spaces := len(line) - len(body)
	depth := spaces / 4
	tapLine := spaces%4 == 0 && depth < maxTAPDepth
	switch {
	case tapLine && isTestLine(body):
		tp.testLine(depth, body, line)
		tp.lastLine = true
	case tapLine && strings.HasPrefix(body, "1.."):
		if !tp.plan(depth, body) {
			tp.other(line)
		}
	case tapLine && strings.HasPrefix(body, "Bail out!"):
		tp.bailed = true
		tp.ps.p.Message = strings.TrimSpace(body)
		tp.ps.out.writeString(line + "\n")
	case tapLine && strings.HasPrefix(body, "# Subtest:"):
		tp.level(depth).subName = strings.TrimSpace(strings.TrimPrefix(body, "# Subtest:"))
	case lastLine && strings.TrimSpace(line) == "---":
		tp.yaml = &tapYAML{t: tp.last, lines: []string{line}}
	default:
		tp.other(line)
	}
}

// other keeps a line that is not a result: with the last test, or the
// package before any test.
func (tp *tapParser) other(line string) {
	if tp.last != nil {
		tp.last.out.writeString(line + "\n")
	} else {
		tp.ps.out.writeString(line + "\n")
	}
}

func (tp *tapParser) level(d int) *tapLevel {
	for len(tp.levels) <= d {
		tp.levels = append(tp.levels, tapLevel{planned: -1})
	}
	return &tp.levels[d]
}

func isTestLine(s string) bool {
	rest, ok := strings.CutPrefix(s, "not ok")
	if !ok {
		rest, ok = strings.CutPrefix(s, "ok")
	}
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '#')
}

// plan reads "1..N" with an optional "# SKIP reason"; false if it is not one.
func (tp *tapParser) plan(depth int, body string) bool {
	spec, comment, _ := strings.Cut(body[3:], "#")
	n, err := strconv.Atoi(strings.TrimSpace(spec))
	if err != nil || n < 0 {
		return false
	}
	lv := tp.level(depth)
	lv.planned = n
	if n == 0 {
		if kind, _ := directive(comment); kind == "skip" {
			lv.skipAll = true
		}
	}
	return true
}

// testLine reads "ok|not ok [N] [- ]description [# SKIP|TODO reason]".
func (tp *tapParser) testLine(depth int, body, line string) {
	failed := strings.HasPrefix(body, "not ok")
	rest := strings.TrimPrefix(strings.TrimPrefix(body, "not ok"), "ok")
	rest = strings.TrimLeft(rest, " \t")
	num := ""
	for i := 0; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		num = rest[:i+1]
	}
	rest = strings.TrimLeft(rest[len(num):], " \t")
	if strings.HasPrefix(rest, "- ") || rest == "-" {
		rest = rest[1:]
	}
	desc, dir := splitDirective(rest)

	lv := tp.level(depth)
	lv.count++
	name := desc
	if name == "" {
		name = lv.subName // "# Subtest: NAME" comes before the child stream, at the parent's depth
	}
	if name == "" {
		if num == "" {
			num = strconv.Itoa(lv.count)
		}
		name = "test " + num
	}
	lv.subName = ""

	status, message := StatusPass, ""
	if failed {
		status = StatusFail
	}
	switch kind, reason := directive(dir); kind {
	case "skip":
		status, message = StatusSkip, cmp.Or(reason, "skipped")
	case "todo":
		message = strings.TrimSpace("TODO " + reason)
		if failed {
			status = StatusSkip
		}
	}
	count(tp.ps, status)

	// The child streams below this depth belong to this test.
	var children [][]*testState
	for d := depth + 1; d < len(tp.levels); d++ {
		children = append(children, tp.levels[d].pending...)
	}
	tp.levels = tp.levels[:depth+1]

	tree := []*testState{}
	ts := tp.newTest(name)
	if ts != nil {
		ts.t.Status = status
		ts.t.Message = message
		ts.done = true
		ts.out.writeString(line + "\n")
		tree = append(tree, ts)
	}
	tp.last = ts
	for _, sub := range children {
		for _, c := range sub {
			c.t.Name = name + "/" + c.t.Name
			tree = append(tree, c)
		}
	}
	if depth == 0 {
		tp.ps.tests = append(tp.ps.tests, tree...)
	} else {
		lv.pending = append(lv.pending, tree)
	}
}

// newTest makes a test if there is room, nil if there is not. TAP names
// need not be unique, so tests are not looked up by name.
func (tp *tapParser) newTest(name string) *testState {
	if tp.tests >= tp.opt.MaxTests {
		tp.ps.truncated = true
		return nil
	}
	tp.tests++
	return &testState{t: Test{Name: name}, out: tp.newOutput()}
}

// splitDirective splits at the first "#" not escaped by a backslash, and
// unescapes the description.
func splitDirective(s string) (desc, dir string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == '#' || s[i+1] == '\\'):
			i++
			b.WriteByte(s[i])
		case s[i] == '#':
			return strings.TrimSpace(b.String()), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return strings.TrimSpace(b.String()), ""
}

// directive returns "skip" or "todo" and the reason of a directive ("SKIP
// reason", "skipped: reason", "TODO reason"), or "" for a plain comment.
func directive(s string) (kind, reason string) {
	s = strings.TrimSpace(s)
	word, rest, _ := strings.Cut(s, " ")
	lower := strings.ToLower(strings.TrimRight(word, ":"))
	switch {
	case strings.HasPrefix(lower, "skip"):
		kind = "skip"
	case lower == "todo":
		kind = "todo"
	default:
		return "", ""
	}
	return kind, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
}

// endYAML reads the keys it knows from the block (message, duration_ms) and
// keeps the block as the test's output.
func (tp *tapParser) endYAML() {
	y := tp.yaml
	tp.yaml = nil
	if y.t == nil {
		return
	}
	for _, l := range y.lines {
		y.t.out.writeString(l + "\n")
	}
	keys := yamlKeys(y.lines[1:])
	if v, ok := keys["duration_ms"]; ok {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
			y.t.t.Elapsed = time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v, ok := keys["message"]; ok && v != "" && y.t.t.Message == "" {
		y.t.t.Message = v
	}
}

// yamlKeys returns the top-level scalar keys of a YAML block (its lines
// without the "---"): plain, quoted, and "|" or ">" block scalars, the last
// joined with newlines. It is no YAML parser; it reads what TAP producers
// write.
func yamlKeys(lines []string) map[string]string {
	keys := map[string]string{}
	base := -1
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		body := strings.TrimLeft(l, " ")
		if body == "" || body == "..." {
			continue
		}
		indent := len(l) - len(body)
		if base < 0 {
			base = indent
		}
		if indent != base {
			continue
		}
		k, v, ok := strings.Cut(body, ":")
		if !ok || strings.ContainsAny(k, " \t\"'") {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">"):
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				nb := strings.TrimLeft(next, " ")
				if nb != "" && len(next)-len(nb) <= base {
					break
				}
				block = append(block, strings.TrimSpace(next))
				i++
			}
			sep := "\n"
			if v[0] == '>' {
				sep = " "
			}
			v = strings.TrimSpace(strings.Join(block, sep))
		case strings.HasPrefix(v, "\""):
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		}
		keys[k] = v
	}
	return keys
}

// finish settles the package: its status and what failed it.
func (tp *tapParser) finish() {
	if tp.yaml != nil {
		tp.endYAML()
	}
	// Subtests whose parent line never came are listed as they are.
	for d := len(tp.levels) - 1; d > 0; d-- {
		for _, sub := range tp.levels[d].pending {
			tp.ps.tests = append(tp.ps.tests, sub...)
		}
	}
	ps := tp.ps
	top := tp.levels[0]
	for _, ts := range ps.tests {
		if !strings.Contains(ts.t.Name, "/") {
			ps.p.Elapsed += ts.t.Elapsed
		}
	}
	ps.done = true
	switch {
	case tp.bailed:
		ps.p.Status = StatusFail
	case top.planned < 0:
		ps.p.Status = StatusFail
		ps.p.Message = fmt.Sprintf("no plan (%s ran)", plural(top.count, "test"))
	case top.planned != top.count:
		ps.p.Status = StatusFail
		ps.p.Message = fmt.Sprintf("planned %d tests, %d ran", top.planned, top.count)
	case ps.p.Fail > 0:
		ps.p.Status = StatusFail
	case top.skipAll:
		ps.p.Status = StatusSkip
	default:
		ps.p.Status = StatusPass
	}
}
