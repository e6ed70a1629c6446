//go:build !linux

package rootfs

import (
	"os"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// dirOpenFlags are none: off Linux, opening a FIFO may block.
const dirOpenFlags = 0

// platformFlags returns no extra flags: newFile checks O_DIRECTORY after
// opening, and the sync and non-blocking flags are dropped.
func platformFlags(sys.Oflag) int { return 0 }

// futimens is not implemented off Linux.
func futimens(*os.File, int64, int64) sys.Errno { return sys.ENOSYS }

// datasync falls back to a full Sync.
func datasync(f *os.File) error { return f.Sync() }

// pwriteAppend is not implemented off Linux, where pwrite on an append-mode
// file may not append.
func pwriteAppend(*os.File, []byte, int64) (int, error) { return 0, sys.ENOTSUP }

// lutimens is not implemented off Linux.
func lutimens(*os.File, string, int64, int64) sys.Errno { return sys.ENOSYS }

// ownerOf is not implemented off Linux.
func ownerOf(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
