//go:build wasip1

package guest

import (
	"encoding/binary"
	"io/fs"
	"os"
	"syscall"
	"unsafe"
)

//go:wasmimport spindle path_attrs
func spindlePathAttrs(fd int32, pathPtr unsafe.Pointer, pathLen int32, resPtr unsafe.Pointer) int32

//go:wasmimport spindle path_regrant
func spindlePathRegrant(fd int32, what uint32, pathPtr unsafe.Pointer, pathLen int32, resPtr unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_get
func wasiFdPrestatGet(fd int32, buf unsafe.Pointer) int32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_dir_name
func wasiFdPrestatDirName(fd int32, buf unsafe.Pointer, n int32) int32

// wasiENOTSUP is WASI preview 1's ENOTSUP.
const wasiENOTSUP = 58

func pathAttrs(fd int32, rel string) (FileAttrs, int32) {
	p := []byte(rel)
	var res [12]byte
	rc := spindlePathAttrs(fd, ptr(p), int32(len(p)), unsafe.Pointer(&res[0]))
	if rc != 0 {
		return FileAttrs{}, rc
	}
	m := binary.LittleEndian.Uint32(res[0:])
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return FileAttrs{Mode: mode, UID: int(binary.LittleEndian.Uint32(res[4:])), GID: int(binary.LittleEndian.Uint32(res[8:]))}, 0
}

func pathRegrant(fd int32, what Attr, rel string) (Attr, int32) {
	p := []byte(rel)
	var res [4]byte
	rc := spindlePathRegrant(fd, uint32(what), ptr(p), int32(len(p)), unsafe.Pointer(&res[0]))
	return Attr(binary.LittleEndian.Uint32(res[:])), rc
}

// maxPreopens bounds the descriptors preopens looks at.
const maxPreopens = 1024

// preopens lists the preopened directories, as libc does: from fd 3
// until the first that is not one.
func preopens() ([]preopenDir, error) {
	var out []preopenDir
	for fd := int32(3); fd < 3+maxPreopens; fd++ {
		var pre [8]byte // u8 tag (0: a directory), then the u32 length of its name
		if wasiFdPrestatGet(fd, unsafe.Pointer(&pre[0])) != 0 {
			break
		}
		if pre[0] != 0 {
			continue
		}
		n := binary.LittleEndian.Uint32(pre[4:])
		if n == 0 || n > 4096 {
			continue
		}
		name := make([]byte, n)
		if wasiFdPrestatDirName(fd, ptr(name), int32(n)) != 0 {
			continue
		}
		s := string(name)
		if len(s) > 1 && s[len(s)-1] == '/' {
			s = s[:len(s)-1]
		}
		out = append(out, preopenDir{fd: fd, name: s})
	}
	return out, nil
}

func getwd() (string, error) { return os.Getwd() }

// wasiErrno is a positive return code: a WASI errno, which is what
// syscall.Errno is on wasip1.
func wasiErrno(rc int32) error {
	if rc == wasiENOTSUP {
		return errUnsupported
	}
	return syscall.Errno(rc)
}

func errNotExist() error { return syscall.ENOENT }
