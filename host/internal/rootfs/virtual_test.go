package rootfs

import (
	"io"
	"io/fs"
	"testing"

	"github.com/tetratelabs/wazero/experimental/sys"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestVirtual runs every operation on the paths of /dev and of the empty
// root: what exists can be opened and stat'ed, nothing can be made or
// changed, and a missing path is ENOENT.
func TestVirtual(t *testing.T) {
	testutil.VerifyNone(t)
	files := NewFiles(0)
	dev, root := NewDev(files), NewEmpty(files)
	open := func(v *Virtual, p string, flag sys.Oflag) func() sys.Errno {
		return func() sys.Errno {
			f, errno := v.OpenFile(p, flag, 0o644)
			if f != nil {
				f.Close()
			}
			return errno
		}
	}
	stat := func(v *Virtual, p string) func() sys.Errno {
		return func() sys.Errno { _, e := v.Stat(p); return e }
	}
	const wtrunc = sys.O_WRONLY | sys.O_CREAT | sys.O_TRUNC // a shell's 2>/dev/null
	tests := []struct {
		name string
		op   func() sys.Errno
		want sys.Errno
	}{
		{"open null", open(dev, "null", sys.O_RDONLY), 0},
		{"open /null", open(dev, "/null", sys.O_RDWR), 0},
		{"open null for a shell redirect", open(dev, "null", wtrunc), 0},
		{"open null O_APPEND", open(dev, "null", sys.O_WRONLY|sys.O_APPEND), 0},
		{"open null O_EXCL", open(dev, "null", wtrunc|sys.O_EXCL), sys.EEXIST},
		{"open null O_DIRECTORY", open(dev, "null", sys.O_RDONLY|sys.O_DIRECTORY), sys.ENOTDIR},
		{"open null/", open(dev, "null/", sys.O_RDONLY), sys.ENOTDIR},
		{"open null/x", open(dev, "null/x", sys.O_RDONLY), sys.ENOTDIR},
		{"open null O_RDWR|O_WRONLY", open(dev, "null", sys.O_RDWR|sys.O_WRONLY), sys.EINVAL},
		{"open zero", open(dev, "zero", sys.O_RDONLY), sys.ENOENT},
		{"create zero", open(dev, "zero", wtrunc), sys.EROFS},
		{"create a/b", open(dev, "a/b", wtrunc), sys.ENOENT},
		{"open dev dir", open(dev, ".", sys.O_RDONLY|sys.O_DIRECTORY), 0},
		{"open dev dir to write", open(dev, ".", sys.O_WRONLY), sys.EISDIR},
		{"open ../null", open(dev, "../null", sys.O_RDONLY), 0},
		{"stat null", stat(dev, "null"), 0},
		{"stat .", stat(dev, "."), 0},
		{"stat zero", stat(dev, "zero"), sys.ENOENT},
		{"mkdir zero", func() sys.Errno { return dev.Mkdir("zero", 0o755) }, sys.EROFS},
		{"mkdir null", func() sys.Errno { return dev.Mkdir("null", 0o755) }, sys.EEXIST},
		{"mkdir a/b", func() sys.Errno { return dev.Mkdir("a/b", 0o755) }, sys.ENOENT},
		{"unlink null", func() sys.Errno { return dev.Unlink("null") }, sys.EROFS},
		{"unlink missing", func() sys.Errno { return dev.Unlink("zero") }, sys.ENOENT},
		{"unlink .", func() sys.Errno { return dev.Unlink(".") }, sys.EISDIR},
		{"rmdir null", func() sys.Errno { return dev.Rmdir("null") }, sys.ENOTDIR},
		{"rename null", func() sys.Errno { return dev.Rename("null", "zero") }, sys.EROFS},
		{"rename missing", func() sys.Errno { return dev.Rename("zero", "null") }, sys.ENOENT},
		{"rename to a/b", func() sys.Errno { return dev.Rename("null", "a/b") }, sys.ENOENT},
		{"chmod null", func() sys.Errno { return dev.Chmod("null", 0o600) }, sys.EROFS},
		{"utimens null", func() sys.Errno { return dev.Utimens("null", 0, 0) }, sys.EROFS},
		{"symlink zero", func() sys.Errno { return dev.Symlink("null", "zero") }, sys.EROFS},
		{"symlink over null", func() sys.Errno { return dev.Symlink("x", "null") }, sys.EEXIST},
		{"link null", func() sys.Errno { return dev.Link("null", "zero") }, sys.EROFS},
		{"readlink null", func() sys.Errno { _, e := dev.Readlink("null"); return e }, sys.EINVAL},
		{"readlink missing", func() sys.Errno { _, e := dev.Readlink("x"); return e }, sys.ENOENT},

		{"root: open .", open(root, ".", sys.O_RDONLY), 0},
		{"root: open /", open(root, "/", sys.O_RDONLY), 0},
		{"root: open null", open(root, "null", sys.O_RDONLY), sys.ENOENT},
		{"root: open a/b", open(root, "nope/x", sys.O_RDONLY), sys.ENOENT},
		{"root: stat .editorconfig", stat(root, ".editorconfig"), sys.ENOENT},
		{"root: create x", open(root, "x", wtrunc), sys.EROFS},
		{"root: create a/b", open(root, "a/b", wtrunc), sys.ENOENT},
		{"root: mkdir x", func() sys.Errno { return root.Mkdir("x", 0o755) }, sys.EROFS},
		{"root: mkdir a/b", func() sys.Errno { return root.Mkdir("a/b", 0o755) }, sys.ENOENT},
		{"root: rmdir .", func() sys.Errno { return root.Rmdir(".") }, sys.EROFS},
	}
	for _, tt := range tests {
		if got := tt.op(); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if n := files.Open(); n != 0 {
		t.Errorf("after the opens were closed, Files.Open() = %d", n)
	}

	for _, tt := range []struct {
		v    *Virtual
		p    string
		mode fs.FileMode
		ino  uint64
	}{
		{dev, "null", fs.ModeDevice | fs.ModeCharDevice | 0o666, nullIno},
		{dev, ".", fs.ModeDir | 0o555, devIno},
		{root, "/", fs.ModeDir | 0o555, rootIno},
	} {
		st, errno := tt.v.Lstat(tt.p)
		if errno != 0 || st.Mode != tt.mode || st.Ino != tt.ino {
			t.Errorf("Lstat(%s) = mode %v ino %d, %v; want %v, %d", tt.p, st.Mode, st.Ino, errno, tt.mode, tt.ino)
		}
	}
}

// TestDevNull reads, writes and lists /dev: writes are taken whole and
// dropped, reads are at the end, the directory lists null alone (again
// after a rewind), and the open files count against the bound.
func TestDevNull(t *testing.T) {
	testutil.VerifyNone(t)
	files := NewFiles(3)
	dev := NewDev(files)
	w, errno := dev.OpenFile("null", sys.O_WRONLY|sys.O_CREAT|sys.O_TRUNC, 0o644)
	if errno != 0 {
		t.Fatal(errno)
	}
	r, errno := dev.OpenFile("null", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	d, errno := dev.OpenFile(".", sys.O_RDONLY|sys.O_DIRECTORY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := dev.OpenFile("null", sys.O_RDONLY, 0); errno != sys.EAGAIN {
		t.Errorf("open past the Files bound = %v, want EAGAIN", errno)
	}

	big := make([]byte, 1<<20)
	for _, tt := range []struct {
		name  string
		op    func() (int, sys.Errno)
		n     int
		errno sys.Errno
	}{
		{"write", func() (int, sys.Errno) { return w.Write(big) }, len(big), 0},
		{"pwrite", func() (int, sys.Errno) { return w.Pwrite([]byte("x"), 1<<40) }, 1, 0},
		{"pwrite negative", func() (int, sys.Errno) { return w.Pwrite([]byte("x"), -1) }, 0, sys.EINVAL},
		{"read write-only", func() (int, sys.Errno) { return w.Read(big) }, 0, sys.EBADF},
		{"read", func() (int, sys.Errno) { return r.Read(big) }, 0, 0},
		{"pread", func() (int, sys.Errno) { return r.Pread(big, 7) }, 0, 0},
		{"write read-only", func() (int, sys.Errno) { return r.Write(big) }, 0, sys.EBADF},
		{"seek", func() (int, sys.Errno) { n, e := r.Seek(100, io.SeekStart); return int(n), e }, 0, 0},
		{"seek bad whence", func() (int, sys.Errno) { n, e := r.Seek(0, 9); return int(n), e }, 0, sys.EINVAL},
		{"truncate", func() (int, sys.Errno) { return 0, w.Truncate(0) }, 0, sys.EINVAL},
		{"sync", func() (int, sys.Errno) { return 0, w.Sync() }, 0, 0},
		{"readdir of null", func() (int, sys.Errno) { _, e := r.Readdir(1); return 0, e }, 0, sys.EBADF},
		{"read dir", func() (int, sys.Errno) { return d.Read(big) }, 0, sys.EISDIR},
		{"write dir", func() (int, sys.Errno) { return d.Write(big) }, 0, sys.EISDIR},
	} {
		if n, errno := tt.op(); n != tt.n || errno != tt.errno {
			t.Errorf("%s = %d, %v; want %d, %v", tt.name, n, errno, tt.n, tt.errno)
		}
	}
	if st, errno := w.Stat(); errno != 0 || st.Size != 0 || st.Mode.Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Errorf("Stat of open null = %+v, %v; want an empty character device", st, errno)
	}
	if errno := w.SetAppend(true); errno != 0 || !w.IsAppend() {
		t.Errorf("SetAppend(true) = %v, IsAppend %v", errno, w.IsAppend())
	}

	for round := range 2 {
		ds, errno := d.Readdir(10)
		if errno != 0 || len(ds) != 1 || ds[0].Name != "null" || ds[0].Type != fs.ModeDevice|fs.ModeCharDevice {
			t.Errorf("round %d: Readdir = %+v, %v; want null alone", round, ds, errno)
		}
		if ds, errno := d.Readdir(10); errno != 0 || len(ds) != 0 {
			t.Errorf("round %d: Readdir at the end = %+v, %v; want nothing", round, ds, errno)
		}
		if _, errno := d.Seek(0, io.SeekStart); errno != 0 {
			t.Fatalf("rewind = %v", errno)
		}
	}
	if _, errno := d.Seek(1, io.SeekStart); errno != sys.EISDIR {
		t.Errorf("Seek(1) of the directory = %v, want EISDIR", errno)
	}
	if isDir, _ := d.IsDir(); !isDir {
		t.Error("the directory's IsDir() = false")
	}
	empty, errno := NewEmpty(nil).OpenFile(".", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if ds, errno := empty.Readdir(10); errno != 0 || len(ds) != 0 {
		t.Errorf("Readdir of the empty root = %+v, %v; want nothing", ds, errno)
	}
	empty.Close()

	for _, f := range []sys.File{w, r, d} {
		if errno := f.Close(); errno != 0 {
			t.Errorf("Close = %v", errno)
		}
		f.Close() // idempotent: releases once
	}
	if n := files.Open(); n != 0 {
		t.Errorf("after Close, Files.Open() = %d", n)
	}
	if _, errno := w.Write(big); errno != sys.EBADF {
		t.Errorf("Write after Close = %v, want EBADF", errno)
	}
	if _, errno := d.Readdir(1); errno != sys.EBADF {
		t.Errorf("Readdir after Close = %v, want EBADF", errno)
	}
}
