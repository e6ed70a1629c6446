package ci

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/spindle-hq/spindle/target"
)

// JobRun is one run of a job: the job with one combination of its matrix
// values substituted. It is a plain value: safe for concurrent reads.
type JobRun struct {
	// Name is the job's name, followed for a matrix job by its values in
	// the matrix's order: "test (goarch=amd64, goos=linux)".
	Name string
	// Job is the job as written.
	Job *Job
	// Values are the run's matrix values by axis name; nil without a
	// matrix.
	Values map[string]string
	// Targets and Steps are the job's, the values substituted. The steps
	// are copies: changing them changes neither the Job nor other runs.
	Targets []string
	Steps   []*Step
	// Needs are the runs this one waits for: every run of each job the
	// job needs.
	Needs []*JobRun
}

// Expand returns the file's job runs: for each job, one run per
// combination of its matrix values (the first axis varying slowest), each
// with ${{ matrix.NAME }} substituted in targets, args, env values, stdin
// and inputs. Runs come in a topological order of their needs: jobs in
// file order, each placed after the jobs it needs (depth first), so every
// run comes after the runs it needs.
//
// A File from ParseJob expands without error. A File built by hand may
// fail (a cycle, an unknown job or matrix name, a bad target, pattern or
// path after substitution) with a JobFileError at the job or step.
func (f *File) Expand() ([]*JobRun, error) {
	order, err := f.order()
	if err != nil {
		return nil, err
	}
	runsOf := make(map[string][]*JobRun, len(order))
	var out []*JobRun
	for _, j := range order {
		if n := matrixSize(j.Matrix); n > MaxMatrixRuns {
			return nil, &JobFileError{Pos: j.Pos, Msg: fmt.Sprintf("matrix: %d combinations (expected at most %d)", n, MaxMatrixRuns)}
		}
		if len(out)+matrixSize(j.Matrix) > MaxRuns {
			return nil, &JobFileError{Pos: j.Pos, Msg: fmt.Sprintf("more than %d job runs, matrices expanded (expected fewer)", MaxRuns)}
		}
		var needs []*JobRun
		for _, n := range j.Needs {
			needs = append(needs, runsOf[n]...)
		}
		for vals := range combinations(j.Matrix) {
			r, err := expandRun(j, vals)
			if err != nil {
				return nil, err
			}
			r.Needs = slices.Clip(needs)
			runsOf[j.Name] = append(runsOf[j.Name], r)
			out = append(out, r)
		}
	}
	return out, nil
}

// order returns f's jobs in a topological order of their needs: in file
// order, each job placed after the jobs it needs (depth first), so that
// the order of the file is kept where the needs allow it.
func (f *File) order() ([]*Job, error) {
	byName := make(map[string]*Job, len(f.Jobs))
	for _, j := range f.Jobs {
		if byName[j.Name] != nil {
			return nil, &JobFileError{Pos: j.Pos, Msg: fmt.Sprintf("job %q defined twice (expected unique job names)", j.Name)}
		}
		byName[j.Name] = j
	}
	for _, j := range f.Jobs {
		for _, n := range j.Needs {
			if byName[n] == nil {
				return nil, &JobFileError{Pos: j.Pos, Msg: fmt.Sprintf("job %s needs unknown job %q (expected a job of the file)", j.Name, n)}
			}
		}
	}
	if cs := findCycles(f.Jobs, byName); len(cs) > 0 {
		return nil, &JobFileError{Pos: cs[0].from.Pos, Msg: fmt.Sprintf("needs: cycle %s (expected the jobs' needs to form no loop)", strings.Join(cs[0].path, " -> "))}
	}
	placed := make(map[string]bool, len(f.Jobs))
	out := make([]*Job, 0, len(f.Jobs))
	var place func(j *Job)
	place = func(j *Job) {
		if placed[j.Name] {
			return
		}
		placed[j.Name] = true
		for _, n := range j.Needs {
			place(byName[n])
		}
		out = append(out, j)
	}
	for _, j := range f.Jobs {
		place(j)
	}
	return out, nil
}

// expandRun makes job j's run with the matrix values vals.
func expandRun(j *Job, vals map[string]string) (*JobRun, error) {
	r := &JobRun{Name: j.Name, Job: j, Values: vals}
	if len(j.Matrix) > 0 {
		r.Name = fmt.Sprintf("%s (%s)", j.Name, formatValues(j.Matrix, vals))
	}
	fail := func(pos Pos, field string, err error) error {
		where := ""
		if vals != nil {
			where = " (" + formatValues(j.Matrix, vals) + ")"
		}
		return &JobFileError{Pos: pos, Msg: fmt.Sprintf("%s%s: %v", field, where, err)}
	}
	// sub substitutes s and runs check on the result.
	sub := func(pos Pos, field, s string, check func(string) error) (string, error) {
		v, err := substitute(s, vals)
		if err == nil && check != nil {
			err = check(v)
		}
		if err != nil {
			return "", fail(pos, field, err)
		}
		return v, nil
	}
	for _, t := range j.Targets {
		v, err := sub(j.Pos, "targets", t, checkJobTarget)
		if err != nil {
			return nil, err
		}
		r.Targets = append(r.Targets, v)
	}
	for _, s := range j.Steps {
		c := *s
		c.Args = make([]string, len(s.Args))
		for i, a := range s.Args {
			v, err := sub(s.Pos, "args", a, nil)
			if err != nil {
				return nil, err
			}
			c.Args[i] = v
		}
		if s.Env != nil {
			c.Env = make(map[string]string, len(s.Env))
			for k, e := range s.Env {
				v, err := sub(s.Pos, "env "+k, e, nil)
				if err != nil {
					return nil, err
				}
				c.Env[k] = v
			}
		}
		c.Inputs = make([]string, len(s.Inputs))
		for i, in := range s.Inputs {
			v, err := sub(s.Pos, "inputs", in, checkInputPattern)
			if err != nil {
				return nil, err
			}
			c.Inputs[i] = v
		}
		if s.Stdin != "" {
			v, err := sub(s.Pos, "stdin", s.Stdin, checkStdin)
			if err != nil {
				return nil, err
			}
			c.Stdin = v
		}
		c.Outputs = slices.Clone(s.Outputs)
		c.Secrets = slices.Clone(s.Secrets)
		r.Steps = append(r.Steps, &c)
	}
	return r, nil
}

// matrixSize is the number of combinations of axes' values.
func matrixSize(axes []MatrixAxis) int {
	n := 1
	for _, a := range axes {
		n *= len(a.Values)
		if n > MaxRuns {
			return MaxRuns + 1 // enough to fail a bound, never overflowing
		}
	}
	return n
}

// combinations yields each combination of the axes' values, the first
// axis varying slowest; one nil map for no axes. Each map is new.
func combinations(axes []MatrixAxis) iter.Seq[map[string]string] {
	return func(yield func(map[string]string) bool) {
		if len(axes) == 0 {
			yield(nil)
			return
		}
		idx := make([]int, len(axes))
		for {
			vals := make(map[string]string, len(axes))
			for i, a := range axes {
				if len(a.Values) == 0 {
					return
				}
				vals[a.Name] = a.Values[idx[i]]
			}
			if !yield(vals) {
				return
			}
			i := len(axes) - 1
			for ; i >= 0; i-- {
				idx[i]++
				if idx[i] < len(axes[i].Values) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				return
			}
		}
	}
}

// formatValues writes vals as "a=1, b=2" in the order of axes.
func formatValues(axes []MatrixAxis, vals map[string]string) string {
	parts := make([]string, 0, len(axes))
	for _, a := range axes {
		if v, ok := vals[a.Name]; ok {
			parts = append(parts, a.Name+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}

func axisIndex(axes []MatrixAxis, name string) int {
	return slices.IndexFunc(axes, func(a MatrixAxis) bool { return a.Name == name })
}

const exprHelp = "expected ${{ matrix.NAME }}"

// nextExpr finds the first ${{ ... }} in s at or after from: its start,
// its end (after "}}") and the axis it names.
func nextExpr(s string, from int) (start, end int, name string, found bool, err error) {
	i := strings.Index(s[from:], "${{")
	if i < 0 {
		return 0, 0, "", false, nil
	}
	start = from + i
	j := strings.Index(s[start+3:], "}}")
	if j < 0 {
		return 0, 0, "", false, fmt.Errorf("unclosed ${{ (%s)", exprHelp)
	}
	end = start + 3 + j + 2
	inner := strings.TrimSpace(s[start+3 : end-2])
	name, ok := strings.CutPrefix(inner, "matrix.")
	if !ok || !validAxisName(name) {
		return 0, 0, "", false, fmt.Errorf("unknown expression ${{ %s }} (%s)", inner, exprHelp)
	}
	return start, end, name, true, nil
}

// templateRefs returns the matrix names s refers to, each once, in order.
func templateRefs(s string) ([]string, error) {
	var refs []string
	for at := 0; ; {
		_, end, name, found, err := nextExpr(s, at)
		if err != nil || !found {
			return refs, err
		}
		if !slices.Contains(refs, name) {
			refs = append(refs, name)
		}
		at = end
	}
}

// substitute replaces each ${{ matrix.NAME }} of s by vals[NAME]. Values
// are not themselves substituted again.
func substitute(s string, vals map[string]string) (string, error) {
	var b strings.Builder
	at := 0
	for {
		start, end, name, found, err := nextExpr(s, at)
		if err != nil {
			return "", err
		}
		if !found {
			if at == 0 {
				return s, nil
			}
			b.WriteString(s[at:])
			return b.String(), nil
		}
		v, ok := vals[name]
		if !ok {
			names := slices.Sorted(maps.Keys(vals))
			if len(names) == 0 {
				return "", fmt.Errorf("${{ matrix.%s }} but the job has no matrix", name)
			}
			return "", fmt.Errorf("${{ matrix.%s }} is not in the job's matrix (expected one of %s)", name, strings.Join(names, ", "))
		}
		b.WriteString(s[at:start])
		b.WriteString(v)
		at = end
	}
}

// checkJobTarget accepts what spindle run's -t does: a target chain, or an
// inventory host or group name (resolved when the job runs).
func checkJobTarget(s string) error {
	_, err := target.Parse(s)
	if err == nil || validJobName(s) {
		return nil
	}
	return fmt.Errorf("%v (expected a target chain like local or ssh://host, or an inventory name)", err)
}

// checkInputPattern checks one inputs pattern, "!" and all.
func checkInputPattern(s string) error {
	body := strings.TrimPrefix(s, "!")
	err := checkPatternPath(body)
	if err == nil {
		_, err = compileGlob(body)
	}
	if err != nil {
		return fmt.Errorf("pattern %q: %v (expected a glob of workspace paths, like **/*.go or !**/testdata/**)", s, err)
	}
	return nil
}

func checkStdin(s string) error {
	if err := checkRelPath(s); err != nil {
		return fmt.Errorf("%v (expected a clean path of the input tree, relative to /src)", err)
	}
	return nil
}
