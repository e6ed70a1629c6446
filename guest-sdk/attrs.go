package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// FileAttrs is what WASI preview 1's stat leaves out of a file in a
// mount: its permission bits and its owner (docs/abi.md, path_attrs).
type FileAttrs struct {
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky; the file's type is os.Lstat's.
	Mode     fs.FileMode
	UID, GID int
}

// Attr names what Regrant may give a file, a bit each.
type Attr uint32

// The attributes of Regrant.
const (
	// AttrMode is the mode the mount grants what the task makes: its
	// file mode for a regular file, its directory mode for a directory.
	// A symlink has no mode of its own: AttrMode leaves it alone.
	AttrMode Attr = 1 << 0
	// AttrOwner is the owner and group the mount grants.
	AttrOwner Attr = 1 << 1
)

// Lattrs returns the permission bits and the owner of the file name, in a
// mount the caller granted (read-only or not); a symlink at name is not
// followed. A file that is not there is an error for which
// errors.Is(err, fs.ErrNotExist) holds; one outside every mount of the
// host (in the empty "/", in /dev) has no mode or owner to give
// (errors.ErrUnsupported). Only GOOS=wasip1 builds can ask the host
// (elsewhere, errors.ErrUnsupported).
func Lattrs(name string) (FileAttrs, error) {
	var a FileAttrs
	err := withPreopen(name, func(fd int32, rel string) int32 {
		var rc int32
		a, rc = pathAttrs(fd, rel)
		return rc
	})
	if err != nil {
		return FileAttrs{}, &fs.PathError{Op: "lattrs", Path: name, Err: err}
	}
	return a, nil
}

// Regrant gives the existing file name, in a writable mount, what the
// caller granted the files the task makes there (spindle.Mount's
// FileMode, DirMode, Owner and Group; see docs/abi.md, "Files", Modes),
// where it differs, and returns what it changed. what is AttrMode,
// AttrOwner or both. A symlink at name is not followed (its owner is
// set). The grant is the only mode and owner a guest can give: Regrant
// never sets any other, and fails with ErrDenied, changing nothing, when
// the mount grants none for what was asked (a read-only mount, a mount
// without an owner for AttrOwner, without a mode for the file's type for
// AttrMode).
func Regrant(name string, what Attr) (changed Attr, err error) {
	if what == 0 || what&^(AttrMode|AttrOwner) != 0 {
		return 0, &fs.PathError{Op: "regrant", Path: name, Err: fmt.Errorf("%w: attributes %#x", ErrInvalid, uint32(what))}
	}
	err = withPreopen(name, func(fd int32, rel string) int32 {
		var rc int32
		changed, rc = pathRegrant(fd, what, rel)
		return rc
	})
	if err != nil {
		return changed, &fs.PathError{Op: "regrant", Path: name, Err: err}
	}
	return changed, nil
}

// preopenDir is a directory the host preopened: its descriptor and guest
// path (cleaned).
type preopenDir struct {
	fd   int32
	name string
}

// matchPreopen returns the preopen holding the clean absolute path p, the
// one with the longest guest path that is p or a whole-component prefix
// of it (as wasi-libc matches; Go's runtime matches string prefixes), and
// p relative to it ("." for the preopen itself).
func matchPreopen(dirs []preopenDir, p string) (preopenDir, string, bool) {
	var best preopenDir
	var rel string
	found := false
	for _, d := range dirs {
		var r string
		switch {
		case d.name == p:
			r = "."
		case d.name == "/":
			r = strings.TrimPrefix(p, "/")
		case strings.HasPrefix(p, d.name+"/"):
			r = p[len(d.name)+1:]
		default:
			continue
		}
		if !found || len(d.name) > len(best.name) {
			best, rel, found = d, r, true
		}
	}
	if rel == "" {
		rel = "."
	}
	return best, rel, found
}

// withPreopen runs call with the preopen that holds name (made absolute
// against the working directory, cleaned) and name relative to it, and
// returns call's return code as an error (nil for 0).
func withPreopen(name string, call func(fd int32, rel string) int32) error {
	if name == "" {
		return errNotExist()
	}
	p := name
	if !path.IsAbs(p) {
		wd, err := getwd()
		if err != nil {
			return err
		}
		p = path.Join(wd, p)
	}
	p = path.Clean(p)
	dirs, err := preopens()
	if err != nil {
		return err
	}
	d, rel, ok := matchPreopen(dirs, p)
	if !ok {
		return errNotExist()
	}
	switch rc := call(d.fd, rel); {
	case rc == 0:
		return nil
	case rc > 0:
		return wasiErrno(rc)
	case rc == codeDenied:
		return fmt.Errorf("%w: the mount grants no such mode or owner", ErrDenied)
	default:
		return codeErr(rc)
	}
}

// errUnsupported is a file outside every host mount (the empty "/" or
// /dev), which has no mode or owner to report.
var errUnsupported = errors.ErrUnsupported
