package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// execLog collects a call's log records (Call.Log): the host logs every
// exec there.
type execLog struct {
	mu   sync.Mutex
	recs []string
}

func (l *execLog) log(level slog.Level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, level.String()+" "+msg)
}

func (l *execLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "\n")
}

// runSh runs the sh battery (tools/batteries/sh) with args and grants.
func runSh(t *testing.T, ctx context.Context, h *host.Host, m *host.Module, grants []host.ExecGrant, limits host.Limits, args ...string) (code int, stdout, stderr string, log *execLog) {
	t.Helper()
	var out, errb bytes.Buffer
	log = &execLog{}
	res, err := h.Run(ctx, m, host.Call{Args: args, Stdout: &out, Stderr: &errb, Log: log.log,
		Grants: host.Grants{Exec: grants}, Limits: limits})
	if err != nil {
		t.Fatalf("Run(sh %q): %v", args, err)
	}
	return res.ExitCode, out.String(), errb.String(), log
}

func shModule(t *testing.T, h *host.Host) *host.Module {
	t.Helper()
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "tools/batteries/sh", false))
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Compile(t.Context(), "sh", wasm)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExecGrants(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := shModule(t, h)
	dir := t.TempDir()
	echo := host.ExecGrant{Path: "/bin/echo", Args: []string{"hello", "w*"}}
	tests := []struct {
		name       string
		grants     []host.ExecGrant
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string // in stderr
		wantLog    string // in the log
	}{
		{name: "nothing granted", args: []string{"--", "/bin/echo", "hi"}, wantCode: 126,
			wantStderr: `sh: guest: not granted: exec "/bin/echo" "hi": the caller granted no programs (no exec grant: Task.Exec)`,
			wantLog:    "WARN exec denied"},
		{name: "other program", grants: []host.ExecGrant{echo}, args: []string{"--", "/bin/cat", "/etc/shadow"}, wantCode: 126,
			wantStderr: `program not granted (the exec grant holds /bin/echo)`},
		{name: "arguments not granted", grants: []host.ExecGrant{echo}, args: []string{"--", "/bin/echo", "hello", "x"}, wantCode: 126,
			wantStderr: `these arguments are not granted for /bin/echo (grant: "/bin/echo" "hello" "w*")`},
		{name: "too many arguments", grants: []host.ExecGrant{echo}, args: []string{"--", "echo", "hello", "world", "x"}, wantCode: 126,
			wantStderr: "not granted"},
		{name: "granted, by path", grants: []host.ExecGrant{echo}, args: []string{"--", "/bin/echo", "hello", "world"},
			wantStdout: "hello world\n", wantLog: `INFO exec "/bin/echo" "hello" "world" (dir /, pid `},
		{name: "granted, by name", grants: []host.ExecGrant{{Path: "/nonexistent/echo", Args: []string{"..."}}, echo},
			args: []string{"--", "echo", "hello", "wonder"}, wantStdout: "hello wonder\n"},
		{name: "name not installed", grants: []host.ExecGrant{{Path: "/nonexistent/echo", Args: []string{"..."}}},
			args: []string{"--", "echo", "x"}, wantCode: 127, wantStderr: "no granted program of that name exists here"},
		{name: "environment and directory are the grant's",
			grants: []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "*"}, Env: map[string]string{"A": "1"}, Dir: dir}},
			args:   []string{"--", "sh", "-c", "env; pwd"}, wantStdout: "A=1\nPWD=" + dir + "\n" + dir + "\n"},
		{name: "exit status", grants: []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}}},
			args: []string{"--", "/bin/sh", "-c", "echo out; echo err >&2; exit 7"}, wantCode: 7, wantStdout: "out\n", wantStderr: "err\n",
			wantLog: "exit 7 in "},
		{name: "start failure", grants: []host.ExecGrant{{Path: "/bin/sh", Dir: "/nonexistent"}},
			args: []string{"--", "/bin/sh"}, wantCode: 125, wantStderr: "start /bin/sh: no such file or directory"},
		{name: "quoted pattern", grants: []host.ExecGrant{{Path: "/bin/echo", Args: []string{host.QuoteArg("a*")}}},
			args: []string{"--", "echo", "ab"}, wantCode: 126, wantStderr: "not granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr, log := runSh(t, t.Context(), h, m, tt.grants, host.Limits{}, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout && !(tt.name == "environment and directory are the grant's" && sameLines(stdout, tt.wantStdout)) {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to hold %q", stderr, tt.wantStderr)
			}
			if !strings.Contains(log.String(), tt.wantLog) {
				t.Errorf("log = %q, want it to hold %q", log, tt.wantLog)
			}
		})
	}
}

// sameLines compares the lines of a and b as sets (env's order is not
// the grant's).
func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range la {
		seen[l]++
	}
	for _, l := range lb {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestExecBadGrants(t *testing.T) {
	h := newHost(t, host.Config{})
	m := shModule(t, h)
	for _, g := range []host.ExecGrant{
		{Path: "echo"},
		{Path: "/bin/../bin/echo"},
		{Path: "/bin/echo", Dir: "tmp"},
		{Path: "/bin/echo", Env: map[string]string{"A=B": "c"}},
		{Path: "/bin/echo", Args: []string{"...", "x"}},
	} {
		_, err := h.Run(t.Context(), m, host.Call{Grants: host.Grants{Exec: []host.ExecGrant{g}}})
		if err == nil || !strings.Contains(err.Error(), "exec grant") {
			t.Errorf("Run with grant %+v = %v, want an invalid call naming the exec grant", g, err)
		}
	}
}

// shellPid reads the first line of a shell's output: its $$, which is the
// process group of the run.
func shellPid(t *testing.T, stdout string) int {
	t.Helper()
	line, _, _ := strings.Cut(stdout, "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("stdout %q: no pid on its first line", stdout)
	}
	return pid
}

func TestExecKillsProcessGroup(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := shModule(t, h)
	sh := []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, Timeout: 500 * time.Millisecond}}

	t.Run("timeout", func(t *testing.T) {
		t0 := time.Now()
		code, stdout, stderr, log := runSh(t, t.Context(), h, m, sh, host.Limits{},
			"--", "sh", "-c", "echo $$; sleep 300 & sleep 300; echo not reached")
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("took %v, want about the grant's 500ms", d)
		}
		if code != 124 || !strings.Contains(stderr, "timed out after") {
			t.Errorf("exit %d, stderr %q; want 124 and a timeout", code, stderr)
		}
		if !strings.Contains(log.String(), "timed out, process group killed") {
			t.Errorf("log = %q, want the timeout", log)
		}
		testutil.NoLiveProcessGroup(t, shellPid(t, stdout))
	})
	t.Run("shorter timeout asked by the guest", func(t *testing.T) {
		t0 := time.Now()
		code, _, _, _ := runSh(t, t.Context(), h, m, sh, host.Limits{}, "--timeout", "100ms", "--", "sh", "-c", "sleep 300")
		if code != 124 || time.Since(t0) > 450*time.Millisecond+5*time.Second {
			t.Errorf("exit %d after %v, want 124 soon after 100ms", code, time.Since(t0))
		}
	})
	t.Run("leader exits, its background child is killed", func(t *testing.T) {
		t0 := time.Now()
		code, stdout, _, _ := runSh(t, t.Context(), h, m, sh, host.Limits{}, "--", "sh", "-c", "echo $$; sleep 300 & exit 0")
		if code != 0 || time.Since(t0) > 5*time.Second {
			t.Errorf("exit %d after %v, want 0 at once", code, time.Since(t0))
		}
		testutil.NoLiveProcessGroup(t, shellPid(t, stdout))
	})
	t.Run("the task's own timeout", func(t *testing.T) {
		long := []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, Timeout: time.Minute}}
		var out bytes.Buffer
		_, err := h.Run(t.Context(), m, host.Call{Args: []string{"--", "sh", "-c", "echo $$; sleep 300"}, Stdout: &out,
			Grants: host.Grants{Exec: long}, Limits: host.Limits{Timeout: 700 * time.Millisecond}})
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("Run = %v, want kind timeout", err)
		}
		testutil.NoLiveProcessGroup(t, shellPid(t, out.String()))
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		long := []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, Timeout: time.Minute}}
		pr, pw, _ := os.Pipe()
		defer pr.Close()
		done := make(chan error, 1)
		go func() {
			_, err := h.Run(ctx, m, host.Call{Args: []string{"--", "sh", "-c", "echo $$; sleep 300"}, Stdout: pw,
				Grants: host.Grants{Exec: long}})
			pw.Close()
			done <- err
		}()
		var line [32]byte
		n, _ := pr.Read(line[:])
		cancel()
		if err := <-done; err == nil {
			t.Errorf("Run after cancel = nil, want kind cancelled")
		}
		testutil.NoLiveProcessGroup(t, shellPid(t, string(line[:n])))
	})
}

func TestExecOutputBounded(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := shModule(t, h)
	g := []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, OutputBytes: 10000}}
	const script = "head -c 3000000 /dev/zero; echo done >&2"

	code, stdout, stderr, log := runSh(t, t.Context(), h, m, g, host.Limits{}, "--", "sh", "-c", script)
	if code != 0 || len(stdout) != 10000 {
		t.Errorf("exit %d, %d bytes of stdout; want 0 and the grant's 10000", code, len(stdout))
	}
	if !strings.Contains(stderr, "sh: 2990005 of 3000005 bytes of output dropped") {
		t.Errorf("stderr = %q, want the dropped count", stderr)
	}
	if !strings.Contains(log.String(), "3000005 bytes of output (2990005 dropped past 10000)") {
		t.Errorf("log = %q, want the counts", log)
	}

	code, stdout, _, _ = runSh(t, t.Context(), h, m, g, host.Limits{}, "--capture", "--", "sh", "-c", script)
	var res struct {
		Stdout, Stderr string
		Bytes, Dropped int64
		Pid            int
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 {
		t.Fatalf("captured: exit %d, %q: %v", code, stdout, err)
	}
	if len(res.Stdout) != 10000 || res.Stderr != "" || res.Bytes != 3000005 || res.Dropped != 2990005 || res.Pid == 0 {
		t.Errorf("captured %d bytes of stdout, stderr %q, bytes %d, dropped %d, pid %d; want 10000, \"\", 3000005, 2990005",
			len(res.Stdout), res.Stderr, res.Bytes, res.Dropped, res.Pid)
	}

	// The call's own stdout bound ends the call, and the run with it.
	big := []host.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, OutputBytes: 1 << 30}}
	var out bytes.Buffer
	_, err := h.Run(t.Context(), m, host.Call{Args: []string{"--", "sh", "-c", "echo $$; cat /dev/zero"}, Stdout: &out,
		Grants: host.Grants{Exec: big}, Limits: host.Limits{OutputBytes: 1 << 20}})
	if err == nil || !strings.Contains(err.Error(), "output") {
		t.Errorf("Run = %v, want kind output_limit", err)
	}
	testutil.NoLiveProcessGroup(t, shellPid(t, out.String()))
}

func TestExecRunsBounded(t *testing.T) {
	h := newHost(t, host.Config{})
	m := shModule(t, h)
	if host.MaxExecRuns != 256 {
		t.Fatalf("MaxExecRuns = %d: the docs say 256", host.MaxExecRuns)
	}
	// One call, one run: the bound is per call, so a pooled or repeated
	// call cannot carry runs over. A call with an exec grant is never
	// pooled.
	_, err := h.Run(t.Context(), m, host.Call{Pooled: true, Grants: host.Grants{Exec: []host.ExecGrant{{Path: "/bin/true"}}}})
	if err == nil {
		t.Errorf("pooled call with an exec grant: nil error, want an invalid call")
	}
}

func TestMatchArg(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"", "", true}, {"", "a", false}, {"a", "a", true}, {"*", "", true}, {"*", "a/b c", true},
		{"-n*", "-n5", true}, {"-n*", "x-n5", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{`\*`, "*", true}, {`\*`, "x", false}, {"*.log", "/var/log/x.log", true}, {"*.log", "x.logs", false},
		{"a*b*c", "aXbYbZc", true}, {"a*b*c", "aXbYbZ", false}, {`\`, `\`, true},
		{strings.Repeat("*a", 50), strings.Repeat("a", 49) + "b", false},
	}
	for _, tt := range tests {
		g := host.ExecGrant{Path: "/x", Args: []string{tt.pat}}
		if got := host.GrantAllows(&g, []string{tt.s}); got != tt.want {
			t.Errorf("pattern %q on %q = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
	for _, s := range []string{"a*b", "?", `\`, "...", "plain"} {
		g := host.ExecGrant{Path: "/x", Args: []string{host.QuoteArg(s)}}
		if !host.GrantAllows(&g, []string{s}) || host.GrantAllows(&g, []string{s + "x"}) {
			t.Errorf("QuoteArg(%q) = %q does not match exactly it", s, host.QuoteArg(s))
		}
	}
	rest := host.ExecGrant{Path: "/x", Args: []string{"-a", "..."}}
	for args, want := range map[string]bool{"": false, "-a": true, "-a b c": true, "-b": false} {
		if got := host.GrantAllows(&rest, strings.Fields(args)); got != want {
			t.Errorf("[-a ...] on %q = %v, want %v", args, got, want)
		}
	}
	none := host.ExecGrant{Path: "/x"}
	if !host.GrantAllows(&none, nil) || host.GrantAllows(&none, []string{""}) {
		t.Errorf("no patterns: want no arguments only")
	}
}
