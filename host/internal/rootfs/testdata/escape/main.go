//go:build wasip1

// Command escape is the guest of rootfs's end-to-end test. With a directory
// mounted at /data, it tries to read files outside it and prints one line
// per attempt: "name: ok <content>" or "name: err <error>".
//
// The host prepares, in the mounted directory:
//
//	inner.txt          a file inside
//	ok   -> inner.txt  a symlink that stays inside
//	link -> ../SECRET  a symlink out, next to the mount
//	abs  -> /etc/passwd
//
// and a file SECRET next to the mounted directory.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

func main() {
	attempt("dotdot", read("/data/../SECRET"))
	attempt("link", read("/data/link"))
	attempt("abs", read("/data/abs"))
	attempt("new", func() ([]byte, error) {
		if err := os.Symlink("../SECRET", "/data/new"); err != nil {
			return nil, fmt.Errorf("symlink: %w", err)
		}
		return os.ReadFile("/data/new")
	})
	attempt("up", func() ([]byte, error) {
		if err := os.Symlink("..", "/data/up"); err != nil {
			return nil, fmt.Errorf("symlink: %w", err)
		}
		return os.ReadFile("/data/up/SECRET")
	})
	attempt("rawdotdot", rawOpen("../SECRET"))
	attempt("ok", read("/data/ok"))
}

func read(name string) func() ([]byte, error) {
	return func() ([]byte, error) { return os.ReadFile(name) }
}

func attempt(name string, f func() ([]byte, error)) {
	b, err := f()
	if err != nil {
		fmt.Printf("%s: err %v\n", name, err)
		return
	}
	if len(b) > 64 {
		b = b[:64]
	}
	fmt.Printf("%s: ok %q\n", name, b)
}

// rawOpen calls path_open on the first preopen (fd 3, /data) with the path
// as given: Go's os package would clean "../" away before the host sees it.
func rawOpen(p string) func() ([]byte, error) {
	return func() ([]byte, error) {
		const (
			preopenFD            = 3
			lookupFollowSymlinks = 1
			rightFDRead          = 1 << 1
		)
		b := []byte(p)
		var fd int32
		errno := pathOpen(preopenFD, lookupFollowSymlinks, unsafe.Pointer(&b[0]), uint32(len(b)),
			0, rightFDRead, 0, 0, unsafe.Pointer(&fd))
		if errno != 0 {
			return nil, fmt.Errorf("path_open: errno %d", errno)
		}
		f := os.NewFile(uintptr(fd), p)
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return b, nil
	}
}

//go:wasmimport wasi_snapshot_preview1 path_open
//go:noescape
func pathOpen(fd int32, dirflags uint32, path unsafe.Pointer, pathLen uint32, oflags uint32,
	rightsBase uint64, rightsInheriting uint64, fdflags uint32, newFD unsafe.Pointer) uint32
