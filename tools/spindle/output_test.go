package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// jsonLines decodes one runLine per line of out.
func jsonLines(t *testing.T, out string) map[string]runLine {
	t.Helper()
	got := map[string]runLine{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v\nall of stdout:\n%s", line, err, out)
		}
		got[l.Target] = l
	}
	return got
}

// TestRunJSONCarriesGuestOutput: --json lines hold each target's stdout
// and stderr apart, bounded, with a flag when cut.
func TestRunJSONCarriesGuestOutput(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	_, cmd, _ := cliModules(t)
	code, out, errs := runCmd(t, "run", "--json", "-t", "local", "-t", "local:a", cmd, "--", "one", "two")
	if code != exitCIFailed { // the command exits 2 (its two arguments) on both: a failure
		t.Fatalf("spindle run = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitCIFailed, out, errs)
	}
	lines := jsonLines(t, out)
	for _, name := range []string{"local", "local:a"} {
		l, ok := lines[name]
		if !ok {
			t.Fatalf("no line for %s:\n%s", name, out)
		}
		if l.ExitCode == nil || *l.ExitCode != 2 || !strings.Contains(l.Stdout, `args: ["one" "two"]`) ||
			l.Stderr != "cmd: done\n" || l.StdoutTruncated || l.StderrTruncated {
			t.Errorf("%s: %+v", name, l)
		}
		// A non-zero exit is not ok, in the line as in the recap, so
		// jq 'select(.ok|not)' finds every failure.
		if l.OK || l.Error == nil || l.Error.Kind != "exit" || l.Error.Message != "exit status 2" {
			t.Errorf("%s: ok %v, error %+v; want not ok, kind exit", name, l.OK, l.Error)
		}
	}

	// The table's rows say FAILED for a non-zero exit, as the recap counts.
	code, out, errs = runCmd(t, "run", "-t", "local", "-t", "local:a", cmd, "--", "one", "two")
	if code != exitCIFailed || strings.Count(out, " FAILED  exit 2\n") != 2 || !strings.Contains(errs, "2 targets: 0 ok, 2 failed") {
		t.Errorf("table = %d:\n%s\n%s", code, out, errs)
	}

	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errs = runCmd(t, "run", "--json", bad, "stdout_flood", "--input", `{"n": 100000}`)
	if code != 0 {
		t.Fatalf("stdout_flood = %d\nstderr:\n%s", code, errs)
	}
	l := jsonLines(t, out)["local"]
	if len(l.Stdout) != maxCollectedBytes || strings.Trim(l.Stdout, "x") != "" || !l.StdoutTruncated || l.StderrTruncated {
		t.Errorf("flood: %d bytes of stdout, truncated %v (stderr %v), want %d x and truncated",
			len(l.Stdout), l.StdoutTruncated, l.StderrTruncated, maxCollectedBytes)
	}
}

// TestRunStdoutIsTheResult: with one target, a reactor's prints go to
// stderr and its result alone to stdout, so stdout pipes into jq; a
// failure is spindle's message on stderr, never on stdout.
func TestRunStdoutIsTheResult(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errs := runCmd(t, "run", bad, "stdout_flood", "--input", `{"n": 5}`)
	if code != 0 {
		t.Fatalf("stdout_flood = %d\nstderr:\n%s", code, errs)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["writes"] != float64(5) {
		t.Errorf("stdout is not the result alone (%v): %q", err, out)
	}
	if !strings.Contains(errs, "xxxxx") {
		t.Errorf("the reactor's prints are not on stderr: %q", errs)
	}

	code, out, errs = runCmd(t, "run", "--timeout", "200ms", bad, "loop")
	if code != exitCIFailed || out != "" || !strings.Contains(errs, "local") || !strings.Contains(errs, "FAILED") {
		t.Errorf("loop = %d, stdout %q, stderr %q; want %d, nothing on stdout, the failure on stderr", code, out, errs, exitCIFailed)
	}
}

// TestRunOwnLineAfterGuestLine: with one target, spindle's own failure
// line starts a line of its own when the guest's last print did not end
// one, and a reactor's unfinished print is ended before the result.
func TestRunOwnLineAfterGuestLine(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errs := cli(t, "run", bad, "stdout_flood", "--input", `{"n": 100000}`, "--output-bytes", "64KiB")
	line, ok := lineWith(errs, "FAILED")
	if code != exitCIFailed || out != "" || !ok || !strings.HasPrefix(line, "local ") || !strings.Contains(line, "output_limit") ||
		!strings.HasSuffix(errs, "x\n"+line+"\n") {
		t.Errorf("stdout_flood past --output-bytes = %d, stdout %q, stderr ends %q; want %d and the failure on a line of its own after the x's",
			code, out, errs[max(0, len(errs)-200):], exitCIFailed)
	}
	code, out, errs = cli(t, "run", bad, "stdout_flood", "--input", `{"n": 5}`)
	if code != 0 || errs != "xxxxx\n" || !strings.HasPrefix(out, "{") {
		t.Errorf("stdout_flood of 5 = %d, stdout %q, stderr %q; want 0, the result, and the prints as one line", code, out, errs)
	}
}

func TestCapBuffer(t *testing.T) {
	b := newCapBuffer(4)
	for _, s := range []string{"ab", "cde", "fg"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if s, cut := b.text(); s != "abcd" || !cut {
		t.Errorf("text = %q, %v; want abcd, true", s, cut)
	}
	if s := b.summary(); s != "abcd\n[3 more bytes not shown]\n" {
		t.Errorf("summary = %q", s)
	}
}

// TestRunTableReactorPrintsOnStderr: with several targets in table form, a
// reactor's prints are not results: stdout holds the rows alone, and each
// printed line is on stderr, naming its target. The binary runs as a real
// process, its two streams apart.
func TestRunTableReactorPrintsOnStderr(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errs := cli(t, "run", "-t", "local", "-t", "local:b", bad, "stdout_flood", "--input", `{"n": 5}`)
	if code != 0 {
		t.Fatalf("stdout_flood on 2 targets = %d\n%s\n%s", code, out, errs)
	}
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(rows) != 2 || strings.Contains(out, "xxxxx") {
		t.Errorf("stdout holds more than the two rows:\n%s", out)
	}
	for _, name := range []string{"local", "local:b"} {
		if row := rowOf(out, name); !strings.Contains(row, ` ok      {"writes":5}`) {
			t.Errorf("row of %s = %q, want ok with the result", name, row)
		}
		if !strings.Contains(errs, name+" | xxxxx\n") {
			t.Errorf("stderr lacks %s's print:\n%s", name, errs)
		}
	}
}
