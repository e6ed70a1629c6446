package host

import (
	"github.com/tetratelabs/wazero/experimental/sys"
)

// fdTable is a guest's view of its file descriptors: the numbers the guest
// uses, each mapped to the descriptor wazero's WASI holds for it, with the
// rights and flags WASI preview 1 gives a descriptor and wazero does not
// keep (wasip1.go). wazero numbers its own descriptors and refuses to
// renumber stdio and preopens; the guest's numbers are this table's, so
// fd_renumber moves an entry and wazero never sees it.
//
// An fdTable belongs to one instance and is used by the goroutine running
// it. Its size is bounded by wazero's open descriptors: every entry maps to
// one, and fd_renumber only moves entries onto numbers already in use.
type fdTable struct {
	entries []*fdEntry // by guest number; nil: free
}

// fdEntry is one guest descriptor.
type fdEntry struct {
	host int32 // wazero's descriptor
	// base and inherit are the rights the descriptor was given (path_open
	// asked for them, within its directory's inheriting rights), as
	// fd_fdstat_get reports them, within wazero's rights for its type.
	base, inherit uint64
	// dropped and droppedInherit are the rights the guest gave up with
	// fd_fdstat_set_rights (and those its directory gave up for what it
	// opens), read or write when path_open did not ask for it, and a
	// directory's notDirRights: the
	// functions that need one of these fail with ENOTCAPABLE. Rights
	// never asked for are reported absent but not refused, so that a
	// guest which opens a directory without a right it then uses (Go's
	// os.Root asks for no PATH_FILESTAT_SET_SIZE, then truncates through
	// it) keeps working, as it does under wazero.
	dropped, droppedInherit uint64
	// sync is the O_SYNC family of fdflags path_open asked for: wazero
	// opens the file with them but reports only APPEND and NONBLOCK.
	sync uint16
	// fsys and name locate a directory for the few path functions this
	// layer implements itself (readlink into a short buffer, times of a
	// symlink): the mount it is in, and its path there as wazero resolves
	// it ("" for the mount's root). nil fsys for stdio.
	fsys sys.FS
	name string
	// preopen is the guest path of a preopened directory, else "".
	preopen string
}

// preopen is a directory mounted for the guest, in the order the host
// passed them to wazero, which numbers them from 3 in that order.
type preopen struct {
	guest string
	fsys  sys.FS
}

// newFDTable returns the table of a new instance: stdio as 0, 1 and 2,
// then the preopens, numbered as wazero numbers them.
func newFDTable(preopens []preopen) *fdTable {
	t := &fdTable{entries: make([]*fdEntry, 3, 3+len(preopens))}
	for i := range 3 {
		t.entries[i] = &fdEntry{host: int32(i), base: stdioRights}
	}
	for i, p := range preopens {
		t.entries = append(t.entries, &fdEntry{
			host: int32(3 + i), base: dirRights, inherit: dirRights | fileRights,
			dropped: notDirRights, fsys: p.fsys, preopen: p.guest,
		})
	}
	return t
}

// get returns the entry of guest descriptor fd, or nil.
func (t *fdTable) get(fd uint32) *fdEntry {
	if uint64(fd) >= uint64(len(t.entries)) {
		return nil
	}
	return t.entries[fd]
}

// add gives e the lowest free guest number, as POSIX open does.
func (t *fdTable) add(e *fdEntry) uint32 {
	for i, old := range t.entries {
		if old == nil {
			t.entries[i] = e
			return uint32(i)
		}
	}
	t.entries = append(t.entries, e)
	return uint32(len(t.entries) - 1)
}

// remove frees guest number fd.
func (t *fdTable) remove(fd uint32) {
	if uint64(fd) < uint64(len(t.entries)) {
		t.entries[fd] = nil
	}
	for n := len(t.entries); n > 0 && t.entries[n-1] == nil; n-- {
		t.entries = t.entries[:n-1]
	}
}

// The rights of WASI preview 1 (rights, a bit each) that this layer reads.
const (
	rightFdDatasync           = 1 << 0
	rightFdRead               = 1 << 1
	rightFdSeek               = 1 << 2
	rightFdFdstatSetFlags     = 1 << 3
	rightFdSync               = 1 << 4
	rightFdTell               = 1 << 5
	rightFdWrite              = 1 << 6
	rightFdAdvise             = 1 << 7
	rightFdAllocate           = 1 << 8
	rightPathCreateDirectory  = 1 << 9
	rightPathCreateFile       = 1 << 10
	rightPathLinkSource       = 1 << 11
	rightPathLinkTarget       = 1 << 12
	rightPathOpen             = 1 << 13
	rightFdReaddir            = 1 << 14
	rightPathReadlink         = 1 << 15
	rightPathRenameSource     = 1 << 16
	rightPathRenameTarget     = 1 << 17
	rightPathFilestatGet      = 1 << 18
	rightPathFilestatSetSize  = 1 << 19
	rightPathFilestatSetTimes = 1 << 20
	rightFdFilestatGet        = 1 << 21
	rightFdFilestatSetSize    = 1 << 22
	rightFdFilestatSetTimes   = 1 << 23
	rightPathSymlink          = 1 << 24
	rightPathRemoveDirectory  = 1 << 25
	rightPathUnlinkFile       = 1 << 26
	rightPollFdReadwrite      = 1 << 27

	// fileRights are those of a regular file, dirRights of a directory
	// (wazero reports the same), stdioRights of stdio (no seeking).
	fileRights = rightFdDatasync | rightFdRead | rightFdSeek | rightFdFdstatSetFlags |
		rightFdSync | rightFdTell | rightFdWrite | rightFdAdvise | rightFdAllocate |
		rightFdFilestatGet | rightFdFilestatSetSize | rightFdFilestatSetTimes | rightPollFdReadwrite
	dirRights = rightFdDatasync | rightFdFdstatSetFlags | rightFdSync |
		rightPathCreateDirectory | rightPathCreateFile | rightPathLinkSource | rightPathLinkTarget |
		rightPathOpen | rightFdReaddir | rightPathReadlink | rightPathRenameSource |
		rightPathRenameTarget | rightPathFilestatGet | rightPathFilestatSetSize |
		rightPathFilestatSetTimes | rightFdFilestatGet | rightFdFilestatSetTimes |
		rightPathSymlink | rightPathRemoveDirectory | rightPathUnlinkFile
	stdioRights = fileRights &^ (rightFdSeek | rightFdTell)
	// notDirRights are refused on a directory (a preopen, or opened with
	// O_DIRECTORY): reading, writing, seeking, allocating, truncating.
	notDirRights = ^uint64(dirRights)
)
