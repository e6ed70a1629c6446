package spindle_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// requireRoot fails (not skips) when the test cannot run as root: CI runs
// as root, and these tests must run there.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (sudo to another user, sshd); CI runs as root")
	}
}

// cleanBinaryCache removes the broker binaries a test's bootstrap put in
// user's cache (the test binary, 20+ MB a run).
func cleanBinaryCache(t *testing.T, home string) {
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join(home, ".cache/spindle/bin/spindle-*"))
		for _, m := range matches {
			os.Remove(m)
		}
	})
}

func TestSudo(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatalf("sudo is not installed (.ci/run installs it): %v", err)
	}
	ctx := testContext(t)
	cleanBinaryCache(t, "/root")
	m, _ := newMaster(t, spindle.Config{})
	c, err := m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	var pong spindle.PingResult
	if err := c.Call(ctx, "ping", nil, &pong); err != nil || pong.Name != "sudo.root" {
		t.Fatalf("ping sudo.root = %+v, %v", pong, err)
	}
	first := c.SentBinary()
	c2, err := m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root", Name: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.SentBinary() {
		t.Errorf("second sudo start sent the binary again (first sent it: %v)", first)
	}
	// Through the first: sudo from a sudo child.
	c3, err := c.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root", Name: "nested"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A user that does not exist: a clear error, nothing left behind.
	_, err = m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "no-such-user-spindle"})
	if !errors.Is(err, spindle.ErrChildStart) || !strings.Contains(err.Error(), "no-such-user-spindle") {
		t.Fatalf("sudo to a missing user = %v", err)
	}
}

// TestFakeEngines runs the whole bootstrap through fake docker, podman and
// kubectl commands on PATH that run the given command here: everything but
// the engine itself is exercised, and the exact command lines are checked.
func TestFakeEngines(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	home := t.TempDir()
	t.Setenv("HOME", home) // the fakes run as us: the cache goes here
	t.Setenv("XDG_CACHE_HOME", "")
	fakes := t.TempDir()
	argvLog := filepath.Join(fakes, "argv.log")
	fake := "#!/bin/sh\n" +
		"printf '%s' \"$(basename \"$0\")\" >>" + argvLog + "\n" +
		"for a; do case $a in *SPINDLE1*) printf ' SCRIPT' ;; *) printf ' %s' \"$a\" ;; esac; done >>" + argvLog + "\n" +
		"echo >>" + argvLog + "\n" +
		"for last; do :; done\nexec sh -c \"$last\"\n"
	for _, name := range []string{"docker", "podman", "kubectl"} {
		if err := os.WriteFile(filepath.Join(fakes, name), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, _ := newMaster(t, spindle.Config{})
	tests := []struct {
		opts spindle.ChildOptions
		argv string
	}{
		{spindle.ChildOptions{Method: "docker", Container: "app", User: "nobody"}, "docker exec -i -u nobody app sh -c SCRIPT"},
		{spindle.ChildOptions{Method: "podman", Container: "db"}, "podman exec -i db sh -c SCRIPT"},
		{spindle.ChildOptions{Method: "kubectl", Pod: "web-0", Namespace: "prod", Container: "main", KubeContext: "eu"},
			"kubectl --context eu exec -i -n prod web-0 -c main -- sh -c SCRIPT"},
	}
	for i, tt := range tests {
		c, err := m.Start(ctx, tt.opts)
		if err != nil {
			t.Fatalf("Start(%s): %v", tt.opts.Method, err)
		}
		var pong spindle.PingResult
		if err := c.Call(ctx, "ping", nil, &pong); err != nil {
			t.Fatalf("ping %s: %v", c, err)
		}
		if sent := c.SentBinary(); sent != (i == 0) {
			t.Errorf("%s: SentBinary = %v, want %v (the cache is shared by the fakes)", c, sent, i == 0)
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("fakes ran %d times, want %d:\n%s", len(lines), len(tests), b)
	}
	for i, tt := range tests {
		if lines[i] != tt.argv {
			t.Errorf("command line %d = %q, want %q", i, lines[i], tt.argv)
		}
	}
}
