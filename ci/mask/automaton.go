package mask

import (
	"cmp"
	"slices"
)

// automaton is an Aho–Corasick matcher over a set of byte strings
// (patterns). State 0 is the root; its transitions are a dense table, every
// other state keeps its own sorted edges, and a missing edge follows the
// failure link. It is immutable once built.
type automaton struct {
	root [256]int32

	// edgeOff[s]:edgeOff[s+1] are state s's edges in edgeByte and
	// edgeNext, sorted by byte. The root's range is empty (root holds it).
	edgeOff  []int32
	edgeByte []byte
	edgeNext []int32

	// fail[s] is the state of the longest proper suffix of s's string
	// that is also a state.
	fail []int32

	// match[s] is the length of the longest pattern that is a suffix of
	// s's string, 0 for none. It is the only match the Writer needs at a
	// position: every shorter pattern ending there lies inside it.
	match []int32

	maxLen int // of the longest pattern; 0 with no patterns
}

// build returns the automaton for patterns (duplicates allowed; empty
// patterns ignored).
func build(patterns [][]byte) *automaton {
	type edge struct {
		from, to int32
		c        byte
	}
	// The trie; its edges are found through a map while it grows.
	children := map[uint64]int32{}
	key := func(s int32, c byte) uint64 { return uint64(s)<<8 | uint64(c) }
	var edges []edge
	depth := []int32{0}
	terminal := []bool{false}
	maxLen := 0
	for _, p := range patterns {
		s := int32(0)
		for _, c := range p {
			next, ok := children[key(s, c)]
			if !ok {
				next = int32(len(depth))
				children[key(s, c)] = next
				edges = append(edges, edge{s, next, c})
				depth = append(depth, depth[s]+1)
				terminal = append(terminal, false)
			}
			s = next
		}
		if len(p) > 0 {
			terminal[s] = true
			maxLen = max(maxLen, len(p))
		}
	}
	n := len(depth)
	a := &automaton{
		edgeOff:  make([]int32, n+1),
		edgeByte: make([]byte, 0, len(edges)),
		edgeNext: make([]int32, 0, len(edges)),
		fail:     make([]int32, n),
		match:    make([]int32, n),
		maxLen:   maxLen,
	}
	slices.SortFunc(edges, func(x, y edge) int {
		return cmp.Or(cmp.Compare(x.from, y.from), cmp.Compare(x.c, y.c))
	})
	i := 0
	for s := range int32(n) {
		a.edgeOff[s] = int32(len(a.edgeByte))
		for ; i < len(edges) && edges[i].from == s; i++ {
			if s == 0 {
				a.root[edges[i].c] = edges[i].to
			} else {
				a.edgeByte = append(a.edgeByte, edges[i].c)
				a.edgeNext = append(a.edgeNext, edges[i].to)
			}
		}
	}
	a.edgeOff[n] = int32(len(a.edgeByte))

	// Failure links and matches in breadth-first order: a state's link
	// points to a shallower state, already done.
	queue := make([]int32, 0, n)
	for c := range 256 {
		if t := a.root[c]; t != 0 {
			queue = append(queue, t) // its fail is the root
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if terminal[s] {
			a.match[s] = depth[s]
		} else {
			a.match[s] = a.match[a.fail[s]]
		}
		for k := a.edgeOff[s]; k < a.edgeOff[s+1]; k++ {
			a.fail[a.edgeNext[k]] = a.next(a.fail[s], a.edgeByte[k])
			queue = append(queue, a.edgeNext[k])
		}
	}
	return a
}

// next returns the state after reading c in state s.
func (a *automaton) next(s int32, c byte) int32 {
	for s != 0 {
		for k := a.edgeOff[s]; k < a.edgeOff[s+1]; k++ {
			if a.edgeByte[k] == c {
				return a.edgeNext[k]
			}
		}
		s = a.fail[s]
	}
	return a.root[c]
}

// contains reports whether s holds any pattern.
func (a *automaton) contains(s string) bool {
	if a.maxLen == 0 {
		return false
	}
	st := int32(0)
	for i := 0; i < len(s); i++ {
		st = a.next(st, s[i])
		if a.match[st] != 0 {
			return true
		}
	}
	return false
}
