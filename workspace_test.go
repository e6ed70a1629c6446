package spindle_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/modules"
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

// treeFiles lists a tree of the master's store as path -> content.
func treeFiles(t *testing.T, m *spindle.Master, digest, prefix string, out map[string]string) map[string]string {
	t.Helper()
	if out == nil {
		out = map[string]string{}
	}
	d, err := m.Store().ReadDir(digest)
	if err != nil {
		t.Fatalf("tree %.12s: %v", digest, err)
	}
	for _, e := range d.Entries {
		switch e.Kind {
		case modules.EntryDir:
			treeFiles(t, m, e.Digest, prefix+e.Name+"/", out)
		case modules.EntryFile:
			b, ok := m.Store().Get(e.Digest)
			if !ok {
				t.Fatalf("blob of %s%s not in the master's store", prefix, e.Name)
			}
			out[prefix+e.Name] = string(b)
		}
	}
	return out
}

// TestCollectedMount: a collected tree mount is the guest's writable
// copy: what it makes or changes there comes back as the result's output
// tree, in the master's store, and what it left alone does not; changing a
// file of the copy leaves the stored tree as it was; a second collected
// mount, and a collected read-only one, are refused before anything runs.
func TestCollectedMount(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: t.TempDir()})
	probe := addModule(t, m, testutil.BuildWasm(t, "examples/wasm/ciprobe", false))
	c := startLocal(t, ctx, m, "collect")
	src := t.TempDir()
	for name, body := range map[string]string{"keep.txt": "kept\n", "sub/change.txt": "before\n"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := m.Store().PutDir(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func(mounts []spindle.Mount, args ...string) (*spindle.TaskResult, error) {
		return c.Run(ctx, spindle.Task{Module: probe, Args: args, Mounts: mounts})
	}
	w := spindle.Mount{Tree: tree, Guest: "/w", Collect: true}
	for _, args := range [][]string{{"write", "/w/sub/change.txt", "after"}, {"write", "/w/made/new.txt", "new"}} {
		res, err := run([]spindle.Mount{w}, args...)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%q: %+v, %v", args, res, err)
		}
		got := treeFiles(t, m, res.OutputTree, "", nil)
		want := map[string]string{args[1][len("/w/"):]: args[2]}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: collected %q, want %q", args, got, want)
		}
	}
	if got := treeFiles(t, m, tree, "", nil); got["sub/change.txt"] != "before\n" || got["keep.txt"] != "kept\n" {
		t.Errorf("the stored tree changed: %q", got)
	}
	// The context's copy of the tree, made again from its store, is as
	// it was too: the guest wrote to a copy, not through a link.
	var out strings.Builder
	if res, err := c.Run(ctx, spindle.Task{Module: probe, Args: []string{"cat", "/w/sub/change.txt"}, Stdout: &out,
		Mounts: []spindle.Mount{{Tree: tree, Guest: "/w"}}}); err != nil || res.ExitCode != 0 || out.String() != "before\n" {
		t.Errorf("the context's stored tree after a change in a copy: %q, %+v, %v", out.String(), res, err)
	}
	// Read-only tree mounts stay so beside a collected one.
	res, err := run([]spindle.Mount{w, {Tree: tree, Guest: "/ro"}}, "write", "/ro/x", "no")
	if err != nil || res.ExitCode == 0 {
		t.Errorf("a write to a read-only tree mount: %+v, %v; want a failed command", res, err)
	}
	for name, mounts := range map[string][]spindle.Mount{
		"two collected": {w, {Tree: tree, Guest: "/w2", Collect: true}},
		"read-only":     {{Tree: tree, Guest: "/w", Collect: true, ReadOnly: true}},
		"no tree":       {{Host: src, Guest: "/w", Collect: true}},
	} {
		if _, err := run(mounts, "echo", "ran"); err == nil || !strings.Contains(err.Error(), "collected mount") {
			t.Errorf("%s: %v, want a refusal naming the collected mount", name, err)
		}
	}
}
