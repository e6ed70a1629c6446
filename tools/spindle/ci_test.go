package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// ciJob writes a job file naming the probe module and returns its path.
func ciJob(t *testing.T, yaml string) string {
	t.Helper()
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(yaml, "PROBE", probe)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCIExitCodesAndOutput(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "a.txt"), []byte("hello from a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	pass := ciJob(t, `
jobs:
  j:
    steps:
      - {name: show, module: PROBE, args: [cat, /src/a.txt]}
`)
	code, out, errOut := runCmd(t, "ci", "--cache-dir", cache, "-w", ws, pass)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"j/show | hello from a", "j/show: passed (cache miss) on local", "1 steps: 1 passed", "cache: 0 hits, 1 misses"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "ci", "--cache-dir", cache, "-w", ws, pass, "--json")
	if code != 0 {
		t.Fatalf("--json rerun: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var types []string
	hits := 0
	for _, l := range lines {
		var ev struct {
			Type   string `json:"type"`
			Result *struct {
				Cache string `json:"cache"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		types = append(types, ev.Type)
		if ev.Result != nil && ev.Result.Cache != "hit" {
			t.Fatalf("rerun was not a hit: %s", l)
		}
		if ev.Type == "step_finished" && ev.Result != nil {
			hits++
		}
	}
	if types[len(types)-1] != "summary" || !strings.Contains(strings.Join(types, " "), "log") || hits != 1 {
		t.Fatalf("event types: %v, %d finished hits (want 1)", types, hits)
	}

	fail := ciJob(t, `
jobs:
  j:
    steps:
      - {name: bad, module: PROBE, args: [stderr, broken, ";", exit, "2"]}
`)
	code, out, _ = runCmd(t, "ci", "--cache-dir", cache, "-w", ws, fail)
	if code != exitCIFailed || !strings.Contains(out, "j/bad | broken") || !strings.Contains(out, "exit status 2") {
		t.Fatalf("failing job: exit %d\n%s", code, out)
	}

	bad := ciJob(t, "jobs:\n  j:\n    stepz: []\n")
	code, _, errOut = runCmd(t, "ci", bad)
	if code != exitUsage || !strings.Contains(errOut, "job.yaml:3:5") {
		t.Fatalf("malformed file: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "ci"); code != exitUsage || !strings.Contains(errOut, "a job file is needed") {
		t.Fatalf("no file: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "ci", "--parallel", "0", pass); code != exitUsage || !strings.Contains(errOut, "--parallel") ||
		strings.Count(errOut, "\n") != 2 || !strings.HasSuffix(errOut, "see spindle ci -h\n") {
		t.Fatalf("bad flag: exit %d: %s", code, errOut)
	}
	unreachable := ciJob(t, `
jobs:
  j:
    targets: ["ssh://nobody@127.0.0.1:1?timeout=5s"]
    steps:
      - {name: s, module: PROBE, args: [echo, hi]}
`)
	if code, out, _ = runCmd(t, "ci", "--retries", "0", "--cache-dir", cache, "-w", ws, unreachable); code != exitCIInfra ||
		!strings.Contains(out, ": hop 1 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused\n") {
		t.Fatalf("unreachable target: exit %d, want %d and the one wording of the failed start\n%s", code, exitCIInfra, out)
	}
}

// TestCISecretsFromFlags: a secret the job file asks for gets its value
// only from the operator's flags (or --trust-secrets), never from a source
// the job file chose; the value never reaches the output.
func TestCISecretsFromFlags(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	t.Setenv("OPERATOR_TOKEN", "the-operators-token")
	t.Setenv("HOST_SECRET", "a-host-secret-the-file-wants")
	job := ciJob(t, `
secrets:
  TOKEN: {env: HOST_SECRET}
jobs:
  j:
    steps:
      - {name: s, module: PROBE, secrets: [TOKEN], args: [cat, /run/secrets/TOKEN]}
`)
	code, _, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", ws, job)
	if code != exitUsage || !strings.Contains(errOut, "give it with --secret TOKEN") {
		t.Fatalf("no flag: exit %d: %s", code, errOut)
	}
	code, out, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--secret", "TOKEN=OPERATOR_TOKEN", job)
	if code != 0 || !strings.Contains(out, "j/s | ***") {
		t.Fatalf("--secret: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "the-operators-token") || strings.Contains(out+errOut, "a-host-secret") {
		t.Fatalf("a secret reached the output:\n%s\n%s", out, errOut)
	}
	if code, _, errOut = runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--secret", "OTHER", job); code != exitUsage ||
		!strings.Contains(errOut, "no such secret") {
		t.Fatalf("an undeclared --secret: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--trust-secrets", "--secret", "TOKEN", job); code != exitUsage ||
		!strings.Contains(errOut, "give no --secret") {
		t.Fatalf("--trust-secrets with --secret: exit %d: %s", code, errOut)
	}
	if code, out, _ = runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "--trust-secrets", job); code != 0 || !strings.Contains(out, "j/s | ***") {
		t.Fatalf("--trust-secrets: exit %d\n%s", code, out)
	}
}

// TestCIJSONTerminalSafe: --json events carry a step's text exactly, and
// nothing in them can act on a terminal (a C1 control is written \u009b).
func TestCIJSONTerminalSafe(t *testing.T) {
	testutil.VerifyNone(t)
	job := ciJob(t, `
jobs:
  j:
    steps:
      - {name: c1, module: PROBE, args: [echo, "a\u009b2Kb"]}
`)
	code, out, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", t.TempDir(), "--json", job)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if raw(out) || !strings.Contains(out, `a\u009b2Kb`) {
		t.Errorf("--json output is not terminal-safe, or lost the text:\n%q", out)
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"abcdef", 3, "abc…"}, {"aéé", 2, "a…"}, {"aéé", 3, "aé…"}} {
		if got := cut(tt.in, tt.n); got != tt.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// cliEnv turns the test binary into the spindle command (see TestMain), so
// a test can signal a real spindle process.
const cliEnv = "SPINDLE_TEST_CLI"

func maybeRunCLI() {
	if os.Getenv(cliEnv) != "1" {
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// TestCIInterrupt: Ctrl-C during a step stops the job with exit 130, a
// summary and no process of the tree left running; a second Ctrl-C quits
// at once, and the children, their streams closed, go too. The spindle
// process is a copy of the test binary at a path of its own, so its
// children (which run the same executable) are found by /proc/PID/exe
// wherever they were reparented.
func TestCIInterrupt(t *testing.T) {
	exe := cliCopy(t)
	job := ciJob(t, `
jobs:
  j:
    targets: [local:sig-b/local:sig-c]
    steps:
      - {name: spin, module: PROBE, args: [loop]}
`)
	for _, signals := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d signals", signals), func(t *testing.T) {
			testutil.VerifyNone(t)
			interruptCI(t, exe, job, signals)
		})
	}
}

// cliCopy copies the test binary to a path of its own and returns it.
func cliCopy(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "spindle-sigint")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestRunInterrupt: Ctrl-C during spindle run's task exits 130 and leaves
// no process of its tree.
func TestRunInterrupt(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	cmd, sc, errOut := startCLI(t, exe, "run", "-t", "local:sig-r/local:sig-s", probe, "--", "echo", "started", ";", "loop")
	if !sc.Scan() || sc.Text() != "started" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the task did not start: %q %v\n%s", sc.Text(), sc.Err(), errOut.String())
	}
	if n := len(processesOf(exe)); n != 3 {
		t.Errorf("%d processes of the tree, want the CLI and 2 children", n)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	waitExit(t, cmd, exe, errOut)
}

// startCLI starts exe as the spindle command with args, its stdout read
// line by line through the scanner, its stderr kept.
func startCLI(t *testing.T, exe string, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut := &bytes.Buffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A CLI that hangs is killed, so that the test's reads of its stdout
	// end and it fails (exit -1 is no expected status) instead of hanging.
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	t.Cleanup(func() { watchdog.Stop() })
	return cmd, bufio.NewScanner(stdout), errOut
}

// waitExit waits for the interrupted cmd: exit 130, then no process of
// exe left.
func waitExit(t *testing.T, cmd *exec.Cmd, exe string, errOut *bytes.Buffer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not stop on SIGINT:\n%s", exe, errOut.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, errOut.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for left := processesOf(exe); len(left) > 0; left = processesOf(exe) {
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes of the tree still running after the CLI exited: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func interruptCI(t *testing.T, exe, job string, signals int) {
	cmd, sc, errOut := startCLI(t, exe, "ci", "--json", "--cache-dir", "-", "-w", t.TempDir(), job)
	// Wait until the step runs, two hops down.
	started := false
	for !started && sc.Scan() {
		started = strings.Contains(sc.Text(), `"type":"step_started"`)
	}
	if !started {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the step did not start: %v\n%s", sc.Err(), errOut.String())
	}
	if n := len(processesOf(exe)); n != 3 {
		t.Errorf("%d processes of the tree before the interrupt, want the CLI and 2 children", n)
	}
	// Two of a kind could merge into one pending signal: the second is
	// SIGTERM.
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM}[:signals] {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	waitExit(t, cmd, exe, errOut)
	if signals == 2 && !strings.Contains(errOut.String(), "interrupted again, quitting") {
		t.Errorf("the second signal did not quit at once:\n%s", errOut.String())
	}
	if signals == 1 && (!strings.Contains(rest.String(), `"type":"summary"`) || !strings.Contains(rest.String(), `"status":"cancelled"`)) {
		t.Errorf("no summary with the cancelled step after the interrupt:\n%s", rest.String())
	}
}

// processesOf lists the live processes running the executable at path.
func processesOf(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && l == path {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
				if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
					continue
				}
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestCIReportReasons: a step with a go test report lists, under its line,
// why tests were skipped and what wasip1 lacks that failed tests needed
// (the report is the output of a real wasip1 run, ci/report's testdata).
func TestCIReportReasons(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	b, err := os.ReadFile("../../ci/report/testdata/wasip1-lacks.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "go-test.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	job := ciJob(t, `
jobs:
  j:
    steps:
      - {name: tests, module: PROBE, args: [cat, /src/go-test.json], report: go-test-json}
`)
	code, out, errOut := runCmd(t, "ci", "--cache-dir", "-", "-w", ws, "-q", job)
	if code != exitCIFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitCIFailed, out, errOut)
	}
	for _, want := range []string{
		"j/tests: failed (cache miss) on local",
		": 1 passed, 6 failed, 3 skipped in 2 packages; 5 of the failures on what wasip1 lacks (subprocesses 1, pipes 1,",
		"\n    skipped: 2 × skipping on wasip1: no absolute symlinks (first lack TestSkipSymlink)\n    skipped: 1 × no reason given (first lack TestSkipBare)\n",
		"\n    needs what wasip1 lacks: subprocesses: 1 failed (first lack TestExec)\n",
		"\n    needs what wasip1 lacks: outside network: 1 failed (first lack/net TestGet)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}
