package rootfs

import (
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero/experimental/sys"
	wazerosys "github.com/tetratelabs/wazero/sys"
)

// Virtual is a read-only directory that holds no host file: the empty
// directory the host mounts at "/" so that a path outside every mount is
// not there (ENOENT), or /dev, which holds the one file null. Nothing in it
// can be made, removed or changed (EROFS; EEXIST for what is there), except
// that null can be opened for writing: writes to it succeed and are
// discarded, reads of it give EOF, as /dev/null does. Nothing it does
// spends a Disk budget.
//
// Its open files count against a Files bound, as an FS's do: they hold no
// host descriptor, but wazero keeps an entry for each.
//
// A Virtual is safe for concurrent use; wazero never closes one, and it
// needs no closing.
type Virtual struct {
	sys.UnimplementedFS

	files  *Files
	dirIno wazerosys.Inode
	null   bool // holds null
}

var _ sys.FS = (*Virtual)(nil)

// The inodes of the virtual files, on device virtualDev. Each directory
// has its own, so that a guest's os.SameFile tells them apart.
const (
	virtualDev = 0
	rootIno    = 1
	devIno     = 2
	nullIno    = 3
	nullName   = "null"
	nullMode   = fs.ModeDevice | fs.ModeCharDevice | 0o666
	dirMode    = fs.ModeDir | 0o555
)

// NewEmpty returns an empty Virtual, to mount at "/". files bounds its
// open files (nil: DefaultMaxOpenFiles of its own).
func NewEmpty(files *Files) *Virtual {
	if files == nil {
		files = NewFiles(DefaultMaxOpenFiles)
	}
	return &Virtual{files: files, dirIno: rootIno}
}

// NewDev returns a Virtual holding null, to mount at /dev. files bounds its
// open files (nil: DefaultMaxOpenFiles of its own).
func NewDev(files *Files) *Virtual {
	v := NewEmpty(files)
	v.dirIno, v.null = devIno, true
	return v
}

// node is what a path names in a Virtual.
type node int

const (
	nodeDir node = iota + 1
	nodeNull
)

// lookup returns what p names, or the errno of a path that names nothing:
// ENOENT, or ENOTDIR for a path through null. inDir reports that a missing
// p would be an entry of the directory itself, so that an operation making
// it fails with EROFS rather than ENOENT.
func (v *Virtual) lookup(p string) (n node, inDir bool, errno sys.Errno) {
	name := rel(p)
	trailing := name != "." && strings.HasSuffix(name, "/")
	// Without symlinks, the lexical clean is the walk; ".." stops at the
	// directory itself, as in the WASI path rules the guest's libc keeps.
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	switch {
	case name == "":
		return nodeDir, false, 0
	case v.null && name == nullName && trailing:
		return 0, false, sys.ENOTDIR
	case v.null && name == nullName:
		return nodeNull, false, 0
	case v.null && strings.HasPrefix(name, nullName+"/"):
		return 0, false, sys.ENOTDIR
	}
	return 0, !strings.Contains(name, "/"), sys.ENOENT
}

// stat returns the Stat_t of n.
func (v *Virtual) stat(n node) wazerosys.Stat_t {
	if n == nodeNull {
		return wazerosys.Stat_t{Dev: virtualDev, Ino: nullIno, Mode: nullMode, Nlink: 1}
	}
	return wazerosys.Stat_t{Dev: virtualDev, Ino: v.dirIno, Mode: dirMode, Nlink: 2}
}

// OpenFile implements sys.FS.OpenFile.
func (v *Virtual) OpenFile(p string, flag sys.Oflag, _ fs.FileMode) (sys.File, sys.Errno) {
	access := flag & (sys.O_RDONLY | sys.O_RDWR | sys.O_WRONLY)
	if access == sys.O_RDWR|sys.O_WRONLY {
		return nil, sys.EINVAL
	}
	n, inDir, errno := v.lookup(p)
	switch {
	case errno == sys.ENOENT && inDir && flag&sys.O_CREAT != 0:
		return nil, sys.EROFS
	case errno != 0:
		return nil, errno
	case flag&(sys.O_CREAT|sys.O_EXCL) == sys.O_CREAT|sys.O_EXCL:
		return nil, sys.EEXIST
	case n == nodeDir && (access != sys.O_RDONLY || flag&sys.O_TRUNC != 0):
		return nil, sys.EISDIR
	case n == nodeNull && flag&sys.O_DIRECTORY != 0:
		return nil, sys.ENOTDIR
	}
	if !v.files.acquire() {
		return nil, sys.EAGAIN
	}
	if n == nodeDir {
		return &virtualDir{v: v}, 0
	}
	// O_TRUNC is ignored, as /dev/null ignores it.
	return &nullFile{
		files:    v.files,
		readable: access != sys.O_WRONLY,
		writable: access != sys.O_RDONLY,
		append:   flag&sys.O_APPEND != 0,
	}, 0
}

// Stat implements sys.FS.Stat.
func (v *Virtual) Stat(p string) (wazerosys.Stat_t, sys.Errno) {
	n, _, errno := v.lookup(p)
	if errno != 0 {
		return wazerosys.Stat_t{}, errno
	}
	return v.stat(n), 0
}

// Lstat implements sys.FS.Lstat: there are no symlinks.
func (v *Virtual) Lstat(p string) (wazerosys.Stat_t, sys.Errno) { return v.Stat(p) }

// changeErrno is the errno of an operation that would change what p names.
func (v *Virtual) changeErrno(p string) sys.Errno {
	if _, _, errno := v.lookup(p); errno != 0 {
		return errno
	}
	return sys.EROFS
}

// makeErrno is the errno of an operation that would make p.
func (v *Virtual) makeErrno(p string) sys.Errno {
	_, inDir, errno := v.lookup(p)
	switch {
	case errno == 0:
		return sys.EEXIST
	case errno == sys.ENOENT && inDir:
		return sys.EROFS
	}
	return errno
}

// Mkdir implements sys.FS.Mkdir.
func (v *Virtual) Mkdir(p string, _ fs.FileMode) sys.Errno { return v.makeErrno(p) }

// Chmod implements sys.FS.Chmod.
func (v *Virtual) Chmod(p string, _ fs.FileMode) sys.Errno { return v.changeErrno(p) }

// Rename implements sys.FS.Rename.
func (v *Virtual) Rename(from, to string) sys.Errno {
	if errno := v.changeErrno(from); errno != sys.EROFS {
		return errno
	}
	if _, inDir, errno := v.lookup(to); errno != 0 && !inDir {
		return errno
	}
	return sys.EROFS
}

// Rmdir implements sys.FS.Rmdir.
func (v *Virtual) Rmdir(p string) sys.Errno {
	if n, _, errno := v.lookup(p); errno == 0 && n != nodeDir {
		return sys.ENOTDIR
	}
	return v.changeErrno(p)
}

// Unlink implements sys.FS.Unlink.
func (v *Virtual) Unlink(p string) sys.Errno {
	if n, _, errno := v.lookup(p); errno == 0 && n == nodeDir {
		return sys.EISDIR
	}
	return v.changeErrno(p)
}

// Link implements sys.FS.Link.
func (v *Virtual) Link(oldPath, newPath string) sys.Errno {
	if _, _, errno := v.lookup(oldPath); errno != 0 {
		return errno
	}
	return v.makeErrno(newPath)
}

// Symlink implements sys.FS.Symlink.
func (v *Virtual) Symlink(_, linkName string) sys.Errno { return v.makeErrno(linkName) }

// Readlink implements sys.FS.Readlink: nothing is a symlink.
func (v *Virtual) Readlink(p string) (string, sys.Errno) {
	if _, _, errno := v.lookup(p); errno != 0 {
		return "", errno
	}
	return "", sys.EINVAL
}

// Utimens implements sys.FS.Utimens.
func (v *Virtual) Utimens(p string, _, _ int64) sys.Errno { return v.changeErrno(p) }

// virtualDir is an open Virtual directory. Its Readdir lists null, if the
// Virtual holds it, and nothing else.
type virtualDir struct {
	sys.UnimplementedFile

	v      *Virtual
	mu     sync.Mutex // guards the fields below; never held across a call out
	read   bool       // Readdir has listed the entries
	closed bool
}

var _ sys.File = (*virtualDir)(nil)

func (d *virtualDir) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// check returns EBADF once the directory is closed, else errno.
func (d *virtualDir) check(errno sys.Errno) sys.Errno {
	if d.isClosed() {
		return sys.EBADF
	}
	return errno
}

// Dev implements sys.File.Dev.
func (d *virtualDir) Dev() (uint64, sys.Errno) { return virtualDev, 0 }

// Ino implements sys.File.Ino.
func (d *virtualDir) Ino() (wazerosys.Inode, sys.Errno) { return d.v.dirIno, 0 }

// IsDir implements sys.File.IsDir.
func (d *virtualDir) IsDir() (bool, sys.Errno) { return true, 0 }

// IsAppend implements sys.File.IsAppend.
func (d *virtualDir) IsAppend() bool { return false }

// SetAppend implements sys.File.SetAppend.
func (d *virtualDir) SetAppend(bool) sys.Errno { return d.check(sys.EISDIR) }

// Stat implements sys.File.Stat.
func (d *virtualDir) Stat() (wazerosys.Stat_t, sys.Errno) {
	if d.isClosed() {
		return wazerosys.Stat_t{}, sys.EBADF
	}
	return d.v.stat(nodeDir), 0
}

// Read implements sys.File.Read.
func (d *virtualDir) Read([]byte) (int, sys.Errno) { return 0, d.check(sys.EISDIR) }

// Pread implements sys.File.Pread.
func (d *virtualDir) Pread([]byte, int64) (int, sys.Errno) { return 0, d.check(sys.EISDIR) }

// Seek implements sys.File.Seek: a directory can only be rewound, with
// offset 0 from io.SeekStart.
func (d *virtualDir) Seek(offset seekOffset, whence int) (int64, sys.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return 0, sys.EBADF
	case whence < io.SeekStart || whence > io.SeekEnd:
		return 0, sys.EINVAL
	case offset != 0 || whence != io.SeekStart:
		return 0, sys.EISDIR
	}
	d.read = false
	return 0, 0
}

// Readdir implements sys.File.Readdir.
func (d *virtualDir) Readdir(int) ([]sys.Dirent, sys.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, sys.EBADF
	}
	if d.read || !d.v.null {
		return nil, 0
	}
	d.read = true
	return []sys.Dirent{{Name: nullName, Ino: nullIno, Type: nullMode.Type()}}, 0
}

// Write implements sys.File.Write.
func (d *virtualDir) Write([]byte) (int, sys.Errno) { return 0, d.check(sys.EISDIR) }

// Pwrite implements sys.File.Pwrite.
func (d *virtualDir) Pwrite([]byte, int64) (int, sys.Errno) { return 0, d.check(sys.EISDIR) }

// Truncate implements sys.File.Truncate.
func (d *virtualDir) Truncate(int64) sys.Errno { return d.check(sys.EROFS) }

// Sync implements sys.File.Sync.
func (d *virtualDir) Sync() sys.Errno { return d.check(0) }

// Datasync implements sys.File.Datasync.
func (d *virtualDir) Datasync() sys.Errno { return d.check(0) }

// Utimens implements sys.File.Utimens.
func (d *virtualDir) Utimens(int64, int64) sys.Errno { return d.check(sys.EROFS) }

// Close implements sys.File.Close. It is idempotent.
func (d *virtualDir) Close() sys.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.v.files.release()
	}
	return 0
}

// nullFile is an open /dev/null.
type nullFile struct {
	sys.UnimplementedFile

	files              *Files
	readable, writable bool // set at open, never changed

	mu     sync.Mutex // guards the fields below
	append bool
	closed bool
}

var _ sys.File = (*nullFile)(nil)

// check returns EBADF once the file is closed, or when it was not opened
// for what ok says; else errno.
func (f *nullFile) check(ok bool, errno sys.Errno) sys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !ok {
		return sys.EBADF
	}
	return errno
}

// Dev implements sys.File.Dev.
func (f *nullFile) Dev() (uint64, sys.Errno) { return virtualDev, 0 }

// Ino implements sys.File.Ino.
func (f *nullFile) Ino() (wazerosys.Inode, sys.Errno) { return nullIno, 0 }

// IsDir implements sys.File.IsDir.
func (f *nullFile) IsDir() (bool, sys.Errno) { return false, 0 }

// IsAppend implements sys.File.IsAppend.
func (f *nullFile) IsAppend() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.append
}

// SetAppend implements sys.File.SetAppend.
func (f *nullFile) SetAppend(enable bool) sys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return sys.EBADF
	}
	f.append = enable
	return 0
}

// Stat implements sys.File.Stat.
func (f *nullFile) Stat() (wazerosys.Stat_t, sys.Errno) {
	if errno := f.check(true, 0); errno != 0 {
		return wazerosys.Stat_t{}, errno
	}
	return wazerosys.Stat_t{Dev: virtualDev, Ino: nullIno, Mode: nullMode, Nlink: 1}, 0
}

// Read implements sys.File.Read: always at the end.
func (f *nullFile) Read([]byte) (int, sys.Errno) { return 0, f.check(f.readable, 0) }

// Pread implements sys.File.Pread: always at the end.
func (f *nullFile) Pread(_ []byte, off int64) (int, sys.Errno) {
	if off < 0 {
		return 0, sys.EINVAL
	}
	return 0, f.check(f.readable, 0)
}

// Seek implements sys.File.Seek: every offset is 0.
func (f *nullFile) Seek(_ seekOffset, whence int) (int64, sys.Errno) {
	if whence < io.SeekStart || whence > io.SeekEnd {
		return 0, sys.EINVAL
	}
	return 0, f.check(true, 0)
}

// Readdir implements sys.File.Readdir.
func (f *nullFile) Readdir(int) ([]sys.Dirent, sys.Errno) { return nil, sys.EBADF }

// Write implements sys.File.Write: the bytes are discarded.
func (f *nullFile) Write(buf []byte) (int, sys.Errno) {
	if errno := f.check(f.writable, 0); errno != 0 {
		return 0, errno
	}
	return len(buf), 0
}

// Pwrite implements sys.File.Pwrite: the bytes are discarded.
func (f *nullFile) Pwrite(buf []byte, off int64) (int, sys.Errno) {
	if off < 0 {
		return 0, sys.EINVAL
	}
	return f.Write(buf)
}

// Truncate implements sys.File.Truncate: EINVAL, as ftruncate(2) of a
// character device. Opening with O_TRUNC works.
func (f *nullFile) Truncate(int64) sys.Errno { return f.check(f.writable, sys.EINVAL) }

// Sync implements sys.File.Sync.
func (f *nullFile) Sync() sys.Errno { return f.check(true, 0) }

// Datasync implements sys.File.Datasync.
func (f *nullFile) Datasync() sys.Errno { return f.check(true, 0) }

// Utimens implements sys.File.Utimens.
func (f *nullFile) Utimens(int64, int64) sys.Errno { return f.check(true, sys.EROFS) }

// Close implements sys.File.Close. It is idempotent.
func (f *nullFile) Close() sys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.files.release()
	}
	return 0
}
