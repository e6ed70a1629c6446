package rootfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/experimental/sys"
	wazerosys "github.com/tetratelabs/wazero/sys"
)

// FS is a sys.FS confined to one host directory. Create it with [New] and
// close it with [FS.Close].
//
// FS is safe for concurrent use.
type FS struct {
	// UnimplementedFS makes methods that a later wazero adds to sys.FS
	// return ENOSYS instead of breaking the build.
	sys.UnimplementedFS

	root     *os.Root // safe for concurrent use; closed by Close
	readOnly bool
	files    *Files // counts the files open through this FS; never nil
	disk     *Disk  // spent by the writes and creates through this FS; never nil

	// made is what the guest's new files and directories get (SetMade);
	// set before the FS is used, read-only after.
	made Made

	// escapeErr is the error value os.Root returns for a path that leaves
	// the root. It is unexported in package os, so New captures it by
	// asking the root for "..".
	escapeErr error
}

var _ sys.FS = (*FS)(nil)

// New opens dir as the root of a new FS. When readOnly is true, every
// operation that would change the tree fails with sys.EROFS. The FS may
// hold at most DefaultMaxOpenFiles files open at once and write at most
// DefaultDiskBytes; use NewShared to share the bounds between several FSs.
//
// The caller owns the FS and must Close it once no module instance that
// mounts it is running.
func New(dir string, readOnly bool) (*FS, error) {
	return NewShared(dir, readOnly, NewFiles(DefaultMaxOpenFiles), NewDisk(DefaultDiskBytes))
}

// NewShared is New with the bound on open files given by files and the
// budget of bytes written by disk, which several FSs may share: the mounts
// of one call share one Files and one Disk, so that the call as a whole
// holds at most files' bound of host descriptors and writes at most disk's
// budget.
func NewShared(dir string, readOnly bool, files *Files, disk *Disk) (*FS, error) {
	if files == nil || disk == nil {
		return nil, fmt.Errorf("rootfs: open root %q: nil Files or Disk", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: open root %q: %w", dir, err)
	}
	fsys := &FS{root: root, readOnly: readOnly, files: files, disk: disk}
	// os.Root checks ".." lexically, before any system call.
	if _, err := root.Lstat(".."); err != nil {
		fsys.escapeErr = underlying(err)
	}
	return fsys, nil
}

// Close closes the root directory. Files opened before stay open; later
// path operations fail with sys.EBADF. Close is idempotent.
func (fsys *FS) Close() error {
	return fsys.root.Close()
}

// The modes of what the guest makes, before the host's umask (see the
// package doc): what WASI preview 1 cannot say, a guest gets as most
// programs ask for it.
const (
	FileMode fs.FileMode = 0o644
	DirMode  fs.FileMode = 0o755
)

// Made is what a mount's caller grants the files, directories and
// symlinks the guest makes in it, where WASI preview 1 gives the guest no
// say (it has no mode argument and no chown): the zero value keeps
// FileMode and DirMode less the umask and the host process's owner.
type Made struct {
	// FileMode and DirMode, when not zero, are the exact permission bits
	// (0o777 at most, not less the umask) of each file and each directory
	// the guest makes.
	FileMode, DirMode fs.FileMode
	// Chown gives each file, directory and symlink the guest makes the
	// user UID and the group GID (-1 keeps that one as it is).
	Chown    bool
	UID, GID int
}

// SetMade sets what the guest's new files, directories and symlinks get.
// Call it before the FS is mounted; it is not safe to call concurrently
// with anything else.
func (fsys *FS) SetMade(m Made) { fsys.made = m }

// applyMade gives what the guest just made at name the granted mode and
// owner: f is its open file, or nil (then name, not followed, is taken).
// It fails only if the grant cannot be honoured, and then the new entry
// is removed, so that nothing is left with the wrong mode or owner.
func (fsys *FS) applyMade(name string, f *os.File, mode fs.FileMode) error {
	var err error
	if mode != 0 {
		if f != nil {
			err = f.Chmod(mode)
		} else {
			err = fsys.root.Chmod(name, mode)
		}
	}
	if err == nil && fsys.made.Chown {
		if f != nil {
			err = f.Chown(fsys.made.UID, fsys.made.GID)
		} else {
			err = fsys.root.Lchown(name, fsys.made.UID, fsys.made.GID)
		}
	}
	if err != nil {
		_ = fsys.root.Remove(name)
	}
	return err
}

// OpenFile implements sys.FS.OpenFile. A file it creates gets FileMode
// less the umask (or the Made mode and owner); perm is ignored.
func (fsys *FS) OpenFile(p string, flag sys.Oflag, _ fs.FileMode) (sys.File, sys.Errno) {
	name := rel(p)
	osFlag, errno := toOSFlag(flag)
	if errno != 0 {
		return nil, errno
	}
	writes := flag&(sys.O_RDWR|sys.O_WRONLY) != 0
	if fsys.readOnly {
		if writes || flag&sys.O_TRUNC != 0 {
			if flag&sys.O_DIRECTORY != 0 {
				return nil, sys.EISDIR
			}
			return nil, sys.EROFS
		}
		if flag&sys.O_CREAT != 0 {
			// POSIX: O_CREAT on a read-only file system fails only when
			// it would create the file.
			_, err := fsys.root.Stat(name)
			switch errno := fsys.errno(err); {
			case errno == sys.ENOENT:
				return nil, sys.EROFS
			case errno != 0:
				return nil, errno
			case flag&sys.O_EXCL != 0:
				return nil, sys.EEXIST
			}
			osFlag &^= os.O_CREATE | os.O_EXCL
		}
	}
	if flag&sys.O_NOFOLLOW != 0 {
		// os.Root follows a symlink in the last component even when asked
		// for O_NOFOLLOW, so check first. A race can only make it follow a
		// link that stays inside the root.
		fi, err := fsys.root.Lstat(name)
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, sys.ELOOP
		}
	}
	var charged int64
	created := false
	if !fsys.readOnly && flag&sys.O_CREAT != 0 {
		// Without O_EXCL, an open creates only what is not there. Stat
		// follows a symlink, as the open will, so that a dangling one
		// cannot make files for nothing.
		if flag&sys.O_EXCL != 0 || !fsys.exists(name) {
			created = true
			if charged, errno = fsys.chargeEntry(name); errno != 0 {
				return nil, errno
			}
		}
	}
	if !fsys.files.acquire() {
		fsys.disk.give(charged)
		return nil, sys.EAGAIN
	}
	f, err := fsys.root.OpenFile(name, osFlag, FileMode)
	if err != nil {
		fsys.files.release()
		fsys.disk.give(charged)
		return nil, fsys.errno(err)
	}
	if created && (fsys.made.FileMode != 0 || fsys.made.Chown) {
		if err := fsys.applyMade(name, f, fsys.made.FileMode); err != nil {
			f.Close()
			fsys.files.release()
			fsys.disk.give(charged)
			return nil, fsys.errno(err)
		}
	}
	if flag&sys.O_TRUNC != 0 {
		fsys.disk.truncated()
	}
	file, errno := newFile(fsys, name, flag, f)
	if errno != 0 {
		fsys.files.release()
	}
	return file, errno
}

// chargeEntry spends EntryBytes of the budget for making name, and returns
// what it spent. When the budget is spent and name exists, it spends
// nothing and lets the operation fail with EEXIST, as on a full disk.
func (fsys *FS) chargeEntry(name string) (int64, sys.Errno) {
	if fsys.disk.takeAll(EntryBytes) {
		return EntryBytes, 0
	}
	if _, err := fsys.root.Lstat(name); err == nil {
		return 0, 0
	}
	return 0, fsys.disk.refuse()
}

// exists reports whether name, followed if it is a symlink, exists.
func (fsys *FS) exists(name string) bool {
	_, err := fsys.root.Stat(name)
	return err == nil
}

// create runs op, which makes name, with its entry charged; a failed op
// gives the charge back.
func (fsys *FS) create(name string, op func() error) sys.Errno {
	charged, errno := fsys.chargeEntry(name)
	if errno != 0 {
		return errno
	}
	if errno := fsys.errno(op()); errno != 0 {
		fsys.disk.give(charged)
		return errno
	}
	return 0
}

// Lstat implements sys.FS.Lstat.
func (fsys *FS) Lstat(p string) (wazerosys.Stat_t, sys.Errno) {
	fi, err := fsys.root.Lstat(rel(p))
	if err != nil {
		return wazerosys.Stat_t{}, fsys.errno(err)
	}
	return wazerosys.NewStat_t(fi), 0
}

// Stat implements sys.FS.Stat.
func (fsys *FS) Stat(p string) (wazerosys.Stat_t, sys.Errno) {
	fi, err := fsys.root.Stat(rel(p))
	if err != nil {
		return wazerosys.Stat_t{}, fsys.errno(err)
	}
	return wazerosys.NewStat_t(fi), 0
}

// Mkdir implements sys.FS.Mkdir. The directory gets DirMode less the
// umask; perm is ignored.
func (fsys *FS) Mkdir(p string, _ fs.FileMode) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	name := rel(p)
	return fsys.create(name, func() error {
		if err := fsys.root.Mkdir(name, DirMode); err != nil {
			return err
		}
		if fsys.made.DirMode != 0 || fsys.made.Chown {
			return fsys.applyMade(name, nil, fsys.made.DirMode)
		}
		return nil
	})
}

// Chmod implements sys.FS.Chmod. Only the permission bits (0o777) of perm
// are applied.
func (fsys *FS) Chmod(p string, perm fs.FileMode) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	return fsys.errno(fsys.root.Chmod(rel(p), perm.Perm()))
}

// Rename implements sys.FS.Rename.
//
// os.Root.Rename refuses to replace any directory, so the errors sys.FS
// documents are worked out first, and an empty directory at `to` is
// removed before a directory is renamed over it. That last step is not
// atomic.
func (fsys *FS) Rename(from, to string) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	from, to = rel(from), rel(to)
	fromInfo, err := fsys.root.Lstat(from)
	if err != nil {
		return fsys.errno(err)
	}
	toInfo, err := fsys.root.Lstat(to)
	switch errno := fsys.errno(err); {
	case errno == sys.ENOENT:
	case errno != 0:
		return errno
	case os.SameFile(fromInfo, toInfo):
		return 0 // POSIX: renaming a file to itself does nothing
	case toInfo.IsDir() && !fromInfo.IsDir():
		return sys.EISDIR
	case !toInfo.IsDir() && fromInfo.IsDir():
		return sys.ENOTDIR
	case toInfo.IsDir():
		if fsys.isAncestor(fromInfo, to) {
			return sys.EINVAL // as rename(2), before removing anything
		}
		if errno := fsys.removeEmptyDir(to); errno != 0 {
			return errno
		}
	}
	return fsys.errno(fsys.root.Rename(from, to))
}

// isAncestor reports whether the directory dir is name or one of the
// directories above it, following symlinks as the kernel would.
func (fsys *FS) isAncestor(dir fs.FileInfo, name string) bool {
	for p := path.Clean(name); p != "." && p != "/"; p = path.Dir(p) {
		if fi, err := fsys.root.Stat(p); err == nil && os.SameFile(dir, fi) {
			return true
		}
	}
	return false
}

// removeEmptyDir removes the directory name, or returns ENOTEMPTY.
func (fsys *FS) removeEmptyDir(name string) sys.Errno {
	// O_DIRECTORY and O_NONBLOCK: a FIFO renamed here meanwhile must not
	// block the open.
	d, err := fsys.root.OpenFile(name, os.O_RDONLY|dirOpenFlags, 0)
	if err != nil {
		return fsys.errno(err)
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return sys.ENOTEMPTY
	}
	if errno := fsys.errno(err); errno != 0 {
		return errno
	}
	return fsys.errno(fsys.root.Remove(name))
}

// Rmdir implements sys.FS.Rmdir.
func (fsys *FS) Rmdir(p string) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	name := rel(p)
	// os.Root has only Remove, for files and directories alike. A race
	// between this check and Remove can only remove the wrong kind of
	// entry, still inside the root.
	fi, err := fsys.root.Lstat(name)
	if err != nil {
		return fsys.errno(err)
	}
	if !fi.IsDir() {
		return sys.ENOTDIR
	}
	return fsys.errno(fsys.root.Remove(name))
}

// Unlink implements sys.FS.Unlink.
func (fsys *FS) Unlink(p string) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	name := rel(p)
	fi, err := fsys.root.Lstat(name) // see Rmdir about the race
	if err != nil {
		return fsys.errno(err)
	}
	if fi.IsDir() {
		return sys.EISDIR
	}
	return fsys.errno(fsys.root.Remove(name))
}

// Link implements sys.FS.Link. Both paths are inside the root; when
// oldPath is a symlink, the new name is a link to the symlink itself.
func (fsys *FS) Link(oldPath, newPath string) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	newName := rel(newPath)
	return fsys.create(newName, func() error { return fsys.root.Link(rel(oldPath), newName) })
}

// Symlink implements sys.FS.Symlink. An absolute target is refused with
// EPERM, as in the WASI path-resolution rules. A relative target is stored
// as given, even one that leads out of the root: following it fails.
func (fsys *FS) Symlink(target, linkName string) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	if path.IsAbs(target) || filepath.IsAbs(target) || filepath.VolumeName(target) != "" {
		return sys.EPERM
	}
	name := rel(linkName)
	return fsys.create(name, func() error {
		if err := fsys.root.Symlink(target, name); err != nil {
			return err
		}
		if fsys.made.Chown {
			return fsys.applyMade(name, nil, 0)
		}
		return nil
	})
}

// Readlink implements sys.FS.Readlink. The target is returned as stored,
// with "/" as separator; reading it does not follow it.
func (fsys *FS) Readlink(p string) (string, sys.Errno) {
	target, err := fsys.root.Readlink(rel(p))
	if err != nil {
		return "", fsys.errno(err)
	}
	return filepath.ToSlash(target), 0
}

// Utimens implements sys.FS.Utimens. A symlink is followed, inside the
// root.
func (fsys *FS) Utimens(p string, atim, mtim int64) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	return fsys.errno(fsys.root.Chtimes(rel(p), toTime(atim), toTime(mtim)))
}

// Lutimens is Utimens without following p if it is a symlink: it sets the
// times of the link itself (WASI's path_filestat_set_times without
// LOOKUP_SYMLINK_FOLLOW, which sys.FS has no method for). p's parent is
// resolved inside the root; its last component is not followed.
func (fsys *FS) Lutimens(p string, atim, mtim int64) sys.Errno {
	if fsys.readOnly {
		return sys.EROFS
	}
	name := rel(strings.TrimRight(p, "/"))
	dir, base := path.Split(name)
	if base == "." || base == ".." {
		return fsys.Utimens(p, atim, mtim) // a directory, never a symlink
	}
	if dir == "" {
		dir = "."
	}
	d, err := fsys.root.OpenFile(dir, os.O_RDONLY|dirOpenFlags, 0)
	if err != nil {
		return fsys.errno(err)
	}
	defer d.Close()
	return lutimens(d, base, atim, mtim)
}

// toTime converts nanoseconds since the epoch to a time.Time. UTIME_OMIT
// becomes the zero time.Time, which os.Root.Chtimes leaves unchanged.
func toTime(nanos int64) time.Time {
	if nanos == sys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, nanos)
}

// rel turns a path from wazero into a name for os.Root. wazero passes
// cleaned paths relative to the mount, possibly with a trailing slash,
// which os.Root handles. Leading slashes mean the root of this FS.
func rel(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "."
	}
	return p
}

// toOSFlag converts sys.Oflag to flags for os.Root.OpenFile.
func toOSFlag(flag sys.Oflag) (int, sys.Errno) {
	var f int
	switch flag & (sys.O_RDONLY | sys.O_RDWR | sys.O_WRONLY) {
	case sys.O_RDONLY:
		f = os.O_RDONLY
	case sys.O_RDWR:
		f = os.O_RDWR
	case sys.O_WRONLY:
		f = os.O_WRONLY
	default:
		return 0, sys.EINVAL // O_RDWR|O_WRONLY
	}
	if flag&sys.O_APPEND != 0 {
		f |= os.O_APPEND
	}
	if flag&sys.O_CREAT != 0 {
		f |= os.O_CREATE
	}
	if flag&sys.O_EXCL != 0 {
		f |= os.O_EXCL
	}
	if flag&sys.O_SYNC != 0 {
		f |= os.O_SYNC
	}
	if flag&sys.O_TRUNC != 0 {
		f |= os.O_TRUNC
	}
	return f | platformFlags(flag), 0
}
