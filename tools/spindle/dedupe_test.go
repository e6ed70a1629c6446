package main

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestRunDedupesSpellings: one chain spelled three ways (the ssh config's
// alias, the alias with the user it sets, the address and port it stands
// for, with the user) runs once, under its first spelling, and stderr
// says so once; a different chain through the same host still runs.
func TestRunDedupesSpellings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	// A C guest: it compiles in a moment on each side, under the race
	// detector too (a Go guest's first compile there takes a minute).
	hello := testutil.BuildC(t, "examples/wasm/c-hello")
	alias := "ssh://" + testutil.SSHHost
	root := "ssh://root@" + testutil.SSHHost
	addr := "ssh://root@127.0.0.1:" + strconv.Itoa(s.Port)
	code, out, errs := cli(t, "run", "--json", "--ssh-config", s.SSHConfig,
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
