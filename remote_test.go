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
