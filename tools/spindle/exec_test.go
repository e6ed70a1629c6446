package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/ci/report"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// The module of testdata/gotest: its packages pass, fail, and exit 3.
const goTestModule = "testdata/gotest"

// maybeRunExecName runs the test binary as spindle exec when it was started
// under the name go test finds on PATH (TestExecOnPath links it so).
func maybeRunExecName() {
	if isExecName(os.Args[0]) {
		os.Exit(cmdExecAsGo(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// goTest runs `GOOS=wasip1 GOARCH=wasm go test args...` in the test
// module, with env added.
func goTest(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"test"}, args...)...)
	cmd.Dir = goTestModule
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("go test: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// execProg is the -exec program: this test binary as the spindle CLI.
func execProg(t *testing.T, flags ...string) (prog string, env []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(append([]string{self, "exec"}, flags...), " "), []string{cliEnv + "=1"}
}

type execLine struct {
	Dir, Binary, Key, Cache, Target string
	NotCached                       string `json:"not_cached"`
	ExitCode                        int    `json:"exit_code"`
}

// readEvents reads an --events file, by package (the directory's base).
func readEvents(t *testing.T, path string) map[string][]execLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]execLine{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l execLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("--events line %q: %v", sc.Text(), err)
		}
		out[filepath.Base(l.Dir)] = append(out[filepath.Base(l.Dir)], l)
	}
	return out
}

// TestExecGoTest: a real go test -json -exec run of the test module on two
// local targets: the passing package reads testdata/ and writes to
// t.TempDir(), the report counts what ran and what skipped, a failing
// test and an exit status 3 fail; the second run of the unchanged
// passing package is a cache hit that says so, failures run again, and
// -count=1 runs again.
func TestExecGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasip1 test binaries")
	}
	testutil.VerifyNone(t)
	cache, events := t.TempDir(), filepath.Join(t.TempDir(), "events.jsonl")
	prog, env := execProg(t, "--cache", "--cache-dir", cache, "--events", events, "-t", "local:a", "-t", "local:b")
	code, out, errOut := goTest(t, env, "-json", "-exec", prog, "./pass", "./fail", "./exit3")
	if code != 1 {
		t.Fatalf("go test = exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	rep, err := report.ParseGoTest(strings.NewReader(out), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range rep.Packages {
		got[filepath.Base(p.Name)] = fmt.Sprintf("%s %d/%d/%d", p.Status, p.Pass, p.Fail, p.Skip)
	}
	want := map[string]string{"pass": "pass 6/0/1", "fail": "fail 1/1/0", "exit3": "fail 0/0/0"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("package %s: %q, want %q (status pass/fail/skip)\n%s", k, got[k], v, out)
		}
	}
	for _, p := range rep.Packages {
		for _, tt := range p.Tests {
			if tt.Name == "TestNoExec" && !strings.Contains(tt.Output, "cannot exec subprocess") {
				t.Errorf("TestNoExec's skip does not say why: %q", tt.Output)
			}
		}
	}
	ev := readEvents(t, events)
	for pkg, code := range map[string]int{"pass": 0, "fail": 1, "exit3": 3} {
		if l := ev[pkg]; len(l) != 1 || l[0].Cache != "miss" || l[0].ExitCode != code || (l[0].Target != "local:a" && l[0].Target != "local:b") {
			t.Errorf("first run of %s: events %+v, want one miss with exit %d on local:a or local:b", pkg, l, code)
		}
	}

	os.Remove(events)
	code, out, errOut = goTest(t, env, "-json", "-exec", prog, "./pass", "./fail")
	if code != 1 || !strings.Contains(out, "spindle exec: cache hit") {
		t.Fatalf("rerun: exit %d (want 1) and no cache hit said\n%s\n%s", code, out, errOut)
	}
	rep, err = report.ParseGoTest(strings.NewReader(out), report.Options{})
	if err != nil || len(rep.Packages) != 2 {
		t.Fatalf("rerun report: %v, %d packages", err, len(rep.Packages))
	}
	for _, p := range rep.Packages {
		if filepath.Base(p.Name) == "pass" && (p.Status != "pass" || p.Pass != 6 || p.Skip != 1) {
			t.Errorf("replayed pass: %s %d passed %d skipped, want pass 6 1", p.Status, p.Pass, p.Skip)
		}
	}
	ev = readEvents(t, events)
	if l := ev["pass"]; len(l) != 1 || l[0].Cache != "hit" {
		t.Errorf("rerun of pass: events %+v, want a hit", l)
	}
	if l := ev["fail"]; len(l) != 1 || l[0].Cache != "miss" || l[0].ExitCode != 1 {
		t.Errorf("rerun of fail: events %+v, want a miss with exit 1 (failures are not cached)", l)
	}

	os.Remove(events)
	if code, out, errOut = goTest(t, env, "-count=1", "-exec", prog, "./pass"); code != 0 {
		t.Fatalf("-count=1: exit %d\n%s\n%s", code, out, errOut)
	}
	if l := readEvents(t, events)["pass"]; len(l) != 1 || l[0].Cache != "off" || !strings.Contains(l[0].NotCached, "-test.count") {
		t.Errorf("-count=1: events %+v, want a run not cached because of -test.count", l)
	}
}

// TestExecLacks: tests that need what wasip1 lacks fail, and spindle exec
// says what each needed, once per kind, with the line that showed it; the
// report files each failure and skip under its reason; a plain failure
// is not among them.
func TestExecLacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasip1 test binaries")
	}
	testutil.VerifyNone(t)
	prog, env := execProg(t, "--cache-dir", "-")
	code, out, errOut := goTest(t, env, "-json", "-count=1", "-exec", prog, "./lacks")
	if code != 1 {
		t.Fatalf("go test = exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	rep, err := report.ParseGoTest(strings.NewReader(out), report.Options{})
	if err != nil || len(rep.Packages) != 1 {
		t.Fatalf("report: %v, %d packages\n%s", err, len(rep.Packages), out)
	}
	p := rep.Packages[0]
	note := p.Output
	for _, want := range []string{
		"spindle exec: the test failed on what wasip1 lacks",
		"  subprocesses: lacks_test.go:15: fork/exec /bin/true: Not implemented on wasip1\n",
		"  pipes: lacks_test.go:21: pipe: Not implemented on wasip1\n",
		"  outside network: lacks_test.go:28: dial tcp 127.0.0.1:1: ",
		"skip it there",
	} {
		if !strings.Contains(note, want) {
			t.Errorf("spindle exec's note lacks %q:\n%s", want, note)
		}
	}
	if strings.Contains(note, "on purpose") {
		t.Errorf("a plain failure is in the note:\n%s", note)
	}
	lacks := map[string]string{}
	for _, tt := range p.Tests {
		lacks[tt.Name] = tt.Status + " " + tt.Lacks
	}
	for name, want := range map[string]string{
		"TestSubprocess": "fail subprocesses", "TestPipe": "fail pipes", "TestDialOut": "fail outside network",
		"TestPlainFailure": "fail ", "TestSkipsWithReason": "skip ",
	} {
		if lacks[name] != want {
			t.Errorf("%s: %q, want %q", name, lacks[name], want)
		}
	}
	if s := rep.Skips(); len(s) != 1 || s[0].Reason != "skipping on wasip1: no subprocesses" || s[0].Count != 1 {
		t.Errorf("Skips = %+v", s)
	}
	if sum := rep.Summary(); !strings.Contains(sum, "3 of the failures on what wasip1 lacks (subprocesses 1, pipes 1, outside network 1)") {
		t.Errorf("Summary = %q", sum)
	}
}

// TestExecModule: a test that reads a file above its package fails with
// the package directory as its view and passes with --module, whose view
// is the module with the package directory as the working directory; a
// --module with no go.mod above is a usage error.
func TestExecModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasip1 test binaries")
	}
	testutil.VerifyNone(t)
	prog, env := execProg(t, "--cache-dir", "-")
	if code, out, errOut := goTest(t, env, "-count=1", "-exec", prog, "./updir"); code != 1 || !strings.Contains(out, "open ../README.md: No such file or directory") {
		t.Errorf("without --module: exit %d, want 1 and the missing file\n%s\n%s", code, out, errOut)
	}
	prog, env = execProg(t, "--cache-dir", "-", "--module")
	if code, out, errOut := goTest(t, env, "-count=1", "-exec", prog, "./updir"); code != 0 {
		t.Errorf("--module: exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	updir := buildTest(t, "updir")
	t.Chdir(t.TempDir())
	if code, out, errOut := runCmd(t, "exec", "--cache-dir", "-", "--module", updir); code != exitUsage || !strings.Contains(errOut, "--module: no go.mod in ") || out != "" {
		t.Errorf("--module outside a module: exit %d (want %d), stderr %q", code, exitUsage, errOut)
	}
}

// TestExecOnPath: go test finds spindle exec as go_wasip1_wasm_exec on
// PATH, with no -exec, its flags in $SPINDLE_EXEC_FLAGS.
func TestExecOnPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasip1 test binaries")
	}
	testutil.VerifyNone(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, execName)); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		execEnvFlags + "=--cache-dir " + t.TempDir() + " --events " + events}
	if code, out, errOut := goTest(t, env, "-v", "./pass"); code != 0 || !strings.Contains(out, "--- PASS: TestReadsTestdata") {
		t.Fatalf("go test = exit %d\n%s\n%s", code, out, errOut)
	}
	if l := readEvents(t, events)["pass"]; len(l) != 1 || l[0].Target != "local" || l[0].Cache != "off" {
		t.Errorf("events %+v, want one run on local, not cached (no --cache)", l)
	}
}

// buildTest builds the test binary of one package of the test module.
func buildTest(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), pkg+".test")
	abs, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	if code, o, e := goTest(t, nil, "-c", "-o", abs, "./"+pkg); code != 0 {
		t.Fatalf("go test -c ./%s: exit %d\n%s\n%s", pkg, code, o, e)
	}
	return abs
}

// TestExecDirect: spindle exec run by hand keeps the test's exit code (3
// from TestMain, 1 for a failure) and streams its output; bad input is a
// clear usage error before anything runs.
func TestExecDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs wasip1 test binaries")
	}
	testutil.VerifyNone(t)
	exit3, fail := buildTest(t, "exit3"), buildTest(t, "fail")
	t.Chdir(filepath.Join(goTestModule, "exit3"))
	if code, out, errOut := runCmd(t, "exec", "--cache-dir", "-", exit3); code != 3 || !strings.Contains(out, "exiting with status 3") {
		t.Errorf("exit3: exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCmd(t, "exec", "--cache-dir", "-", fail, "-test.run", "TestFails"); code != 1 || !strings.Contains(out, "fails on purpose") {
		t.Errorf("fail: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	text := filepath.Join(t.TempDir(), "notwasm.test")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"text file", []string{text}, "is not a wasm module (no \\0asm header): build it with GOOS=wasip1 GOARCH=wasm"},
		{"native binary", []string{self}, "is a native executable, not wasm"},
		{"missing file", []string{"/nonexistent/pkg.test"}, "test binary /nonexistent/pkg.test: no such file or directory"},
		{"coverprofile", []string{fail, "-test.coverprofile=/tmp/c.out"}, "-test.coverprofile (from -coverprofile) names a path on this machine"},
		{"gocoverdir", []string{fail, "-test.gocoverdir", "/tmp/x"}, "-test.gocoverdir (from -cover) names a path"},
		{"bad timeout", []string{fail, "-test.timeout=soon"}, `-test.timeout "soon": not a duration`},
		{"no binary", nil, "a test binary is needed"},
		{"unknown flag", []string{"--bogus", fail}, "unknown flag --bogus\nsee spindle exec -h"},
		{"bad memory", []string{"--memory", "5GiB", fail}, "--memory \"5GiB\""},
		{"timeout without unit", []string{"--timeout", "5", fail}, `--timeout "5": a duration needs a unit, as 5s or 5ms`},
		{"timeout not positive", []string{"--timeout", "-1m", fail}, `--timeout "-1m": must be positive`},
		{"bad target", []string{"-t", "nosuch://x", fail}, `target "nosuch://x"`},
	} {
		code, out, errOut := runCmd(t, append([]string{"exec", "--cache-dir", "-"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%s: exit %d (want %d), stderr %q lacks %q (stdout %q)", c.name, code, exitUsage, errOut, c.want, out)
		}
	}
}
