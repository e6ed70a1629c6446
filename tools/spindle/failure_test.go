package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
)

// failingTarget is a target that cannot start, and what spindle run says
// of it.
type failingTarget struct {
	spec, class, message, hint string
}

// failingTargets are a closed port, a closed port behind a first hop, and
// a host whose key is not known (the test sshd, with an empty known_hosts).
func failingTargets(t *testing.T) []failingTarget {
	s := testutil.StartSSHD(t)
	unknown := target.Target{{Method: "ssh", Host: s.Addr, Port: s.Port, User: s.User, Identity: s.Key, HostKeyCheck: "yes", Batch: true,
		SSHOptions: []string{"UserKnownHostsFile=/dev/null", "GlobalKnownHostsFile=/dev/null", "IdentityAgent=none", "CheckHostIP=no"}}}
	port := strconv.Itoa(s.Port)
	refused := "hop 1 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused"
	return []failingTarget{
		{"ssh://nobody@127.0.0.1:1?timeout=5s", "unreachable", refused, ""},
		{"local:fail-a/ssh://nobody@127.0.0.1:1?timeout=5s", "unreachable", "hop 2" + strings.TrimPrefix(refused, "hop 1"), ""},
		{unknown.String(), "host_key",
			"hop 1 ssh://root@127.0.0.1:" + port + ": host key verification failed: No ED25519 host key is known for [127.0.0.1]:" + port +
				" and you have requested strict checking.",
			"the host's key is not known: check its fingerprint, then add it with ssh-keyscan -p " + port +
				" 127.0.0.1 >> ~/.ssh/known_hosts, or accept a new key on first use with ?hostkey=accept-new on hop 1, in place of its hostkey=yes"},
	}
}

// runCLI runs the spindle command (a copy of the test binary, exe) to its
// end and returns its exit status and stdout lines; no process of it may
// be left.
func runCLI(t *testing.T, exe string, args ...string) (int, []string) {
	t.Helper()
	cmd, sc, errOut := startCLI(t, exe, args...)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("spindle %q still running after a minute:\n%s", args, errOut.String())
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := processesOf(exe)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes of spindle %q still running after it exited: %v", args, left)
		}
	}
	if t.Failed() {
		t.Logf("stderr of spindle %q:\n%s", args, errOut.String())
	}
	return cmd.ProcessState.ExitCode(), lines
}

func targetArgs(fts []failingTarget, rest ...string) []string {
	args := []string{"run"}
	for _, ft := range fts {
		args = append(args, "-t", ft.spec)
	}
	return append(args, rest...)
}

// TestRunFailureJSON: each --json line of a target that did not start has
// kind connect, its class, the one-line message and the hint.
func TestRunFailureJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	testutil.VerifyNone(t)
	fts := failingTargets(t)
	exe := cliCopy(t)
	hello := testutil.BuildWasm(t, "examples/wasm/hello", true)
	code, lines := runCLI(t, exe, targetArgs(fts, "--json", hello, "hello")...)
	if code != exitCIInfra {
		t.Errorf("exit %d, want %d (unreachable)", code, exitCIInfra)
	}
	got := map[string]runLine{}
	for _, line := range lines {
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Error == nil {
			t.Fatalf("line %q: %v, want a failed target's JSON", line, err)
		}
		got[l.Target] = l
	}
	if len(lines) != len(fts) {
		t.Errorf("%d lines, want %d:\n%s", len(lines), len(fts), strings.Join(lines, "\n"))
	}
	for _, ft := range fts {
		l, ok := got[ft.spec]
		if !ok {
			t.Errorf("no line for %s", ft.spec)
			continue
		}
		want := runError{Kind: "connect", Class: ft.class, Message: ft.message, Hint: ft.hint}
		if l.OK || *l.Error != want {
			t.Errorf("%s: ok %v, error %+v\nwant %+v", ft.spec, l.OK, *l.Error, want)
		}
		if n := strings.Count(l.Error.Message, "spindle:"); n > 1 {
			t.Errorf("%s: %q says spindle: %d times", ft.spec, l.Error.Message, n)
		}
	}
}

// TestRunFailureTable: a target that did not start has one row that reads
// as its one-line message, and its hint, when it has one, on the next line.
func TestRunFailureTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	testutil.VerifyNone(t)
	fts := failingTargets(t)
	exe := cliCopy(t)
	hello := testutil.BuildWasm(t, "examples/wasm/hello", true)
	code, lines := runCLI(t, exe, targetArgs(fts, hello, "hello")...)
	if code != exitCIInfra {
		t.Errorf("exit %d, want %d (unreachable)", code, exitCIInfra)
	}
	want := 0
	for _, ft := range fts {
		row := -1
		for i, line := range lines {
			if strings.HasPrefix(line, ft.spec+" ") {
				row = i
			}
		}
		if row < 0 {
			t.Errorf("no row for %s:\n%s", ft.spec, strings.Join(lines, "\n"))
			continue
		}
		if fields := strings.Fields(lines[row]); len(fields) < 2 || fields[1] != "FAILED" ||
			strings.TrimSpace(strings.SplitN(lines[row], "FAILED", 2)[1]) != ft.message {
			t.Errorf("row %q, want %s FAILED %s", lines[row], ft.spec, ft.message)
		}
		want++
		switch {
		case ft.hint == "" && row+1 < len(lines) && strings.HasPrefix(lines[row+1], "    hint:"):
			t.Errorf("%s: a hint line %q, want none", ft.spec, lines[row+1])
		case ft.hint != "":
			want++
			if row+1 >= len(lines) || lines[row+1] != "    hint: "+ft.hint {
				t.Errorf("%s: the line after its row is not its hint:\n%s", ft.spec, strings.Join(lines, "\n"))
			}
		}
	}
	if len(lines) != want {
		t.Errorf("%d lines, want %d rows and hints:\n%s", len(lines), want, strings.Join(lines, "\n"))
	}
}

// TestRunHintsNameFlags: a hint names what the operator typed: the flag
// (--host-key-checking, --connect-timeout) when the hop took its setting
// from one, the hop's own option when the target string set it.
func TestRunHintsNameFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	unknown := target.Target{{Method: "ssh", Host: s.Addr, Port: s.Port, User: s.User, Identity: s.Key, Batch: true,
		SSHOptions: []string{"UserKnownHostsFile=/dev/null", "GlobalKnownHostsFile=/dev/null", "IdentityAgent=none", "CheckHostIP=no"}}}
	// A server that accepts and never says a word: ssh waits for its
	// banner until the connect timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})
	silent := "ssh://nobody@" + ln.Addr().String()
	exe := cliCopy(t)
	hello := testutil.BuildWasm(t, "examples/wasm/hello", true)
	for _, tt := range []struct {
		args       []string
		class      string
		hint, tail string
	}{
		{[]string{"--host-key-checking", "yes", "-t", unknown.String()}, "host_key",
			"", "or accept a new key on first use with --host-key-checking accept-new"},
		{[]string{"--connect-timeout", "1s", "-t", silent}, "timeout",
			"raise the connect timeout with --connect-timeout (e.g. --connect-timeout 1m); ssh's ConnectTimeout follows it", ""},
		{[]string{"--connect-timeout", "1m", "-t", silent + "?timeout=1s"}, "timeout",
			"hop 1's own ?timeout=1s is its connect timeout (it wins over --connect-timeout): raise it, e.g. ?timeout=1m; ssh's ConnectTimeout follows it", ""},
	} {
		args := append(append([]string{"run", "--json"}, tt.args...), hello, "hello")
		code, lines := runCLI(t, exe, args...)
		var l runLine
		if code != exitCIInfra || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &l) != nil || l.Error == nil {
			t.Errorf("spindle %q = %d, %q; want 3 and one failed line", args, code, lines)
			continue
		}
		if l.Error.Class != tt.class || (tt.hint != "" && l.Error.Hint != tt.hint) || !strings.HasSuffix(l.Error.Hint, tt.tail) {
			t.Errorf("spindle %q: %+v; want class %s and the hint %q%q", args, *l.Error, tt.class, tt.hint, tt.tail)
		}
		if strings.Contains(l.Error.Hint, "ChildOptions") || strings.Contains(l.Error.Hint, "the hop option") {
			t.Errorf("spindle %q: the hint %q names the Go API or a hop option the operator did not type", args, l.Error.Hint)
		}
	}
}

// TestRunHostKeyHintResolvesAlias: for an ssh config alias, the host key
// hints name what works, the host name, port and known_hosts file ssh's
// config gives the alias, not the alias: the ssh-keygen -R of a changed
// key removes it (the key is then unknown), and the ssh-keyscan of an
// unknown key adds it (the target then runs).
func TestRunHostKeyHintResolvesAlias(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	port := strconv.Itoa(s.Port)
	hintOf := func(cfg, alias, class string) string {
		t.Helper()
		code, out, errs := cli(t, "run", "--json", "--ssh-config", cfg, "-t", "ssh://"+alias, hello, "hello", "--input-raw", "x")
		var l runLine
		if code != exitCIInfra || json.Unmarshal([]byte(out), &l) != nil || l.Error == nil || l.Error.Class != class {
			t.Fatalf("spindle run -t ssh://%s = %d, %s\n%s; want %d, class %s", alias, code, out, errs, exitCIInfra, class)
		}
		return l.Error.Hint
	}
	shell := func(cmd string) {
		t.Helper()
		if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}

	hint := hintOf(s.SSHConfig, testutil.SSHHostWrongHostKey, "host_key")
	keygen := "ssh-keygen -f " + s.WrongKnownHosts + " -R '[" + s.Addr + "]:" + port + "'"
	if !strings.Contains(hint, keygen) {
		t.Fatalf("changed key: hint %q lacks %q", hint, keygen)
	}
	shell(keygen)
	hint = hintOf(s.SSHConfig, testutil.SSHHostWrongHostKey, "host_key")
	keyscan := "ssh-keyscan -p " + port + " " + s.Addr + " >> " + s.WrongKnownHosts
	if !strings.Contains(hint, "is not known") || !strings.Contains(hint, keyscan) {
		t.Fatalf("unknown key: hint %q lacks %q", hint, keyscan)
	}
	shell(keyscan)
	if code, out, errs := cli(t, "run", "--ssh-config", s.SSHConfig, "-t", "ssh://"+testutil.SSHHostWrongHostKey, hello, "hello", "--input-raw", "x"); code != 0 {
		t.Errorf("after the hint's ssh-keyscan: spindle run = %d\n%s\n%s", code, out, errs)
	}
}
