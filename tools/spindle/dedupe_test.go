package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// sameHostConfig writes an ssh config in which the address of s, as
// well as testutil.SSHHost, is an alias with SSHHost's settings: the
// address then logs in with the same key and known_hosts file, so that
// the two spell one chain.
func sameHostConfig(t *testing.T, s *testutil.SSHD) string {
	t.Helper()
	b, err := os.ReadFile(s.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(b), "Host "+testutil.SSHHost, "Host "+testutil.SSHHost+" "+s.Addr)
	p := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunDedupesSpellings: one chain spelled three ways (the ssh config's
// alias, the alias with the user it sets, the address and port it stands
// for, with the user, which the config gives the alias's key) runs once,
// under its first spelling, and stderr says so once; a different chain
// through the same host still runs.
func TestRunDedupesSpellings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	cfg := sameHostConfig(t, s)
	// A C guest: it compiles in a moment on each side, under the race
	// detector too (a Go guest's first compile there takes a minute).
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	alias := "ssh://" + testutil.SSHHost
	root := "ssh://root@" + testutil.SSHHost
	addr := "ssh://root@" + s.Addr + ":" + strconv.Itoa(s.Port)
	code, out, errs := cli(t, "run", "--json", "--ssh-config", cfg,
		"-t", alias, "-t", root, "-t", alias+"/sudo://root", "-t", addr, hello, "hello", "--input-raw", "once")
	if code != 0 {
		t.Fatalf("spindle run = %d\n%s\n%s", code, out, errs)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || !l.OK {
			t.Fatalf("line %q: %v, want ok", line, err)
		}
		got = append(got, l.Target)
	}
	if slices.Sort(got); !slices.Equal(got, []string{alias, alias + "/sudo://root"}) {
		t.Errorf("ran on %q, want %s and %s/sudo://root once each", got, alias, alias)
	}
	want := "spindle run: 2 targets named twice, run once: " + root + " (as " + alias + "), " + addr + " (as " + alias + ")\n"
	if strings.Count(errs, want) != 1 || strings.Count(errs, "named twice") != 1 {
		t.Errorf("stderr:\n%s\nwant once: %q", errs, want)
	}
}

// TestRunDedupeKeepsOtherKeys: two ssh config aliases of one user, host
// and port that log in with different keys (IdentityFile) are two
// targets: each runs, the wrong key failing as auth, the right one ok.
// So is the address itself, which the config gives no key at all.
func TestRunDedupeKeepsOtherKeys(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	wrong, good := "ssh://"+testutil.SSHHostWrongKey, "ssh://"+testutil.SSHHost
	code, out, errs := cli(t, "run", "--json", "--ssh-config", s.SSHConfig,
		"-t", wrong, "-t", good, hello, "hello", "--input-raw", "once")
	if code != exitCIInfra {
		t.Errorf("spindle run = %d, want %d (one unreachable)\n%s\n%s", code, exitCIInfra, out, errs)
	}
	got := map[string]runLine{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l runLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[l.Target] = l
	}
	if l, ok := got[good]; !ok || !l.OK {
		t.Errorf("%s: %+v, want ok", good, l)
	}
	if l, ok := got[wrong]; !ok || l.OK || l.Error == nil || l.Error.Kind != kindConnect || l.Error.Class != "auth" {
		t.Errorf("%s: %+v, want kind connect, class auth", wrong, l)
	}
	if len(got) != 2 || strings.Contains(errs, "named twice") {
		t.Errorf("ran on %d targets, stderr:\n%s\nwant both, none dropped", len(got), errs)
	}

	// As a table, the row names the failure; its hint, the key.
	code, out, errs = cli(t, "run", "--ssh-config", s.SSHConfig, "-t", wrong, hello, "hello", "--input-raw", "once")
	if code != exitCIInfra || out != "" || !strings.Contains(errs, "hop 1 "+wrong+": authentication failed: ") ||
		!strings.Contains(errs, "IdentityFile in the ssh config") {
		t.Errorf("spindle run -t %s = %d, stdout %q, stderr:\n%s\nwant %d and an auth failure with its hint", wrong, code, out, errs, exitCIInfra)
	}
}

// TestShFactsDedupeSpellings: spindle sh and spindle facts, which select
// their targets as run does, run one chain spelled three ways once, and
// say so on stderr once.
func TestShFactsDedupeSpellings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	cfg := sameHostConfig(t, s)
	dir := batteries(t) // sh
	facts, err := os.ReadFile(testutil.BuildWasm(t, "tools/batteries/facts", true))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "facts.wasm"), facts, 0o644); err != nil {
		t.Fatal(err)
	}
	alias := "ssh://" + testutil.SSHHost
	root := "ssh://root@" + testutil.SSHHost
	addr := "ssh://root@" + s.Addr + ":" + strconv.Itoa(s.Port)
	for _, cmd := range [][]string{{"sh", "--json", "--", "true"}, {"facts", "--json"}} {
		args := append([]string{cmd[0], "--ssh-config", cfg, "-t", alias, "-t", root, "-t", addr}, cmd[1:]...)
		code, out, errs := cli(t, args...)
		if code != 0 {
			t.Errorf("spindle %q = %d\n%s\n%s", args, code, out, errs)
			continue
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l struct{ Target string }
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("spindle %s: line %q: %v", cmd[0], line, err)
			}
			got = append(got, l.Target)
		}
		if !slices.Equal(got, []string{alias}) {
			t.Errorf("spindle %s ran on %q, want %s once", cmd[0], got, alias)
		}
		want := "spindle " + cmd[0] + ": 2 targets named twice, run once: " + root + " (as " + alias + "), " + addr + " (as " + alias + ")\n"
		if strings.Count(errs, want) != 1 || strings.Count(errs, "named twice") != 1 {
			t.Errorf("spindle %s stderr:\n%s\nwant once: %q", cmd[0], errs, want)
		}
	}
}

// TestSSHResolveBounded: however many callers ask at once (host key hints
// of many failed hosts), at most maxResolves ssh -G processes run. The
// ssh on PATH is a script that counts the copies of itself running.
func TestSSHResolveBounded(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nd=" + dir + "\nmkdir \"$d/run.$$\"\nls -d \"$d\"/run.* | wc -l >> \"$d/counts\"\nsleep 0.2\nrmdir \"$d/run.$$\"\necho 'hostname h.example'\necho 'port 22'\n"
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	var wg sync.WaitGroup
	for i := range 5 * maxResolves {
		wg.Go(func() {
			if d, ok := sshResolve("", "", fmt.Sprintf("host%d", i), 0); !ok || d.host != "h.example" {
				t.Errorf("sshResolve = %+v, %v", d, ok)
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(filepath.Join(dir, "counts"))
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		most = max(most, n)
	}
	if most > maxResolves || most < 2 {
		t.Errorf("at most %d ssh -G ran at once, want 2 to %d", most, maxResolves)
	}
}
