package rootfs

import (
	"io"
	"os"
	"sync"

	"github.com/tetratelabs/wazero/experimental/sys"
	wazerosys "github.com/tetratelabs/wazero/sys"
)

// file is the sys.File that FS.OpenFile returns: an *os.File opened through
// the root, so it is always a file inside it.
//
// A file is used by one goroutine at a time (wazero serializes the calls of
// a module instance), except that Close may run concurrently with any other
// method.
type file struct {
	// UnimplementedFile makes methods that a later wazero adds to sys.File
	// return ENOSYS instead of breaking the build.
	sys.UnimplementedFile

	fsys *FS
	name string // as opened, relative to the root; SetAppend reopens it

	// Set by newFile and never changed.
	dev      uint64
	ino      wazerosys.Inode
	isDir    bool
	writable bool // opened O_RDWR or O_WRONLY

	// mu is held only to read or swap these fields, never across I/O on f,
	// so that Close does not wait for a read in progress.
	mu     sync.Mutex
	f      *os.File  // guarded by mu; replaced only by SetAppend
	flag   sys.Oflag // guarded by mu
	closed bool      // guarded by mu

	// minSize is a size the file has at least, for as long as the Disk's
	// truncation count is minSizeAt, so that a write at or before it
	// leaves no hole and needs no fstat. Owned by the goroutine using the
	// file.
	minSize   int64
	minSizeAt uint64
}

var _ sys.File = (*file)(nil)

// newFile wraps f, just opened as name with flag. It fails, closing f, if
// f cannot be stat'ed, is neither a regular file nor a directory (ENOTSUP:
// see the package doc, "Files that are not regular"), or O_DIRECTORY was
// asked for and f is not one.
func newFile(fsys *FS, name string, flag sys.Oflag, f *os.File) (sys.File, sys.Errno) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fsys.errno(err)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		f.Close()
		return nil, sys.ENOTSUP
	}
	if flag&sys.O_DIRECTORY != 0 && !fi.IsDir() {
		// Only reached where platformFlags has no O_DIRECTORY.
		f.Close()
		return nil, sys.ENOTDIR
	}
	st := wazerosys.NewStat_t(fi)
	return &file{
		fsys:     fsys,
		name:     name,
		dev:      st.Dev,
		ino:      st.Ino,
		isDir:    fi.IsDir(),
		writable: flag&(sys.O_RDWR|sys.O_WRONLY) != 0,
		f:        f,
		flag:     flag,
	}, 0
}

// current returns the open *os.File, or EBADF once Close has been called.
func (f *file) current() (*os.File, sys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, sys.EBADF
	}
	return f.f, 0
}

// Dev implements sys.File.Dev.
func (f *file) Dev() (uint64, sys.Errno) { return f.dev, 0 }

// Ino implements sys.File.Ino.
func (f *file) Ino() (wazerosys.Inode, sys.Errno) { return f.ino, 0 }

// IsDir implements sys.File.IsDir.
func (f *file) IsDir() (bool, sys.Errno) { return f.isDir, 0 }

// IsAppend implements sys.File.IsAppend.
func (f *file) IsAppend() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flag&sys.O_APPEND != 0
}

// SetAppend implements sys.File.SetAppend. A file open for writing is
// reopened through the root, as os.File cannot change O_APPEND; if the name
// now leads to another file, SetAppend fails with ENOENT.
func (f *file) SetAppend(enable bool) sys.Errno {
	if f.isDir {
		return sys.EISDIR
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return sys.EBADF
	}
	flag := f.flag &^ sys.O_APPEND
	if enable {
		flag |= sys.O_APPEND
	}
	if flag == f.flag {
		return 0
	}
	if f.writable {
		// Opening must not create, truncate or fail on an existing file.
		reopenFlag := flag &^ (sys.O_CREAT | sys.O_EXCL | sys.O_TRUNC)
		if errno := f.reopenLocked(reopenFlag); errno != 0 {
			return errno
		}
	} // else O_APPEND changes nothing for a file that is only read
	f.flag = flag
	return 0
}

// reopenLocked replaces f.f with the same file opened with flag, at the
// same offset.
func (f *file) reopenLocked(flag sys.Oflag) sys.Errno {
	osFlag, errno := toOSFlag(flag)
	if errno != 0 {
		return errno
	}
	offset, err := f.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return f.fsys.errno(err)
	}
	nf, err := f.fsys.root.OpenFile(f.name, osFlag, 0)
	if err != nil {
		return f.fsys.errno(err)
	}
	oldInfo, err1 := f.f.Stat()
	newInfo, err2 := nf.Stat()
	switch {
	case err1 != nil:
		nf.Close()
		return f.fsys.errno(err1)
	case err2 != nil:
		nf.Close()
		return f.fsys.errno(err2)
	case !os.SameFile(oldInfo, newInfo):
		nf.Close()
		return sys.ENOENT
	}
	if _, err := nf.Seek(offset, io.SeekStart); err != nil {
		nf.Close()
		return f.fsys.errno(err)
	}
	f.f.Close()
	f.f = nf
	return 0
}

// Stat implements sys.File.Stat.
func (f *file) Stat() (wazerosys.Stat_t, sys.Errno) {
	osf, errno := f.current()
	if errno != 0 {
		return wazerosys.Stat_t{}, errno
	}
	fi, err := osf.Stat()
	if err != nil {
		return wazerosys.Stat_t{}, f.fsys.errno(err)
	}
	return wazerosys.NewStat_t(fi), 0
}

// Read implements sys.File.Read.
func (f *file) Read(buf []byte) (int, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return 0, errno
	case f.isDir:
		return 0, sys.EISDIR
	case len(buf) == 0:
		return 0, 0
	}
	n, err := osf.Read(buf)
	return n, f.fsys.errno(err)
}

// Pread implements sys.File.Pread.
func (f *file) Pread(buf []byte, off int64) (int, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return 0, errno
	case f.isDir:
		return 0, sys.EISDIR
	case off < 0:
		return 0, sys.EINVAL
	case len(buf) == 0:
		return 0, 0
	}
	n, err := osf.ReadAt(buf, off)
	return n, f.fsys.errno(err)
}

// seekOffset is int64 under another name. go vet's stdmethods check wants
// every Seek(int64, int) to return error, as io.Seeker does, but sys.File's
// returns sys.Errno; the check does not look through the alias.
type seekOffset = int64

// Seek implements sys.File.Seek. A directory can only be rewound, with
// offset 0 from io.SeekStart.
func (f *file) Seek(offset seekOffset, whence int) (int64, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return 0, errno
	case whence < io.SeekStart || whence > io.SeekEnd:
		return 0, sys.EINVAL
	case f.isDir && (offset != 0 || whence != io.SeekStart):
		return 0, sys.EISDIR
	}
	// On a directory, os.File.Seek also drops what Readdir had buffered.
	n, err := osf.Seek(offset, whence)
	return n, f.fsys.errno(err)
}

// Readdir implements sys.File.Readdir. Entries are not followed: a symlink
// is reported as one, whatever it points at.
func (f *file) Readdir(n int) ([]sys.Dirent, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return nil, errno
	case !f.isDir:
		return nil, sys.EBADF
	}
	// os.File.Readdir lstat's each entry with fstatat on this directory's
	// descriptor, so it too stays inside the root.
	infos, err := osf.Readdir(n)
	if errno := f.fsys.errno(err); errno != 0 { // io.EOF is not an error here
		return nil, errno
	}
	dirents := make([]sys.Dirent, 0, len(infos))
	for _, fi := range infos {
		dirents = append(dirents, sys.Dirent{
			Name: fi.Name(),
			Ino:  wazerosys.NewStat_t(fi).Ino,
			Type: fi.Mode().Type(),
		})
	}
	return dirents, 0
}

// Write implements sys.File.Write. It writes what the Disk budget holds
// of buf, and fails once the budget is spent (see Disk).
func (f *file) Write(buf []byte) (int, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return 0, errno
	case f.isDir:
		return 0, sys.EISDIR
	case len(buf) == 0:
		return 0, 0
	case !f.writable:
		return 0, sys.EBADF
	}
	off := int64(-1) // an append
	if !f.IsAppend() {
		var err error
		if off, err = osf.Seek(0, io.SeekCurrent); err != nil {
			return 0, f.fsys.errno(err)
		}
	}
	return f.charged(osf, buf, off, func(p []byte) (int, error) { return osf.Write(p) })
}

// charged writes buf at off (-1: at the end) with write, once the Disk
// budget has been spent for it: the bytes, and the hole left between the
// end of the file and off. It writes only the part of buf that fits.
func (f *file) charged(osf *os.File, buf []byte, off int64, write func([]byte) (int, error)) (int, sys.Errno) {
	disk := f.fsys.disk
	var hole int64
	if off > 0 && (off > f.minSize || disk.truncations.Load() != f.minSizeAt) {
		at := disk.truncations.Load()
		fi, err := osf.Stat()
		if err != nil {
			return 0, f.fsys.errno(err)
		}
		f.minSize, f.minSizeAt = fi.Size(), at
		hole = max(0, off-fi.Size())
	}
	got := disk.take(hole + int64(len(buf)))
	if got <= hole {
		disk.give(got)
		return 0, disk.refuse()
	}
	fit := got - hole
	n, err := write(buf[:fit])
	if n == 0 {
		disk.give(got) // nothing written, no hole made
		return 0, f.fsys.errno(err)
	}
	disk.give(fit - int64(n))
	if off >= 0 {
		f.minSize = max(f.minSize, off+int64(n))
	}
	return n, f.fsys.errno(err)
}

// Pwrite implements sys.File.Pwrite, within the Disk budget as Write is.
// On a file in append mode it does what pwrite(2) does on Linux: it
// appends, whatever off, and leaves the file offset alone (os.File refuses
// WriteAt there; off Linux it fails with ENOTSUP).
func (f *file) Pwrite(buf []byte, off int64) (int, sys.Errno) {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return 0, errno
	case f.isDir:
		return 0, sys.EISDIR
	case off < 0:
		return 0, sys.EINVAL
	case len(buf) == 0:
		return 0, 0
	case !f.writable:
		return 0, sys.EBADF
	case f.IsAppend():
		// An append: at the end, so no hole to charge.
		return f.charged(osf, buf, -1, func(p []byte) (int, error) { return pwriteAppend(osf, p, off) })
	}
	return f.charged(osf, buf, off, func(p []byte) (int, error) { return osf.WriteAt(p, off) })
}

// Truncate implements sys.File.Truncate. Growing the file spends its
// growth of the Disk budget, all of it or nothing.
func (f *file) Truncate(size int64) sys.Errno {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return errno
	case f.fsys.readOnly:
		return sys.EROFS
	case f.isDir:
		return sys.EISDIR
	case size < 0:
		return sys.EINVAL
	case !f.writable:
		return sys.EBADF
	}
	fi, err := osf.Stat()
	if err != nil {
		return f.fsys.errno(err)
	}
	growth := size - fi.Size()
	if growth > 0 && !f.fsys.disk.takeAll(growth) {
		return f.fsys.disk.refuse()
	}
	err = osf.Truncate(size)
	f.fsys.disk.truncated()
	if err != nil {
		f.fsys.disk.give(growth)
		return f.fsys.errno(err)
	}
	return 0
}

// Sync implements sys.File.Sync.
func (f *file) Sync() sys.Errno {
	osf, errno := f.current()
	if errno != 0 {
		return errno
	}
	return f.fsys.errno(osf.Sync())
}

// Datasync implements sys.File.Datasync.
func (f *file) Datasync() sys.Errno {
	osf, errno := f.current()
	if errno != 0 {
		return errno
	}
	return f.fsys.errno(datasync(osf))
}

// Utimens implements sys.File.Utimens.
func (f *file) Utimens(atim, mtim int64) sys.Errno {
	osf, errno := f.current()
	switch {
	case errno != 0:
		return errno
	case f.fsys.readOnly:
		return sys.EROFS
	}
	return futimens(osf, atim, mtim)
}

// Close implements sys.File.Close. It is idempotent and may run
// concurrently with the other methods, which then fail with EBADF.
func (f *file) Close() sys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0
	}
	f.closed = true
	f.fsys.files.release()
	return f.fsys.errno(f.f.Close())
}
