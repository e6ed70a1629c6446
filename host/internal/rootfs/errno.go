package rootfs

import (
	"errors"
	"os"
	"syscall"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// errEscapeText is the text of os.Root's unexported errPathEscapes, used
// only if New could not capture the value itself.
const errEscapeText = "path escapes from parent"

// errno maps an error from os.Root or os.File to a sys.Errno; see the
// package doc. It returns zero for nil and io.EOF.
func (fsys *FS) errno(err error) sys.Errno {
	if err == nil {
		return 0
	}
	u := underlying(err)
	if u != nil && (u == fsys.escapeErr || u.Error() == errEscapeText) {
		return sys.EPERM
	}
	if u == syscall.ENXIO {
		// A FIFO opened non-blocking for writing with no reader, or a
		// socket: files this FS does not open (see newFile).
		return sys.ENOTSUP
	}
	return sys.UnwrapOSError(err)
}

// underlying returns the error inside the *PathError, *LinkError or
// *SyscallError that package os wraps around what went wrong.
func underlying(err error) error {
	var (
		pe *os.PathError
		le *os.LinkError
		se *os.SyscallError
	)
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	case errors.As(err, &se):
		return se.Err
	}
	return err
}
