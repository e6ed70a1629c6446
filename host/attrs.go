package host

import (
	"context"
	"encoding/binary"
	"io/fs"

	"github.com/spindle-hq/spindle/host/internal/rootfs"
	"github.com/tetratelabs/wazero/api"
)

// path_attrs and path_regrant (docs/abi.md, "Modes and owners"): what
// WASI preview 1 cannot say of a file in a mount, its permission bits and
// its owner, and the one change a guest may make to them: give an
// existing entry what the mount grants the entries the guest makes
// (Mount.Made), and nothing else.

// attrsSize is the size of path_attrs's result: mode, uid, gid, each a
// little-endian u32.
const attrsSize = 12

// regrantBits are the bits path_regrant's what may hold.
const regrantBits = rootfs.RegrantMode | rootfs.RegrantOwner

// attrsPath finds the entry at the guest's path (p, n bytes, relative to
// the directory fd) in its mount, checking that fd holds right. It returns
// the mount's FS (nil for a virtual directory: / or /dev) and the path in
// it, or a WASI errno.
func (st *callState) attrsPath(mod api.Module, fd, p, n uint32, right uint64) (*rootfs.FS, string, uint64) {
	if st.fds == nil {
		return nil, "", wasiEBADF
	}
	e := st.fds.get(fd)
	switch {
	case e == nil || e.fsys == nil:
		return nil, "", wasiEBADF
	case e.dropped&right != 0:
		return nil, "", wasiENOTCAPABLE
	}
	name, errno := e.resolve(mod, p, n)
	if errno != 0 {
		return nil, "", errno
	}
	fsys, _ := e.fsys.(*rootfs.FS)
	if fsys == nil {
		// A virtual directory: what is there is no host file.
		if _, serr := e.fsys.Lstat(name); serr != 0 {
			return nil, "", errnoOf(serr)
		}
	}
	return fsys, name, 0
}

// abiPathAttrs is path_attrs(fd, path_ptr, path_len, res_ptr) -> i32.
func abiPathAttrs(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	fd, p, n, res := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3])
	out, ok := mod.Memory().Read(res, attrsSize)
	if !ok {
		return codeMemory
	}
	if _, ok := mod.Memory().Read(p, n); !ok {
		return codeMemory
	}
	fsys, name, errno := st.attrsPath(mod, fd, p, n, rightPathFilestatGet)
	if errno != 0 {
		return int32(errno)
	}
	if fsys == nil {
		return wasiENOTSUP
	}
	a, serr := fsys.Attrs(name)
	if serr != 0 {
		return int32(errnoOf(serr))
	}
	putU32(out[0:], uint32(a.Mode.Perm())|unixModeBits(a))
	putU32(out[4:], uint32(a.UID))
	putU32(out[8:], uint32(a.GID))
	return codeOK
}

// abiPathRegrant is path_regrant(fd, what, path_ptr, path_len, res_ptr) -> i32.
func abiPathRegrant(_ context.Context, st *callState, mod api.Module, stack []uint64) int32 {
	fd, what, p, n, res := api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2]), api.DecodeU32(stack[3]), api.DecodeU32(stack[4])
	out, ok := mod.Memory().Read(res, 4)
	if !ok {
		return codeMemory
	}
	if _, ok := mod.Memory().Read(p, n); !ok {
		return codeMemory
	}
	if what == 0 || what&^regrantBits != 0 {
		return codeInvalid
	}
	fsys, name, errno := st.attrsPath(mod, fd, p, n, rightPathFilestatSetTimes)
	if errno != 0 {
		return int32(errno)
	}
	if fsys == nil {
		return codeDenied // nothing is granted in a virtual directory
	}
	changed, granted, serr := fsys.Regrant(name, int(what))
	if !granted {
		return codeDenied
	}
	putU32(out, uint32(changed))
	if serr != 0 {
		return int32(errnoOf(serr))
	}
	return codeOK
}

// unixModeBits are a's setuid, setgid and sticky bits as st_mode has them.
func unixModeBits(a rootfs.Attrs) uint32 {
	var m uint32
	if a.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if a.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if a.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func putU32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
