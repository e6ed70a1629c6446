// Command gofiles is a Go command for the host tests of what a guest sees
// of files. Each argument is an operation; it prints one line for each,
// "OP -> ok DETAIL" or "OP -> err ERRNO" (with " notexist" when the error
// is fs.ErrNotExist):
//
//	fill:PATH:N        creates PATH and writes N-byte chunks until a write
//	                   fails: "ok WRITTEN" never, "err ERRNO" with the bytes
//	                   written before it in the line "filled PATH WRITTEN"
//	write:PATH:N       opens PATH O_WRONLY|O_CREATE|O_TRUNC, as a shell's
//	                   redirection does, and writes N bytes
//	truncate:PATH:N    os.Truncate
//	read:PATH          reads PATH to its end: "ok BYTES"
//	stat:PATH          "ok TYPE SIZE", TYPE the mode's type bits (WASI has
//	                   no permission bits)
//	open:PATH          opens PATH for reading
//	mkdir:PATH         os.Mkdir
//	mkdirall:PATH      os.MkdirAll
//	ls:PATH            the names in a directory, comma-separated
//	stdin              reads stdin to its end: "ok BYTES SHA256"
//	lattrs:PATH        guest.Lattrs: "ok MODE UID GID", MODE in octal
//	regrant:PATH:WHAT  guest.Regrant with the bits WHAT: "ok CHANGED"
//	                   ("err denied" for guest.ErrDenied)
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	guest "github.com/spindle-hq/spindle/guest-sdk"
)

func main() {
	for _, arg := range os.Args[1:] {
		op, rest, _ := strings.Cut(arg, ":")
		switch op {
		case "fill":
			p, n, _ := strings.Cut(rest, ":")
			written, err := fill(p, atoi(n))
			fmt.Printf("filled %s %d\n", p, written)
			report(arg, "", err)
		case "write":
			p, n, _ := strings.Cut(rest, ":")
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
			if err == nil {
				_, err = f.Write(make([]byte, atoi(n)))
				err = errors.Join(err, f.Close())
			}
			report(arg, "", err)
		case "truncate":
			p, n, _ := strings.Cut(rest, ":")
			report(arg, "", os.Truncate(p, int64(atoi(n))))
		case "read":
			b, err := os.ReadFile(rest)
			report(arg, strconv.Itoa(len(b)), err)
		case "stat":
			fi, err := os.Stat(rest)
			var detail string
			if err == nil {
				detail = fmt.Sprintf("%v %d", fi.Mode().Type(), fi.Size())
			}
			report(arg, detail, err)
		case "open":
			f, err := os.Open(rest)
			if err == nil {
				f.Close()
			}
			report(arg, "", err)
		case "mkdir":
			report(arg, "", os.Mkdir(rest, 0o755))
		case "mkdirall":
			report(arg, "", os.MkdirAll(rest, 0o755))
		case "ls":
			entries, err := os.ReadDir(rest)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			report(arg, strings.Join(names, ","), err)
		case "stdin":
			h := sha256.New()
			n, err := io.Copy(h, os.Stdin)
			report(arg, fmt.Sprintf("%d %s", n, hex.EncodeToString(h.Sum(nil))), err)
		case "lattrs":
			a, err := guest.Lattrs(rest)
			report(arg, fmt.Sprintf("%o %d %d", uint32(a.Mode.Perm())|special(a.Mode), a.UID, a.GID), err)
		case "regrant":
			p, what, _ := strings.Cut(rest, ":")
			changed, err := guest.Regrant(p, guest.Attr(atoi(what)))
			report(arg, strconv.Itoa(int(changed)), err)
		default:
			fmt.Fprintf(os.Stderr, "unknown op %q\n", arg)
			os.Exit(100)
		}
	}
}

// fill creates p and writes n-byte chunks to it until a write fails.
func fill(p string, n int) (int64, error) {
	f, err := os.Create(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, n)
	var written int64
	for {
		m, err := f.Write(buf)
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad number %q\n", s)
		os.Exit(100)
	}
	return n
}

var errnoNames = map[syscall.Errno]string{
	syscall.EAGAIN: "EAGAIN", syscall.EBADF: "EBADF", syscall.EEXIST: "EEXIST",
	syscall.EINVAL: "EINVAL", syscall.EIO: "EIO", syscall.EISDIR: "EISDIR",
	syscall.ENOENT: "ENOENT", syscall.ENOSPC: "ENOSPC", syscall.ENOTDIR: "ENOTDIR",
	syscall.ENOTSUP: "ENOTSUP", syscall.EPERM: "EPERM", syscall.EROFS: "EROFS",
}

// special is m's setuid, setgid and sticky bits as chmod has them.
func special(m fs.FileMode) uint32 {
	var n uint32
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return n
}

func report(arg, detail string, err error) {
	if err == nil {
		fmt.Printf("%s -> ok %s\n", arg, detail)
		return
	}
	name := err.Error()
	switch {
	case errors.Is(err, guest.ErrDenied):
		name = "denied"
	case errors.Is(err, errors.ErrUnsupported):
		name = "unsupported"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errnoNames[errno] != "" {
		name = errnoNames[errno]
	}
	if errors.Is(err, fs.ErrNotExist) {
		name += " notexist"
	}
	fmt.Printf("%s -> err %s\n", arg, name)
}
