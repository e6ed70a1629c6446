package rootfs

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// DefaultDiskBytes is the budget of New: the most bytes the files of an FS
// made by New may write.
const DefaultDiskBytes = 1 << 30

// EntryBytes is what making a file, directory or link costs of a Disk: a
// block of the host's file system, what a directory takes on ext4 and more
// than an empty file's inode and entry. Without it a guest could fill the
// host's inodes, or its disk with directories, within any byte budget.
const EntryBytes = 4096

// Disk is a budget of the bytes that the files of one or more FSs may
// write (NewShared: the host gives all mounts of one call one Disk). It is
// spent, conservatively, by
//
//   - every byte a Write or Pwrite writes, overwrites included;
//   - the hole a write leaves when it starts past the end of the file, and
//     the growth of a Truncate, although the host's file system may store
//     neither;
//   - EntryBytes for each file, directory, symlink or hard link made.
//
// Nothing is given back: removing, shrinking or overwriting a file leaves
// the budget as it was. Only what goes through the FSs sharing the Disk is
// seen: a file that something else (the host, another call sharing the
// directory) shrinks behind an open one can let that one's next write
// leave a hole that is not counted. A write that only partly fits writes what fits (a
// short write, as on a full disk); once nothing fits, writes and creates
// fail. wazero's sys.Errno has no ENOSPC, so they fail with sys.EIO and
// the Disk records that it refused (Refused), for the host to tell the
// guest ENOSPC.
//
// A Disk is safe for concurrent use.
type Disk struct {
	max     int64
	used    atomic.Int64
	refused atomic.Bool
	// truncations counts the truncations through the FSs: until it
	// changes, a file is at least as long as its writes made it (see
	// file.minSize).
	truncations atomic.Uint64
}

// NewDisk returns a budget of max bytes; max <= 0 means DefaultDiskBytes.
func NewDisk(max int64) *Disk {
	if max <= 0 {
		max = DefaultDiskBytes
	}
	return &Disk{max: max}
}

// Used returns the bytes spent so far.
func (d *Disk) Used() int64 { return d.used.Load() }

// Refused reports whether the budget refused a write or a create since the
// last call of Refused, and clears that.
func (d *Disk) Refused() bool { return d.refused.Swap(false) }

// take spends up to n bytes and returns how many it spent: fewer than n
// when the budget holds fewer, 0 once it is spent.
func (d *Disk) take(n int64) int64 {
	for {
		used := d.used.Load()
		got := min(n, d.max-used)
		if got <= 0 {
			return 0
		}
		if d.used.CompareAndSwap(used, used+got) {
			return got
		}
	}
}

// takeAll spends n bytes, or nothing and reports false if fewer are left.
func (d *Disk) takeAll(n int64) bool {
	for {
		used := d.used.Load()
		if n > d.max-used {
			return false
		}
		if d.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// give returns n bytes taken for an operation that did not happen.
func (d *Disk) give(n int64) {
	if n > 0 {
		d.used.Add(-n)
	}
}

// truncated records that a file may have shrunk.
func (d *Disk) truncated() { d.truncations.Add(1) }

// refuse records a refusal and returns the errno the operation fails with.
func (d *Disk) refuse() sys.Errno {
	d.refused.Store(true)
	return sys.EIO
}
