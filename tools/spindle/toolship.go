package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/gotool"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/target"
)

// A tool run on a context of this machine is granted go's directories at
// their paths. On another machine they are not there: the run is shipped.
// The files it reads (gotool's Invocation.Files) go as a tree per mount,
// at the same paths, each blob fetched once per context and kept in its
// store (an archive of the build cache crosses once per build, not once
// per compile); the work directory is a collected mount, a writable copy
// of what the run needs of it, whose new and changed files come back
// (TaskResult.OutputTree, pulled into this master's store) and are
// written into the real $WORK before the go command reads them.

// needsShip reports whether t runs the tool on another machine than this
// one: a hop other than local and sudo.
func needsShip(t target.Target) bool {
	for _, h := range t {
		if h.Method != "local" && h.Method != "sudo" {
			return true
		}
	}
	return false
}

// runPlanned runs req's tool (module hash) on cx, shipped or granted, and
// when shipped writes what it made in $WORK there.
func runPlanned(ctx context.Context, st *modules.Store, cx *spindle.Context, hash string, req *toolRequest, ship bool, stdout, stderr io.Writer) (*spindle.TaskResult, error) {
	t := spindle.Task{
		Module: hash,
		// A command's Task is its argv[0]: the tool's name, as go reads
		// "compile version ..." from compile -V=full.
		Task:    req.Tool,
		Args:    req.Args,
		Env:     req.Env,
		DevNull: true,
		Stdout:  stdout,
		Stderr:  stderr,
		Limits:  spindle.Limits{Timeout: req.Timeout, MemoryPages: uint32(req.Memory >> 16)},
	}
	var err error
	if t.Mounts, err = toolMounts(st, req.Mounts, req.Files, req.Work, ship); err != nil {
		return nil, shipError{err}
	}
	res, err := cx.Run(ctx, t)
	if err != nil || !ship || res.OutputTree == "" {
		return res, err
	}
	if err := writeOutputs(st, res.OutputTree, req.Work); err != nil {
		return nil, shipError{fmt.Errorf("the run's outputs: %w", err)}
	}
	return res, nil
}

// shipError is a failure on this machine, shipping a run's files or
// writing what it made: not the context's.
type shipError struct{ error }

func (e shipError) Unwrap() error { return e.error }

// toolMounts are a run's mounts: each directory at its path or, shipped,
// a tree of the files named in it (a directory with none is left out),
// the work directory a collected copy.
func toolMounts(st *modules.Store, mounts []gotool.Mount, files []string, work string, ship bool) ([]spindle.Mount, error) {
	var out []spindle.Mount
	for _, mt := range mounts {
		if !ship {
			out = append(out, spindle.Mount{Host: mt.Dir, Guest: mt.Dir, ReadOnly: mt.ReadOnly})
			continue
		}
		isWork := mt.Dir == work && !mt.ReadOnly
		var rels []string
		for _, f := range files {
			if rel, ok := below(f, mt.Dir); ok {
				rels = append(rels, rel)
			}
		}
		if len(rels) == 0 && !isWork {
			continue
		}
		tree, err := st.Collect(mt.Dir, rels, modules.CollectLimits{})
		if err != nil {
			return nil, fmt.Errorf("ship %s: %w", mt.Dir, err)
		}
		out = append(out, spindle.Mount{Tree: tree, Guest: mt.Dir, ReadOnly: !isWork, Collect: isWork})
	}
	return out, nil
}

// below is p relative to dir, slash-separated, if p lies inside dir (not
// dir itself).
func below(p, dir string) (string, bool) {
	if !strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
		return "", false
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// writeOutputs writes the regular files of tree into dir (which exists),
// the directories on the way made as needed: each a new file of its own,
// never a link into the store (go rewrites build IDs in place), in place
// of what was there by rename. The tree came from a context: its names
// are checked as it is decoded, it is written through an os.Root, and a
// symlink in it is refused.
func writeOutputs(st *modules.Store, tree, dir string) error {
	rt, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer rt.Close()
	return writeTree(st, rt, tree, ".", 0)
}

func writeTree(st *modules.Store, rt *os.Root, digest, rel string, depth int) error {
	if depth > modules.MaxTreeDepth {
		return fmt.Errorf("%s: deeper than %d", rel, modules.MaxTreeDepth)
	}
	d, err := st.ReadDir(digest)
	if err != nil {
		return err
	}
	for _, e := range d.Entries {
		p := path.Join(rel, e.Name)
		switch e.Kind {
		case modules.EntryDir:
			if err := rt.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := writeTree(st, rt, e.Digest, p, depth+1); err != nil {
				return err
			}
		case modules.EntryFile:
			b, ok := st.Get(e.Digest)
			if !ok {
				return fmt.Errorf("%s: blob %.12s is not in the store", p, e.Digest)
			}
			mode := fs.FileMode(0o644)
			if e.Exec {
				mode = 0o755
			}
			if err := replaceIn(rt, p, b, mode); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: a %s, where a tool writes files only", p, e.Kind)
		}
	}
	return nil
}

// replaceIn writes b as p under rt: a new file, renamed over p.
func replaceIn(rt *os.Root, p string, b []byte, mode fs.FileMode) error {
	tmp := fmt.Sprintf("%s.spindle-%d", p, time.Now().UnixNano())
	f, err := rt.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rt.Rename(tmp, p)
	}
	if err != nil {
		rt.Remove(tmp)
	}
	return err
}
