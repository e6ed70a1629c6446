package spindle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/modules"
	"github.com/spindle-hq/spindle/wire"
)

// checkMount validates what the caller and the context both check of a
// Mount: a Tree mount names a digest and no host directory and grants no
// new-entry attributes (it is read-only); the modes are permission bits.
func checkMount(hostDir, tree string, readOnly, collect bool, fileMode, dirMode uint32, owner, group string) error {
	made := fileMode != 0 || dirMode != 0 || owner != "" || group != ""
	switch {
	case tree != "" && hostDir != "":
		return errors.New("a mount takes a host directory or a tree, not both")
	case tree != "" && !modules.ValidHash(tree):
		return fmt.Errorf("tree %q is not a digest", tree)
	case collect && (tree == "" || readOnly):
		return errors.New("a collected mount is a writable copy of a tree: it takes a tree and is not read-only")
	case tree != "" && made:
		return errors.New("a tree mount takes no file mode, directory mode or owner")
	case readOnly && made:
		return errors.New("a read-only mount takes no file mode, directory mode or owner")
	case fileMode&^0o777 != 0:
		return fmt.Errorf("file mode %#o: only permission bits (0 to 0777)", fileMode)
	case dirMode&^0o777 != 0:
		return fmt.Errorf("directory mode %#o: only permission bits (0 to 0777)", dirMode)
	}
	return nil
}

// hostMount makes a wire mount the host's: it materializes a Tree mount in
// a new directory of the work root (returned, for the caller to remove
// with modules.RemoveTree, also when err is not nil) and looks up the
// owner and group on this machine.
func (n *node) hostMount(ctx context.Context, mt wire.Mount) (m host.Mount, tree string, err error) {
	if err := checkMount(mt.Host, mt.Tree, mt.ReadOnly, mt.Collect, mt.FileMode, mt.DirMode, mt.Owner, mt.Group); err != nil {
		return host.Mount{}, "", err
	}
	m = host.Mount{HostDir: mt.Host, GuestDir: mt.Guest, ReadOnly: mt.ReadOnly,
		Made: host.Made{FileMode: fs.FileMode(mt.FileMode), DirMode: fs.FileMode(mt.DirMode), UID: -1, GID: -1}}
	if mt.Tree != "" {
		root, err := workRoot()
		if err != nil {
			return host.Mount{}, "", err
		}
		dir, err := os.MkdirTemp(root, "tree-")
		if err != nil {
			return host.Mount{}, "", fmt.Errorf("tree: %w", err)
		}
		// Materialize wants dst absent or empty: dir is empty.
		if err := n.mods.Materialize(ctx, mt.Tree, dir); err != nil {
			return host.Mount{}, dir, fmt.Errorf("tree %.12s: %w", mt.Tree, err)
		}
		m.HostDir, m.ReadOnly = dir, !mt.Collect
		if mt.Collect {
			if err := writableCopy(dir); err != nil {
				return host.Mount{}, dir, fmt.Errorf("tree %.12s: %w", mt.Tree, err)
			}
		}
		return m, dir, nil
	}
	if mt.Owner != "" {
		if m.Made.UID, err = lookupID(mt.Owner, false); err != nil {
			return host.Mount{}, "", err
		}
		m.Made.Chown = true
	}
	if mt.Group != "" {
		if m.Made.GID, err = lookupID(mt.Group, true); err != nil {
			return host.Mount{}, "", err
		}
		m.Made.Chown = true
	}
	if m.Made.Chown && os.Geteuid() != 0 && (m.Made.UID != -1 && m.Made.UID != os.Geteuid()) {
		return host.Mount{}, "", fmt.Errorf("owner %s: this context runs as uid %d, and only root may give files away (run it as root: sudo)", mt.Owner, os.Geteuid())
	}
	return m, "", nil
}

// writableCopy makes the materialized tree dir the guest's to change:
// its directories writable, and each file a copy of its own rather than a
// hard link to the store's (a write through a link, which root's
// permissions would allow, would change the stored blob). The copies
// keep their modification times, which collected compares.
func writableCopy(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tmp := p + ".spindle-copy"
		if err := os.WriteFile(tmp, b, fi.Mode().Perm()|0o200); err != nil {
			return err
		}
		if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
			return err
		}
		return os.Rename(tmp, p)
	})
}

// collected lists the regular files under dir that the guest made or
// changed since writableCopy (by size and modification time against the
// tree's), as Store.Collect paths.
func collected(dir string, seed map[string]fs.FileInfo) ([]string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if old, ok := seed[rel]; ok && old.Size() == fi.Size() && old.ModTime().Equal(fi.ModTime()) {
			return nil
		}
		paths = append(paths, filepath.ToSlash(rel))
		return nil
	})
	return paths, err
}

// seedFiles records the regular files of a collected mount before the
// guest runs.
func seedFiles(dir string) (map[string]fs.FileInfo, error) {
	seed := map[string]fs.FileInfo{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seed[rel] = fi
		return nil
	})
	return seed, err
}

// lookupID returns the id of the user (or, with group set, the group)
// name on this machine; a number is taken as it is.
func lookupID(name string, group bool) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		if id < 0 {
			return 0, fmt.Errorf("id %d: negative", id)
		}
		return id, nil
	}
	var (
		s   string
		err error
	)
	if group {
		var g *user.Group
		if g, err = lookupGroup(name); err == nil {
			s = g.Gid
		}
	} else {
		var u *user.User
		if u, err = lookupUser(name); err == nil {
			s = u.Uid
		}
	}
	if err != nil {
		kind := "user"
		if group {
			kind = "group"
		}
		return 0, fmt.Errorf("%s %q: not known on this machine: %w", kind, name, err)
	}
	return strconv.Atoi(s)
}
