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
	"slices"
	"strings"

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
// written into the real $WORK before the go command reads them: only
// into the run's own directories there (those it was shipped), at most
// modules.DefaultCollectFiles entries and DefaultCollectBytes bytes, and
// released from the store's pinned tier after, so that a server that
// runs a whole build stays bounded.

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
	err = writeOutputs(st, res.OutputTree, req.Work, ownDirs(req.Files, req.Work))
	if blobs, berr := st.Blobs(res.OutputTree); berr == nil {
		for _, h := range blobs {
			st.Release(h)
		}
	}
	if err != nil {
		return nil, shipError{fmt.Errorf("the run's outputs: %w", err)}
	}
	return res, nil
}

// ownDirs are the paths of files (gotool's Invocation.Files) inside work,
// relative to it, slash-separated: where a shipped run may write.
func ownDirs(files []string, work string) []string {
	var out []string
	for _, f := range files {
		if rel, ok := below(f, work); ok && rel != "." {
			out = append(out, rel)
		}
	}
	return out
}

// shipError is a failure on this machine, shipping a run's files or
// writing what it made: not the context's.
type shipError struct{ error }

func (e shipError) Unwrap() error { return e.error }

// toolMounts are a run's mounts: each directory at its path or, shipped,
// a tree of the files named in it (a directory with none is left out),
// the work directory a collected copy. Shipped, a file in no mount is an
// error: the plan promised none.
func toolMounts(st *modules.Store, mounts []gotool.Mount, files []string, work string, ship bool) ([]spindle.Mount, error) {
	var out []spindle.Mount
	if !ship {
		for _, mt := range mounts {
			out = append(out, spindle.Mount{Host: mt.Dir, Guest: mt.Dir, ReadOnly: mt.ReadOnly})
		}
		return out, nil
	}
	placed := make([]bool, len(files))
	for _, mt := range mounts {
		isWork := mt.Dir == work && !mt.ReadOnly
		var rels []string
		for i, f := range files {
			if rel, ok := below(f, mt.Dir); ok {
				rels = append(rels, rel)
				placed[i] = true
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
	if i := slices.Index(placed, false); i >= 0 {
		return nil, fmt.Errorf("ship %s: in none of the run's directories", files[i])
	}
	return out, nil
}

// below is p relative to dir, slash-separated ("." for dir itself), if p
// is dir or lies inside it.
func below(p, dir string) (string, bool) {
	if p != dir && !strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
		return "", false
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// writeOutputs writes the regular files of tree into dir (which exists),
// the directories on the way made as needed, each file new (never a link
// into the store: go rewrites build IDs in place) and renamed over what
// was there. The tree came from a context: its names were checked as it
// was decoded, it is written through an os.Root, a symlink in it is
// refused, and so is anything outside own (paths relative to dir, where
// the run may write) and, before anything is written, a tree of more
// than modules.DefaultCollectFiles entries or DefaultCollectBytes bytes
// once expanded, or deeper than modules.MaxTreeDepth (Store.Shape).
func writeOutputs(st *modules.Store, tree, dir string, own []string) error {
	sh, err := st.Shape(tree)
	switch {
	case err != nil:
		return err
	case sh.Paths > modules.DefaultCollectFiles:
		return fmt.Errorf("more than %d entries", modules.DefaultCollectFiles)
	case sh.Bytes > modules.DefaultCollectBytes:
		return fmt.Errorf("more than %d bytes", modules.DefaultCollectBytes)
	}
	rt, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer rt.Close()
	w := &outWriter{st: st, rt: rt, own: own}
	return w.dir(tree, ".")
}

// outWriter is one writeOutputs.
type outWriter struct {
	st  *modules.Store
	rt  *os.Root
	own []string
}

// where says whether rel lies in the run's own paths (inside), or is a
// directory on the way to one (above).
func (w *outWriter) where(rel string) (inside, above bool) {
	for _, o := range w.own {
		switch {
		case rel == o || strings.HasPrefix(rel, o+"/"):
			return true, false
		case rel == "." || strings.HasPrefix(o, rel+"/"):
			above = true
		}
	}
	return false, above
}

// dir writes the directory digest, at rel; writeOutputs checked the
// tree's depth.
func (w *outWriter) dir(digest, rel string) error {
	d, err := w.st.ReadDir(digest)
	if err != nil {
		return err
	}
	for _, e := range d.Entries {
		p := path.Join(rel, e.Name)
		inside, above := w.where(p)
		switch {
		case e.Kind == modules.EntryDir && (inside || above):
			if inside {
				if err := w.rt.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			if err := w.dir(e.Digest, p); err != nil {
				return err
			}
		case e.Kind == modules.EntryFile && inside:
			b, ok := w.st.Get(e.Digest)
			if !ok {
				return fmt.Errorf("%s: blob %.12s is not in the store", p, e.Digest)
			}
			if int64(len(b)) != e.Size {
				return fmt.Errorf("%s: %d bytes, where its entry says %d", p, len(b), e.Size)
			}
			mode := fs.FileMode(0o644)
			if e.Exec {
				mode = 0o755
			}
			if err := replaceIn(w.rt, p, b, mode); err != nil {
				return err
			}
		case e.Kind != modules.EntryDir && e.Kind != modules.EntryFile:
			return fmt.Errorf("%s: a %s, where a tool writes files only", p, e.Kind)
		default:
			return fmt.Errorf("%s: outside the run's own directories in $WORK", p)
		}
	}
	return nil
}
