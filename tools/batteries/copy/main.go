//go:build wasip1

// Command copy is the battery behind spindle copy: a WASI command that
// makes a destination hold a tree it sees read-only, writing only what
// differs, each file through a temporary file in its own directory that
// is renamed over the old one.
//
//	copy --show DIR < PLAN
//
// It sees the source at /src (a tree the context made from the master's
// store, read-only), the destination at /dest when it is a directory
// (the plan's dest_base is then ""), else its parent (read-write), and,
// when the plan keeps exec bits, the same directory at /xdest, where the
// caller granted the files it makes mode 0755 (/dest gives 0644, or the
// caller's --mode). It cannot choose a mode or an owner (WASI preview 1
// has neither): the mounts' grants give them to what it makes, and
// guest.Regrant (docs/abi.md, path_regrant) gives them to what it finds
// there, when the plan asks.
//
// PLAN (stdin, JSON) names what to copy: {"kind": "file" | "dir" |
// "contents", "name", "dest_base", "dest_dir", "regrant", "entries":
// [{"path", "type": "f" | "d" | "l", "size", "exec", "target"}]}, entries
// in the order they are made (a directory before what it holds).
// Where it goes: "dir" to DEST/NAME, "contents" into DEST, both making
// DEST if it is missing; "file" to DEST/NAME when DEST is a directory or
// dest_dir is set (DEST ended in "/"; made if missing), else to DEST.
// DEST is /dest, or /dest/DEST_BASE when dest_base is not "". So what a
// run made never changes where the same copy run again goes.
// "regrant" says what of /dest's grant to give what is already there
// (guest.Attr bits: 1 the file mode, 2 the owner and group; 0 nothing).
// --show DIR is the host path of /dest, for messages and the report.
//
// It writes one JSON object on stdout, {"dest", "changed": [paths],
// "fixed": [paths], "unchanged", "bytes"}, and exits 0; on the first
// error it says what on stderr and exits 1, leaving no temporary file;
// bad usage exits 2.
//
// A file is unchanged when the destination is a regular file of the same
// bytes, and, when the plan regrants, already has the granted mode and
// owner; one of the same bytes with another mode or owner is given the
// grant's ("fixed", not written); else it is written, replacing a file or
// a symlink there. With the owner regranted, a symlink or directory SRC
// holds, and the root of SRC's copy when SRC is a directory (not DEST
// itself: that is the operator's), are given the owner too; a
// directory's mode is left alone. A symlink is unchanged when one with
// the same target is there, else made (relative targets only). A directory there where a file or symlink goes, or
// anything but a directory where a directory goes, is an error: copy
// removes nothing. It never writes through a symlink.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	guest "github.com/spindle-hq/spindle/guest-sdk"
)

type entry struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Size   int64  `json:"size"`
	Exec   bool   `json:"exec"`
	Target string `json:"target"`
}

type plan struct {
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
	DestBase string  `json:"dest_base"`
	DestDir  bool    `json:"dest_dir"` // DEST ended with "/": a directory
	Entries  []entry `json:"entries"`
	KeepExec bool    `json:"keep_exec"` // exec files are made through /xdest
	// Regrant is what of /dest's grant to give what is there already.
	Regrant guest.Attr `json:"regrant"`
}

type report struct {
	Dest      string   `json:"dest"`
	Changed   []string `json:"changed"`
	Fixed     []string `json:"fixed,omitempty"`
	Unchanged int      `json:"unchanged"`
	Bytes     int64    `json:"bytes"`
}

const (
	srcDir  = "/src"
	destDir = "/dest"
	execDir = "/xdest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "--show" {
		fmt.Fprintln(stderr, "copy: usage: copy --show DIR < PLAN")
		return 2
	}
	c := &copier{show: args[1]}
	var p plan
	dec := json.NewDecoder(io.LimitReader(stdin, 64<<20))
	if err := dec.Decode(&p); err != nil {
		fmt.Fprintf(stderr, "copy: plan: %v\n", err)
		return 2
	}
	c.keepExec, c.regrant = p.KeepExec, p.Regrant
	if err := c.copy(&p); err != nil {
		fmt.Fprintf(stderr, "copy: %v\n", err)
		return 1
	}
	c.rep.Changed = append([]string{}, c.rep.Changed...)
	b, _ := json.Marshal(&c.rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return 0
}

type copier struct {
	show     string // the host path of /dest
	keepExec bool
	regrant  guest.Attr
	rep      report
}

// host names a path under /dest as the operator knows it.
func (c *copier) host(p string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(p, destDir), "/")
	if rel == "" {
		return c.show
	}
	return path.Join(c.show, rel)
}

func (c *copier) copy(p *plan) error {
	d := destDir
	if p.DestBase != "" {
		d = path.Join(destDir, p.DestBase)
	}
	fi, err := os.Lstat(d)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", c.host(d), unwrap(err))
	}
	isDir := exists && fi.IsDir()
	if exists && fi.Mode()&fs.ModeSymlink != 0 && (p.DestDir || p.Kind != "file") {
		return fmt.Errorf("%s is a symlink: copy does not write through one (name the directory it points to)", c.host(d))
	}
	switch p.Kind {
	case "file":
		if len(p.Entries) != 1 || p.Entries[0].Type != "f" {
			return errors.New("plan: a file copy has one file entry")
		}
		e := p.Entries[0]
		final := d
		if p.DestDir || isDir {
			// DEST names a directory: made if missing, as for a tree.
			// A DEST that is not there and does not end in "/" is the
			// file itself, and a second run finds that file there: it
			// is not a directory, so the file goes to the same path.
			if err := c.dir(d, false); err != nil {
				return err
			}
			final = path.Join(d, p.Name)
		}
		c.rep.Dest = c.host(final)
		return c.file(path.Join(srcDir, e.Path), final, e)
	case "dir", "contents":
		// DEST is the operator's directory, made if missing; a "dir"
		// lands in it as NAME whether or not it was there. cp -r's rule
		// (DEST/NAME only when DEST exists, else DEST is the copy)
		// would make a second run copy into the first run's copy.
		// DEST itself is not SRC's copy: it gets no owner unless this
		// copy makes it.
		if err := c.dir(d, false); err != nil {
			return err
		}
		root := d
		if p.Kind == "dir" {
			root = path.Join(d, p.Name)
			if err := c.dir(root, true); err != nil {
				return err
			}
		}
		c.rep.Dest = c.host(root)
		for _, e := range p.Entries {
			if !validRel(e.Path) {
				return fmt.Errorf("plan: entry path %q", e.Path)
			}
			dst := path.Join(root, e.Path)
			var err error
			switch e.Type {
			case "d":
				err = c.dir(dst, true)
			case "f":
				err = c.file(path.Join(srcDir, e.Path), dst, e)
			case "l":
				err = c.symlink(dst, e.Target)
			default:
				err = fmt.Errorf("plan: entry %q has type %q", e.Path, e.Type)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("plan: kind %q", p.Kind)
}

// validRel reports whether p is a clean relative path inside its root.
func validRel(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// dir makes the directory p unless one is there; one that is there gets
// the granted owner when regrant is set and the plan regrants the owner.
func (c *copier) dir(p string, regrant bool) error {
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
		if regrant {
			return c.fix(p, c.regrant&guest.AttrOwner, false)
		}
		return nil
	case err == nil:
		return fmt.Errorf("%s exists and is not a directory (%s): copy removes nothing", c.host(p), kind(fi))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", c.host(p), unwrap(err))
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: its parent directory does not exist", c.host(p))
		}
		return fmt.Errorf("make directory %s: %w", c.host(p), unwrap(err))
	}
	c.rep.Changed = append(c.rep.Changed, c.host(p)+"/")
	return nil
}

// file makes dst hold the bytes of src, unless it does.
func (c *copier) file(src, dst string, e entry) error {
	fi, err := os.Lstat(dst)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory: a file cannot replace it (copy removes nothing)", c.host(dst))
	case err == nil && fi.Mode().IsRegular() && fi.Size() == e.Size:
		same, err := sameBytes(src, dst)
		if err != nil {
			return fmt.Errorf("compare %s: %w", c.host(dst), unwrap(err))
		}
		if same {
			return c.fix(dst, c.regrant, true)
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", c.host(dst), unwrap(err))
	}
	dir, base := path.Split(dst)
	via := dir
	if c.keepExec && e.Exec {
		// The same directory, where new files are 0755. Not /destx: a Go
		// guest matches preopens by string prefix.
		via = execDir + strings.TrimPrefix(dir, destDir)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("source %s: %w", e.Path, unwrap(err))
	}
	defer in.Close()
	tmp, err := os.CreateTemp(via, "."+base+".spindle-*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such directory", c.host(dir))
		}
		return fmt.Errorf("write %s: %w", c.host(dst), unwrap(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, in)
	if err == nil && n != e.Size {
		err = fmt.Errorf("source has %d bytes, the plan says %d", n, e.Size)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path.Join(via, base))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", c.host(dst), unwrap(err))
	}
	done = true
	c.rep.Changed = append(c.rep.Changed, c.host(dst))
	c.rep.Bytes += n
	return nil
}

// symlink makes dst a symlink to target, unless it is one.
func (c *copier) symlink(dst, target string) error {
	fi, err := os.Lstat(dst)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory: a symlink cannot replace it (copy removes nothing)", c.host(dst))
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		if t, err := os.Readlink(dst); err == nil && t == target {
			return c.fix(dst, c.regrant&guest.AttrOwner, true)
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", c.host(dst), unwrap(err))
	}
	dir, base := path.Split(dst)
	for i := 0; ; i++ {
		tmp := path.Join(dir, fmt.Sprintf(".%s.spindle-link-%d", base, i))
		err := os.Symlink(target, tmp)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		if err == nil {
			if err = os.Rename(tmp, dst); err != nil {
				os.Remove(tmp)
			}
		}
		if err != nil {
			return fmt.Errorf("symlink %s -> %s: %w", c.host(dst), target, unwrap(err))
		}
		break
	}
	c.rep.Changed = append(c.rep.Changed, c.host(dst))
	return nil
}

// fix gives the entry p, which holds what it should, what of the grant
// what names, and counts it fixed when that changed anything, else
// unchanged (when counted: a directory is not).
func (c *copier) fix(p string, what guest.Attr, counted bool) error {
	if what != 0 {
		changed, err := guest.Regrant(p, what)
		if err != nil {
			return fmt.Errorf("set the mode or owner of %s: %w", c.host(p), unwrap(err))
		}
		if changed != 0 {
			name := c.host(p)
			if !counted {
				name += "/"
			}
			c.rep.Fixed = append(c.rep.Fixed, name)
			return nil
		}
	}
	if counted {
		c.rep.Unchanged++
	}
	return nil
}

// sameBytes reports whether files a and b hold the same bytes.
func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil && eb != io.EOF && eb != io.ErrUnexpectedEOF {
			return false, eb
		}
	}
}

func kind(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symlink"
	case fi.Mode().IsRegular():
		return "a file"
	}
	return "not a regular file"
}

// unwrap drops the *PathError's guest path: messages name host paths.
func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
