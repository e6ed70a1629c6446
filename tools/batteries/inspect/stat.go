package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// The stat battery's bounds: MaxHead is the most of a file's head a
// request may ask for; MaxPaths the most paths in one request.
// DefaultHashLimit is the size above which a file is not hashed unless the
// request raises it (spindle stat --hash-limit).
const (
	MaxHead          = 64 << 10
	MaxPaths         = 256
	DefaultHashLimit = 64 << 20
)

// StatRequest is the stat battery's input: each path as the guest sees it
// (its parent directory mounted read-only) and as it is named on the
// target.
type StatRequest struct {
	Paths []StatPath `msgpack:"paths"`
	// HashLimit: regular files larger than this are not hashed (0:
	// DefaultHashLimit; negative: none is).
	HashLimit int64 `msgpack:"hash_limit"`
	// Head is how many bytes of each regular file to return, at most
	// MaxHead.
	Head int `msgpack:"head"`
}

// StatPath is one path of a StatRequest.
type StatPath struct {
	Guest string `msgpack:"guest"` // where the guest finds it
	Path  string `msgpack:"path"`  // its name on the target, for the result
}

// StatResult is the stat battery's output, one FileStat per path, in the
// order asked.
type StatResult struct {
	Files []FileStat `msgpack:"files" json:"files"`
}

// FileStat is what stat says of one path, not following a symlink at the
// path itself. A path that is not there has Exists false and no Error.
//
// WASI preview 1's filestat carries the file type, size, times, device and
// inode only: the mode's permission bits and the owner's uid and gid come
// from the host's path_attrs (guest.Lattrs), when Stat is given it.
type FileStat struct {
	Path   string `msgpack:"path" json:"path"`
	Exists bool   `msgpack:"exists" json:"exists"`
	// Type is "file", "dir", "symlink", "char_device", "block_device",
	// "socket", "fifo" or "unknown".
	Type  string `msgpack:"type,omitempty" json:"type,omitempty"`
	Size  int64  `msgpack:"size" json:"size"`
	MTime string `msgpack:"mtime,omitempty" json:"mtime,omitempty"` // RFC 3339, UTC
	// Mode is the permission bits, with setuid (04000), setgid (02000)
	// and sticky (01000), in octal with a leading 0 ("0644"); UID and GID
	// the owner's ids. Absent when they could not be learnt.
	Mode       string `msgpack:"mode,omitempty" json:"mode,omitempty"`
	UID        *int   `msgpack:"uid,omitempty" json:"uid,omitempty"`
	GID        *int   `msgpack:"gid,omitempty" json:"gid,omitempty"`
	LinkTarget string `msgpack:"link_target,omitempty" json:"link_target,omitempty"`
	// SHA256 is the hex digest of a regular file's content, unless
	// HashSkipped says why not.
	SHA256      string `msgpack:"sha256,omitempty" json:"sha256,omitempty"`
	HashSkipped string `msgpack:"hash_skipped,omitempty" json:"hash_skipped,omitempty"`
	// Head is the first bytes asked for (StatRequest.Head) of a regular
	// file.
	Head string `msgpack:"head,omitempty" json:"head,omitempty"`
	// Error is why the path could not be looked at (permission denied, a
	// parent that could not be mounted); the other fields are then empty.
	Error string `msgpack:"error,omitempty" json:"error,omitempty"`
}

// Lattrs returns the permission bits (with fs.ModeSetuid, fs.ModeSetgid
// and fs.ModeSticky) and the owner of name, not following a symlink
// there: guest.Lattrs in the battery.
type Lattrs func(name string) (mode fs.FileMode, uid, gid int, err error)

// Stat looks at each path of req; lattrs, if not nil, gives each its mode
// and owner.
func Stat(req StatRequest, lattrs Lattrs) (StatResult, error) {
	if len(req.Paths) > MaxPaths {
		return StatResult{}, fmt.Errorf("stat: %d paths, at most %d at once", len(req.Paths), MaxPaths)
	}
	if req.Head < 0 || req.Head > MaxHead {
		return StatResult{}, fmt.Errorf("stat: head %d: want 0 to %d bytes", req.Head, MaxHead)
	}
	limit := req.HashLimit
	if limit == 0 {
		limit = DefaultHashLimit
	}
	out := StatResult{Files: make([]FileStat, 0, len(req.Paths))}
	for _, p := range req.Paths {
		out.Files = append(out.Files, statOne(p, limit, req.Head, lattrs))
	}
	return out, nil
}

func statOne(p StatPath, hashLimit int64, head int, lattrs Lattrs) FileStat {
	st := FileStat{Path: p.Path}
	fi, err := os.Lstat(p.Guest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st
	case err != nil:
		st.Error = fmt.Sprintf("lstat: %v", unwrapPath(err))
		return st
	}
	st.Exists = true
	st.Size = fi.Size()
	st.MTime = fi.ModTime().UTC().Format(time.RFC3339Nano)
	if lattrs != nil {
		if mode, uid, gid, err := lattrs(p.Guest); err == nil {
			st.Mode, st.UID, st.GID = OctalMode(mode), &uid, &gid
		}
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		st.Type = "file"
	case m.IsDir():
		st.Type = "dir"
	case m&fs.ModeSymlink != 0:
		st.Type = "symlink"
		if t, err := os.Readlink(p.Guest); err == nil {
			st.LinkTarget = t
		} else {
			st.Error = fmt.Sprintf("readlink: %v", unwrapPath(err))
		}
	case m&fs.ModeCharDevice != 0:
		st.Type = "char_device"
	case m&fs.ModeDevice != 0:
		st.Type = "block_device"
	case m&fs.ModeSocket != 0:
		st.Type = "socket"
	case m&fs.ModeNamedPipe != 0:
		st.Type = "fifo"
	default:
		st.Type = "unknown"
	}
	if st.Type != "file" {
		return st
	}
	if hashLimit < 0 || st.Size > hashLimit {
		st.HashSkipped = fmt.Sprintf("larger than the hash limit, %d bytes", max(hashLimit, 0))
		if head == 0 {
			return st
		}
	}
	f, err := os.Open(p.Guest)
	if err != nil {
		st.Error = fmt.Sprintf("open: %v", unwrapPath(err))
		return st
	}
	defer f.Close()
	if head > 0 {
		b := make([]byte, head)
		n, err := io.ReadFull(f, b)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			st.Error = fmt.Sprintf("read: %v", unwrapPath(err))
			return st
		}
		st.Head = string(b[:n])
		if st.HashSkipped != "" {
			return st
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			st.Error = fmt.Sprintf("seek: %v", unwrapPath(err))
			return st
		}
	}
	h := sha256.New()
	// Read at most one byte past the limit: a file that grew since the
	// stat is not hashed past it either.
	n, err := io.Copy(h, io.LimitReader(f, hashLimit+1))
	switch {
	case err != nil:
		st.Error = fmt.Sprintf("read: %v", unwrapPath(err))
	case n > hashLimit:
		st.HashSkipped = fmt.Sprintf("grew past the hash limit, %d bytes, while being read", hashLimit)
	default:
		st.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return st
}

// unwrapPath drops a *fs.PathError's path, which is the guest's mount
// path, not the target's: the result names the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// OctalMode writes the permission bits of m, with setuid, setgid and
// sticky, as chmod takes them: "0644", "04755".
func OctalMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("0%03o", n)
}
