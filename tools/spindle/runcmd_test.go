package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"encoding/json"
	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/target"
	"github.com/vmihailenco/msgpack/v5"
	"os"
	"path/filepath"
	"slices"
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
	// In the order the targets finished: one line for each.
	seen := map[string]bool{}
	for i := range lines {
		var l struct {
			Target string
			OK     bool
			Output map[string]any
		}
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if !l.OK || l.Output["greeting"] != "hello, cli" {
			t.Errorf("line %d = %+v, want ok with greeting", i, l)
		}
		seen[l.Target] = true
	}
	if !seen["local"] || !seen["local:a/local:b"] {
		t.Errorf("targets %v, want local and local:a/local:b", seen)
	}
}

// TestRunInputFile: --input @FILE reads the JSON from a file; a target
// named twice runs once.
func TestRunInputFile(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // shared: each guest compiles once
	hello, _, _ := cliModules(t)
	in := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(in, []byte(`{"name": "from a file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "run", "-t", "local", "-t", "local", hello, "hello", "--input", "@"+in, "--json")
	if code != 0 {
		t.Fatalf("spindle run = %d\n%s\n%s", code, out, errs)
	}
	if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, "hello, from a file") {
		t.Fatalf("want one line greeting the file's name:\n%s", out)
	}
}

// TestRunInputStdin: --input - reads the JSON from this process's stdin,
// once, for one target and for several alike.
func TestRunInputStdin(t *testing.T) {
	testutil.VerifyNone(t)
	hello, _, _ := cliModules(t)
	code, out, errs := cliIn(t, strings.NewReader(`{"name": "stdin"}`), "run", hello, "hello", "--input", "-")
	if code != 0 || out != "{\n  \"greeting\": \"hello, stdin\"\n}\n" {
		t.Errorf("spindle run --input - = %d, stdout %q\n%s; want 0 and the greeting", code, out, errs)
	}
	code, out, errs = cliIn(t, strings.NewReader(`{"name": "both"}`), "run", "--json", "-t", "local:a", "-t", "local:b", hello, "hello", "--input", "-")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || !l.OK || fmt.Sprint(l.Output) != "map[greeting:hello, both]" {
			t.Errorf("line %q (%v): want ok, greeting both", line, err)
		}
		got = append(got, l.Target)
	}
	if slices.Sort(got); code != 0 || !slices.Equal(got, []string{"local:a", "local:b"}) {
		t.Errorf("spindle run --input - on two targets = %d, targets %q\n%s; want 0, local:a and local:b", code, got, errs)
	}
	code, out, errs = cliIn(t, strings.NewReader(`{"name": `), "run", hello, "hello", "--input", "-")
	if code != exitUsage || out != "" || !strings.Contains(errs, "--input is not JSON") {
		t.Errorf("spindle run --input - with a cut JSON = %d, %q, %q; want %d and not JSON", code, out, errs, exitUsage)
	}
}

// TestRunModuleChecks: a file that is not wasm, and a call that does not
// fit the module's kind, are usage errors naming the file (checked before
// the master starts).
func TestRunModuleChecks(t *testing.T) {
	testutil.VerifyNone(t)
	hello, cmd, _ := cliModules(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{self, "hello"}, "not a wasm module: an ELF file"},
		{[]string{cmd, "hello"}, `a command module (it exports _start) takes ARGS after --, not a TASK "hello"`},
		{[]string{cmd, "--input", "{}"}, "not --input"},
		{[]string{cmd, "--pooled"}, "--pooled is for reactors"},
		{[]string{hello, "hello", "--", "x"}, "not --stdin or ARGS"},
	} {
		args := append([]string{"run"}, tt.args...)
		code, _, errs := runCmd(t, args...)
		if code != 2 || !strings.Contains(errs, tt.want) || !strings.Contains(errs, tt.args[0]+": ") {
			t.Errorf("spindle %q = %d, stderr %q; want 2, the file and %q", args, code, errs, tt.want)
		}
	}
}

// TestRunRefusedBeforeStart: through the real binary, a reactor given
// --stdin, and a --memory-pages (or the default limit) below the memory
// the module declares, are refused with exit 2 before any context starts:
// the target, a closed port, is never tried.
func TestRunRefusedBeforeStart(t *testing.T) {
	testutil.VerifyNone(t)
	hello, _, _ := cliModules(t)
	// A module of one memory, at least 5000 pages, exported.
	big := filepath.Join(t.TempDir(), "big.wasm")
	if err := os.WriteFile(big, []byte("\x00asm\x01\x00\x00\x00"+"\x05\x04\x01\x00\x88\x27"+"\x07\x0a\x01\x06memory\x02\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(in, []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unreachable := "ssh://nobody@127.0.0.1:1"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{hello, "hello", "--stdin", in}, hello + ": a reactor module (no _start) takes a TASK and --input, not --stdin or ARGS"},
		{[]string{hello, "hello", "--stdin", "-"}, "not --stdin or ARGS"},
		{[]string{"--memory-pages", "1", hello, "hello"}, hello + ": its memory is declared at least "},
		{[]string{"--memory-pages", "1", hello, "hello"}, ": --memory-pages 1 is below that, and every call would fail"},
		{[]string{big, "task"}, big + ": its memory is declared at least 5000 pages of 64 KiB (" + formatSize(5000<<16) +
			"), above the default limit of 4096 pages: raise it with --memory-pages 5000"},
	} {
		args := append([]string{"run", "-t", unreachable}, tt.args...)
		code, out, errs := cli(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) || strings.Contains(errs, "hop 1") {
			t.Errorf("spindle %q = %d, stdout %q, stderr %q; want %d, refused before start with %q", args, code, out, errs, exitUsage, tt.want)
		}
	}
	// At the minimum, the module runs.
	if code, out, errs := cli(t, "run", "--memory-pages", "4096", hello, "hello", "--input", `{"name": "x"}`); code != 0 {
		t.Errorf("spindle run --memory-pages 4096 = %d\n%s\n%s", code, out, errs)
	}
}

func TestParseMount(t *testing.T) {
	for v, want := range map[string]spindle.Mount{
		"/srv:/data":    {Host: "/srv", Guest: "/data"},
		"/srv:/data:rw": {Host: "/srv", Guest: "/data"},
		"/srv:/data:ro": {Host: "/srv", Guest: "/data", ReadOnly: true},
		"rel:/":         {Host: "rel", Guest: "/"},
	} {
		if got, err := parseMount(v); err != nil || got != want {
			t.Errorf("parseMount(%q) = %+v, %v; want %+v", v, got, err, want)
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
		{[]string{"run", "-t", "ssh:host", "m.wasm"}, `write ssh://`},
		{[]string{"run", "-t", "telnet://x", "m.wasm"}, `invalid target`},
		{[]string{"run", "-t", "web", "m.wasm"}, `invalid target "web"`},
		{[]string{"run", "-i", "/nonexistent/inv", "-t", "web", "m.wasm"}, "no such file"},
		{[]string{"run", "-i", "inv.ini", "m.wasm"}, "name its hosts or groups with -t"},
		{[]string{"run", "--mount", "/a:/data", "--mount", "/b:/data:ro", "m.wasm"}, "guest path /data is already mounted (from /a)"},
		{[]string{"run", "--mount", "/a:data", "m.wasm"}, "absolute and clean, as /data"},
		{[]string{"run", "--mount", "/a:/data/", "m.wasm"}, "absolute and clean, as /data"},
		{[]string{"run", "--mount", "/a:/data:rx", "m.wasm"}, "HOST:GUEST:rw"},
		{[]string{"run", "--memory-pages", "0", "m.wasm"}, "from 1 to 65536"},
		{[]string{"run", "--memory-pages", "70000", "m.wasm"}, "from 1 to 65536"},
		{[]string{"run", "--timeout", "5", "m.wasm"}, `needs a unit, as 5s`},
		{[]string{"run", "--timeout", "soon", "m.wasm"}, `want a duration`},
		{[]string{"run", "--input", "{}", "--input-raw", "x", "m.wasm"}, "both given"},
		{[]string{"run", "--input", "@/nonexistent/in.json", "m.wasm"}, "no such file"},
		{[]string{"run", "--input", "-", "--stdin", "-", "m.wasm"}, "both read this process's stdin"},
		{[]string{"run", "--parallel", "0", "m.wasm"}, "at least 1"},
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
		// One line, and a pointer to -h for a flag error: never the
		// whole usage.
		if strings.Contains(errs, "usage:") || strings.Count(errs, "\n") > 2 {
			t.Errorf("spindle %q: stderr is more than the error:\n%s", tt.args, errs)
		}
	}
}

// TestRunInventoryFleet runs a task on an inventory group whose hosts all
// sit behind one intermediate, over ssh to a real sshd: the intermediate is
// started once, every host answers, and the JSON lines name the hosts.
func TestRunInventoryFleet(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	s := testutil.StartSSHD(t)
	_, _, bad := cliModules(t)
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	ssh := fmt.Sprintf("ssh://root@%s:%d?identity=%s&hostkey=yes&opt=UserKnownHostsFile=%s&opt=GlobalKnownHostsFile=%%2Fdev%%2Fnull",
		s.Addr, s.Port, s.Key, s.KnownHosts)
	inv := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(inv, []byte(`# test fleet
[web]
web1 target=local:web1
web2 target=local:web2
[remote]
r1 target=`+ssh+`/local:r1
[all:vars]
via=local:hub
[prod:children]
web
remote
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "run", "-i", inv, "-t", "prod", "--parallel", "2", hello, "hello", "--json")
	if code != 0 {
		t.Fatalf("spindle run on prod = %d\n%s\n%s", code, out, errs)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l struct {
			Target string
			OK     bool
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || !l.OK {
			t.Fatalf("line %q: %v", line, err)
		}
		names = append(names, l.Target)
	}
	slices.Sort(names) // the lines come in the order the targets finished
	if got := strings.Join(names, ","); got != "r1,web1,web2" {
		t.Errorf("targets = %s, want r1,web1,web2", got)
	}
	// One failing host does not stop the others, and the exit code says so.
	code, out, _ = runCmd(t, "run", "-i", inv, "-t", "web", "-t", "local:x", bad, "unreachable", "--json")
	if code != 1 || strings.Count(out, `"ok":false`) != 3 {
		t.Fatalf("failing task on 3 targets = %d:\n%s", code, out)
	}
}

// TestFleetSharesIntermediates: targets behind the same chain prefix reach
// it through one context.
func TestFleetSharesIntermediates(t *testing.T) {
	testutil.VerifyNone(t)
	m, err := spindle.NewMaster(spindle.Config{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fl := spindle.NewFleet(m)
	var parents []uint32
	for _, spec := range []string{"local:hub/local:a", "local:hub/local:b", "local:hub/local:c"} {
		tg, err := target.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := fl.Start(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, c.Parent())
	}
	if parents[0] != parents[1] || parents[1] != parents[2] || parents[0] == 0 {
		t.Fatalf("parents = %v, want one shared hub", parents)
	}
	if got := len(m.Router().Routes()); got != 4 {
		t.Fatalf("%d contexts, want the hub and 3 leaves", got)
	}
}

func TestDecodeOutput(t *testing.T) {
	packed, _ := msgpack.Marshal(map[string]any{"a": 1})
	tests := []struct {
		in   []byte
		want string
	}{
		{packed, `{"a":1}`},
		{[]byte("hello, raw"), `"hello, raw"`}, // 'h' alone would decode as the number 104
		{[]byte{0xc0}, `null`},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(decodeOutput(tt.in))
		if string(b) != tt.want {
			t.Errorf("decodeOutput(%x) = %s, want %s", tt.in, b, tt.want)
		}
	}
}

func TestRunRawInput(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	code, out, errs := runCmd(t, "run", hello, "hello", "--input-raw", "raw", "--json")
	if code != 0 || !strings.Contains(out, `"output":"hello, raw"`) {
		t.Fatalf("spindle run --input-raw = %d:\n%s\n%s", code, out, errs)
	}
}

// timedWriter keeps each write with the time it came.
type timedWriter struct {
	mu     sync.Mutex
	writes []timedWrite
}

type timedWrite struct {
	at   time.Time
	text string
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, timedWrite{time.Now(), string(p)})
	return len(p), nil
}

// when returns the time of the first write holding s.
func (w *timedWriter) when(s string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wr := range w.writes {
		if strings.Contains(wr.text, s) {
			return wr.at, true
		}
	}
	return time.Time{}, false
}

// TestRunStreamsJSON: through the real binary, --json prints each
// target's line as soon as it is known: the unreachable one's comes while
// the slow one still sleeps, then the slow one's, then the recap.
func TestRunStreamsJSON(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	down := "ssh://nobody@127.0.0.1:1?timeout=5s"
	exe := cliCopy(t)
	cmd, sc, errOut := startCLI(t, exe, "run", "--json", "-t", down, "-t", "local:slow", "--clock", probe, "--", "sleep", "3000")
	type seen struct {
		l  runLine
		at time.Time
	}
	var lines []seen
	for sc.Scan() {
		var l runLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, seen{l, time.Now()})
	}
	waitCLI(t, cmd, time.Minute)
	if code := cmd.ProcessState.ExitCode(); code != exitCIInfra || len(lines) != 2 {
		t.Fatalf("spindle run --json = %d, %d lines; want %d, 2\n%s", code, len(lines), exitCIInfra, errOut.String())
	}
	first, second := lines[0], lines[1]
	if first.l.Target != down || first.l.Error == nil || first.l.Error.Class != "unreachable" || second.l.Target != "local:slow" || !second.l.OK {
		t.Errorf("lines %+v, %+v; want %s unreachable, then local:slow ok", first.l, second.l, down)
	}
	if gap := second.at.Sub(first.at); gap < time.Second {
		t.Errorf("the unreachable target's line came %v before the slow one's, want it as soon as known (the slow one sleeps 3 s)", gap)
	}
	if !strings.Contains(errOut.String(), "2 targets: 1 ok, 0 failed, 1 unreachable in ") {
		t.Errorf("no recap on stderr:\n%s", errOut.String())
	}
}

// TestRunStreamsResults: a target that cannot be reached is reported as
// soon as that is known, not when the slowest target finishes; a recap
// line follows on stderr, and the exit status says unreachable (3).
func TestRunStreamsResults(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	var out timedWriter
	var errs bytes.Buffer
	code := run([]string{"run", "-t", "ssh://nobody@127.0.0.1:1?timeout=5s", "-t", "local:slow", "--clock", probe, "--", "sleep", "3000"}, &out, &errs)
	if code != exitCIInfra {
		t.Fatalf("exit %d, want %d (unreachable)\n%s", code, exitCIInfra, errs.String())
	}
	down, ok1 := out.when("ssh://nobody@127.0.0.1:1?timeout=5s")
	slow, ok2 := out.when("local:slow")
	if !ok1 || !ok2 {
		t.Fatalf("rows missing: %+v", out.writes)
	}
	if slow.Sub(down) < time.Second {
		t.Errorf("the unreachable target's row came %v before the slow one's, want it as soon as known (the slow one sleeps 3 s)", slow.Sub(down))
	}
	if !strings.Contains(errs.String(), "2 targets: 1 ok, 0 failed, 1 unreachable in ") {
		t.Errorf("no recap on stderr:\n%s", errs.String())
	}
}
