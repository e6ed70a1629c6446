package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/wire"
)

func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	maybeRunLimitHelper()
	spindle.MaybeRunChild(gocacheFuncs()) // first: the CLI's children inherit cliEnv
	maybeRunExecName()
	maybeRunCLI()
	testutil.VerifyTestMain(m)
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTree(t *testing.T) {
	testutil.VerifyNone(t)
	code, out, errs := runCmd(t, "tree", "-depth", "3", "-width", "2")
	if code != 0 {
		t.Fatalf("spindle tree = %d, stderr:\n%s", code, errs)
	}
	// 2 + 4 + 8 contexts below the master, each pinged.
	if n := strings.Count(out, "└─") + strings.Count(out, "├─"); n != 14 {
		t.Errorf("spindle tree printed %d contexts, want 14:\n%s", n, out)
	}
	for _, want := range []string{"c1.c1.c1 (id ", "3 hops", "whole tree shut down"} {
		if !strings.Contains(out, want) {
			t.Errorf("spindle tree output lacks %q:\n%s", want, out)
		}
	}
}

// TestTreeLines: the tree is drawn with continuation lines, so each
// context's parent can be read off the page.
func TestTreeLines(t *testing.T) {
	testutil.VerifyNone(t)
	code, out, errs := runCmd(t, "tree", "--depth", "3", "--width", "2")
	if code != 0 {
		t.Fatalf("spindle tree = %d, stderr:\n%s", code, errs)
	}
	got := regexp.MustCompile(` \(id .*`).ReplaceAllString(out, "")
	want := `master
├─ c0
│  ├─ c0.c0
│  │  ├─ c0.c0.c0
│  │  └─ c0.c0.c1
│  └─ c0.c1
│     ├─ c0.c1.c0
│     └─ c0.c1.c1
└─ c1
   ├─ c1.c0
   │  ├─ c1.c0.c0
   │  └─ c1.c0.c1
   └─ c1.c1
      ├─ c1.c1.c0
      └─ c1.c1.c1
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("spindle tree drew\n%s\nwant\n%s", got, want)
	}
}

// TestHelpEverywhere: every command's -h and --help, and spindle help
// CMD, print its usage on stdout with exit 0; a bad flag is one line and
// a pointer to -h, with exit 2.
func TestHelpEverywhere(t *testing.T) {
	for name := range usages {
		text, _ := usageOf(name)
		cmd := strings.Fields(name)
		for _, args := range [][]string{append(cmd[:len(cmd):len(cmd)], "-h"), append(cmd[:len(cmd):len(cmd)], "--help"), append([]string{"help"}, cmd...)} {
			code, out, errs := runCmd(t, args...)
			if code != 0 || out != text || errs != "" {
				t.Errorf("spindle %q = %d, stderr %q, stdout %.40q; want 0 and the usage of %s", args, code, errs, out, name)
			}
		}
		if !strings.HasPrefix(text, "usage: spindle "+name) {
			t.Errorf("the usage of %s starts %.40q", name, text)
		}
	}
	// spindle help -h lists every command it knows, completion too.
	for name := range usages {
		if _, out, _ := runCmd(t, "help", "-h"); !strings.Contains(out, name) {
			t.Errorf("spindle help -h omits %s:\n%s", name, out)
		}
	}
	if code, _, errs := runCmd(t, "help", "nope"); code != 2 || !strings.Contains(errs, `no command "nope"`) {
		t.Errorf("spindle help nope = %d, %q", code, errs)
	}
}

// TestUnknownFlags: every command, through the real binary, answers an
// unknown flag in run's words, naming the flag as typed, then points to
// its -h, with exit 2; an unknown command is one line.
func TestUnknownFlags(t *testing.T) {
	testutil.VerifyNone(t)
	for name := range usages {
		cmd := strings.Fields(name)
		for _, bogus := range []string{"--bogus", "-b"} {
			code, out, errs := cli(t, append(cmd[:len(cmd):len(cmd)], bogus)...)
			want := "spindle " + name + ": unknown flag " + bogus + "\nsee spindle " + name + " -h\n"
			if code != exitUsage || out != "" || errs != want {
				t.Errorf("spindle %s %s = %d, stdout %q, stderr %q; want %d and %q", name, bogus, code, out, errs, exitUsage, want)
			}
		}
	}
	code, out, errs := cli(t, "sh", "-t")
	if want := "spindle sh: flag -t needs a value\nsee spindle sh -h\n"; code != exitUsage || out != "" || errs != want {
		t.Errorf("spindle sh -t = %d, %q, %q; want %d and %q", code, out, errs, exitUsage, want)
	}
	code, out, errs = cli(t, "nosuch")
	if want := "spindle: unknown command \"nosuch\" (see spindle help)\n"; code != exitUsage || out != "" || errs != want {
		t.Errorf("spindle nosuch = %d, %q, %q; want %d and %q", code, out, errs, exitUsage, want)
	}
}

// TestFlagValueErrors: a value a flag refuses is reported naming the flag
// once, as typed: through spindle's own parsers (their message names it)
// and through the flag package's (an int).
func TestFlagValueErrors(t *testing.T) {
	testutil.VerifyNone(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"toolexec", "--idle", "5", "compile"}, "spindle toolexec: --idle \"5\": a duration needs a unit, as 5s or 5ms\n"},
		{[]string{"ci", "--parallel", "many"}, "spindle ci: --parallel \"many\": parse error\n"},
		{[]string{"ci", "-parallel=many"}, "spindle ci: -parallel \"many\": parse error\n"},
	} {
		code, out, errs := cli(t, c.args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, c.want) {
			t.Errorf("spindle %q = %d, stdout %q, stderr %q; want %d and %q", c.args, code, out, errs, exitUsage, c.want)
		}
	}
}

// TestHelpColumns: spindle help's list of commands is one column of
// names and one of what they do.
func TestHelpColumns(t *testing.T) {
	testutil.VerifyNone(t)
	_, out, _ := runCmd(t, "help")
	_, list, ok := strings.Cut(out, "commands:\n")
	if !ok {
		t.Fatalf("spindle help has no commands:\n%s", out)
	}
	col := -1
	for _, line := range strings.Split(strings.TrimSuffix(list, "\n"), "\n") {
		name := strings.Fields(line)[0]
		at := len(name) + 2 + len(line[len(name)+2:]) - len(strings.TrimLeft(line[len(name)+2:], " "))
		if col == -1 {
			col = at
		}
		if at != col || line[:2] != "  " {
			t.Errorf("spindle help line %q: its text starts at column %d, want %d", line, at, col)
		}
		if _, ok := usages[name]; !ok {
			t.Errorf("spindle help lists %s, which has no usage", name)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	testutil.VerifyNone(t)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: spindle"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"tree", "-depth", "0"}, "between 1 and 10"},
		{[]string{"tree", "-bogus"}, "unknown flag -bogus"},
		{[]string{"bench", "-bogus"}, "unknown flag -bogus"},
	}
	for _, tt := range tests {
		code, _, errs := runCmd(t, tt.args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("spindle %q = %d, stderr %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
	}
}

// TestBenchJSON runs the whole benchmark with few iterations and checks it
// prints one JSON object with every figure as a positive number. It says
// nothing about the figures themselves: they are measured, not asserted.
func TestBenchJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark once")
	}
	testutil.VerifyNone(t)
	wasmDir := t.TempDir()
	hello, err := os.ReadFile(testutil.BuildWasm(t, "examples/wasm/hello", true))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wasmDir, "hello.wasm"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "bench", "--json", "--quick", "-wasm", wasmDir)
	if code != 0 {
		t.Fatalf("spindle bench = %d, stderr:\n%s", code, errs)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("bench output is not one JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("bench printed more than one JSON value:\n%s", out)
	}
	for _, key := range []string{"spawn_local_ms", "rtt_1hop_us", "rtt_2hop_us", "rtt_3hop_us", "rtt_1hop_p99_us",
		"rtt_2hop_p99_us", "rtt_3hop_p99_us", "pipelined_calls_per_s", "throughput_mb_s", "fanout20_ms",
		"child_rss_mb", "bulk_peak_rss_mb", "limit_pingpong_us", "limit_throughput_mb_s",
		"wasm_call_warm_us", "wasm_call_fresh_us", "wasm_instantiate_go_ms", "compile_cold_ms", "compile_cached_ms"} {
		v, ok := got[key].(float64)
		if !ok || v <= 0 {
			t.Errorf("bench %s = %v (%T), want a positive number", key, got[key], got[key])
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, out, _ := runCmd(t, arg)
		if code != 0 {
			t.Fatalf("spindle %s = %d", arg, code)
		}
		for _, want := range []string{"spindle ", "go go1.", "wazero v1.", fmt.Sprintf("protocol %d\n", wire.ProtocolVersion), `ci platform "spindle-ci/1 wasip1"`} {
			if !strings.Contains(out, want) {
				t.Errorf("spindle %s lacks %q:\n%s", arg, want, out)
			}
		}
	}
}

// TestCompletion sources the bash completion script in a real bash and
// completes a command, a flag of run, and a flag of ci.
func TestCompletion(t *testing.T) {
	code, script, errs := runCmd(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("spindle completion bash = %d: %s", code, errs)
	}
	for _, tt := range []struct{ words, want string }{
		{"spindle ru", "run"},
		{"spindle run --output-b", "--output-bytes"},
		{"spindle ci --no-s", "--no-sandbox"},
		{"spindle run -K", "-K"},
	} {
		words := strings.Fields(tt.words)
		prog := script + fmt.Sprintf("\nCOMP_WORDS=(%s); COMP_CWORD=%d; _spindle; echo \"${COMPREPLY[*]}\"\n", tt.words, len(words)-1)
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tt.want {
			t.Errorf("completing %q = %q (%v), want %q", tt.words, out, err, tt.want)
		}
	}
	if code, _, _ := runCmd(t, "completion", "zsh"); code != 2 {
		t.Errorf("spindle completion zsh = %d, want 2", code)
	}
}

// TestParseFlags: flags anywhere among the positionals; "--" ends them
// unless it is a flag's value.
func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		pos, s  string
		verbose bool
	}{
		{[]string{"a", "-s", "x", "b"}, "a b", "x", false},
		{[]string{"a", "--", "-s", "x"}, "a -s x", "", false},
		{[]string{"-s", "--", "a", "-v"}, "a", "--", true},
		{[]string{"-v", "--", "-s"}, "-s", "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s := fs.String("s", "", "")
		v := fs.Bool("v", false, "")
		pos, err := parseFlags(fs, tt.args)
		if err != nil || strings.Join(pos, " ") != tt.pos || *s != tt.s || *v != tt.verbose {
			t.Errorf("parseFlags(%q) = %q, -s %q, -v %v, %v; want %q, %q, %v", tt.args, pos, *s, *v, err, tt.pos, tt.s, tt.verbose)
		}
	}
}
