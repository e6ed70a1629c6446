package rootfs

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/experimental/sys"
	wazerosys "github.com/tetratelabs/wazero/sys"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// fixture is a directory to mount (dir) with a SECRET file next to it:
//
//	base/SECRET
//	base/mnt/inner.txt
//	base/mnt/sub/deep.txt
//	base/mnt/ok        -> inner.txt
//	base/mnt/link      -> ../SECRET
//	base/mnt/abs       -> /etc/passwd
//	base/mnt/abssecret -> base/SECRET (absolute)
//	base/mnt/dot       -> .
type fixture struct {
	base, dir string
	secret    string // the content of base/SECRET
}

const innerText = "inner\n"

func newFixture(t testing.TB) fixture {
	t.Helper()
	base := t.TempDir()
	fx := fixture{base: base, dir: filepath.Join(base, "mnt"), secret: "top secret, outside the mount\n"}
	mustWrite(t, filepath.Join(base, "SECRET"), fx.secret)
	if err := os.MkdirAll(filepath.Join(fx.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(fx.dir, "inner.txt"), innerText)
	mustWrite(t, filepath.Join(fx.dir, "sub", "deep.txt"), "deep\n")
	for link, target := range map[string]string{
		"ok":        "inner.txt",
		"link":      "../SECRET",
		"abs":       "/etc/passwd",
		"abssecret": filepath.Join(base, "SECRET"),
		"dot":       ".",
	} {
		if err := os.Symlink(target, filepath.Join(fx.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// open returns an FS on fx.dir, closed when the test ends.
func (fx fixture) open(t testing.TB, readOnly bool) *FS {
	t.Helper()
	fsys, err := New(fx.dir, readOnly)
	if err != nil {
		t.Fatalf("New(%q, %v) = %v", fx.dir, readOnly, err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// checkOutsideUntouched fails t if anything next to the mount changed.
func (fx fixture) checkOutsideUntouched(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(fx.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"SECRET", "mnt"}; !slices.Equal(names, want) {
		t.Errorf("entries next to the mount = %q, want %q", names, want)
	}
	b, err := os.ReadFile(filepath.Join(fx.base, "SECRET"))
	if err != nil || string(b) != fx.secret {
		t.Errorf("SECRET = %q, %v; want %q unchanged", b, err, fx.secret)
	}
	fi, err := os.Stat(filepath.Join(fx.base, "SECRET"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("SECRET mode = %v, %v; want 0600 unchanged", fi.Mode(), err)
	}
}

func mustWrite(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readFile reads a whole file through fsys.
func readFile(fsys *FS, name string) (string, sys.Errno) {
	f, errno := fsys.OpenFile(name, sys.O_RDONLY, 0)
	if errno != 0 {
		return "", errno
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 7) // small, to loop
	for {
		n, errno := f.Read(buf)
		if errno != 0 {
			return string(out), errno
		}
		if n == 0 {
			return string(out), 0
		}
		out = append(out, buf[:n]...)
	}
}

func TestReadInside(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	for _, readOnly := range []bool{false, true} {
		fsys := fx.open(t, readOnly)
		tests := []struct {
			path, want string
		}{
			{"inner.txt", innerText},
			{"/inner.txt", innerText}, // a leading slash is the root of the FS
			{"./inner.txt", innerText},
			{"ok", innerText}, // a symlink that stays inside
			{"sub/../inner.txt", innerText},
			{"sub/deep.txt", "deep\n"},
			{"dot/dot/sub/deep.txt", "deep\n"},
		}
		for _, tt := range tests {
			got, errno := readFile(fsys, tt.path)
			if errno != 0 || got != tt.want {
				t.Errorf("readOnly=%v: read %q = %q, %v; want %q", readOnly, tt.path, got, errno, tt.want)
			}
		}
	}
}

// TestEscapesFail covers ".." and symlinks that leave the root, for every
// path operation, in both modes.
func TestEscapesFail(t *testing.T) {
	testutil.VerifyNone(t)
	escapes := []string{
		"../SECRET",
		"/../SECRET",
		"sub/../../SECRET",
		"../mnt/inner.txt", // back inside, but by way of the parent
		"link",             // -> ../SECRET
		"sub/../link",
		"abs",       // -> /etc/passwd
		"abssecret", // -> an absolute path to SECRET
		"dot/../SECRET",
		"link/",
	}
	for _, readOnly := range []bool{false, true} {
		fx := newFixture(t)
		fsys := fx.open(t, readOnly)
		for _, p := range escapes {
			if f, errno := fsys.OpenFile(p, sys.O_RDONLY, 0); errno != sys.EPERM {
				if f != nil {
					f.Close()
				}
				t.Errorf("readOnly=%v: OpenFile(%q) = %v, want %v", readOnly, p, errno, sys.EPERM)
			}
			if _, errno := fsys.Stat(p); errno != sys.EPERM {
				t.Errorf("readOnly=%v: Stat(%q) = %v, want %v", readOnly, p, errno, sys.EPERM)
			}
		}
		// Lstat, Readlink and Readdir see a link, not where it points.
		if st, errno := fsys.Lstat("link"); errno != 0 || st.Mode.Type() != fs.ModeSymlink {
			t.Errorf("Lstat(link) = %v, %v; want a symlink", st.Mode, errno)
		}
		if target, errno := fsys.Readlink("link"); errno != 0 || target != "../SECRET" {
			t.Errorf("Readlink(link) = %q, %v; want ../SECRET", target, errno)
		}
		for _, p := range []string{"../SECRET", "sub/../../mnt"} {
			if _, errno := fsys.Lstat(p); errno != sys.EPERM {
				t.Errorf("Lstat(%q) = %v, want %v", p, errno, sys.EPERM)
			}
			if _, errno := fsys.Readlink(p); errno != sys.EPERM {
				t.Errorf("Readlink(%q) = %v, want %v", p, errno, sys.EPERM)
			}
		}
		fx.checkOutsideUntouched(t)
	}
}

// TestWritesCannotEscape tries, in read-write mode, to change or create
// something outside through ".." and symlinks, pre-existing or made by the
// guest.
func TestWritesCannotEscape(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	fsys := fx.open(t, false)

	openErr := func(p string, flag sys.Oflag) func() sys.Errno {
		return func() sys.Errno {
			f, errno := fsys.OpenFile(p, flag, 0o666)
			if f != nil {
				f.Close()
			}
			return errno
		}
	}
	tests := []struct {
		name string
		op   func() sys.Errno
		want sys.Errno
	}{
		{"guest symlink to ../SECRET", func() sys.Errno { return fsys.Symlink("../SECRET", "new") }, 0},
		{"open it", openErr("new", sys.O_RDONLY), sys.EPERM},
		{"stat it", func() sys.Errno { _, e := fsys.Stat("new"); return e }, sys.EPERM},
		{"open it for writing", openErr("new", sys.O_WRONLY|sys.O_TRUNC), sys.EPERM},
		{"guest symlink to ..", func() sys.Errno { return fsys.Symlink("..", "up") }, 0},
		{"open up/SECRET", openErr("up/SECRET", sys.O_RDONLY), sys.EPERM},
		{"create up/created", openErr("up/created", sys.O_WRONLY|sys.O_CREAT), sys.EPERM},
		{"guest dangling symlink out", func() sys.Errno { return fsys.Symlink("../created", "dangling") }, 0},
		{"create through it", openErr("dangling", sys.O_WRONLY|sys.O_CREAT), sys.EPERM},
		{"guest absolute symlink", func() sys.Errno { return fsys.Symlink("/etc/passwd", "abs2") }, sys.EPERM},
		{"create ../created", openErr("../created", sys.O_WRONLY|sys.O_CREAT), sys.EPERM},
		{"truncate link", openErr("link", sys.O_WRONLY|sys.O_TRUNC), sys.EPERM},
		{"mkdir ../d", func() sys.Errno { return fsys.Mkdir("../d", 0o755) }, sys.EPERM},
		{"mkdir up/d", func() sys.Errno { return fsys.Mkdir("up/d", 0o755) }, sys.EPERM},
		{"rename in ../SECRET", func() sys.Errno { return fsys.Rename("../SECRET", "stolen") }, sys.EPERM},
		{"rename out to ../x", func() sys.Errno { return fsys.Rename("inner.txt", "../x") }, sys.EPERM},
		{"rename out to up/x", func() sys.Errno { return fsys.Rename("inner.txt", "up/x") }, sys.EPERM},
		{"hard link ../SECRET", func() sys.Errno { return fsys.Link("../SECRET", "hard") }, sys.EPERM},
		{"hard link out", func() sys.Errno { return fsys.Link("inner.txt", "../hard") }, sys.EPERM},
		{"unlink ../SECRET", func() sys.Errno { return fsys.Unlink("../SECRET") }, sys.EPERM},
		{"unlink up/SECRET", func() sys.Errno { return fsys.Unlink("up/SECRET") }, sys.EPERM},
		{"rmdir ../mnt", func() sys.Errno { return fsys.Rmdir("../mnt") }, sys.EPERM},
		{"chmod link", func() sys.Errno { return fsys.Chmod("link", 0o777) }, sys.EPERM},
		{"chmod ../SECRET", func() sys.Errno { return fsys.Chmod("../SECRET", 0o777) }, sys.EPERM},
		{"utimens link", func() sys.Errno { return fsys.Utimens("link", 0, 0) }, sys.EPERM},
		{"symlink at ../x", func() sys.Errno { return fsys.Symlink("inner.txt", "../x") }, sys.EPERM},
		// A hard link to the symlink "link" is another symlink, still
		// resolved through the root.
		{"hard link to link", func() sys.Errno { return fsys.Link("link", "link2") }, 0},
		{"open the hard link", openErr("link2", sys.O_RDONLY), sys.EPERM},
	}
	for _, tt := range tests {
		if got := tt.op(); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if target, errno := fsys.Readlink("new"); errno != 0 || target != "../SECRET" {
		t.Errorf("Readlink(new) = %q, %v; want ../SECRET", target, errno)
	}
	fx.checkOutsideUntouched(t)
}

func TestReadOnly(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	fsys := fx.open(t, true)

	ro, errno := fsys.OpenFile("inner.txt", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatalf("OpenFile(inner.txt) = %v", errno)
	}
	defer ro.Close()

	openErr := func(p string, flag sys.Oflag) func() sys.Errno {
		return func() sys.Errno {
			f, errno := fsys.OpenFile(p, flag, 0o666)
			if f != nil {
				f.Close()
			}
			return errno
		}
	}
	tests := []struct {
		name string
		op   func() sys.Errno
		want sys.Errno
	}{
		{"open O_WRONLY", openErr("inner.txt", sys.O_WRONLY), sys.EROFS},
		{"open O_RDWR", openErr("inner.txt", sys.O_RDWR), sys.EROFS},
		{"open O_TRUNC", openErr("inner.txt", sys.O_RDONLY|sys.O_TRUNC), sys.EROFS},
		{"open O_APPEND|O_WRONLY", openErr("inner.txt", sys.O_WRONLY|sys.O_APPEND), sys.EROFS},
		{"open O_CREAT new", openErr("new.txt", sys.O_RDONLY|sys.O_CREAT), sys.EROFS},
		{"open O_CREAT|O_WRONLY new", openErr("new.txt", sys.O_WRONLY|sys.O_CREAT), sys.EROFS},
		{"open O_CREAT|O_EXCL existing", openErr("inner.txt", sys.O_RDONLY|sys.O_CREAT|sys.O_EXCL), sys.EEXIST},
		{"open O_CREAT existing", openErr("inner.txt", sys.O_RDONLY|sys.O_CREAT), 0},
		{"open dir O_WRONLY|O_DIRECTORY", openErr("sub", sys.O_WRONLY|sys.O_DIRECTORY), sys.EISDIR},
		{"mkdir", func() sys.Errno { return fsys.Mkdir("d", 0o755) }, sys.EROFS},
		{"unlink", func() sys.Errno { return fsys.Unlink("inner.txt") }, sys.EROFS},
		{"rmdir", func() sys.Errno { return fsys.Rmdir("sub") }, sys.EROFS},
		{"rename", func() sys.Errno { return fsys.Rename("inner.txt", "x") }, sys.EROFS},
		{"symlink", func() sys.Errno { return fsys.Symlink("inner.txt", "x") }, sys.EROFS},
		{"link", func() sys.Errno { return fsys.Link("inner.txt", "x") }, sys.EROFS},
		{"chmod", func() sys.Errno { return fsys.Chmod("inner.txt", 0o777) }, sys.EROFS},
		{"utimens", func() sys.Errno { return fsys.Utimens("inner.txt", 0, 0) }, sys.EROFS},
		{"lutimens", func() sys.Errno { return fsys.Lutimens("inner.txt", 0, 0) }, sys.EROFS},
		{"file truncate", func() sys.Errno { return ro.Truncate(0) }, sys.EROFS},
		{"file utimens", func() sys.Errno { return ro.Utimens(0, 0) }, sys.EROFS},
		{"file write", func() sys.Errno { _, e := ro.Write([]byte("x")); return e }, sys.EBADF},
		{"file pwrite", func() sys.Errno { _, e := ro.Pwrite([]byte("x"), 0); return e }, sys.EBADF},
	}
	for _, tt := range tests {
		if got := tt.op(); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}

	// Reads still work.
	if got, errno := readFile(fsys, "ok"); errno != 0 || got != innerText {
		t.Errorf("read ok = %q, %v; want %q", got, errno, innerText)
	}
	if st, errno := fsys.Stat("sub"); errno != 0 || !st.Mode.IsDir() {
		t.Errorf("Stat(sub) = %v, %v; want a directory", st.Mode, errno)
	}
	if target, errno := fsys.Readlink("ok"); errno != 0 || target != "inner.txt" {
		t.Errorf("Readlink(ok) = %q, %v; want inner.txt", target, errno)
	}
	if errno := ro.Sync(); errno != 0 {
		t.Errorf("Sync = %v", errno)
	}
	// The tree is as it was.
	entries, err := os.ReadDir(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 7 {
		t.Errorf("mount holds %d entries, want the 7 of the fixture", len(entries))
	}
	fx.checkOutsideUntouched(t)
}

// TestReadWrite walks through the operations a guest uses, inside the root.
func TestReadWrite(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	fsys := fx.open(t, false)

	f, errno := fsys.OpenFile("new.txt", sys.O_RDWR|sys.O_CREAT|sys.O_EXCL, 0o644|fs.ModeSetuid)
	if errno != 0 {
		t.Fatalf("create new.txt = %v", errno)
	}
	step := func(what string, errno sys.Errno) {
		t.Helper()
		if errno != 0 {
			t.Fatalf("%s = %v", what, errno)
		}
	}
	n, errno := f.Write([]byte("hello world"))
	step("Write", errno)
	if n != 11 {
		t.Fatalf("Write = %d, want 11", n)
	}
	buf := make([]byte, 5)
	n, errno = f.Pread(buf, 6)
	step("Pread", errno)
	if got := string(buf[:n]); got != "world" {
		t.Errorf("Pread(6) = %q, want world", got)
	}
	off, errno := f.Seek(0, io.SeekStart)
	step("Seek", errno)
	if off != 0 {
		t.Errorf("Seek(0, start) = %d", off)
	}
	n, errno = f.Read(buf)
	step("Read", errno)
	if got := string(buf[:n]); got != "hello" {
		t.Errorf("Read = %q, want hello", got)
	}
	_, errno = f.Pwrite([]byte("W"), 6)
	step("Pwrite", errno)
	step("Truncate", f.Truncate(7))
	step("Sync", f.Sync())
	step("Datasync", f.Datasync())
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	step("File.Utimens", f.Utimens(sys.UTIME_OMIT, mtime))
	st, errno := f.Stat()
	step("File.Stat", errno)
	if st.Size != 7 || st.Mtim != mtime || st.Mode.Perm() != 0o644 || st.Mode&fs.ModeSetuid != 0 {
		t.Errorf("Stat = size %d mtim %d mode %v; want 7, %d, 0644 without setuid", st.Size, st.Mtim, st.Mode, mtime)
	}
	if ino, _ := f.Ino(); ino != st.Ino {
		t.Errorf("Ino = %d, Stat().Ino = %d", ino, st.Ino)
	}
	step("Close", f.Close())
	step("Close again", f.Close())
	if _, errno := f.Read(buf); errno != sys.EBADF {
		t.Errorf("Read after Close = %v, want EBADF", errno)
	}
	if got, _ := readFile(fsys, "new.txt"); got != "hello W" {
		t.Errorf("new.txt = %q, want %q", got, "hello W")
	}

	// Append mode, set at open and changed later.
	a, errno := fsys.OpenFile("new.txt", sys.O_WRONLY|sys.O_APPEND, 0)
	step("open O_APPEND", errno)
	_, errno = a.Write([]byte("!"))
	step("append", errno)
	// As pwrite(2) on Linux: at the end, whatever the offset.
	if n, errno := a.Pwrite([]byte("x"), 0); n != 1 || errno != 0 {
		t.Errorf("Pwrite in append mode = %d, %v, want 1, 0", n, errno)
	}
	if got, _ := readFile(fsys, "new.txt"); got != "hello W!x" {
		t.Errorf("after Pwrite in append mode, new.txt = %q, want %q", got, "hello W!x")
	}
	step("SetAppend(false)", a.SetAppend(false))
	if a.IsAppend() {
		t.Error("IsAppend after SetAppend(false) = true")
	}
	_, errno = a.Pwrite([]byte("H"), 0)
	step("Pwrite", errno)
	step("SetAppend(true)", a.SetAppend(true))
	_, errno = a.Write([]byte("?"))
	step("append again", errno)
	step("Close", a.Close())
	if got, _ := readFile(fsys, "new.txt"); got != "Hello W!x?" {
		t.Errorf("new.txt = %q, want %q", got, "Hello W!x?")
	}

	// Directories, renames, links.
	step("Mkdir", fsys.Mkdir("d", 0o755|fs.ModeSticky))
	if st, _ := fsys.Stat("d"); st.Mode&fs.ModeSticky != 0 || st.Mode.Perm()&^0o755 != 0 {
		t.Errorf("Stat(d).Mode = %v, want no sticky bit, at most 0755", st.Mode)
	}
	step("Rename into d", fsys.Rename("new.txt", "d/moved.txt"))
	step("Link", fsys.Link("d/moved.txt", "hard"))
	if st, _ := fsys.Stat("hard"); st.Nlink != 2 {
		t.Errorf("Stat(hard).Nlink = %d, want 2", st.Nlink)
	}
	step("Unlink hard", fsys.Unlink("hard"))
	if errno := fsys.Rmdir("d"); errno != sys.ENOTEMPTY {
		t.Errorf("Rmdir(non-empty d) = %v, want ENOTEMPTY", errno)
	}
	step("Symlink inside", fsys.Symlink("d/moved.txt", "sl"))
	if got, _ := readFile(fsys, "sl"); got != "Hello W!x?" {
		t.Errorf("read through sl = %q", got)
	}
	// Lutimens sets the link's own times, not its target's.
	target, _ := fsys.Stat("sl")
	step("Lutimens", fsys.Lutimens("sl", sys.UTIME_OMIT, mtime-5))
	if st, _ := fsys.Lstat("sl"); st.Mtim != mtime-5 {
		t.Errorf("after Lutimens(sl), Lstat(sl).Mtim = %d, want %d", st.Mtim, mtime-5)
	}
	if st, _ := fsys.Stat("sl"); st.Mtim != target.Mtim {
		t.Errorf("after Lutimens(sl), the target's mtim = %d, want %d (unchanged)", st.Mtim, target.Mtim)
	}
	if errno := fsys.Lutimens("../x", 0, 0); errno != sys.EPERM && errno != sys.ENOENT {
		t.Errorf("Lutimens(../x) = %v, want EPERM or ENOENT", errno)
	}
	step("Unlink symlink", fsys.Unlink("sl"))
	step("Chmod", fsys.Chmod("d/moved.txt", 0o600|fs.ModeSetgid))
	if st, _ := fsys.Stat("d/moved.txt"); st.Mode != 0o600 {
		t.Errorf("mode after Chmod = %v, want 0600 without setgid", st.Mode)
	}
	before, _ := fsys.Stat("d/moved.txt")
	step("Utimens", fsys.Utimens("d/moved.txt", mtime, sys.UTIME_OMIT))
	if st, _ := fsys.Stat("d/moved.txt"); st.Atim != mtime || st.Mtim != before.Mtim {
		t.Errorf("after Utimens(atim, OMIT): atim %d mtim %d; want %d, %d", st.Atim, st.Mtim, mtime, before.Mtim)
	}
	step("Unlink", fsys.Unlink("d/moved.txt"))
	step("Rmdir", fsys.Rmdir("d"))
	if _, errno := fsys.Stat("d"); errno != sys.ENOENT {
		t.Errorf("Stat(d) after Rmdir = %v, want ENOENT", errno)
	}
	fx.checkOutsideUntouched(t)
}

func TestRename(t *testing.T) {
	testutil.VerifyNone(t)
	tests := []struct {
		name     string
		from, to string
		want     sys.Errno
	}{
		{"file over file", "inner.txt", "sub/deep.txt", 0},
		{"file to itself", "inner.txt", "inner.txt", 0},
		{"file over dir", "inner.txt", "sub", sys.EISDIR},
		{"dir over file", "sub", "inner.txt", sys.ENOTDIR},
		{"dir over empty dir", "sub", "empty", 0},
		{"dir over non-empty dir", "empty", "sub", sys.ENOTEMPTY},
		{"dir into itself", "sub", "sub/empty", sys.EINVAL},
		{"dir into itself through a symlink", "sub", "subl/empty", sys.EINVAL},
		{"missing", "missing", "x", sys.ENOENT},
		{"out", "inner.txt", "../x", sys.EPERM},
		{"symlink is moved, not followed", "link", "link3", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			for _, d := range []string{"empty", "sub/empty"} {
				if err := os.Mkdir(filepath.Join(fx.dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("sub", filepath.Join(fx.dir, "subl")); err != nil {
				t.Fatal(err)
			}
			fsys := fx.open(t, false)
			before, _ := fsys.Lstat(tt.from)
			if got := fsys.Rename(tt.from, tt.to); got != tt.want {
				t.Fatalf("Rename(%q, %q) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
			if tt.want == 0 {
				after, errno := fsys.Lstat(tt.to)
				if errno != 0 || after.Ino != before.Ino {
					t.Errorf("Lstat(%q) after rename = ino %d, %v; want ino %d", tt.to, after.Ino, errno, before.Ino)
				}
			}
			// A failed rename removes nothing.
			if tt.want != 0 {
				for _, p := range []string{"inner.txt", "sub", "empty", "sub/empty"} {
					if _, errno := fsys.Lstat(p); errno != 0 {
						t.Errorf("after failed rename, Lstat(%q) = %v", p, errno)
					}
				}
			}
			fx.checkOutsideUntouched(t)
		})
	}
}

func TestErrno(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	if err := os.Symlink("loop", filepath.Join(fx.dir, "loop")); err != nil {
		t.Fatal(err)
	}
	fsys := fx.open(t, false)
	file, errno := fsys.OpenFile("inner.txt", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer file.Close()
	dir, errno := fsys.OpenFile("sub", sys.O_RDONLY|sys.O_DIRECTORY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer dir.Close()

	openErr := func(p string, flag sys.Oflag) func() sys.Errno {
		return func() sys.Errno {
			f, errno := fsys.OpenFile(p, flag, 0o666)
			if f != nil {
				f.Close()
			}
			return errno
		}
	}
	tests := []struct {
		name string
		op   func() sys.Errno
		want sys.Errno
	}{
		{"open missing", openErr("missing", sys.O_RDONLY), sys.ENOENT},
		{"open O_CREAT|O_EXCL existing", openErr("inner.txt", sys.O_WRONLY|sys.O_CREAT|sys.O_EXCL), sys.EEXIST},
		{"open dir for writing", openErr("sub", sys.O_WRONLY), sys.EISDIR},
		{"open file O_DIRECTORY", openErr("inner.txt", sys.O_RDONLY|sys.O_DIRECTORY), sys.ENOTDIR},
		{"open symlink O_NOFOLLOW", openErr("ok", sys.O_RDONLY|sys.O_NOFOLLOW), sys.ELOOP},
		{"open under a file", openErr("inner.txt/x", sys.O_RDONLY), sys.ENOTDIR},
		{"open symlink loop", openErr("loop", sys.O_RDONLY), sys.ELOOP},
		{"open O_RDWR|O_WRONLY", openErr("inner.txt", sys.O_RDWR|sys.O_WRONLY), sys.EINVAL},
		{"mkdir existing", func() sys.Errno { return fsys.Mkdir("sub", 0o755) }, sys.EEXIST},
		{"unlink dir", func() sys.Errno { return fsys.Unlink("sub") }, sys.EISDIR},
		{"unlink missing", func() sys.Errno { return fsys.Unlink("missing") }, sys.ENOENT},
		{"rmdir file", func() sys.Errno { return fsys.Rmdir("inner.txt") }, sys.ENOTDIR},
		{"rmdir missing", func() sys.Errno { return fsys.Rmdir("missing") }, sys.ENOENT},
		{"symlink over existing", func() sys.Errno { return fsys.Symlink("x", "inner.txt") }, sys.EEXIST},
		{"readlink of a file", func() sys.Errno { _, e := fsys.Readlink("inner.txt"); return e }, sys.EINVAL},
		{"pread negative", func() sys.Errno { _, e := file.Pread(make([]byte, 1), -1); return e }, sys.EINVAL},
		{"pwrite negative", func() sys.Errno { _, e := file.Pwrite(make([]byte, 1), -1); return e }, sys.EINVAL},
		{"seek bad whence", func() sys.Errno { _, e := file.Seek(0, 7); return e }, sys.EINVAL},
		{"seek before start", func() sys.Errno { _, e := file.Seek(-1, io.SeekStart); return e }, sys.EINVAL},
		{"readdir of a file", func() sys.Errno { _, e := file.Readdir(1); return e }, sys.EBADF},
		{"write to read-only file", func() sys.Errno { _, e := file.Write([]byte("x")); return e }, sys.EBADF},
		{"truncate read-only file", func() sys.Errno { return file.Truncate(0) }, sys.EBADF},
		{"read dir", func() sys.Errno { _, e := dir.Read(make([]byte, 1)); return e }, sys.EISDIR},
		{"seek dir not to 0", func() sys.Errno { _, e := dir.Seek(1, io.SeekStart); return e }, sys.EISDIR},
		{"truncate dir", func() sys.Errno { return dir.Truncate(0) }, sys.EISDIR},
		{"set append on dir", func() sys.Errno { return dir.SetAppend(true) }, sys.EISDIR},
	}
	for _, tt := range tests {
		if got := tt.op(); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}

	// After Close, path operations fail with EBADF; open files still work.
	if err := fsys.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, errno := fsys.Stat("inner.txt"); errno != sys.EBADF {
		t.Errorf("Stat after Close = %v, want EBADF", errno)
	}
	if n, errno := file.Pread(make([]byte, 5), 0); errno != 0 || n != 5 {
		t.Errorf("Pread on a file open before Close = %d, %v", n, errno)
	}
}

// TestEscapeErrorCaptured pins what errno relies on: New finds os.Root's
// "path escapes" error, and it has the text the fallback compares.
func TestEscapeErrorCaptured(t *testing.T) {
	testutil.VerifyNone(t)
	fsys := newFixture(t).open(t, true)
	if fsys.escapeErr == nil || fsys.escapeErr.Error() != errEscapeText {
		t.Errorf("escapeErr = %v, want %q", fsys.escapeErr, errEscapeText)
	}
}

func TestReaddir(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	fsys := fx.open(t, false)
	d, errno := fsys.OpenFile(".", sys.O_RDONLY|sys.O_DIRECTORY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer d.Close()

	readAll := func() map[string]sys.Dirent {
		t.Helper()
		got := map[string]sys.Dirent{}
		for {
			ds, errno := d.Readdir(2)
			if errno != 0 {
				t.Fatalf("Readdir = %v", errno)
			}
			for _, e := range ds {
				got[e.Name] = e
			}
			if len(ds) < 2 {
				return got
			}
		}
	}
	got := readAll()
	want := map[string]fs.FileMode{
		"inner.txt": 0, "sub": fs.ModeDir,
		"ok": fs.ModeSymlink, "link": fs.ModeSymlink, "abs": fs.ModeSymlink,
		"abssecret": fs.ModeSymlink, "dot": fs.ModeSymlink,
	}
	if len(got) != len(want) {
		t.Errorf("Readdir names = %v, want %v", got, want)
	}
	for name, typ := range want {
		if e, ok := got[name]; !ok || e.Type != typ || e.Ino == 0 {
			t.Errorf("Readdir entry %q = %+v, want type %v and an inode", name, e, typ)
		}
	}
	if ds, errno := d.Readdir(-1); errno != 0 || len(ds) != 0 {
		t.Errorf("Readdir at end = %v, %v; want none", ds, errno)
	}

	// A rewind shows entries added since.
	if err := os.WriteFile(filepath.Join(fx.dir, "later"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errno := d.Seek(0, io.SeekStart); errno != 0 {
		t.Fatalf("Seek(0) on a directory = %v", errno)
	}
	if got := readAll(); len(got) != len(want)+1 || got["later"].Name != "later" {
		t.Errorf("after rewind, Readdir = %v; want the fixture and \"later\"", got)
	}
	if isDir, _ := d.IsDir(); !isDir {
		t.Error("IsDir() = false for a directory")
	}
}

// TestConcurrent hammers a shared FS from many goroutines, and closes a file
// while others read it, for the race detector.
func TestConcurrent(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	fsys := fx.open(t, false)
	shared, errno := fsys.OpenFile("inner.txt", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}

	const workers, rounds = 16, 100
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan string, workers*rounds)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := filepath.Join("sub", "w"+string(rune('a'+w)))
			for range rounds {
				if got, errno := readFile(fsys, "ok"); errno != 0 || got != innerText {
					errs <- "read ok: " + errno.Error()
				}
				if _, errno := fsys.Stat("link"); errno != sys.EPERM {
					errs <- "stat link: " + errno.Error()
				}
				f, errno := fsys.OpenFile(name, sys.O_WRONLY|sys.O_CREAT|sys.O_TRUNC, 0o600)
				if errno != 0 {
					errs <- "create: " + errno.Error()
					continue
				}
				f.Write([]byte("x"))
				f.Close()
				if errno := fsys.Unlink(name); errno != 0 {
					errs <- "unlink: " + errno.Error()
				}
				// Reads race with the Close below; EBADF is the only
				// acceptable failure.
				if _, errno := shared.Pread(make([]byte, 3), 1); errno != 0 && errno != sys.EBADF {
					errs <- "pread shared: " + errno.Error()
				}
			}
		}()
	}
	close(start)
	time.Sleep(time.Millisecond)
	shared.Close()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	fx.checkOutsideUntouched(t)
}

// FuzzPathStaysInside opens, stats and reads arbitrary paths and checks that
// nothing of SECRET comes back.
func FuzzPathStaysInside(f *testing.F) {
	for _, p := range []string{
		".", "inner.txt", "ok", "link", "abs", "abssecret", "../SECRET",
		"sub/../../SECRET", "dot/../SECRET", "dot/dot/../SECRET", "//../SECRET",
		"sub/./../link", "link/", "ok/", "sub/../dot/../mnt/../SECRET",
		"\x00", "../../../../../../../../etc/passwd",
	} {
		f.Add(p)
	}
	fx := newFixture(f)
	fsys := fx.open(f, true)
	fi, err := os.Stat(filepath.Join(fx.base, "SECRET"))
	if err != nil {
		f.Fatal(err)
	}
	secret := wazerosys.NewStat_t(fi)
	f.Fuzz(func(t *testing.T, p string) {
		if st, errno := fsys.Stat(p); errno == 0 && st.Dev == secret.Dev && st.Ino == secret.Ino {
			t.Fatalf("Stat(%q) reached SECRET", p)
		}
		got, errno := readFile(fsys, p)
		if errno == 0 && bytes.Contains([]byte(got), []byte("secret")) {
			t.Fatalf("read %q = %q", p, got)
		}
	})
}
