package ci

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadPattern is returned by NewFilter for a malformed input pattern.
var ErrBadPattern = errors.New("ci: bad pattern")

// Match reports whether the slash-separated path rel matches pattern. The
// syntax is path.Match's, with one addition and one difference:
//
//   - "**" as a whole path element matches any number of elements, none
//     included: "**/*.go" matches "a.go" and "x/y/a.go"; "a/**" matches
//     "a", "a/b" and "a/b/c". Elsewhere ("a**") it is the same as "*".
//   - A character class never matches "/" (path.Match lets "[^a]"
//     match it): each element of the pattern matches one element of rel.
//
// "*" matches any run of characters within an element, dot-files included;
// "?" one character; "[...]" one of a class ("[^...]" negated, "a-z"
// ranges, "\" escapes); "\c" the character c. A malformed pattern matches
// nothing.
func Match(pattern, rel string) bool {
	p, err := compileGlob(pattern)
	if err != nil {
		return false
	}
	return p.match(rel)
}

// A globPattern is a compiled glob: its elements, split at the "/" outside
// classes.
type globPattern struct {
	elems  []globElem
	hasDbl bool // some element is "**"
}

// A globElem is one path element of a pattern: a "**", or a sequence of tokens.
type globElem struct {
	dbl  bool
	toks []globToken
}

type globTokenKind uint8

const (
	globByte  globTokenKind = iota // one literal byte b
	globAny                        // "?": one rune
	globStar                       // "*": any run of bytes
	globClass                      // "[...]": one rune in (or, negated, not in) ranges
)

type globToken struct {
	kind    globTokenKind
	b       byte
	negated bool
	ranges  []globRange
}

type globRange struct{ lo, hi rune }

// compileGlob parses s. Its errors (which do not repeat s) follow
// path.Match's syntax rules, so that a pattern without "**" is malformed
// exactly when path.Match says so.
func compileGlob(s string) (*globPattern, error) {
	p := &globPattern{}
	var cur globElem
	end := func() {
		// Only an element of exactly two unescaped stars is "**": "\*\*"
		// is two literal stars, "***" one star.
		if len(cur.toks) == 2 && cur.toks[0].kind == globStar && cur.toks[1].kind == globStar {
			cur = globElem{dbl: true}
			p.hasDbl = true
		}
		p.elems = append(p.elems, cur)
		cur = globElem{}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '/':
			end()
			i++
		case '*':
			cur.toks = append(cur.toks, globToken{kind: globStar})
			i++
		case '?':
			cur.toks = append(cur.toks, globToken{kind: globAny})
			i++
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("trailing backslash")
			}
			if s[i+1] == '/' {
				end()
			} else {
				cur.toks = append(cur.toks, globToken{kind: globByte, b: s[i+1]})
			}
			i += 2
		case '[':
			t, n, err := parseGlobClass(s[i:])
			if err != nil {
				return nil, err
			}
			cur.toks = append(cur.toks, t)
			i += n
		default:
			cur.toks = append(cur.toks, globToken{kind: globByte, b: c})
			i++
		}
	}
	end()
	for i := range p.elems {
		p.elems[i].toks = squashStars(p.elems[i].toks)
	}
	return p, nil
}

// squashStars replaces runs of "*" by one: "a**b" is "a*b".
func squashStars(toks []globToken) []globToken {
	out := toks[:0]
	for _, t := range toks {
		if t.kind == globStar && len(out) > 0 && out[len(out)-1].kind == globStar {
			continue
		}
		out = append(out, t)
	}
	return out
}

// parseGlobClass parses the class at the start of s (s[0] == '['), returning
// the token and the bytes it took. The rules are path.Match's: at least one
// range; a range's ends may not be a bare "-" or "]"; "\" escapes; "^"
// first negates.
func parseGlobClass(s string) (globToken, int, error) {
	t := globToken{kind: globClass}
	i := 1
	if i < len(s) && s[i] == '^' {
		t.negated = true
		i++
	}
	for {
		if i < len(s) && s[i] == ']' && len(t.ranges) > 0 {
			return t, i + 1, nil
		}
		lo, n, err := globClassChar(s[i:])
		if err != nil {
			return t, 0, err
		}
		i += n
		hi := lo
		if s[i] == '-' {
			if hi, n, err = globClassChar(s[i+1:]); err != nil {
				return t, 0, err
			}
			i += 1 + n
		}
		t.ranges = append(t.ranges, globRange{lo, hi})
	}
}

// globClassChar reads one possibly escaped character of a class. Like
// path.Match it fails when nothing follows it: a class must be closed.
func globClassChar(s string) (rune, int, error) {
	if len(s) == 0 {
		return 0, 0, errors.New("unclosed character class")
	}
	if s[0] == '-' || s[0] == ']' {
		return 0, 0, fmt.Errorf("%q in a character class must be escaped", s[0])
	}
	n := 0
	if s[0] == '\\' {
		n = 1
		if len(s) == 1 {
			return 0, 0, errors.New("unclosed character class")
		}
	}
	r, size := utf8.DecodeRuneInString(s[n:])
	if r == utf8.RuneError && size == 1 {
		return 0, 0, errors.New("invalid UTF-8 in a character class")
	}
	n += size
	if n == len(s) {
		return 0, 0, errors.New("unclosed character class")
	}
	return r, n, nil
}

// match reports whether rel matches p. It runs the pattern's elements as
// a nondeterministic automaton over rel's elements: state i means elems[:i]
// matched what was read; a "**" state may stay on each element.
func (p *globPattern) match(rel string) bool {
	states := p.start()
	for seg := range strings.SplitSeq(rel, "/") {
		states = p.step(states, seg)
		if !anyState(states) {
			return false
		}
	}
	return states[len(p.elems)]
}

// matchPrefix reports whether p may match some path below the directory
// rel: a path rel/x/... with at least one more element. It may say yes
// when no such path can exist (a class that matches nothing), never no
// when one does.
func (p *globPattern) matchPrefix(rel string) bool {
	states := p.start()
	if rel != "" {
		for seg := range strings.SplitSeq(rel, "/") {
			states = p.step(states, seg)
		}
	}
	// Some element left to match what lies below rel.
	for i := range len(p.elems) {
		if states[i] {
			return true
		}
	}
	return false
}

func (p *globPattern) start() []bool {
	s := make([]bool, len(p.elems)+1)
	s[0] = true
	p.closure(s)
	return s
}

// closure lets each "**" match no element.
func (p *globPattern) closure(s []bool) {
	for i, e := range p.elems {
		if s[i] && e.dbl {
			s[i+1] = true
		}
	}
}

func (p *globPattern) step(s []bool, seg string) []bool {
	next := make([]bool, len(s))
	for i, e := range p.elems {
		if !s[i] {
			continue
		}
		if e.dbl {
			next[i] = true
		} else if matchGlobElem(e.toks, seg) {
			next[i+1] = true
		}
	}
	p.closure(next)
	return next
}

func anyState(s []bool) bool {
	for _, v := range s {
		if v {
			return true
		}
	}
	return false
}

// matchGlobElem reports whether the element tokens toks match all of seg. It
// backtracks only to the last "*" seen: each other token consumes a width
// fixed by where it starts, so the leftmost placement after a star is
// never worse than a later one.
func matchGlobElem(toks []globToken, seg string) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(toks) && toks[ti].kind == globStar {
			starT, starS = ti, si
			ti++
			continue
		}
		if ti == len(toks) && si == len(seg) {
			return true
		}
		if ti < len(toks) && si < len(seg) {
			if n, ok := matchGlobToken(&toks[ti], seg[si:]); ok {
				ti++
				si += n
				continue
			}
		}
		if starT < 0 || starS >= len(seg) {
			return false
		}
		// Let the last star take one more byte and try again after it.
		starS++
		ti, si = starT+1, starS
	}
}

// matchGlobToken matches one non-star token at the start of s (non-empty),
// returning the bytes it took.
func matchGlobToken(t *globToken, s string) (int, bool) {
	switch t.kind {
	case globByte:
		return 1, s[0] == t.b
	case globAny:
		_, n := utf8.DecodeRuneInString(s)
		return n, true
	default: // tokClass
		r, n := utf8.DecodeRuneInString(s)
		in := false
		for _, rg := range t.ranges {
			if rg.lo <= r && r <= rg.hi {
				in = true
				break
			}
		}
		return n, in != t.negated
	}
}

// Filter decides which paths of a workspace a step's inputs take in. It
// is immutable once made and safe for concurrent use.
//
// A path is included when it matches an include pattern and no exclusion
// ("!pattern"); see Include for directories. A pattern without "**" that
// matches a directory includes everything under it (".github/workflows"),
// and an exclusion that matches a directory excludes everything under it
// ("!**/testdata"). Paths with an element ".git" are never included.
type Filter struct {
	include []*globPattern
	exclude []*globPattern
	noDbl   []bool // of include: the pattern has no "**"
}

// DefaultInput is a step's one input pattern when it gives none: the
// whole workspace (but .git).
const DefaultInput = "**"

// NewFilter compiles patterns: slash-separated globs (see Match) relative
// to the workspace root, each an inclusion or, with a leading "!", an
// exclusion. Patterns must be clean: no leading or trailing "/", no empty,
// "." or ".." elements. With no inclusion (patterns empty, or only
// exclusions), everything is included but what the exclusions take out,
// as if the list began with "**".
func NewFilter(patterns []string) (*Filter, error) {
	f := &Filter{}
	for _, s := range patterns {
		neg := strings.HasPrefix(s, "!")
		body := strings.TrimPrefix(s, "!")
		if err := checkPatternPath(body); err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrBadPattern, s, err)
		}
		p, err := compileGlob(body)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrBadPattern, s, err)
		}
		if neg {
			f.exclude = append(f.exclude, p)
		} else {
			f.include = append(f.include, p)
			f.noDbl = append(f.noDbl, !p.hasDbl)
		}
	}
	if len(f.include) == 0 {
		p, _ := compileGlob("**")
		f.include = []*globPattern{p}
		f.noDbl = []bool{false}
	}
	return f, nil
}

// checkPatternPath checks that a pattern is a clean relative path.
func checkPatternPath(s string) error {
	switch {
	case s == "":
		return errors.New("empty pattern")
	case strings.HasPrefix(s, "/"):
		return errors.New("leading / (patterns are relative to the workspace root)")
	case strings.HasSuffix(s, "/"):
		return errors.New("trailing / (a directory's own name takes in what is under it)")
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return errors.New("control character in pattern")
	}
	for e := range strings.SplitSeq(s, "/") {
		switch e {
		case "":
			return errors.New("empty path element (//)")
		case ".", "..":
			return fmt.Errorf("%q element (patterns are clean paths inside the workspace)", e)
		}
	}
	return nil
}

// Include reports whether the workspace path rel (slash-separated,
// relative to the root, clean) is taken in. For a directory (isDir) it
// reports whether some path under it may be, so that a walk can skip the
// directories it says no to; it may say yes for a directory under which
// nothing turns out to be included. The root ("" or ".") is always
// walked.
func (f *Filter) Include(rel string, isDir bool) bool {
	if rel == "" || rel == "." {
		return isDir
	}
	if hasGit(rel) || f.excluded(rel) {
		return false
	}
	for i, p := range f.include {
		if p.match(rel) {
			if !isDir || f.noDbl[i] {
				return true
			}
		}
		if f.noDbl[i] && matchesAncestor(p, rel) {
			return true
		}
		if isDir && p.matchPrefix(rel) {
			return true
		}
	}
	return false
}

// excluded reports whether an exclusion matches rel or a directory above
// it.
func (f *Filter) excluded(rel string) bool {
	for _, p := range f.exclude {
		if p.match(rel) || matchesAncestor(p, rel) {
			return true
		}
	}
	return false
}

// matchesAncestor reports whether p matches a proper ancestor of rel.
func matchesAncestor(p *globPattern, rel string) bool {
	for i := range len(rel) {
		if rel[i] == '/' && p.match(rel[:i]) {
			return true
		}
	}
	return false
}

func hasGit(rel string) bool {
	for e := range strings.SplitSeq(rel, "/") {
		if e == ".git" {
			return true
		}
	}
	return false
}
