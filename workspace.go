package spindle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/wire"
)

// Workspace runs a command task as an action (a CI step, package ci): the
// context that runs it builds the task's file view itself, from trees of
// the content-addressed store of package modules, instead of mounting
// directories the caller names. The guest sees
//
//	/src          the Input tree, read-only; the working directory (PWD)
//	/out          writable, empty; the Outputs are collected from it
//	/tmp, /home   writable, empty, private to the call (TMPDIR, HOME)
//	/run/secrets  the Secrets, one read-only file each (only if any)
//	/dev/null     discards writes, reads as empty
//
// and nothing else: any other path is ENOENT. The directories are made
// under the context's work directory and removed when the call ends.
type Workspace struct {
	// Input is the digest of the input tree (modules.Store.PutDir or
	// Merge, in the master's store); the context fetches what it lacks,
	// each blob crossing each edge of the tree once.
	Input string
	// Outputs are the paths under /out, each a file or a directory, that
	// the context collects into TaskResult.OutputTree when the command
	// exits. With exit code 0 each must exist; otherwise those that exist
	// are collected.
	Outputs []string
	// Stdin names a file of the input tree that is streamed to the
	// command's stdin.
	Stdin string
	// Dir names a directory of the input tree, a clean relative path,
	// that is the command's working directory (PWD=/src/Dir); default
	// /src itself.
	Dir string
	// Secrets are written as files /run/secrets/NAME for this call only.
	Secrets map[string][]byte
	// OutputBytes and OutputFiles bound the collected outputs (defaults
	// 1 GiB and 100,000 files).
	OutputBytes int64
	OutputFiles int
}

// The defaults of Workspace.OutputBytes and OutputFiles: the context
// collects, and the caller pulls, no more.
const (
	DefaultWorkspaceOutputBytes = modules.DefaultCollectBytes
	DefaultWorkspaceOutputFiles = modules.DefaultCollectFiles
)

// The guest paths of a Workspace.
const (
	WorkspaceSrc     = "/src"
	WorkspaceOut     = "/out"
	WorkspaceTmp     = "/tmp"
	WorkspaceHome    = "/home"
	WorkspaceSecrets = "/run/secrets"
)

func (w *Workspace) wire() *wire.Workspace {
	if w == nil {
		return nil
	}
	return &wire.Workspace{Input: w.Input, Outputs: w.Outputs, Stdin: w.Stdin, Dir: w.Dir, Secrets: w.Secrets,
		OutputBytes: w.OutputBytes, OutputFiles: w.OutputFiles}
}

// checkWorkspace validates what the caller and the context both check.
func checkWorkspace(w *wire.Workspace) error {
	if !modules.ValidHash(w.Input) {
		return fmt.Errorf("workspace input %q is not a tree digest", w.Input)
	}
	for _, o := range w.Outputs {
		if !cleanRel(o) {
			return fmt.Errorf("workspace output %q is not a clean relative path", o)
		}
	}
	if w.Stdin != "" && !cleanRel(w.Stdin) {
		return fmt.Errorf("workspace stdin %q is not a clean relative path", w.Stdin)
	}
	if w.Dir != "" && !cleanRel(w.Dir) {
		return fmt.Errorf("workspace dir %q is not a clean relative path", w.Dir)
	}
	if w.OutputBytes < 0 || w.OutputFiles < 0 {
		return fmt.Errorf("workspace output limits %d bytes, %d files: negative", w.OutputBytes, w.OutputFiles)
	}
	for name := range w.Secrets {
		if !cleanRel(name) || strings.Contains(name, "/") {
			return fmt.Errorf("secret name %q is not a file name", name)
		}
	}
	return nil
}

// cleanRel reports whether p is a clean, relative, slash-separated path
// that stays inside its root.
func cleanRel(p string) bool {
	return p != "" && p != "." && !path.IsAbs(p) && path.Clean(p) == p && p != ".." &&
		!strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0) && !strings.Contains(p, "\\")
}

// workspace is one call's directories on the context's disk.
type workspace struct {
	dir   string // removed by remove
	out   string
	stdin *os.File // nil if none
}

// prepareWorkspace makes the call's directories and sets its mounts,
// environment and stdin. The caller calls remove.
func (n *node) prepareWorkspace(ctx context.Context, w *wire.Workspace, call *host.Call) (*workspace, error) {
	if err := checkWorkspace(w); err != nil {
		return nil, err
	}
	root, err := workRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(root, "ws-")
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	ws := &workspace{dir: dir, out: filepath.Join(dir, "out")}
	src := filepath.Join(dir, "src")
	if err := n.mods.Materialize(ctx, w.Input, src); err != nil {
		ws.remove()
		return nil, fmt.Errorf("workspace input: %w", err)
	}
	for _, d := range []string{"out", "tmp", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			ws.remove()
			return nil, fmt.Errorf("workspace: %w", err)
		}
	}
	call.Grants.Mounts = []host.Mount{
		{HostDir: src, GuestDir: WorkspaceSrc, ReadOnly: true},
		{HostDir: ws.out, GuestDir: WorkspaceOut},
		{HostDir: filepath.Join(dir, "tmp"), GuestDir: WorkspaceTmp},
		{HostDir: filepath.Join(dir, "home"), GuestDir: WorkspaceHome},
	}
	if len(w.Secrets) > 0 {
		sec := filepath.Join(dir, "secrets")
		if err := os.Mkdir(sec, 0o700); err != nil {
			ws.remove()
			return nil, fmt.Errorf("workspace: %w", err)
		}
		for _, name := range slices.Sorted(maps.Keys(w.Secrets)) {
			if err := os.WriteFile(filepath.Join(sec, name), w.Secrets[name], 0o400); err != nil {
				ws.remove()
				return nil, fmt.Errorf("workspace: secret: %w", err)
			}
		}
		call.Grants.Mounts = append(call.Grants.Mounts, host.Mount{HostDir: sec, GuestDir: WorkspaceSecrets, ReadOnly: true})
	}
	call.Grants.DevNull = true
	env := maps.Clone(call.Grants.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["PWD"], env["HOME"], env["TMPDIR"] = WorkspaceSrc, WorkspaceHome, WorkspaceTmp
	if w.Dir != "" {
		// Lstat through the tree's root: a symlink (or anything but a
		// directory) is refused, so the working directory stays in /src.
		r, err := os.OpenRoot(src)
		var fi os.FileInfo
		if err == nil {
			fi, err = r.Lstat(filepath.FromSlash(w.Dir))
			r.Close()
		}
		if err != nil || !fi.IsDir() {
			ws.remove()
			return nil, fmt.Errorf("workspace dir %q is not a directory of the input tree", w.Dir)
		}
		env["PWD"] = WorkspaceSrc + "/" + w.Dir
	}
	call.Grants.Env = env
	if w.Stdin != "" {
		r, err := os.OpenRoot(src)
		if err == nil {
			ws.stdin, err = r.Open(filepath.FromSlash(w.Stdin))
			r.Close()
		}
		if err != nil {
			ws.remove()
			return nil, fmt.Errorf("workspace stdin %q: %w", w.Stdin, errors.Unwrap(err))
		}
		if fi, err := ws.stdin.Stat(); err != nil || !fi.Mode().IsRegular() {
			ws.remove()
			return nil, fmt.Errorf("workspace stdin %q is not a regular file", w.Stdin)
		}
		call.Stdin = ws.stdin
	}
	return ws, nil
}

// collect stores the outputs the command left in /out and returns their
// tree's digest. exited0 says whether every declared output must exist.
func (n *node) collect(ws *workspace, w *wire.Workspace, exited0 bool) (string, error) {
	paths := w.Outputs
	if !exited0 {
		paths = nil
		// Through os.Root: a symlink the guest left on the way (/out/a ->
		// /) must not tell it whether a host path exists.
		root, err := os.OpenRoot(ws.out)
		if err != nil {
			return "", err
		}
		for _, p := range w.Outputs {
			if _, err := root.Lstat(filepath.FromSlash(p)); err == nil {
				paths = append(paths, p)
			}
		}
		root.Close()
	}
	return n.mods.Store().Collect(ws.out, paths, modules.CollectLimits{MaxBytes: w.OutputBytes, MaxFiles: w.OutputFiles})
}

// remove deletes the call's directories. The guest may have left them
// read-only: permissions are restored first.
func (ws *workspace) remove() {
	if ws.stdin != nil {
		ws.stdin.Close()
	}
	_ = filepath.WalkDir(ws.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(ws.dir)
}
