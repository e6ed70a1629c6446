package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// cliModules builds the example modules the CLI tests run.
func cliModules(t *testing.T) (hello, cmd, bad string) {
	return testutil.BuildWasm(t, "examples/wasm/hello", true),
		testutil.BuildWasm(t, "examples/wasm/cmd", false),
		testutil.BuildC(t, "examples/wasm/c-bad")
}

func TestRunReactorJSON(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // shared: each guest compiles once
	hello, _, _ := cliModules(t)
	code, out, errs := runCmd(t, "run", "-t", "local", "-t", "local:a/local:b", hello, "hello",
		"--input", `{"name": "cli"}`, "--json")
	if code != 0 {
		t.Fatalf("spindle run = %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d JSON lines, want one per target:\n%s", len(lines), out)
	}
	for i, target := range []string{"local", "local:a/local:b"} {
		var l struct {
			Target string
			OK     bool
			Output map[string]any
		}
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if l.Target != target || !l.OK || l.Output["greeting"] != "hello, cli" {
			t.Errorf("line %d = %+v, want target %s ok with greeting", i, l, target)
		}
	}
}

func TestRunFailureExitCode(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // shared: each guest compiles once
	_, _, bad := cliModules(t)
	code, out, _ := runCmd(t, "run", bad, "loop", "--timeout", "200ms", "--json")
	var l struct {
		OK    bool
		Error struct{ Kind, Message string }
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if code != 1 || l.OK || l.Error.Kind != "timeout" {
		t.Fatalf("spindle run loop = %d, %+v; want 1 and kind timeout", code, l)
	}
	// The table form names the failure too.
	code, out, _ = runCmd(t, "run", "-t", "local:x", "-t", "local:y", bad, "unreachable")
	if code != 1 || strings.Count(out, "FAILED") != 2 || !strings.Contains(out, "trap:") {
		t.Fatalf("spindle run unreachable = %d:\n%s", code, out)
	}
}

func TestRunCommand(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // shared: each guest compiles once
	_, cmd, _ := cliModules(t)
	stdin := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(stdin, []byte("quiet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "run", cmd, "--stdin", stdin, "--env", "GREETING=yo", "--", "x", "y", "z")
	if code != 3 {
		t.Fatalf("spindle run cmd = %d, want its exit code 3\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"QUIET", "GREETING=yo", `"x" "y" "z"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "cmd: done") {
		t.Errorf("stderr lacks the program's stderr:\n%s", errs)
	}
}

func TestRunUsageErrors(t *testing.T) {
	testutil.VerifyNone(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "no module given"},
		{[]string{"run", "m.wasm", "t", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "-t", "ssh:host", "m.wasm"}, `unknown method "ssh"`},
		{[]string{"run", "--bogus", "m.wasm"}, "unknown flag --bogus"},
		{[]string{"run", "--input", "{bad", "m.wasm"}, "--input is not JSON"},
		{[]string{"run", "--mount", "nocolon", "m.wasm"}, "want HOST:GUEST"},
		{[]string{"run", "--timeout", "-1s", "m.wasm"}, "must be positive"},
		{[]string{"run", "/nonexistent/m.wasm"}, "no such file"},
	}
	for _, tt := range tests {
		code, _, errs := runCmd(t, tt.args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("spindle %q = %d, stderr %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
	}
}
