//go:build wasip1

// Command stat is the battery behind spindle stat: a reactor whose one
// task, "stat", takes an inspect.StatRequest (paths as the guest sees
// them, each below its parent directory, which the caller mounts
// read-only) and returns an inspect.StatResult: per path whether it
// exists, its type, size, mtime, a symlink's target, the sha256 of a
// regular file up to the request's hash limit, and the first bytes asked
// for. A path that is not there is exists=false, not an error. WASI
// preview 1 does not carry a file's permission bits or owner: they come
// from the host's path_attrs (guest.Lattrs), which reads them and changes
// nothing.
package main

import (
	"io/fs"

	guest "github.com/spindle-hq/spindle/guest-sdk"
	"github.com/spindle-hq/spindle/tools/batteries/inspect"
)

func init() {
	guest.Register("stat", func(_ guest.Ctx, in inspect.StatRequest) (inspect.StatResult, error) {
		return inspect.Stat(in, lattrs)
	})
}

func lattrs(name string) (fs.FileMode, int, int, error) {
	a, err := guest.Lattrs(name)
	return a.Mode, a.UID, a.GID, err
}

func main() {}
