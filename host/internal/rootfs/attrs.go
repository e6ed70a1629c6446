package rootfs

import (
	"io/fs"
	"path"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// Attrs is what WASI preview 1's filestat leaves out of an entry: its
// permission bits and its owner.
type Attrs struct {
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid
	// and fs.ModeSticky, nothing else (the type is filestat's).
	Mode     fs.FileMode
	UID, GID int
}

// attrBits are the bits of a mode that Attrs reports.
const attrBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Attrs returns the permission bits and owner of p, not following a
// symlink at p (a symlink's own: on Linux its mode is always 0o777).
// It works in a read-only FS too.
func (fsys *FS) Attrs(p string) (Attrs, sys.Errno) {
	fi, err := fsys.root.Lstat(rel(p))
	if err != nil {
		return Attrs{}, fsys.errno(err)
	}
	uid, gid, ok := ownerOf(fi)
	if !ok {
		return Attrs{}, sys.ENOSYS
	}
	return Attrs{Mode: fi.Mode() & attrBits, UID: uid, GID: gid}, 0
}

// What Regrant gives an entry, a bit each.
const (
	// RegrantMode: Made.FileMode for a regular file, Made.DirMode for a
	// directory (a symlink has no mode of its own: it is left alone).
	RegrantMode = 1 << 0
	// RegrantOwner: Made.UID and Made.GID (-1 keeps that one).
	RegrantOwner = 1 << 1
	regrantAll   = RegrantMode | RegrantOwner
)

// Regrant gives the existing entry p what this FS's Made grants the
// entries the guest makes (see SetMade), where it differs, and returns
// what it changed (RegrantMode, RegrantOwner bits). It never follows a
// symlink at p. what asks for RegrantMode, RegrantOwner or both.
//
// granted is false, and nothing is changed, when the FS is read-only or
// its Made does not grant what was asked for the entry p is: no owner for
// RegrantOwner, no mode for its type (FileMode for a regular file,
// DirMode for a directory) for RegrantMode. A file that is neither a
// regular file, a directory nor a symlink is sys.ENOTSUP.
//
// The owner is set before the mode, since a chown may clear the setuid
// and setgid bits. Like Made for new entries, it changes the entry itself:
// a hard link to it elsewhere changes too (as a write through it would).
// Root.Chmod may, under a race with a concurrent rename, apply to a
// symlink's target instead; that target is still inside the root.
func (fsys *FS) Regrant(p string, what int) (changed int, granted bool, errno sys.Errno) {
	if what == 0 || what&^regrantAll != 0 {
		return 0, true, sys.EINVAL
	}
	m := fsys.made
	if fsys.readOnly || what&RegrantOwner != 0 && !m.Chown {
		return 0, false, 0
	}
	name := rel(p)
	if path.Clean(name) == "." {
		// The mount's own directory is the caller's, not something the
		// guest made or could replace: it is never regranted.
		return 0, false, 0
	}
	fi, err := fsys.root.Lstat(name)
	if err != nil {
		return 0, true, fsys.errno(err)
	}
	var mode fs.FileMode
	switch t := fi.Mode(); {
	case t.IsRegular():
		mode = m.FileMode
	case t.IsDir():
		mode = m.DirMode
	case t&fs.ModeSymlink != 0:
		what &^= RegrantMode
	default:
		return 0, true, sys.ENOTSUP
	}
	if what&RegrantMode != 0 && mode == 0 {
		return 0, false, 0
	}
	if what&RegrantOwner != 0 {
		uid, gid, ok := ownerOf(fi)
		if !ok {
			return 0, true, sys.ENOSYS
		}
		if m.UID != -1 && m.UID != uid || m.GID != -1 && m.GID != gid {
			if err := fsys.root.Lchown(name, m.UID, m.GID); err != nil {
				return 0, true, fsys.errno(err)
			}
			changed |= RegrantOwner
			if fi, err = fsys.root.Lstat(name); err != nil {
				return changed, true, fsys.errno(err)
			}
		}
	}
	if what&RegrantMode != 0 && fi.Mode()&attrBits != mode {
		if err := fsys.root.Chmod(name, mode); err != nil {
			return changed, true, fsys.errno(err)
		}
		changed |= RegrantMode
	}
	return changed, true, 0
}
