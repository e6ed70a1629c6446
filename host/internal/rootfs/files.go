package rootfs

import "sync/atomic"

// DefaultMaxOpenFiles is the bound of New: the most files an FS made by New
// holds open at once.
const DefaultMaxOpenFiles = 256

// Files bounds the host descriptors held by the files of one or more FSs
// (NewShared): an open past the bound fails with sys.EAGAIN, the nearest
// errno that wazero passes to a guest (it has no EMFILE), until a file is
// closed. The descriptor of each FS's root is not counted.
//
// A Files is safe for concurrent use.
type Files struct {
	max  int64
	open atomic.Int64
}

// NewFiles returns a bound of max open files; max <= 0 means
// DefaultMaxOpenFiles.
func NewFiles(max int) *Files {
	if max <= 0 {
		max = DefaultMaxOpenFiles
	}
	return &Files{max: int64(max)}
}

// Open returns the number of files open under the bound.
func (f *Files) Open() int { return int(f.open.Load()) }

// acquire counts one more open file, or reports false at the bound.
func (f *Files) acquire() bool {
	if f.open.Add(1) > f.max {
		f.open.Add(-1)
		return false
	}
	return true
}

func (f *Files) release() { f.open.Add(-1) }
