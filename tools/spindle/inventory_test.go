package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// sampleInventory is the inventory shipped in examples/.
const sampleInventory = "../../examples/inventory/hosts.ini"

// cliRun runs exe, a copy of the test binary (see cliCopy), as the spindle
// command with args, and returns its exit status, stdout and stderr once
// it and every process it started have gone.
func cliRun(t *testing.T, exe string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // a loaded machine compiles a guest slowly under -race
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("spindle %q: %v", args, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for left := processesOf(exe); len(left) > 0; left = processesOf(exe) {
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("spindle %q: processes left after it exited: %v", args, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// writeInventory writes an inventory file and returns its path.
func writeInventory(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.ini")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunListHosts: --list-hosts prints what -t and --limit select, from
// the sample inventory, without reading the module or starting anything
// (the hosts are example.com's: any connection would fail).
func TestRunListHosts(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	const golden = `web01            ssh://ops@bastion.example.com/ssh://deploy@web01.example.com
web02            ssh://ops@bastion.example.com/ssh://deploy@web02.example.com
web04            ssh://ops@bastion.example.com/ssh://deploy@web04.example.com
web-canary       ssh://ops@bastion.example.com/ssh://deploy@10.0.0.99:2222
demo3            local:demo3
local:x/local:y  local:x/local:y
`
	// -t web02 again and -t demo3 after demo: each once, where first named.
	code, out, errs := cliRun(t, exe, "run", "-i", sampleInventory, "--list-hosts",
		"-t", "prod:!db", "-t", "web02", "-t", "demo3", "-t", "local:x/local:y", "--limit", "!web03", "/nonexistent/m.wasm")
	if code != 0 || out != golden || errs != "" {
		t.Errorf("--list-hosts = %d\n%s\nstderr: %s\nwant 0 and\n%s", code, out, errs, golden)
	}

	const goldenVars = `demo1  local:demo1 GREETING=hello region=eu-west-1
demo3  local:demo3 GREETING=hey region=eu-west-1
`
	code, out, errs = cliRun(t, exe, "run", "-i", sampleInventory, "--list-hosts", "-v", "-t", "demo*", "-l", "demo1,demo3")
	if code != 0 || out != goldenVars {
		t.Errorf("--list-hosts -v = %d\n%s\nstderr: %s\nwant 0 and\n%s", code, out, errs, goldenVars)
	}
	code, out, _ = cliRun(t, exe, "run", "-i", sampleInventory, "--list-hosts", "--json", "-t", "db:&prod", "-l", "dbb")
	want := `{"name":"dbb","target":"ssh://ops@bastion.example.com/ssh://jump.internal/ssh://dbb.internal/sudo://postgres","vars":{"env":"prod","port":"80","region":"eu-west-1","role":"database"}}` + "\n"
	if code != 0 || out != want {
		t.Errorf("--list-hosts --json = %d\n%s\nwant\n%s", code, out, want)
	}
	// Nothing selected: said on stderr, and not an error.
	code, out, errs = cliRun(t, exe, "run", "-i", sampleInventory, "--list-hosts", "-t", "web", "-l", "db")
	if code != 0 || out != "" || !strings.Contains(errs, "no targets matched") {
		t.Errorf("--list-hosts selecting nothing = %d, %q, %q", code, out, errs)
	}
}

// TestRunInventoryUsage: the inventory's errors and the flags' misuse are
// usage errors (exit 2) that say what is wrong, before anything starts.
func TestRunInventoryUsage(t *testing.T) {
	testutil.VerifyNone(t)
	exe := cliCopy(t)
	bad := writeInventory(t, "[web]\nweb[01:3]\n")
	good := writeInventory(t, "[web]\nw[1:2] target=local:{name}\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", bad, "-t", "web", "--list-hosts"}, bad + `:2: host "web[01:3]": range [01:3]: 01 and 3 differ in width`},
		{[]string{"-i", good, "-t", "web:&nope", "--list-hosts"}, `unknown host or group "nope" in pattern "web:&nope"`},
		{[]string{"-i", good, "-t", "web::w1", "--list-hosts"}, `invalid host pattern "web::w1"`},
		{[]string{"-i", good, "-t", "ssh:w1", "--list-hosts"}, `"ssh:w1": write ssh://`},
		{[]string{"-i", good, "--list-hosts"}, "name its hosts or groups with -t"},
		{[]string{"-i", good, "m.wasm"}, "name its hosts or groups with -t"},
		{[]string{"-t", "web", "--list-hosts"}, `invalid target "web"`},
		{[]string{"-t", "web", "--list-hosts"}, "a host or group name needs --inventory"},
		{[]string{"-t", "local", "-l", "web", "--list-hosts"}, "--limit web: a host pattern needs --inventory"},
		{[]string{"-l", "@x", "m.wasm"}, "--limit narrows what -t selects: give -t too"},
		{[]string{"-i", good, "-t", "web", "-l", "@/nonexistent/retry", "--list-hosts"}, "--limit @/nonexistent/retry: open /nonexistent/retry: no such file"},
		{[]string{"-i", good, "-t", "web"}, "no module given"},
		{[]string{"-i", good, "-t", "web", "-l", "!web", "/nonexistent/m.wasm"}, "no such file"}, // checked though nothing matched
	} {
		args := append([]string{"run"}, tt.args...)
		code, out, errs := cliRun(t, exe, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) {
			t.Errorf("spindle %q = %d, %q, stderr %q; want 2 and %q", args, code, out, errs, tt.want)
		}
	}
}

// TestRunInventoryVars: a host's variables reach a command module's
// environment (--env overriding them) and a reactor's --input object (its
// own fields winning).
func TestRunInventoryVars(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // shared: each guest compiles once
	exe := cliCopy(t)
	_, cmd, _ := cliModules(t)
	hasher := testutil.BuildWasm(t, "examples/wasm/hasher", true)
	data := t.TempDir()
	for name, text := range map[string]string{"a.txt": "aaa", "b.txt": "bb"} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv := writeInventory(t, `
[g]
h1 target=local:h1 GREETING=from-host path=a.txt
h2 target=local:h2
[g:vars]
GREETING=from-group
path=b.txt
`)
	code, out, errs := cliRun(t, exe, "run", "-i", inv, "-t", "g", cmd)
	if code != 0 || !strings.Contains(out, "h1 ") || !strings.Contains(out, "h2 ") {
		t.Fatalf("spindle run cmd = %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"h1\x00GREETING=from-host", "h2\x00GREETING=from-group"} {
		if name, line, _ := strings.Cut(want, "\x00"); !strings.Contains(rowOf(out, name), line) {
			t.Errorf("%s's output lacks %s:\n%s", name, line, out)
		}
	}
	code, out, errs = cliRun(t, exe, "run", "-i", inv, "-t", "g", "--env", "GREETING=from-flag", cmd)
	if code != 0 || strings.Count(out, "GREETING=from-flag") != 2 {
		t.Errorf("--env does not override the variables: %d\n%s\n%s", code, out, errs)
	}

	reactor := func(input string) map[string]float64 {
		t.Helper()
		code, out, errs := cliRun(t, exe, "run", "-i", inv, "-t", "g", "--mount", data+":/data:ro", hasher, "hash", "--input", input, "--json")
		if code != 0 {
			t.Fatalf("spindle run hasher --input %s = %d\n%s\n%s", input, code, out, errs)
		}
		sizes := map[string]float64{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l struct {
				Target string
				Output struct{ Bytes float64 }
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			sizes[l.Target] = l.Output.Bytes
		}
		return sizes
	}
	if got := reactor("{}"); got["h1"] != 3 || got["h2"] != 2 {
		t.Errorf("--input {} with path variables: sizes %v, want h1 3 (a.txt, its own) and h2 2 (b.txt, the group's)", got)
	}
	if got := reactor(`{"path": "a.txt"}`); got["h1"] != 3 || got["h2"] != 3 {
		t.Errorf(`--input {"path": "a.txt"}: sizes %v, want 3 for both (the input's own field wins)`, got)
	}
}

// rowOf returns the table row of target name and the output lines under
// it.
func rowOf(out, name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "    |") {
			in = strings.HasPrefix(line, name+" ")
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// TestRunRetryFile: --retry-file lists the targets that failed or were
// unreachable; --limit @FILE reruns just those, and the file then lists
// what still fails, until it is empty. Target chains round-trip too.
func TestRunRetryFile(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	exe := cliCopy(t)
	hasher := testutil.BuildWasm(t, "examples/wasm/hasher", true)
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "a.txt"), []byte("aaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	const down = "ssh://nobody@127.0.0.1:1?timeout=5s"
	inv := writeInventory(t, `
[ok]
ok[1:2] target=local:{name} path=a.txt
[bad]
bad1 target=local:bad1 path=missing.txt
down target=`+down+`
`)
	retry := filepath.Join(t.TempDir(), "retry")
	run := func(want int, args ...string) (targets []string, stderr string) {
		t.Helper()
		args = append([]string{"run", "-i", inv, "--mount", data + ":/data:ro", "--retry-file", retry}, args...)
		args = append(args, hasher, "hash", "--input", "{}", "--json")
		code, out, errs := cliRun(t, exe, args...)
		if code != want {
			t.Fatalf("spindle %q = %d, want %d\n%s\n%s", args, code, want, out, errs)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l struct{ Target string }
			if line != "" && json.Unmarshal([]byte(line), &l) == nil {
				targets = append(targets, l.Target)
			}
		}
		slices.Sort(targets)
		return targets, errs
	}
	retryFile := func() string {
		t.Helper()
		b, err := os.ReadFile(retry)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	ran, errs := run(exitCIFailed, "-t", "all")
	if !slices.Equal(ran, []string{"bad1", "down", "ok1", "ok2"}) || retryFile() != "bad1\ndown\n" {
		t.Fatalf("first run: ran %q, retry file %q; want all four and bad1, down", ran, retryFile())
	}
	if !strings.Contains(errs, "2 failed or unreachable targets listed in "+retry+"; rerun with --limit @"+retry) {
		t.Errorf("stderr does not say where the retry file is:\n%s", errs)
	}

	// bad1 can succeed now; down still cannot be reached.
	if err := os.WriteFile(filepath.Join(data, "missing.txt"), []byte("found"), 0o644); err != nil {
		t.Fatal(err)
	}
	ran, _ = run(exitCIInfra, "-t", "all", "--limit", "@"+retry)
	if !slices.Equal(ran, []string{"bad1", "down"}) || retryFile() != "down\n" {
		t.Fatalf("rerun: ran %q, retry file %q; want bad1 and down, then down", ran, retryFile())
	}
	ran, errs = run(0, "-t", "all:!down", "--limit", "@"+retry)
	if len(ran) != 0 || retryFile() != "" || !strings.Contains(errs, "nothing to do") {
		t.Fatalf("rerun without down: ran %q, retry file %q, stderr %q; want nothing, an empty file", ran, retryFile(), errs)
	}

	// Target chains are named by their text, and round-trip the same way
	// (local:c1 has no path variable: its task fails).
	ran, _ = run(exitCIFailed, "-t", "local:c1", "-t", down, "-t", "ok1")
	if !slices.Equal(ran, []string{"local:c1", "ok1", down}) || retryFile() != "local:c1\n"+down+"\n" {
		t.Fatalf("chains: ran %q, retry file %q", ran, retryFile())
	}
	ran, _ = run(exitCIFailed, "-t", "local:c1", "-t", down, "-t", "ok1", "--limit", "@"+retry)
	if !slices.Equal(ran, []string{"local:c1", down}) {
		t.Fatalf("chains rerun: ran %q, want local:c1 and %s", ran, down)
	}
}
