package ci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jobFileProblems returns the JobFileErrors err holds, joined or alone.
func jobFileProblems(t *testing.T, err error) []*JobFileError {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []*JobFileError
	for _, e := range errs {
		var je *JobFileError
		if !errors.As(e, &je) {
			t.Fatalf("error %q (%T) is not a *JobFileError", e, e)
		}
		if !errors.Is(e, ErrJobFile) {
			t.Fatalf("error %q does not match ErrJobFile", e)
		}
		out = append(out, je)
	}
	return out
}

// An errorAnnotation is an error a testdata file expects: "# error: COL: TEXT"
// on the line the error is at; TEXT is part of the message.
type errorAnnotation struct {
	line, col int
	text      string
}

func errorAnnotations(t *testing.T, data []byte) []errorAnnotation {
	t.Helper()
	var out []errorAnnotation
	for i, line := range strings.Split(string(data), "\n") {
		parts := strings.Split(line, "# error: ")
		for _, part := range parts[1:] {
			col, text, ok := strings.Cut(strings.TrimSpace(part), ": ")
			n, err := strconv.Atoi(col)
			if !ok || err != nil {
				t.Fatalf("line %d: bad annotation %q (want # error: COL: TEXT)", i+1, part)
			}
			out = append(out, errorAnnotation{i + 1, n, strings.TrimSpace(text)})
		}
	}
	return out
}

// TestTestdata parses every job file under testdata/jobs: those in good/
// must parse and expand; those in bad/ must fail with exactly the errors
// their annotations name, each at its line and column.
func TestTestdata(t *testing.T) {
	good, _ := filepath.Glob("testdata/jobs/good/*.yaml")
	bad, _ := filepath.Glob("testdata/jobs/bad/*.yaml")
	if len(good) < 3 || len(bad) < 4 {
		t.Fatalf("found %d good and %d bad job files, want the testdata", len(good), len(bad))
	}
	for _, path := range good {
		t.Run(path, func(t *testing.T) {
			f, err := ParseJobFile(path)
			if err != nil {
				t.Fatalf("ParseJobFile: %v", err)
			}
			if _, err := f.Expand(); err != nil {
				t.Fatalf("Expand: %v", err)
			}
		})
	}
	for _, path := range bad {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := errorAnnotations(t, data)
			f, err := ParseJobFile(path)
			if f != nil || err == nil {
				t.Fatalf("ParseJobFile = %v, %v; want an error", f, err)
			}
			got := jobFileProblems(t, err)
			used := make([]bool, len(got))
			for _, a := range want {
				found := false
				for i, e := range got {
					if !used[i] && e.Pos.File == path && e.Pos.Line == a.line && e.Pos.Col == a.col && strings.Contains(e.Msg, a.text) {
						used[i], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("no error %d:%d: ...%s...", a.line, a.col, a.text)
				}
			}
			for i, e := range got {
				if !used[i] {
					t.Errorf("unexpected error %v", e)
				}
			}
		})
	}
}

func TestParseFull(t *testing.T) {
	f, err := ParseJobFile("testdata/jobs/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const file = "testdata/jobs/good/full.yaml"
	want := &File{
		Path: file,
		Salt: "1",
		Secrets: map[string]SecretSource{
			"TOKEN": {Env: "CI_TOKEN"},
			"KEY":   {File: "keys/deploy.key"},
		},
		Jobs: []*Job{
			{
				Name:    "build",
				Targets: []string{"local"},
				Timeout: 20 * time.Minute,
				Steps: []*Step{{
					Name: "compile", Module: "../bin/compile.wasm", Args: []string{"-o", "out/app"},
					Inputs: []string{"**"}, Outputs: []string{"app"}, Timeout: DefaultStepTimeout,
					MemoryBytes: DefaultMemoryBytes, OutputBytes: DefaultOutputBytes, DiskBytes: DefaultDiskBytes,
					Pos: Pos{file, 11, 9},
				}},
				Pos: Pos{file, 7, 3},
			},
			{
				Name:    "lint",
				Targets: []string{"local", "ssh://ci@builder/local:w"},
				Timeout: 10 * time.Minute,
				Needs:   []string{"build"},
				Matrix: []MatrixAxis{
					{Name: "goarch", Values: []string{"amd64", "arm64"}, Pos: Pos{file, 20, 7}},
					{Name: "go", Values: []string{"1.20", "1.21"}, Pos: Pos{file, 21, 7}},
				},
				Steps: []*Step{
					{
						Name: "gofmt", Tool: "gofmt", Args: []string{"-l", "."},
						Env:    map[string]string{"GOARCH": "${{ matrix.goarch }}", "GOTOOLCHAIN": "go${{matrix.go}}"},
						Inputs: []string{"**/*.go", "!**/testdata/**"}, Outputs: []string{"fmt.txt"}, Stdin: "in.txt",
						Timeout: time.Minute, MemoryBytes: 256 << 20, OutputBytes: 16 << 20, DiskBytes: 1 << 30,
						Clock: true, FailIfOutput: true, Report: ReportGoTestJSON,
						Pos: Pos{file, 23, 9},
					},
					{
						Name: "0123456789ab", Hash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
						Inputs: []string{"**"}, Timeout: DefaultStepTimeout, MemoryBytes: 1 << 20,
						OutputBytes: DefaultOutputBytes, DiskBytes: DefaultDiskBytes, Secrets: []string{"TOKEN"}, Report: ReportTAP,
						Pos: Pos{file, 37, 9},
					},
				},
				Pos: Pos{file, 15, 3},
			},
		},
	}
	if !reflect.DeepEqual(f, want) {
		for i := range min(len(f.Jobs), len(want.Jobs)) {
			for k := range min(len(f.Jobs[i].Steps), len(want.Jobs[i].Steps)) {
				if !reflect.DeepEqual(f.Jobs[i].Steps[k], want.Jobs[i].Steps[k]) {
					t.Errorf("job %d step %d:\n got %+v\nwant %+v", i, k, f.Jobs[i].Steps[k], want.Jobs[i].Steps[k])
				}
			}
			j, w := *f.Jobs[i], *want.Jobs[i]
			j.Steps, w.Steps = nil, nil
			if !reflect.DeepEqual(j, w) {
				t.Errorf("job %d:\n got %+v\nwant %+v", i, j, w)
			}
		}
		t.Fatalf("ParseJobFile = %+v, want %+v", f, want)
	}
	if got, want := f.PathOf("../bin/compile.wasm"), filepath.Join("testdata", "jobs", "bin", "compile.wasm"); got != want {
		t.Errorf("PathOf = %q, want %q", got, want)
	}
	if got := f.PathOf("/abs/x.wasm"); got != "/abs/x.wasm" {
		t.Errorf("PathOf(abs) = %q", got)
	}
}

func TestParseAnchors(t *testing.T) {
	f, err := ParseJobFile("testdata/jobs/good/anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	steps := f.Jobs[0].Steps
	if len(steps) != 3 {
		t.Fatalf("%d steps, want 3", len(steps))
	}
	for i, want := range []struct {
		name, tool string
		timeout    time.Duration
		memory     int64
	}{
		{"gofmt", "gofmt", DefaultStepTimeout, DefaultMemoryBytes},
		{"gofumpt", "gofumpt", DefaultStepTimeout, DefaultMemoryBytes},
		{"gofmt-limited", "gofmt", 45 * time.Second, 64 << 20},
	} {
		s := steps[i]
		if s.Name != want.name || s.Tool != want.tool || s.Timeout != want.timeout || s.MemoryBytes != want.memory ||
			!reflect.DeepEqual(s.Args, []string{"-l", "."}) || !s.FailIfOutput {
			t.Errorf("step %d = %+v, want %+v with args [-l .] and fail-if-output", i, s, want)
		}
	}
}

// TestParseErrors checks one message of each kind, whole.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "j.yaml: empty (expected a job file: a mapping with jobs:)"},
		{"comments only", "# nothing\n", "j.yaml: empty (expected a job file: a mapping with jobs:)"},
		{"not a mapping", "[a]\n", "j.yaml:1:1: got a list (expected a job file: a mapping with jobs:)"},
		{"no jobs", "salt: x\n", "j.yaml:1:1: no jobs (expected a top-level jobs: mapping)"},
		{"empty jobs", "jobs: {}\n", "j.yaml:1:7: jobs: empty (expected at least one job)"},
		{"syntax", "jobs:\n  a: [\n", "j.yaml:2: did not find expected node content (expected valid YAML)"},
		{"tabs", "jobs:\n\ta: 1\n", "j.yaml:2: found character that cannot start any token (expected valid YAML)"},
		{"two documents", "jobs: {a: {steps: [{tool: t}]}}\n---\njobs: {}\n", "j.yaml:2:1: a second YAML document (expected one job file per file)"},
		{"unknown top key", "jobs: {a: {steps: [{tool: t}]}}\nsalts: x\n", `j.yaml:2:1: unknown key "salts" at the top of a job file (did you mean "salt"?)`},
		{"duplicate job", "jobs:\n  a: {steps: [{tool: t}]}\n  a: {steps: [{tool: t}]}\n", `j.yaml:3:3: duplicate key "a", first at 2:3 (expected each key once)`},
		{"duplicate step key", "jobs:\n  a:\n    steps:\n      - tool: t\n        tool: u\n", `j.yaml:5:9: duplicate key "tool", first at 4:9 (expected each key once)`},
		{
			"undeclared secret", "secrets: {TOKEN: {env: T}}\njobs:\n  a:\n    steps: [{tool: t, secrets: [TOKEM]}]\n",
			`j.yaml:4:33: secret "TOKEM" is not declared (expected it under the top-level secrets:; did you mean "TOKEN"?)`,
		},
		{"secret without source", "secrets: {TOKEN: {}}\njobs: {a: {steps: [{tool: t}]}}\n", "j.yaml:1:18: secret TOKEN: no source (expected env: VAR or file: PATH)"},
		{"bad secret env", "secrets: {TOKEN: {env: A-B}}\njobs: {a: {steps: [{tool: t}]}}\n", `j.yaml:1:24: secret TOKEN env: "A-B" is not a variable name (expected letters, digits and _)`},
		{"step not a mapping", "jobs: {a: {steps: [gofmt]}}\n", "j.yaml:1:20: got a string (expected a step: a mapping with tool:, module: or hash:)"},
		{"steps not a list", "jobs: {a: {steps: {tool: t}}}\n", "j.yaml:1:19: steps: got a mapping (expected a list of steps)"},
		{"needs unknown, no close name", "jobs:\n  a: {needs: [zzz], steps: [{tool: t}]}\n", `j.yaml:2:15: needs unknown job "zzz" (expected one of a)`},
		{"size overflow", "jobs: {a: {steps: [{tool: t, disk: 99999999999999GiB}]}}\n", `j.yaml:1:36: disk: "99999999999999GiB" is too large (expected a size like 256MiB, 1GiB, 512KiB or a number of bytes)`},
		{"size too large", "jobs: {a: {steps: [{tool: t, memory: 8GiB}]}}\n", "j.yaml:1:38: memory: 8GiB (expected at most 4GiB)"},
		{"negative size", "jobs: {a: {steps: [{tool: t, memory: -64KiB}]}}\n", "j.yaml:1:38: memory: -64KiB (expected a size above zero)"},
		{"size wrong type", "jobs: {a: {steps: [{tool: t, memory: [1]}]}}\n", "j.yaml:1:38: memory: got a list (expected a size like 256MiB, 1GiB, 512KiB or a number of bytes)"},
		{"bad duration", "jobs: {a: {timeout: 10 minutes, steps: [{tool: t}]}}\n", `j.yaml:1:21: timeout: "10 minutes" is not a duration (expected a duration like 10m, 90s or 1h30m)`},
		{"duration too long", "jobs: {a: {timeout: 48h, steps: [{tool: t}]}}\n", "j.yaml:1:21: timeout: 48h (expected at most 24h)"},
		{"null arg", "jobs: {a: {steps: [{tool: t, args: [~]}]}}\n", `j.yaml:1:37: args: got nothing (expected a string; write "" for an empty string)`},
		{"binary arg", "jobs: {a: {steps: [{tool: t, args: [!!binary aGk=]}]}}\n", "j.yaml:1:37: args: got a !!binary value (expected a string)"},
		{"NUL in arg", "jobs: {a: {steps: [{tool: t, args: [\"a\\0b\"]}]}}\n", "j.yaml:1:37: args: holds a NUL byte (expected text)"},
		{"mapping key", "jobs: {a: {steps: [{tool: t, [x]: 1}]}}\n", "j.yaml:1:30: got a list as a key (expected a name)"},
		{"empty inputs", "jobs: {a: {steps: [{tool: t, inputs: []}]}}\n", "j.yaml:1:38: inputs: empty (expected workspace globs; omit inputs for the whole workspace)"},
		{"bad input", "jobs: {a: {steps: [{tool: t, inputs: [\"src/[\"]}]}}\n", `j.yaml:1:39: inputs: pattern "src/[": unclosed character class (expected a glob of workspace paths, like **/*.go or !**/testdata/**)`},
		{
			"bad target", "jobs: {a: {targets: [\"ssh://a/b\"], steps: [{tool: t}]}}\n",
			`j.yaml:1:22: targets: target: invalid target "ssh://a/b": "/b" does not start a hop (a hop starts with ...`,
		},
		{"reserved env", "jobs: {a: {steps: [{tool: t, env: {TMPDIR: /x}}]}}\n", "j.yaml:1:36: env: TMPDIR is set by spindle (expected another name; PWD, HOME and TMPDIR are fixed)"},
		{"unnamed module step", "jobs: {a: {steps: [{module: \"my tool.wasm\"}]}}\n", `j.yaml:1:20: step has no name and "my tool" will not do as one (expected name: with letters, digits, _, . and -)`},
		{
			"module template", "jobs: {a: {matrix: {x: [1]}, steps: [{name: s, module: \"${{ matrix.x }}.wasm\"}]}}\n",
			"j.yaml:1:56: module: ${{ }} is not substituted here (expected it only in targets, args, env values, stdin and inputs)",
		},
		{"empty matrix axis", "jobs: {a: {matrix: {x: []}, steps: [{tool: t}]}}\n", "j.yaml:1:24: matrix x: empty (expected at least one value)"},
		{"empty matrix", "jobs: {a: {matrix: {}, steps: [{tool: t}]}}\n", "j.yaml:1:20: matrix: empty (expected a mapping of names to lists of values; omit matrix for one run)"},
		{
			"matrix too big", "jobs: {a: {matrix: {x: [" + numberList(20) + "], y: [" + numberList(20) + "]}, steps: [{tool: t}]}}\n",
			"matrix: more than 256 combinations (expected a smaller matrix)",
		},
		{"merge of a scalar", "jobs: {a: {steps: [{<<: x, tool: t}]}}\n", "j.yaml:1:25: <<: got a string (expected a mapping or a list of mappings to merge)"},
		{"empty tool", "jobs: {a: {steps: [{tool: \"\"}]}}\n", `j.yaml:1:27: tool "" (expected a toolbox tool's name: letters, digits, _, . and -)`},
		{"empty hash", "jobs: {a: {steps: [{hash: ''}]}}\n", `j.yaml:1:27: hash "" (expected the sha256 of a module: 64 lower-case hex digits)`},
		{"hint for run", "jobs: {a: {steps: [{run: make}]}}\n", `unknown key "run" in a step (did you mean tool, module or hash with args (a step runs a wasm command, not a shell)?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseJob("j.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseJob(%q) = %+v, want error %q", tt.src, f, tt.want)
			}
			errs := jobFileProblems(t, err)
			found := false
			for _, e := range errs {
				prefix, cut := strings.CutSuffix(tt.want, "...")
				switch {
				case e.Error() == tt.want,
					cut && strings.HasPrefix(e.Error(), prefix),
					!strings.HasPrefix(tt.want, "j.yaml") && strings.HasSuffix(e.Error(), tt.want):
					found = true
				}
			}
			if !found {
				t.Errorf("ParseJob(%q) = %v, want %q", tt.src, err, tt.want)
			}
		})
	}
}

func numberList(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

func TestParseManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("jobs:\n  a:\n    steps:\n")
	for range 30 {
		b.WriteString("      - {tool: t, name: s" + strconv.Itoa(b.Len()) + ", bogus: 1}\n")
	}
	_, err := ParseJob("j.yaml", []byte(b.String()))
	errs := jobFileProblems(t, err)
	if len(errs) != maxErrors+1 || errs[maxErrors].Msg != "10 more problems not shown" {
		t.Fatalf("ParseJob with 30 problems = %d errors, last %v; want %d and a count of the rest", len(errs), errs[len(errs)-1], maxErrors+1)
	}
	// In file order, whatever order they were found in.
	for i := 1; i < maxErrors; i++ {
		if errs[i].Pos.Line <= errs[i-1].Pos.Line {
			t.Fatalf("errors out of order: %v before %v", errs[i-1], errs[i])
		}
	}
}

// TestAliasBombs feeds documents that blow up when aliases are expanded.
func TestAliasBombs(t *testing.T) {
	laughs := func(levels, width int, where string) string {
		var b strings.Builder
		b.WriteString("x-a0: &a0 [lol]\n")
		for i := 1; i <= levels; i++ {
			b.WriteString("x-a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [")
			for k := range width {
				if k > 0 {
					b.WriteString(", ")
				}
				b.WriteString("*a" + strconv.Itoa(i-1))
			}
			b.WriteString("]\n")
		}
		b.WriteString(strings.ReplaceAll(where, "TOP", "*a"+strconv.Itoa(levels)))
		return b.String()
	}
	// A wide step list: each step an alias of a big mapping.
	var wide strings.Builder
	wide.WriteString("x-s: &s {tool: t, args: [" + strings.Repeat("a, ", 5000) + "a]}\njobs:\n  j:\n    steps: [")
	for i := range 999 {
		if i > 0 {
			wide.WriteString(", ")
		}
		wide.WriteString("*s")
	}
	wide.WriteString("]\n")
	tests := []struct {
		name, src, want string
	}{
		{"billion laughs in args", laughs(9, 10, "jobs: {j: {steps: [{tool: t, args: TOP}]}}\n"), "args: got a list (expected a string)"},
		{"billion laughs as a matrix", laughs(9, 10, "jobs: {j: {matrix: {x: TOP}, steps: [{tool: t}]}}\n"), "matrix x: got a list"},
		{"many aliases", "x-v: &v a\njobs: {j: {steps: [{tool: t, args: [" + strings.Repeat("*v, ", 2000) + "*v]}]}}\n", "more than 1000 aliases followed"},
		{"aliased big steps", wide.String(), "YAML nodes visited"},
		{"merge of itself", "jobs: {j: {steps: [&m {tool: t, <<: *m}]}}\n", "a merge (<<) that includes itself"},
		{"self-referencing list", "jobs: {j: {steps: &l [*l]}}\n", "got a list (expected a step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := ParseJob("j.yaml", []byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseJob = %v, want an error with %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("ParseJob took %v", d)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, MaxFileBytes+1)
	for i := range big {
		big[i] = '#'
	}
	_, err := ParseJob("big.yaml", big)
	if err == nil || err.Error() != "big.yaml: larger than 4 MiB (expected a job file)" {
		t.Errorf("ParseJob of %d bytes = %v", len(big), err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseJobFile(path); !errors.Is(err, ErrJobFile) || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("ParseJobFile of %d bytes = %v", len(big), err)
	}
	if _, err := ParseJobFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseJobFile of a missing file = %v, want ErrNotExist", err)
	}
	// Runs across the whole file.
	var b strings.Builder
	b.WriteString("jobs:\n")
	for i := range 5 {
		b.WriteString("  j" + strconv.Itoa(i) + ": {matrix: {x: [" + numberList(16) + "], y: [" + numberList(16) + "]}, steps: [{tool: t}]}\n")
	}
	_, err = ParseJob("j.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "j.yaml:6:3: more than 1024 job runs in the file") {
		t.Errorf("ParseJob of 5 jobs of 256 runs = %v", err)
	}
}

func TestExpand(t *testing.T) {
	src := `
jobs:
  test:
    needs: [build]
    targets: ["local:${{ matrix.goos }}"]
    matrix:
      goarch: [amd64, arm64]
      goos: [linux, wasip1]
    steps:
      - tool: go
        args: [test, "-tags=${{ matrix.goos }}_${{ matrix.goarch }}", "${{matrix.goarch}}"]
        env: {GOARCH: "${{ matrix.goarch }}", FIXED: x}
        inputs: ["${{ matrix.goos }}/**", "!**/testdata/**"]
        stdin: "in/${{ matrix.goarch }}.txt"
        outputs: [out]
  report:
    needs: [test, lint]
    steps: [{tool: r}]
  lint:
    steps: [{tool: l}]
  build:
    steps: [{tool: b}]
`
	f, err := ParseJob("j.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	runs, err := f.Expand()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	wantNames := []string{
		"build",
		"test (goarch=amd64, goos=linux)", "test (goarch=amd64, goos=wasip1)",
		"test (goarch=arm64, goos=linux)", "test (goarch=arm64, goos=wasip1)",
		"lint", "report",
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("run names = %q, want %q", names, wantNames)
	}
	r := runs[3] // arm64, linux
	if !reflect.DeepEqual(r.Values, map[string]string{"goarch": "arm64", "goos": "linux"}) || r.Job != f.Jobs[0] {
		t.Errorf("run %s: Values %v, Job %v", r.Name, r.Values, r.Job.Name)
	}
	if !reflect.DeepEqual(r.Targets, []string{"local:linux"}) {
		t.Errorf("Targets = %q", r.Targets)
	}
	s := r.Steps[0]
	if !reflect.DeepEqual(s.Args, []string{"test", "-tags=linux_arm64", "arm64"}) ||
		!reflect.DeepEqual(s.Env, map[string]string{"GOARCH": "arm64", "FIXED": "x"}) ||
		!reflect.DeepEqual(s.Inputs, []string{"linux/**", "!**/testdata/**"}) ||
		s.Stdin != "in/arm64.txt" || !reflect.DeepEqual(s.Outputs, []string{"out"}) {
		t.Errorf("substituted step = %+v", s)
	}
	// The job as written is untouched, and runs share nothing.
	if f.Jobs[0].Steps[0].Args[1] != "-tags=${{ matrix.goos }}_${{ matrix.goarch }}" {
		t.Errorf("Expand changed the job: %q", f.Jobs[0].Steps[0].Args)
	}
	runs[1].Steps[0].Outputs[0] = "changed"
	runs[1].Steps[0].Env["FIXED"] = "changed"
	if runs[2].Steps[0].Outputs[0] != "out" || runs[2].Steps[0].Env["FIXED"] != "x" || f.Jobs[0].Steps[0].Outputs[0] != "out" {
		t.Errorf("runs share slices or maps with each other or with the job")
	}
	// Needs: each test run needs build; report needs every test run and lint.
	needNames := func(r *JobRun) []string {
		var out []string
		for _, n := range r.Needs {
			out = append(out, n.Name)
		}
		return out
	}
	for _, tr := range runs[1:5] {
		if got := needNames(tr); !reflect.DeepEqual(got, []string{"build"}) {
			t.Errorf("%s needs %q, want [build]", tr.Name, got)
		}
	}
	if got := needNames(runs[6]); !reflect.DeepEqual(got, wantNames[1:6]) {
		t.Errorf("report needs %q, want %q", got, wantNames[1:6])
	}
	// Topological: every run after those it needs.
	at := map[*JobRun]int{}
	for i, r := range runs {
		at[r] = i
		for _, n := range r.Needs {
			if _, ok := at[n]; !ok {
				t.Errorf("%s comes before %s, which it needs", r.Name, n.Name)
			}
		}
	}
	if runs[0].Values != nil || runs[0].Name != "build" {
		t.Errorf("a run without a matrix: Name %q, Values %v", runs[0].Name, runs[0].Values)
	}
}

// TestExpandHandBuilt checks the errors of a File that did not come from
// ParseJob.
func TestExpandHandBuilt(t *testing.T) {
	step := func() *Step { return &Step{Name: "s", Tool: "t", Inputs: []string{"**"}, Pos: Pos{"h", 9, 9}} }
	job := func(name string, needs ...string) *Job {
		return &Job{Name: name, Needs: needs, Targets: []string{"local"}, Steps: []*Step{step()}, Pos: Pos{"h", 1, 1}}
	}
	tests := []struct {
		name string
		f    *File
		want string
	}{
		{"cycle", &File{Jobs: []*Job{job("a", "b"), job("b", "c"), job("c", "a")}}, "h:1:1: needs: cycle a -> b -> c -> a"},
		{"unknown need", &File{Jobs: []*Job{job("a", "x")}}, `h:1:1: job a needs unknown job "x"`},
		{"twice", &File{Jobs: []*Job{job("a"), job("a")}}, `h:1:1: job "a" defined twice`},
		{"unknown matrix name", func() *File {
			j := job("a")
			j.Steps[0].Args = []string{"${{ matrix.x }}"}
			return &File{Jobs: []*Job{j}}
		}(), "h:9:9: args: ${{ matrix.x }} but the job has no matrix"},
		{"bad input after substitution", func() *File {
			j := job("a")
			j.Matrix = []MatrixAxis{{Name: "d", Values: []string{"ok", ".."}}}
			j.Steps[0].Inputs = []string{"${{ matrix.d }}/x"}
			return &File{Jobs: []*Job{j}}
		}(), `h:9:9: inputs (d=..): pattern "../x": ".." element`},
		{"bad target", func() *File {
			j := job("a")
			j.Targets = []string{"ssh://"}
			return &File{Jobs: []*Job{j}}
		}(), "h:1:1: targets: target: invalid target"},
		{"too many runs", func() *File {
			j := job("a")
			vals := strings.Split(numberList(300), ", ")
			j.Matrix = []MatrixAxis{{Name: "x", Values: vals}}
			return &File{Jobs: []*Job{j}}
		}(), "h:1:1: matrix: 300 combinations (expected at most 256)"},
	}
	for _, tt := range tests {
		_, err := tt.f.Expand()
		if !errors.Is(err, ErrJobFile) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: Expand = %v, want %q...", tt.name, err, tt.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	keys := []string{"timeout", "outputs", "output-bytes", "fail-if-output", "env"}
	tests := []struct{ in, want string }{
		{"timout", "timeout"},
		{"Timeout", "timeout"},
		{"output_bytes", "output-bytes"},
		{"fail_if_output", "fail-if-output"},
		{"envv", "env"},
		{"xyz", ""},
		{"e", ""},
	}
	for _, tt := range tests {
		got := didYouMean(tt.in, keys)
		want := ""
		if tt.want != "" {
			want = `did you mean "` + tt.want + `"?`
		}
		if got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", tt.in, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"256MiB", 256 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"512KiB", 512 << 10, ""},
		{"1048576", 1 << 20, ""},
		{"0x100000", 1 << 20, ""},
		{"1_048_576", 1 << 20, ""},
		{"256MB", 0, "not a size"},
		{"MiB", 0, "not a whole number"},
		{"+1MiB", 0, "not a whole number"},
		{"1.5MiB", 0, "not a whole number"},
		{"1 MiB", 0, "not a whole number"},
		{"lots", 0, "not a size"},
	}
	hints := map[string]string{"256MB": "256MiB", "256m": "256MiB", "1gb": "1GiB", "512K": "512KiB", "256 MiB": "256MiB", "lots": "", "1.5GiB": ""}
	for in, want := range hints {
		if want != "" {
			want = "did you mean " + want + "?"
		}
		if got := byteSizeHint(in); got != want {
			t.Errorf("sizeHint(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseJob: no input panics; every error is a positioned JobFileError;
// every File that parses expands.
func FuzzParseJob(f *testing.F) {
	paths, _ := filepath.Glob("testdata/jobs/*/*.yaml")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte("jobs: {a: {steps: [{tool: t}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseJob("f.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatalf("ParseJob returned a File and %v", err)
			}
			for _, e := range jobFileProblems(t, err) {
				if e.Pos.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("error %q without a place or a message", e)
				}
			}
			return
		}
		if _, err := file.Expand(); err != nil {
			t.Fatalf("ParseJob(%q) parsed, but Expand: %v", data, err)
		}
	})
}
