package ci

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrJobFile is matched (errors.Is) by every error ParseJob and
// ParseJobFile return for a malformed job file, and by Expand's.
var ErrJobFile = errors.New("ci: invalid job file")

// Pos is a place in a job file. Line and Col count from 1; 0 means unknown.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "FILE:LINE:COL", or less when Line or Col is unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// JobFileError is one problem in a job file: where, what was wrong and
// what was expected. A file with several problems gives them all, joined
// with errors.Join in file order; errors.As finds the first.
type JobFileError struct {
	Pos Pos
	Msg string

	isBound bool // a bound of the parser was passed
}

func (e *JobFileError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Is makes every JobFileError match ErrJobFile.
func (e *JobFileError) Is(target error) bool { return target == ErrJobFile }

// Bounds of a job file. The parser holds the file, its YAML nodes and its
// expansion in memory; these keep all three small whatever the input.
const (
	// MaxFileBytes bounds the size of a job file.
	MaxFileBytes = 4 << 20
	// MaxAliases bounds the YAML aliases ("*name") the parser follows,
	// each time it follows one: a file of nested aliases (the "billion
	// laughs") fails early instead of being expanded.
	MaxAliases = 1000
	// MaxMatrixRuns bounds one job's matrix: the product of its axes'
	// lengths.
	MaxMatrixRuns = 256
	// MaxRuns bounds the job runs of a whole file, matrices expanded.
	MaxRuns = 1024

	// maxNodes bounds the YAML nodes the parser visits, aliases followed.
	maxNodes = 1 << 20
	// maxErrors is how many problems one parse reports.
	maxErrors = 20
)

// Defaults of a job and a step that leave a value out.
const (
	DefaultJobTimeout  = 10 * time.Minute
	DefaultStepTimeout = 5 * time.Minute
	DefaultMemoryBytes = 256 << 20
	DefaultOutputBytes = 16 << 20
	DefaultDiskBytes   = 1 << 30
)

// The report formats a step's stdout may be parsed as.
const (
	ReportGoTestJSON = "go-test-json"
	ReportTAP        = "tap"
)

// File is a parsed job file. ParseJob fills in every default, so each
// field holds what a run will use. A File is a plain value: safe for
// concurrent reads, not for concurrent writes.
type File struct {
	// Path is where the file was read from (or the name given to
	// ParseJob). Module and secret file paths are relative to its
	// directory; see PathOf.
	Path string
	// Salt is part of every action key: changing it reruns every step.
	Salt string
	// Secrets are the secrets steps may name, by name.
	Secrets map[string]SecretSource
	// Jobs are the file's jobs in file order.
	Jobs []*Job
}

// SecretSource says where the master reads a secret: exactly one of Env
// (an environment variable of the master) and File (a file on the master,
// relative to the job file's directory unless absolute) is set.
type SecretSource struct {
	Env, File string
}

// Job is one job of a job file.
type Job struct {
	// Name is the job's name: letters, digits, "_", "." and "-", not
	// starting with "." or "-".
	Name string
	// Targets are where the job runs, in spindle run's -t syntax: target
	// chains or inventory host and group names. They may hold
	// ${{ matrix.NAME }}. Default: ["local"].
	Targets []string
	// Timeout bounds the whole job. Default: DefaultJobTimeout.
	Timeout time.Duration
	// Needs are the jobs this one waits for; it sees their outputs.
	Needs []string
	// Matrix are the job's matrix axes in file order; the job runs once
	// for each combination of their values.
	Matrix []MatrixAxis
	// Steps run in order; there is at least one.
	Steps []*Step
	// Pos is where the job's name is written.
	Pos Pos
}

// MatrixAxis is one axis of a job's matrix: a name and its values, as
// written (a number keeps its spelling: 1.20 stays "1.20").
type MatrixAxis struct {
	Name   string
	Values []string
	Pos    Pos
}

// Step is one step of a job: a wasip1 command run as an action.
type Step struct {
	// Name is unique in its job. Default: the tool's name, or the
	// module's file name without ".wasm", or the hash's first 12 digits.
	Name string
	// Exactly one of Tool (a toolbox tool's name), Module (a .wasm path,
	// slash-separated, relative to the job file's directory unless
	// absolute) and Hash (a module's sha256, lower-case hex) is set.
	Tool, Module, Hash string
	// Args are the command's arguments after its name; Env its
	// environment beyond what spindle sets (PWD, HOME, TMPDIR). Both may
	// hold ${{ matrix.NAME }} (Env in its values).
	Args []string
	Env  map[string]string
	// Inputs are workspace globs (see NewFilter) choosing the files the
	// step sees at /src. Default: [DefaultInput].
	Inputs []string
	// Outputs are the paths under /out the step produces, clean and
	// relative, without duplicates.
	Outputs []string
	// Stdin, if set, is a path of the step's input tree streamed as its
	// standard input.
	Stdin string
	// Timeout is the step's wall time. Default: DefaultStepTimeout.
	Timeout time.Duration
	// MemoryBytes caps the linear memory (a whole number of 64 KiB
	// pages, at most 4 GiB); OutputBytes stdout and stderr together;
	// DiskBytes what the step may write under /out, /tmp and /home.
	MemoryBytes, OutputBytes, DiskBytes int64
	// Clock and Random grant the real clock and real randomness.
	Clock, Random bool
	// Secrets are names of the file's secrets the step reads, at
	// /run/secrets/NAME.
	Secrets []string
	// FailIfOutput fails the step when its stdout is not empty.
	FailIfOutput bool
	// Report is "", ReportGoTestJSON or ReportTAP.
	Report string
	// Pos is where the step starts.
	Pos Pos
}

// PathOf returns the file-system path of p, a slash-separated path of the
// job file (a Step's Module, a SecretSource's File): p itself when
// absolute, else p under the job file's directory.
func (f *File) PathOf(p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(f.Path), p)
}

// ParseJobFile reads and parses the job file at path (see ParseJob).
func ParseJobFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ci: read job file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("ci: read job file: %w", err)
	}
	return ParseJob(path, data)
}

// ParseJob parses data, a job file (the format is in the package
// documentation); name is its path, for error messages and for the
// relative paths it holds. Every problem found is reported as a
// JobFileError, all of them joined in file order (at most 20); each
// matches ErrJobFile. A File ParseJob returns expands without error.
func ParseJob(name string, data []byte) (*File, error) {
	p := &jobParser{name: name, secretRefs: map[string][]Pos{}}
	if len(data) > MaxFileBytes {
		p.errs = append(p.errs, &JobFileError{Pos: Pos{File: name}, Msg: fmt.Sprintf("larger than %d MiB (expected a job file)", MaxFileBytes>>20)})
		return nil, p.err()
	}
	root := p.decode(data)
	if root == nil {
		return nil, p.err()
	}
	f := p.file(root)
	if !p.blown {
		p.checkSecrets(f)
		p.checkGraph(f)
		p.checkRuns(f)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// jobParser walks the YAML nodes of one job file. It is used once, by one
// goroutine.
type jobParser struct {
	name    string
	errs    []*JobFileError
	aliases int  // aliases followed
	nodes   int  // nodes visited
	blown   bool // a bound was passed: the walk stops reporting

	badSecrets bool // the secrets: section did not parse: check no name against it

	needPos    map[*Job][]Pos      // where each of a job's needs is written
	secretRefs map[string][]Pos    // secret name -> steps naming it
	mergeStack map[*yaml.Node]bool // mappings being merged, against "<<" cycles
}

func (p *jobParser) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: p.name}
	}
	return Pos{File: p.name, Line: n.Line, Col: n.Column}
}

func (p *jobParser) errorAt(pos Pos, format string, args ...any) {
	if p.blown && len(p.errs) > 0 {
		return
	}
	p.errs = append(p.errs, &JobFileError{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *jobParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errorAt(p.pos(n), format, args...)
}

// err returns the problems found, in file order, at most maxErrors.
func (p *jobParser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	if p.blown {
		// A bound was passed: the rest were found in a walk cut short.
		for _, e := range p.errs {
			if e.isBound {
				return e
			}
		}
	}
	slices.SortStableFunc(p.errs, func(a, b *JobFileError) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	errs := make([]error, 0, min(len(p.errs), maxErrors)+1)
	for _, e := range p.errs[:min(len(p.errs), maxErrors)] {
		errs = append(errs, e)
	}
	if len(p.errs) > maxErrors {
		errs = append(errs, &JobFileError{Pos: Pos{File: p.name}, Msg: fmt.Sprintf("%d more problems not shown", len(p.errs)-maxErrors)})
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// decode parses data as one YAML document and returns its root node, or
// nil after reporting why not.
func (p *jobParser) decode(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(Pos{File: p.name}, "empty (expected a job file: a mapping with jobs:)")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorf(&next, "a second YAML document (expected one job file per file)")
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errorAt(Pos{File: p.name}, "empty (expected a job file: a mapping with jobs:)")
		return nil
	}
	return doc.Content[0]
}

// yamlError reports a syntax error of the YAML parser, which knows the
// line ("yaml: line 3: did not find expected key") but not the column.
func (p *jobParser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if _, serr := fmt.Sscanf(n, "%d", &line); serr == nil {
				msg = after
			}
		}
	}
	p.errorAt(Pos{File: p.name, Line: line}, "%s (expected valid YAML)", msg)
}

// File level.

var fileKeys = []string{"salt", "secrets", "jobs"}

func (p *jobParser) file(n *yaml.Node) *File {
	f := &File{Path: p.name, Secrets: map[string]SecretSource{}}
	ents, ok := p.mapping(n, "", "a job file: a mapping with jobs:")
	if !ok {
		return f
	}
	sawJobs := false
	for _, e := range ents {
		switch e.key {
		case "salt":
			f.Salt, _ = p.str(e.v, "salt")
			p.noTemplate(e.v, "salt", f.Salt)
		case "secrets":
			p.secrets(f, e.v)
		case "jobs":
			sawJobs = true
			p.jobs(f, e.v)
		default:
			if strings.HasPrefix(e.key, "x-") {
				continue // a place for anchors: not read
			}
			p.unknownKey(e, "at the top of a job file", fileKeys)
		}
	}
	if !sawJobs {
		p.errorf(n, "no jobs (expected a top-level jobs: mapping)")
	}
	return f
}

func (p *jobParser) secrets(f *File, n *yaml.Node) {
	ents, ok := p.mapping(n, "secrets", "a mapping of NAME: {env: VAR} or {file: PATH}")
	if !ok {
		p.badSecrets = true
		return
	}
	for _, e := range ents {
		if !validSecretName(e.key) {
			p.errorf(e.k, "secret name %q (expected letters, digits and _, not starting with a digit)", e.key)
			p.badSecrets = true
			continue
		}
		// Declared even when its source is bad: steps may name it.
		src, _ := p.secretSource(e)
		f.Secrets[e.key] = src
	}
}

func (p *jobParser) secretSource(e yamlEntry) (SecretSource, bool) {
	var src SecretSource
	what := fmt.Sprintf("secret %s", e.key)
	ents, ok := p.mapping(e.v, what, "{env: VAR} or {file: PATH}")
	if !ok {
		return src, false
	}
	for _, se := range ents {
		switch se.key {
		case "env":
			src.Env, _ = p.str(se.v, what+" env")
			if src.Env != "" && !validEnvName(src.Env) {
				p.errorf(se.v, "%s env: %q is not a variable name (expected letters, digits and _)", what, src.Env)
			}
		case "file":
			src.File, _ = p.str(se.v, what+" file")
		default:
			p.unknownKey(se, "in a secret", []string{"env", "file"})
		}
	}
	switch {
	case src.Env == "" && src.File == "":
		p.errorf(e.v, "%s: no source (expected env: VAR or file: PATH)", what)
		return src, false
	case src.Env != "" && src.File != "":
		p.errorf(e.v, "%s: both env and file (expected one of them)", what)
		return src, false
	}
	return src, true
}

// Jobs.

var jobKeys = []string{"targets", "timeout", "needs", "matrix", "steps"}

func (p *jobParser) jobs(f *File, n *yaml.Node) {
	ents, ok := p.mapping(n, "jobs", "a mapping of job names to jobs")
	if !ok {
		return
	}
	if len(ents) == 0 {
		p.errorf(n, "jobs: empty (expected at least one job)")
	}
	p.needPos = map[*Job][]Pos{}
	for _, e := range ents {
		f.Jobs = append(f.Jobs, p.job(e))
	}
}

func (p *jobParser) job(e yamlEntry) *Job {
	j := &Job{Name: e.key, Pos: p.pos(e.k), Timeout: DefaultJobTimeout, Targets: []string{"local"}}
	if !validJobName(j.Name) {
		p.errorf(e.k, "job name %q (expected letters, digits, _, . and -, not starting with . or -)", j.Name)
	}
	what := fmt.Sprintf("job %s", j.Name)
	ents, ok := p.mapping(e.v, what, "a mapping with steps:")
	if !ok {
		return j
	}
	// The matrix first: the other keys refer to it.
	m := &matrixCtx{}
	for _, je := range ents {
		if je.key == "matrix" {
			p.matrix(je.v, m)
			j.Matrix = m.axes
		}
	}
	sawSteps := false
	for _, je := range ents {
		switch je.key {
		case "matrix":
		case "targets":
			p.targets(j, je.v, m)
		case "timeout":
			j.Timeout, _ = p.duration(je.v, "timeout")
		case "needs":
			p.needs(j, je.v)
		case "steps":
			sawSteps = true
			p.steps(j, je.v, m)
		default:
			p.unknownKey(je, "in a job", jobKeys)
		}
	}
	if !sawSteps {
		p.errorf(e.k, "job %s has no steps (expected steps: a list of steps)", j.Name)
	}
	return j
}

func (p *jobParser) targets(j *Job, n *yaml.Node, m *matrixCtx) {
	items, nodes, ok := p.strList(n, "targets")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.errorf(n, "targets: empty (expected at least one target; omit targets for [local])")
		return
	}
	seen := map[string]bool{}
	for i, t := range items {
		if seen[t] {
			p.errorf(nodes[i], "targets: %q listed twice (expected each target once)", t)
		}
		seen[t] = true
		p.templated(nodes[i], "targets", t, m, checkJobTarget)
	}
	j.Targets = items
}

func (p *jobParser) needs(j *Job, n *yaml.Node) {
	items, nodes, ok := p.strList(n, "needs")
	if !ok {
		return
	}
	seen := map[string]bool{}
	for i, s := range items {
		if seen[s] {
			p.errorf(nodes[i], "needs: %q listed twice (expected each job once)", s)
			continue
		}
		seen[s] = true
		j.Needs = append(j.Needs, s)
		p.needPos[j] = append(p.needPos[j], p.pos(nodes[i]))
	}
}

// matrix parses a job's matrix into m, noting there what could not be
// read, so that references to it are not reported as unknown.
func (p *jobParser) matrix(n *yaml.Node, m *matrixCtx) {
	const want = "a mapping of names to lists of values"
	ents, ok := p.mapping(n, "matrix", want)
	if !ok {
		m.bad = true
		return
	}
	if len(ents) == 0 {
		p.errorf(n, "matrix: empty (expected %s; omit matrix for one run)", want)
		m.bad = true
		return
	}
	m.skip = map[string]bool{}
	runs := 1
	for _, e := range ents {
		if !validAxisName(e.key) {
			p.errorf(e.k, "matrix name %q (expected letters, digits, _ and -)", e.key)
			continue // it cannot be referred to
		}
		what := "matrix " + e.key
		items, ok := p.list(e.v, what, "a list of values")
		if !ok {
			m.skip[e.key] = true
			continue
		}
		if len(items) == 0 {
			p.errorf(e.v, "%s: empty (expected at least one value)", what)
			m.skip[e.key] = true
			continue
		}
		ax := MatrixAxis{Name: e.key, Pos: p.pos(e.k)}
		seen := map[string]bool{}
		for _, it := range items {
			v, ok := p.scalar(it, what, "a string, number or boolean")
			if !ok {
				continue
			}
			if seen[v] {
				p.errorf(it, "%s: %q listed twice (expected each value once)", what, v)
				continue
			}
			seen[v] = true
			ax.Values = append(ax.Values, v)
		}
		runs *= max(len(ax.Values), 1)
		if runs > MaxMatrixRuns {
			p.errorf(e.k, "matrix: more than %d combinations (expected a smaller matrix)", MaxMatrixRuns)
			m.bad = true
			return
		}
		m.axes = append(m.axes, ax)
	}
}

// Checks over the whole file.

// checkSecrets reports steps naming secrets the file does not declare.
func (p *jobParser) checkSecrets(f *File) {
	if p.badSecrets {
		return
	}
	declared := slices.Sorted(maps.Keys(f.Secrets))
	for name, refs := range p.secretRefs {
		if _, ok := f.Secrets[name]; ok {
			continue
		}
		for _, at := range refs {
			p.errorAt(at, "secret %q is not declared%s", name, withExpected("it under the top-level secrets:", didYouMean(name, declared)))
		}
	}
}

// checkGraph reports needs that name no job, and cycles.
func (p *jobParser) checkGraph(f *File) {
	byName := map[string]*Job{}
	var names []string
	for _, j := range f.Jobs {
		byName[j.Name] = j
		names = append(names, j.Name)
	}
	for _, j := range f.Jobs {
		for i, need := range j.Needs {
			if byName[need] == nil {
				want := "one of " + strings.Join(names, ", ")
				if len(names) > 12 {
					want = "a job of the file"
				}
				p.errorAt(p.needPos[j][i], "needs unknown job %q%s", need, withExpected(want, didYouMean(need, names)))
			}
		}
	}
	for _, c := range findCycles(f.Jobs, byName) {
		p.errorAt(p.needPos[c.from][c.need], "needs: cycle %s (expected the jobs' needs to form no loop)", strings.Join(c.path, " -> "))
	}
}

// checkRuns bounds the runs of the whole file.
func (p *jobParser) checkRuns(f *File) {
	total := 0
	for _, j := range f.Jobs {
		total += matrixSize(j.Matrix)
		if total > MaxRuns {
			p.errorAt(j.Pos, "more than %d job runs in the file, matrices expanded (expected fewer jobs or smaller matrices)", MaxRuns)
			return
		}
	}
}

// A needCycle is a loop in the needs graph, found at the need index need of
// job from; path names it from its first job back to it.
type needCycle struct {
	from *Job
	need int
	path []string
}

// findCycles returns a cycle for each need that closes one, in the order
// of a depth-first walk of the jobs in file order. Needs that name no job
// are ignored.
func findCycles(jobs []*Job, byName map[string]*Job) []needCycle {
	const (
		unseen = iota
		onStack
		done
	)
	state := map[*Job]int{}
	var stack []*Job
	var out []needCycle
	var visit func(j *Job)
	visit = func(j *Job) {
		state[j] = onStack
		stack = append(stack, j)
		for i, need := range j.Needs {
			n := byName[need]
			switch {
			case n == nil:
			case state[n] == onStack:
				start := slices.Index(stack, n)
				var path []string
				for _, s := range stack[start:] {
					path = append(path, s.Name)
				}
				out = append(out, needCycle{from: j, need: i, path: append(path, n.Name)})
			case state[n] == unseen:
				visit(n)
			}
		}
		stack = stack[:len(stack)-1]
		state[j] = done
	}
	for _, j := range jobs {
		if state[j] == unseen {
			visit(j)
		}
	}
	return out
}

// Names.

// validJobName also serves steps and tools. A name never starts with "."
// or "-": "..", "." or ".ssh" would be paths (spindle ci --artifacts writes
// to DIR/JOB/STEP), "-x" a flag.
func validJobName(s string) bool {
	return s != "" && len(s) <= 128 && s[0] != '.' && s[0] != '-' && !strings.ContainsFunc(s, func(r rune) bool {
		return !asciiAlnum(r) && r != '_' && r != '.' && r != '-'
	})
}

func validAxisName(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsFunc(s, func(r rune) bool {
		return !asciiAlnum(r) && r != '_' && r != '-'
	})
}

func validEnvName(s string) bool {
	return s != "" && (s[0] < '0' || s[0] > '9') && !strings.ContainsFunc(s, func(r rune) bool {
		return !asciiAlnum(r) && r != '_'
	})
}

func validSecretName(s string) bool { return validEnvName(s) && len(s) <= 128 }

func asciiAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

func controlRune(r rune) bool { return r < ' ' || r == 0x7f }

// validHash reports whether h is a sha256 in lower-case hex, as modules
// names modules.
func validModuleHash(h string) bool {
	return len(h) == 64 && !strings.ContainsFunc(h, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	})
}

// checkRelPath checks that s is a clean relative slash path inside its
// root: no leading "/", no "." or ".." or empty elements.
func checkRelPath(s string) error {
	switch {
	case s == "":
		return errors.New("empty path")
	case strings.HasPrefix(s, "/"):
		return fmt.Errorf("%q is absolute", s)
	case strings.ContainsFunc(s, controlRune):
		return fmt.Errorf("control character in %q", s)
	}
	for e := range strings.SplitSeq(s, "/") {
		if e == "" || e == "." || e == ".." {
			return fmt.Errorf("%q is not a clean relative path", s)
		}
	}
	return nil
}
