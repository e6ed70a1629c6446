package rootfs

import (
	"os"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// dirOpenFlags are the flags for opening a directory the FS itself reads:
// neither a FIFO nor a device put in its place can block the open.
const dirOpenFlags = unix.O_NONBLOCK | unix.O_DIRECTORY

// platformFlags returns the open(2) flags for the parts of flag that package
// os has no name for. O_NONBLOCK is always added, so that opening a FIFO
// never waits for its other end (newFile then refuses it); it changes
// nothing for the regular files and directories that are kept. O_NOFOLLOW
// is handled by FS.OpenFile itself.
func platformFlags(flag sys.Oflag) int {
	f := unix.O_NONBLOCK
	if flag&sys.O_DIRECTORY != 0 {
		f |= unix.O_DIRECTORY // also keeps open from blocking on a FIFO
	}
	if flag&sys.O_DSYNC != 0 {
		f |= unix.O_DSYNC
	}
	if flag&sys.O_RSYNC != 0 {
		f |= unix.O_RSYNC
	}
	return f
}

// futimens sets the times of the open file f, keeping those that are
// sys.UTIME_OMIT.
func futimens(f *os.File, atim, mtim int64) sys.Errno {
	times := [2]unix.Timespec{toTimespec(atim), toTimespec(mtim)}
	rc, err := f.SyscallConn()
	if err != nil {
		return sys.UnwrapOSError(err)
	}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		// utimensat with a NULL path acts on fd itself; x/sys/unix has no
		// wrapper that passes NULL.
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0,
			uintptr(unsafe.Pointer(&times)), 0, 0, 0)
	})
	if err != nil {
		return sys.UnwrapOSError(err)
	}
	if errno != 0 {
		return sys.UnwrapOSError(errno)
	}
	return 0
}

func toTimespec(nanos int64) unix.Timespec {
	if nanos == sys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(nanos)
}

// datasync flushes the data of f, not necessarily its metadata.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// pwriteAppend is pwrite(2) on f, which is in append mode: Linux writes at
// the end, whatever off, and leaves the file offset alone.
func pwriteAppend(f *os.File, p []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = unix.Pwrite(int(fd), p, off)
		return werr != unix.EAGAIN
	}); err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	return n, werr
}

// lutimens sets the times of name in the directory dir, not following
// name if it is a symlink; name is one path component.
func lutimens(dir *os.File, name string, atim, mtim int64) sys.Errno {
	times := []unix.Timespec{toTimespec(atim), toTimespec(mtim)}
	rc, err := dir.SyscallConn()
	if err != nil {
		return sys.UnwrapOSError(err)
	}
	var uerr error
	if err := rc.Control(func(fd uintptr) {
		uerr = unix.UtimesNanoAt(int(fd), name, times, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return sys.UnwrapOSError(err)
	}
	if uerr != nil {
		return sys.UnwrapOSError(uerr)
	}
	return 0
}

// ownerOf returns the uid and gid of the file fi describes.
func ownerOf(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
