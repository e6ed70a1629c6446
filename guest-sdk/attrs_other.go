//go:build !wasip1

package guest

import (
	"io/fs"
	"os"
	"syscall"
)

// Off wasip1 there is no host to ask: Lattrs and Regrant fail with
// errors.ErrUnsupported.

func pathAttrs(int32, string) (FileAttrs, int32)    { return FileAttrs{}, 0 }
func pathRegrant(int32, Attr, string) (Attr, int32) { return 0, 0 }
func preopens() ([]preopenDir, error)               { return nil, errUnsupported }
func getwd() (string, error)                        { return os.Getwd() }
func wasiErrno(rc int32) error                      { return syscall.Errno(rc) }
func errNotExist() error                            { return fs.ErrNotExist }
