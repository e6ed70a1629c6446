package ci

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The job file's YAML, node by node: aliases followed within the bounds,
// merge keys ("<<") applied, every value checked for its kind.

// A yamlEntry is one key of a mapping, its value not yet resolved.
type yamlEntry struct {
	key  string
	k, v *yaml.Node
}

// node resolves the aliases of n and counts the visit. It returns nil,
// having said why, once a bound is passed.
func (p *jobParser) node(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		p.aliases++
		if p.aliases > MaxAliases {
			p.blowUp(n, fmt.Sprintf("more than %d aliases followed (expected fewer *aliases; nested aliases multiply)", MaxAliases))
			return nil
		}
		n = n.Alias
	}
	p.nodes++
	if p.nodes > maxNodes {
		p.blowUp(n, fmt.Sprintf("more than %d YAML nodes visited, aliases expanded (expected a smaller job file)", maxNodes))
		return nil
	}
	if p.blown {
		return nil
	}
	return n
}

// blowUp reports a passed bound, once, and stops the walk.
func (p *jobParser) blowUp(n *yaml.Node, msg string) {
	if !p.blown {
		p.blown = true
		p.errs = append(p.errs, &JobFileError{Pos: p.pos(n), Msg: msg, isBound: true})
	}
}

// nodeKindName says what a node is, for "got ..." in errors.
func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!str":
			return "a string"
		}
		return "a " + n.ShortTag() + " value"
	}
	return "an unexpected YAML node"
}

// mapping returns the entries of the mapping n, merge keys applied
// (explicit keys win over merged ones, earlier merges over later),
// reporting duplicate keys. field (may be "") and want say what was
// expected, for errors.
func (p *jobParser) mapping(n *yaml.Node, field, want string) ([]yamlEntry, bool) {
	r := p.node(n)
	if r == nil {
		return nil, false
	}
	if r.Kind != yaml.MappingNode {
		p.kindError(r, field, want)
		return nil, false
	}
	if p.mergeStack == nil {
		p.mergeStack = map[*yaml.Node]bool{}
	}
	if p.mergeStack[r] {
		p.errorf(n, "a merge (<<) that includes itself (expected a mapping merged into another)")
		return nil, false
	}
	p.mergeStack[r] = true
	defer delete(p.mergeStack, r)

	var explicit, merged []yamlEntry
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(r.Content); i += 2 {
		k, v := r.Content[i], r.Content[i+1]
		kr := p.node(k)
		if kr == nil {
			return nil, false
		}
		if kr.Kind == yaml.ScalarNode && kr.ShortTag() == "!!merge" {
			merged = append(merged, p.merge(v)...)
			continue
		}
		if kr.Kind != yaml.ScalarNode || kr.ShortTag() == "!!null" {
			p.errorf(kr, "got %s as a key (expected a name)", nodeKindName(kr))
			continue
		}
		if at := first[kr.Value]; at != nil {
			p.errorf(kr, "duplicate key %q, first at %d:%d (expected each key once)", kr.Value, at.Line, at.Column)
			continue
		}
		first[kr.Value] = kr
		explicit = append(explicit, yamlEntry{key: kr.Value, k: kr, v: v})
	}
	for _, e := range merged {
		if first[e.key] == nil {
			first[e.key] = e.k
			explicit = append(explicit, e)
		}
	}
	return explicit, !p.blown
}

// merge returns the entries a "<<" value brings: one mapping's, or those
// of a list of mappings (earlier ones first, so that they win).
func (p *jobParser) merge(v *yaml.Node) []yamlEntry {
	r := p.node(v)
	if r == nil {
		return nil
	}
	const want = "a mapping or a list of mappings to merge"
	switch r.Kind {
	case yaml.MappingNode:
		ents, _ := p.mapping(v, "<<", want)
		return ents
	case yaml.SequenceNode:
		var out []yamlEntry
		for _, it := range r.Content {
			ents, _ := p.mapping(it, "<<", want)
			out = append(out, ents...)
		}
		return out
	}
	p.errorf(r, "<<: got %s (expected %s)", nodeKindName(r), want)
	return nil
}

// kindError reports a node of the wrong kind.
func (p *jobParser) kindError(r *yaml.Node, field, want string) {
	if field != "" {
		field += ": "
	}
	p.errorf(r, "%sgot %s (expected %s)", field, nodeKindName(r), want)
}

// list returns the items of the sequence n, unresolved.
func (p *jobParser) list(n *yaml.Node, field, want string) ([]*yaml.Node, bool) {
	r := p.node(n)
	if r == nil {
		return nil, false
	}
	if r.Kind != yaml.SequenceNode {
		p.kindError(r, field, want)
		return nil, false
	}
	return r.Content, true
}

// scalar returns the text of the scalar n as written: a string, a
// number or a boolean, never null, nor a value of another tag (!!binary,
// a custom !tag). field names the value in errors, want what it should be.
func (p *jobParser) scalar(n *yaml.Node, field, want string) (string, bool) {
	r := p.node(n)
	if r == nil {
		return "", false
	}
	if r.Kind != yaml.ScalarNode {
		p.errorf(r, "%s: got %s (expected %s)", field, nodeKindName(r), want)
		return "", false
	}
	switch r.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool":
	case "!!null":
		p.errorf(r, "%s: got nothing (expected %s; write \"\" for an empty string)", field, want)
		return "", false
	default:
		p.errorf(r, "%s: got %s (expected %s)", field, nodeKindName(r), want)
		return "", false
	}
	if strings.IndexByte(r.Value, 0) >= 0 {
		p.errorf(r, "%s: holds a NUL byte (expected text)", field)
		return "", false
	}
	return r.Value, true
}

func (p *jobParser) str(n *yaml.Node, field string) (string, bool) {
	return p.scalar(n, field, "a string")
}

// strList returns a list of strings and the node of each.
func (p *jobParser) strList(n *yaml.Node, field string) ([]string, []*yaml.Node, bool) {
	items, ok := p.list(n, field, "a list of strings, like [a, b]")
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(items))
	nodes := make([]*yaml.Node, 0, len(items))
	good := true
	for _, it := range items {
		r := p.node(it)
		if r == nil {
			return nil, nil, false
		}
		s, ok := p.str(r, field)
		if !ok {
			good = false
			continue
		}
		out = append(out, s)
		nodes = append(nodes, r)
	}
	return out, nodes, good
}

func (p *jobParser) bool(n *yaml.Node, field string) (bool, bool) {
	r := p.node(n)
	if r == nil {
		return false, false
	}
	if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!bool" {
		p.errorf(r, "%s: got %s (expected true or false)", field, describeNode(r))
		return false, false
	}
	return strings.EqualFold(r.Value, "true"), true
}

// describeNode names a node for an error: a scalar by its text, others by
// their kind.
func describeNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
		return strconv.Quote(n.Value)
	}
	return nodeKindName(n)
}

// maxDuration bounds every timeout.
const maxTimeout = 24 * time.Hour

func (p *jobParser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	const want = "a duration like 10m, 90s or 1h30m"
	r := p.node(n)
	if r == nil {
		return 0, false
	}
	if r.Kind != yaml.ScalarNode || r.ShortTag() != "!!str" {
		hint := ""
		if r.Kind == yaml.ScalarNode && (r.ShortTag() == "!!int" || r.ShortTag() == "!!float") {
			hint = fmt.Sprintf("; did you mean %ss?", r.Value)
		}
		p.errorf(r, "%s: got %s (expected %s%s)", field, describeNode(r), want, hint)
		return 0, false
	}
	d, err := time.ParseDuration(r.Value)
	switch {
	case err != nil:
		p.errorf(r, "%s: %q is not a duration (expected %s)", field, r.Value, want)
		return 0, false
	case d <= 0:
		p.errorf(r, "%s: %s (expected a duration above zero)", field, r.Value)
		return 0, false
	case d > maxTimeout:
		p.errorf(r, "%s: %s (expected at most %s)", field, r.Value, "24h")
		return 0, false
	}
	return d, true
}

// size parses a byte count: a plain number of bytes, or a whole number
// with a KiB, MiB or GiB suffix. It must be above zero and at most limit;
// pages asks for a whole number of 64 KiB wasm pages.
func (p *jobParser) size(n *yaml.Node, field string, limit int64, pages bool) (int64, bool) {
	const want = "a size like 256MiB, 1GiB, 512KiB or a number of bytes"
	r := p.node(n)
	if r == nil {
		return 0, false
	}
	if r.Kind != yaml.ScalarNode || (r.ShortTag() != "!!str" && r.ShortTag() != "!!int") {
		p.errorf(r, "%s: got %s (expected %s)", field, describeNode(r), want)
		return 0, false
	}
	v, err := parseByteSize(r.Value)
	if err != nil {
		p.errorf(r, "%s: %v%s", field, err, withExpected(want, byteSizeHint(r.Value)))
		return 0, false
	}
	switch {
	case v <= 0:
		p.errorf(r, "%s: %s (expected a size above zero)", field, r.Value)
		return 0, false
	case v > limit:
		p.errorf(r, "%s: %s (expected at most %s)", field, r.Value, formatByteSize(limit))
		return 0, false
	case pages && v%(64<<10) != 0:
		p.errorf(r, "%s: %s is not a whole number of 64KiB wasm pages (expected a multiple of 64KiB, like 256MiB)", field, r.Value)
		return 0, false
	}
	return v, true
}

var byteSizeUnits = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}}

// parseByteSize reads "256MiB", "1GiB", "512KiB" or a plain number of bytes
// (as YAML writes integers: 1048576, 0x100000, 1_048_576).
func parseByteSize(s string) (int64, error) {
	for _, u := range byteSizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(num, 10, 64)
			if err != nil || num == "" || num[0] == '+' || num[0] == '-' && v == 0 {
				return 0, fmt.Errorf("%q is not a whole number of %s", s, u.suffix)
			}
			if v > (1<<62)>>u.shift || v < -(1<<62)>>u.shift {
				return 0, fmt.Errorf("%q is too large", s)
			}
			return v << u.shift, nil
		}
	}
	if v, err := strconv.ParseInt(s, 0, 64); err == nil {
		return v, nil
	}
	return 0, fmt.Errorf("%q is not a size", s)
}

// byteSizeHint says what a size that did not parse probably meant: 256MiB
// for 256MB, 256M, 256mb or 256 MiB.
func byteSizeHint(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return ""
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	for _, u := range byteSizeUnits {
		l := strings.ToLower(u.suffix)
		if (unit == l || unit == l[:1] || unit == l[:1]+"b") && s != num+u.suffix {
			return fmt.Sprintf("did you mean %s%s?", num, u.suffix)
		}
	}
	return ""
}

func formatByteSize(v int64) string {
	for i := len(byteSizeUnits) - 1; i >= 0; i-- {
		u := byteSizeUnits[i]
		if v >= 1<<u.shift && v%(1<<u.shift) == 0 {
			return strconv.FormatInt(v>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

// keyHints answer keys that other CI systems use.
var keyHints = map[string]string{
	"runs-on":      "targets",
	"depends-on":   "needs",
	"depends_on":   "needs",
	"uses":         "tool, module or hash",
	"run":          "tool, module or hash with args (a step runs a wasm command, not a shell)",
	"with":         "args or env",
	"environment":  "env",
	"mem":          "memory",
	"memory-bytes": "memory",
	"disk-bytes":   "disk",
	"stdout-bytes": "output-bytes",
}

// unknownKey reports a key that is not one of keys, with a guess.
func (p *jobParser) unknownKey(e yamlEntry, where string, keys []string) {
	if hint, ok := keyHints[e.key]; ok {
		p.errorf(e.k, "unknown key %q %s (did you mean %s?)", e.key, where, hint)
		return
	}
	if guess := didYouMean(e.key, keys); guess != "" {
		p.errorf(e.k, "unknown key %q %s (%s)", e.key, where, guess)
		return
	}
	p.errorf(e.k, "unknown key %q %s (expected one of %s)", e.key, where, strings.Join(keys, ", "))
}

// didYouMean returns `did you mean "X"?` for the candidate closest to s
// when it is close enough to be a typo, else "".
func didYouMean(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(1, len(s)/3) || bestD == len(s) {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

// withExpected returns " (expected WANT; GUESS)", leaving out an empty guess.
func withExpected(want, guess string) string {
	if guess == "" {
		return " (expected " + want + ")"
	}
	return " (expected " + want + "; " + guess + ")"
}

// editDistance is the optimal string alignment distance between a and b,
// by bytes: insertions, deletions, substitutions and swaps of two
// neighbours ("biuld" is one from "build") each count one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Matrix expressions in the parser.

// matrixCtx is the matrix a job's values may refer to.
type matrixCtx struct {
	axes []MatrixAxis
	bad  bool            // the matrix did not parse: check no reference
	skip map[string]bool // axes that did not parse: check no reference to them
}

// noTemplate reports ${{ in a value where nothing is substituted.
func (p *jobParser) noTemplate(n *yaml.Node, field, s string) {
	if strings.Contains(s, "${{") {
		p.errorf(n, "%s: ${{ }} is not substituted here (expected it only in targets, args, env values, stdin and inputs)", field)
	}
}

// templated checks the ${{ matrix.NAME }} expressions of s, the value of
// node n, against the job's matrix; and, when check is not nil, that s
// passes check with every combination of the values it refers to.
func (p *jobParser) templated(n *yaml.Node, field, s string, m *matrixCtx, check func(string) error) {
	refs, err := templateRefs(s)
	if err != nil {
		p.errorf(n, "%s: %v", field, err)
		return
	}
	if len(refs) == 0 {
		if check != nil {
			if err := check(s); err != nil {
				p.errorf(n, "%s: %v", field, err)
			}
		}
		return
	}
	if m.bad {
		return
	}
	var axes []MatrixAxis
	for _, name := range refs {
		i := axisIndex(m.axes, name)
		if i < 0 && m.skip[name] {
			return
		}
		if i < 0 {
			var names []string
			for _, a := range m.axes {
				names = append(names, a.Name)
			}
			if len(names) == 0 {
				p.errorf(n, "%s: ${{ matrix.%s }} but the job has no matrix (expected a matrix: with %s)", field, name, name)
			} else {
				p.errorf(n, "%s: ${{ matrix.%s }} is not in the job's matrix%s", field, name,
					withExpected("one of "+strings.Join(names, ", "), didYouMean(name, names)))
			}
			return
		}
		axes = append(axes, m.axes[i])
	}
	if check == nil {
		return
	}
	for vals := range combinations(axes) {
		v, _ := substitute(s, vals)
		if err := check(v); err != nil {
			p.errorf(n, "%s: with %s: %v", field, formatValues(axes, vals), err)
			return
		}
	}
}
