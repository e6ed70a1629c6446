package modules

import (
	"io/fs"
	"syscall"
)

// statKeyOf returns what HashCache compares of fi, an Lstat result.
func statKeyOf(fi fs.FileInfo) (statKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statKey{}, false
	}
	return statKey{
		size:  fi.Size(),
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		dev:   uint64(st.Dev),
		ino:   st.Ino,
	}, true
}
