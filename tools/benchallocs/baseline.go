package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The baseline file has three kinds of lines, besides blank ones and
// comments (#):
//
//	bench PACKAGE REGEXP BENCHTIME   which benchmarks run, e.g. bench ./wire . 2000x
//	PACKAGE BENCHMARK ALLOCS         an entry, e.g. ./wire BenchmarkReadMessage/64B 2
//
// BENCHTIME is a fixed iteration count (Nx), never a duration: the same
// number of iterations every run keeps the per-op share of one-off
// allocations (a pool refilled after a GC, a map that grows once) the same.
// Entries come after every bench line; -update keeps everything before the
// first entry as it is and rewrites the entries.

// bench is one bench line: a go test -bench run over one package.
type bench struct {
	Pkg, Regexp, Benchtime string
}

// key names one benchmark: its package as written in the bench line and
// its full name without the -cpu suffix (BenchmarkX/sub).
type key struct {
	Pkg, Name string
}

func (k key) String() string { return k.Pkg + " " + k.Name }

// entry is one baseline figure.
type entry struct {
	key
	Allocs int64
}

type baseline struct {
	head    string // the text before the first entry, kept by -update
	Benches []bench
	Entries []entry
}

func parseBaseline(text string) (*baseline, error) {
	b := &baseline{}
	lines := strings.SplitAfter(text, "\n")
	seen := make(map[key]bool)
	headDone := false
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			if !headDone {
				b.head += line
			}
			continue
		}
		if f[0] == "bench" {
			if headDone {
				return nil, fmt.Errorf("line %d: a bench line after the entries (-update would lose it)", i+1)
			}
			if len(f) != 4 {
				return nil, fmt.Errorf("line %d: want \"bench PACKAGE REGEXP BENCHTIME\", got %q", i+1, strings.TrimSpace(line))
			}
			if n, err := strconv.Atoi(strings.TrimSuffix(f[3], "x")); err != nil || n < 1 || !strings.HasSuffix(f[3], "x") {
				return nil, fmt.Errorf("line %d: benchtime %q is not a fixed iteration count such as 1000x", i+1, f[3])
			}
			b.Benches = append(b.Benches, bench{Pkg: f[1], Regexp: f[2], Benchtime: f[3]})
			b.head += line
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"PACKAGE BENCHMARK ALLOCS\", got %q", i+1, strings.TrimSpace(line))
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("line %d: allocs/op %q is not a count", i+1, f[2])
		}
		k := key{f[0], f[1]}
		if seen[k] {
			return nil, fmt.Errorf("line %d: %s listed twice", i+1, k)
		}
		seen[k] = true
		headDone = true
		b.Entries = append(b.Entries, entry{k, n})
	}
	if len(b.Benches) == 0 {
		return nil, fmt.Errorf("no bench lines: nothing to run")
	}
	return b, nil
}

// withEntries returns the file's text with its entries replaced by es.
func (b *baseline) withEntries(es []entry) string {
	var sb strings.Builder
	sb.WriteString(strings.TrimRight(b.head, "\n"))
	sb.WriteString("\n\n")
	w := tabwriter.NewWriter(&sb, 0, 8, 1, ' ', 0)
	for _, e := range es {
		fmt.Fprintf(w, "%s\t%s\t%d\n", e.Pkg, e.Name, e.Allocs)
	}
	w.Flush()
	return sb.String()
}

// tolerance is how many allocs/op above its baseline a benchmark may be
// and still pass: 1, or 10% of the baseline rounded up when that is more.
// The counts are integers (total allocations / iterations, rounded down),
// and one benchmark that hands work between goroutines can land either side of a
// boundary (a write batched or not, a sync.Pool emptied by a GC mid-run),
// so ±1 is noise; 10% lets the larger counts (a call, a task) absorb the
// same kind of noise without hiding a new allocation on the small ones.
func tolerance(base int64) int64 {
	return max(1, (base+9)/10)
}

type report struct {
	Failures []string // regressions, and a baseline out of step with the benchmarks
	Improved []string // benchmarks below their baseline by more than the tolerance
}

// compare checks got against the baseline entries.
func compare(entries []entry, got results) report {
	var r report
	inBase := make(map[key]bool, len(entries))
	for _, e := range entries {
		inBase[e.key] = true
		res, ok := got[e.key]
		if !ok {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: in the baseline (%d allocs/op) but no such benchmark ran (renamed or removed? -update)", e.key, e.Allocs))
			continue
		}
		a, tol := res.minAllocs(), tolerance(e.Allocs)
		switch {
		case a > e.Allocs+tol:
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %d allocs/op, baseline %d (tolerance %d)", e.key, a, e.Allocs, tol))
		case a < e.Allocs-tol:
			r.Improved = append(r.Improved, fmt.Sprintf("%s: %d allocs/op, baseline %d", e.key, a, e.Allocs))
		}
	}
	for _, k := range got.keys() {
		if !inBase[k] {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %d allocs/op, not in the baseline (a new benchmark? -update)", k, got[k].minAllocs()))
		}
	}
	return r
}

// result is what the runs of one benchmark measured.
type result struct {
	order  int // first seen, for a stable listing
	Allocs []int64
	NsOp   []float64
}

func (r *result) minAllocs() int64 {
	m := r.Allocs[0]
	for _, a := range r.Allocs[1:] {
		m = min(m, a)
	}
	return m
}

func (r *result) medianNsOp() float64 {
	s := append([]float64(nil), r.NsOp...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

type results map[key]*result

func (rs results) add(k key, allocs int64, nsOp float64) {
	r, ok := rs[k]
	if !ok {
		r = &result{order: len(rs)}
		rs[k] = r
	}
	r.Allocs = append(r.Allocs, allocs)
	r.NsOp = append(r.NsOp, nsOp)
}

// keys lists the benchmarks in the order they first ran.
func (rs results) keys() []key {
	ks := make([]key, 0, len(rs))
	for k := range rs {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return rs[ks[i]].order < rs[ks[j]].order })
	return ks
}

// entries returns this run's figures as baseline entries.
func (rs results) entries() []entry {
	var es []entry
	for _, k := range rs.keys() {
		es = append(es, entry{k, rs[k].minAllocs()})
	}
	return es
}
