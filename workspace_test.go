package spindle_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestWorkspaceDir: a workspace's Dir is the command's working directory
// below /src, relative paths resolve from it and the rest of the tree
// stays in view; a Dir that is not a clean relative path is refused by
// the caller, one that is not a directory of the tree (missing, a file, a
// symlink) by the context, and either way nothing runs.
func TestWorkspaceDir(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	probe := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/ciprobe", false))
	c := startLocal(t, ctx, m, "ws-dir")
	src := t.TempDir()
	for name, body := range map[string]string{"top.txt": "top\n", "pkg/sub/f.txt": "in sub\n"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("pkg/sub", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	tree, err := m.Store().PutDir(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, args ...string) (string, error) {
		var out strings.Builder
		res, err := c.Run(ctx, spindle.Task{Module: probe, Args: args, Stdout: &out,
			Workspace: &spindle.Workspace{Input: tree, Dir: dir}})
		if err == nil && res.ExitCode != 0 {
			t.Errorf("Run(%q, %q): exit %d", dir, args, res.ExitCode)
		}
		return out.String(), err
	}
	for _, tt := range []struct {
		dir  string
		args []string
		want string
	}{
		{"pkg/sub", []string{"cat", "f.txt"}, "in sub\n"},
		{"pkg/sub", []string{"cat", "../../top.txt"}, "top\n"},
		{"pkg/sub", []string{"env", "PWD"}, "PWD=/src/pkg/sub\n"},
		{"", []string{"env", "PWD"}, "PWD=/src\n"},
	} {
		if out, err := run(tt.dir, tt.args...); err != nil || out != tt.want {
			t.Errorf("Dir %q, %q: %q, %v; want %q", tt.dir, tt.args, out, err, tt.want)
		}
	}
	for dir, want := range map[string]string{
		"../x":    `workspace dir "../x" is not a clean relative path`,
		"/pkg":    `workspace dir "/pkg" is not a clean relative path`,
		"pkg/":    `workspace dir "pkg/" is not a clean relative path`,
		"missing": `workspace dir "missing" is not a directory of the input tree`,
		"top.txt": `workspace dir "top.txt" is not a directory of the input tree`,
		"link":    `workspace dir "link" is not a directory of the input tree`,
	} {
		if out, err := run(dir, "echo", "ran"); err == nil || !strings.Contains(err.Error(), want) || out != "" {
			t.Errorf("Dir %q: %q, %v; want nothing run and %q", dir, out, err, want)
		}
	}
}
