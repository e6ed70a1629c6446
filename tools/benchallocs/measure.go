package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
)

// checker runs the benchmarks. Not safe for concurrent use.
type checker struct {
	Go    string    // the go command
	Dir   string    // where go test runs: the module root
	Count int       // -count
	CPU   int       // -cpu: GOMAXPROCS of every benchmark, whatever the machine has
	Log   io.Writer // the go test command lines, and their output when they fail
}

// measure runs every bench line and collects allocs/op and ns/op.
func (c *checker) measure(benches []bench) (results, error) {
	got := make(results)
	for _, b := range benches {
		args := []string{"test", "-run", "^$", "-bench", b.Regexp, "-benchmem",
			"-benchtime", b.Benchtime, "-count", strconv.Itoa(c.Count), "-cpu", strconv.Itoa(c.CPU), b.Pkg}
		fmt.Fprintf(c.Log, "benchallocs: %s %s\n", c.Go, strings.Join(args, " "))
		cmd := exec.Command(c.Go, args...)
		cmd.Dir = c.Dir
		// The race detector and coverage change what allocates: a GOFLAGS
		// that asks for them must not reach these runs.
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			c.Log.Write(out)
			return nil, fmt.Errorf("go test -bench %s %s: %w", b.Regexp, b.Pkg, err)
		}
		samples, err := parseBenchOutput(string(out), c.CPU)
		if err != nil {
			c.Log.Write(out)
			return nil, fmt.Errorf("%s: %w", b.Pkg, err)
		}
		if len(samples) == 0 {
			c.Log.Write(out)
			return nil, fmt.Errorf("go test -bench %s %s ran no benchmark", b.Regexp, b.Pkg)
		}
		for _, s := range samples {
			got.add(key{b.Pkg, s.Name}, s.Allocs, s.NsOp)
		}
	}
	return got, nil
}

// sample is one result line of go test -bench -benchmem.
type sample struct {
	Name   string // without the -cpu suffix
	N      int64
	NsOp   float64
	Allocs int64
}

// parseBenchOutput reads the result lines of go test -bench -benchmem
// output:
//
//	BenchmarkReadMessage/64B-2   	    2000	       258.0 ns/op	 348.86 MB/s	     128 B/op	       2 allocs/op
//
// A benchmark that writes to stdout splits its line: the name is printed
// before it runs, the figures after, on a line of their own. cpu is the
// -cpu value, whose "-N" suffix is removed from the names (it is absent
// when N is 1).
func parseBenchOutput(out string, cpu int) ([]sample, error) {
	var samples []sample
	pending := "" // a name printed without its figures
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := ""
		switch {
		case strings.HasPrefix(f[0], "Benchmark") && len(f) == 1:
			pending = f[0]
			continue
		case strings.HasPrefix(f[0], "Benchmark") && isCount(f[1]):
			name, f = f[0], f[1:]
		case pending != "" && isCount(f[0]):
			name = pending
		default:
			continue
		}
		pending = ""
		s := sample{Name: strings.TrimSuffix(name, "-"+strconv.Itoa(cpu)), Allocs: -1, NsOp: -1}
		s.N, _ = strconv.ParseInt(f[0], 10, 64)
		for j := 1; j+1 < len(f); j += 2 {
			v, unit := f[j], f[j+1]
			switch unit {
			case "ns/op":
				s.NsOp, _ = strconv.ParseFloat(v, 64)
			case "allocs/op":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("output line %d: allocs/op %q: %v", i+1, v, err)
				}
				s.Allocs = n
			}
		}
		if s.Allocs < 0 || s.NsOp < 0 {
			return nil, fmt.Errorf("output line %d: %s: no ns/op or allocs/op (run with -benchmem): %q", i+1, s.Name, line)
		}
		samples = append(samples, s)
	}
	return samples, nil
}

func isCount(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// printTable writes one line per benchmark: baseline, this run's minimum
// allocs/op, and the median ns/op, which is for people only.
func printTable(w io.Writer, b *baseline, got results) {
	base := make(map[key]int64, len(b.Entries))
	for _, e := range b.Entries {
		base[e.key] = e.Allocs
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "package\tbenchmark\tbaseline\tallocs/op\tns/op (median, not compared)")
	for _, k := range got.keys() {
		bs := "-"
		if a, ok := base[k]; ok {
			bs = strconv.FormatInt(a, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\n", k.Pkg, k.Name, bs, got[k].minAllocs(), got[k].medianNsOp())
	}
	tw.Flush()
}
