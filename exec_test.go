package spindle_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestExecThroughTree runs the sh battery two hops down, in a real
// grandchild process: the grant travels in the RUN_TASK and is checked
// there, the program's output streams to the master, every exec is logged
// to the master from the context that ran it, and a program past its time
// limit leaves nothing running.
func TestExecThroughTree(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, logs := newMaster(t, spindle.Config{CacheDir: sharedCache(), LogLevel: slog.LevelInfo})
	sh := addModule(t, m, testutil.BuildWasm(t, "tools/batteries/sh", false))
	c := startLocal(t, ctx, m, "exec-mid")
	g := startVia(t, ctx, c, "exec-leaf")
	grant := []spindle.ExecGrant{{Path: "/bin/sh", Args: []string{"-c", "..."}, Env: map[string]string{"WHO": "leaf"},
		Timeout: 500 * time.Millisecond}}
	run := func(t *testing.T, grants []spindle.ExecGrant, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		res, err := g.Run(ctx, spindle.Task{Module: sh, Args: args, Stdout: &out, Stderr: &errb, Exec: grants})
		if err != nil {
			t.Fatalf("Run(sh %q) in %s: %v", args, g, err)
		}
		return res.ExitCode, out.String(), errb.String()
	}

	t.Run("granted", func(t *testing.T) {
		mark := logs.mark()
		code, stdout, _ := run(t, grant, "--", "sh", "-c", "echo $$ $WHO; echo out")
		_, who, _ := strings.Cut(strings.SplitN(stdout, "\n", 2)[0], " ")
		if code != 0 || who != "leaf" || !strings.HasSuffix(stdout, "\nout\n") {
			t.Fatalf("exit %d, stdout %q; want 0, the grant's environment, out", code, stdout)
		}
		r, ok := logs.waitForSince(mark, 5*time.Second, func(r logRecord) bool { return strings.HasPrefix(r.Msg, `exec "/bin/sh" "-c"`) })
		if !ok {
			t.Fatalf("no exec record reached the master:%s", logs.dump())
		}
		// The program ran in the leaf's process, two hops down.
		if r.Attrs["context"] != "exec-leaf" || r.Attrs["pid"] != strconv.Itoa(g.PID()) || !strings.Contains(r.Msg, "exit 0") {
			t.Errorf("exec record = %v, want one from exec-leaf (pid %d) with exit 0", r, g.PID())
		}
	})
	t.Run("not granted", func(t *testing.T) {
		code, _, stderr := run(t, nil, "--", "/bin/sh", "-c", "id")
		if code != 126 || !strings.Contains(stderr, "the caller granted no programs") {
			t.Errorf("exit %d, stderr %q; want 126 naming the missing grant", code, stderr)
		}
		code, _, stderr = run(t, grant, "--", "/bin/cat", "/etc/passwd")
		if code != 126 || !strings.Contains(stderr, "the exec grant holds /bin/sh") {
			t.Errorf("exit %d, stderr %q; want 126 naming the grant", code, stderr)
		}
	})
	t.Run("timeout kills the group", func(t *testing.T) {
		code, stdout, stderr := run(t, grant, "--", "sh", "-c", "echo $$; sleep 300 & sleep 300")
		if code != 124 || !strings.Contains(stderr, "timed out") {
			t.Errorf("exit %d, stderr %q; want 124", code, stderr)
		}
		pgid, _ := strconv.Atoi(strings.TrimSpace(stdout))
		testutil.NoLiveProcessGroup(t, pgid)
	})
	t.Run("no exec for a workspace action", func(t *testing.T) {
		_, err := g.Run(ctx, spindle.Task{Module: sh, Exec: grant, Workspace: &spindle.Workspace{Input: strings.Repeat("0", 64)}})
		if err == nil || !strings.Contains(err.Error(), "takes no exec grant") {
			t.Errorf("Run = %v, want the workspace refusal", err)
		}
	})
	t.Run("a sandboxed context refuses the grant", func(t *testing.T) {
		sb, err := m.StartLocal(ctx, spindle.LocalOptions{Name: "exec-sandboxed", Sandbox: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sb.Run(ctx, spindle.Task{Module: sh, Args: []string{"--", "/bin/sh", "-c", "id"}, Exec: grant})
		var te *spindle.TaskError
		if !errors.As(err, &te) || te.Kind != "invalid_call" || !strings.Contains(te.Message, "is sandboxed") {
			t.Errorf("Run in a sandboxed context = %v, want invalid_call: sandboxed", err)
		}
	})
}
