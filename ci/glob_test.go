package ci

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, rel string
		want         bool
	}{
		{"a.go", "a.go", true},
		{"a.go", "b/a.go", false},
		{"*.go", "a.go", true},
		{"*.go", ".hidden.go", true},
		{"*.go", "b/a.go", false},
		{"*", "", true},
		{"*", "a/b", false},
		{"?", "é", true},
		{"??", "é", false},
		{"a?c", "a/c", false},
		{"[abc].txt", "b.txt", true},
		{"[^abc].txt", "d.txt", true},
		{"[^abc].txt", "a.txt", false},
		{"a[^x]b", "a/b", false}, // path.Match says true: classes never match "/" here
		{"a[/]b", "a/b", false},
		{"[a-c][0-9]", "b7", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\/b`, "a/b", true},
		{"[", "[", false}, // malformed
		{`a\`, `a\`, false},
		{"**", "", true},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/*.go", "a.go", true},
		{"**/*.go", "x/y/a.go", true},
		{"**/*.go", "x/y/a.txt", false},
		{"a/**", "a", true},
		{"a/**", "a/b/c", true},
		{"a/**", "b/a", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"**/testdata/**", "x/testdata/y/z", true},
		{"**/testdata/**", "testdata", true},
		{"**/**/a", "a", true},
		{"**/**/a", "x/y/z/a", true},
		{"a**b", "axxb", true}, // "**" inside an element is "*"
		{"a**b", "ax/xb", false},
		{`\*\*`, "**", true},
		{`\*\*`, "ab", false},
		{"***", "abc", true},
		{"***", "a/b", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/d/c", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.rel); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.rel, got, tt.want)
		}
	}
}

func TestNewFilterErrors(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // in the error
	}{
		{"", "empty pattern"},
		{"!", "empty pattern"},
		{"/abs", "leading /"},
		{"dir/", "trailing /"},
		{"a//b", "empty path element"},
		{"./a", `"." element`},
		{"a/../b", `".." element`},
		{"[a", "unclosed character class"},
		{"[]a]", "must be escaped"},
		{"[a-]", "must be escaped"},
		{`a\`, "trailing backslash"},
		{"a\tb", "control character"},
	}
	for _, tt := range tests {
		_, err := NewFilter([]string{"ok/*.go", tt.pattern})
		if !errors.Is(err, ErrBadPattern) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewFilter(%q) = %v, want ErrBadPattern with %q", tt.pattern, err, tt.want)
		}
	}
}

func TestFilterInclude(t *testing.T) {
	type probe struct {
		rel   string
		isDir bool
		want  bool
	}
	tests := []struct {
		patterns []string
		probes   []probe
	}{
		{nil, []probe{
			{"a.go", false, true},
			{"x/y/z", false, true},
			{"x", true, true},
			{".git", true, false},
			{".git/config", false, false},
			{"sub/.git/HEAD", false, false},
			{".github/workflows/ci.yml", false, true},
			{"", true, true},
		}},
		{[]string{"**/*.go", "!**/testdata/**"}, []probe{
			{"a.go", false, true},
			{"pkg/a.go", false, true},
			{"pkg/a.txt", false, false},
			{"pkg", true, true},
			{"pkg/testdata", true, false},
			{"pkg/testdata/x.go", false, false},
			{"testdata/x.go", false, false},
			{"x.go", true, true}, // a dir named x.go: files under it may match
		}},
		{[]string{".github/workflows"}, []probe{
			{".github", true, true},
			{".github/workflows", true, true},
			{".github/workflows/ci.yml", false, true},
			{".github/workflows/sub/x.yml", false, true},
			{".github/workflows/sub", true, true},
			{".github/other.yml", false, false},
			{".github/other", true, false},
			{"src", true, false},
			{"README.md", false, false},
		}},
		{[]string{"cmd/*/main.go"}, []probe{
			{"cmd", true, true},
			{"cmd/x", true, true},
			{"cmd/x/main.go", false, true},
			{"cmd/x/y", true, false},
			{"cmd/x/y/main.go", false, false},
			{"lib", true, false},
		}},
		{[]string{"*.md"}, []probe{
			{"README.md", false, true},
			{"docs.md", true, true}, // no "**": a matching dir brings all under it
			{"docs.md/x.txt", false, true},
			{"docs", true, false},
			{"docs/a.md", false, false},
		}},
		{[]string{"!vendor", "!*.tmp"}, []probe{ // only exclusions: start from everything
			{"a.go", false, true},
			{"vendor", true, false},
			{"vendor/x/y.go", false, false},
			{"a.tmp", false, false},
			{"d/a.tmp", false, true},
			{"x.tmp/y", false, false}, // an exclusion that matches a dir takes all under it
		}},
		{[]string{"src/**", "!src/gen"}, []probe{
			{"src", true, true},
			{"src/a.go", false, true},
			{"src/gen", true, false},
			{"src/gen/x.go", false, false},
			{"src/general/x.go", false, true},
			{"other", true, false},
		}},
		{[]string{"a/**/z"}, []probe{
			{"a", true, true},
			{"a/b/c", true, true},
			{"a/b/c/z", false, true},
			{"a/z", false, true},
			{"a/b/y", false, false},
			{"b", true, false},
		}},
	}
	for _, tt := range tests {
		f, err := NewFilter(tt.patterns)
		if err != nil {
			t.Fatalf("NewFilter(%q): %v", tt.patterns, err)
		}
		for _, p := range tt.probes {
			if got := f.Include(p.rel, p.isDir); got != p.want {
				t.Errorf("NewFilter(%q).Include(%q, %v) = %v, want %v", tt.patterns, p.rel, p.isDir, got, p.want)
			}
		}
	}
}

// TestFilterPruneSound checks on a tree that a walk which skips the
// directories Include says no to takes in exactly the files Include says
// yes to: pruning loses nothing.
func TestFilterPruneSound(t *testing.T) {
	files := []string{
		"a.go", "README.md", "docs/x.md", "docs/sub/y.md", "pkg/a.go", "pkg/testdata/t.go",
		"pkg/testdata/deep/u.go", ".github/workflows/ci.yml", ".git/config", "cmd/x/main.go",
		"cmd/x/y/main.go", "x.go/inner.txt", "src/gen/g.go", "src/a/b/c/z",
	}
	patternSets := [][]string{
		nil,
		{"**/*.go", "!**/testdata/**"},
		{".github/workflows", "*.md"},
		{"cmd/*/main.go", "docs/**/*.md"},
		{"!pkg", "!**/*.md"},
		{"src/**/z", "x.go"},
		{"[ac]*/**", "!*/testdata"},
	}
	for _, ps := range patternSets {
		f, err := NewFilter(ps)
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			want := f.Include(file, false)
			walked := true
			for i := range len(file) {
				if file[i] == '/' && !f.Include(file[:i], true) {
					walked = false
					break
				}
			}
			if want && !walked {
				t.Errorf("NewFilter(%q): %q is included but a walk prunes a directory above it", ps, file)
			}
		}
	}
}

// FuzzMatch compares Match with path.Match on patterns without "**": the
// same answer, except that a class in Match never matches "/". A pattern
// path.Match calls malformed matches nothing.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*.go", "a.go"},
		{"a/*/c", "a/b/c"},
		{"[a-c]?", "bé"},
		{"[^a]", "/"},
		{`\*`, "*"},
		{"[", "["},
		{"a*b*c", "aXbYc"},
		{"*x", "xxx"},
		{"[\\]]", "]"},
		{"[]", ""},
		{"a/", "a/"},
		{"*/*", "a/b"},
		{"[é-ü]", "ö"},
		{"?", "\xff"},
		{"[^x]", "\xff"},
		{`a\/b`, "a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Contains(pattern, "**") {
			return
		}
		want, err := path.Match(pattern, name)
		got := Match(pattern, name)
		_, cerr := compileGlob(pattern)
		if (err != nil) != (cerr != nil) {
			t.Fatalf("compilePattern(%q) error = %v, path.Match error = %v", pattern, cerr, err)
		}
		if err != nil {
			if got {
				t.Fatalf("Match(%q, %q) = true, want false for a malformed pattern", pattern, name)
			}
			return
		}
		if got && !want {
			t.Fatalf("Match(%q, %q) = true, path.Match = false", pattern, name)
		}
		if got != want && !(strings.Contains(pattern, "[") && strings.Contains(name, "/")) {
			t.Fatalf("Match(%q, %q) = %v, path.Match = %v", pattern, name, got, want)
		}
	})
}

// refMatch is a plain reference for Match on patterns without "[" or "\":
// elements split at "/", "**" tried at every length, other elements
// matched by path.Match (which, on one element, agrees with Match).
func refMatch(pats, segs []string) bool {
	if len(pats) == 0 {
		return len(segs) == 0
	}
	if pats[0] == "**" {
		for k := 0; k <= len(segs); k++ {
			if refMatch(pats[1:], segs[k:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pats[0], segs[0])
	return ok && err == nil && refMatch(pats[1:], segs[1:])
}

// FuzzMatchDoubleStar compares Match on patterns with "**" with refMatch.
func FuzzMatchDoubleStar(f *testing.F) {
	for _, s := range [][2]string{
		{"**/*.go", "a/b/c.go"},
		{"a/**/b", "a/b"},
		{"**", ""},
		{"a/**", "a"},
		{"**/**/x", "x"},
		{"*/**/?", "a/b/c/d"},
		{"a**/b", "ax/b"},
		{"**/a/**/a", "a/a/a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, rel string) {
		if strings.ContainsAny(pattern, `[\`) || len(pattern) > 64 || len(rel) > 64 {
			return
		}
		want := refMatch(strings.Split(pattern, "/"), strings.Split(rel, "/"))
		if got := Match(pattern, rel); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference %v", pattern, rel, got, want)
		}
	})
}

// FuzzFilterPrune checks that pruning is sound: for any patterns and file,
// if the file is included, no directory above it is pruned; and an
// include pattern without "**" that matches a directory takes in the files
// under it.
func FuzzFilterPrune(f *testing.F) {
	f.Add("**/*.go,!**/testdata/**", "a/testdata/b/c.go")
	f.Add(".github/workflows", ".github/workflows/x/ci.yml")
	f.Add("cmd/*/main.go,!cmd/x", "cmd/y/main.go")
	f.Add("a/**/z,*.md", "a/b/c/z")
	f.Fuzz(func(t *testing.T, patterns, file string) {
		if len(patterns) > 100 || checkRelPath(file) != nil {
			return
		}
		ps := strings.Split(patterns, ",")
		filter, err := NewFilter(ps)
		if err != nil {
			return
		}
		if filter.Include(file, false) {
			for i := range len(file) {
				if file[i] == '/' && !filter.Include(file[:i], true) {
					t.Fatalf("NewFilter(%q): %q included but directory %q pruned", ps, file, file[:i])
				}
			}
		}
		for i := range len(file) {
			if file[i] != '/' {
				continue
			}
			dir := file[:i]
			for _, p := range ps {
				if strings.HasPrefix(p, "!") || strings.Contains(p, "**") || !Match(p, dir) {
					continue
				}
				if !filter.excluded(file) && !hasGit(file) && !filter.Include(file, false) {
					t.Fatalf("NewFilter(%q): %q matches directory %q but %q under it is not included", ps, p, dir, file)
				}
			}
		}
	})
}
