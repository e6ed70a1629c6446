package rootfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero/experimental/sys"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// openShared returns an FS on dir with the bounds given, closed when the
// test ends.
func openShared(t *testing.T, dir string, readOnly bool, disk *Disk) *FS {
	t.Helper()
	fsys, err := NewShared(dir, readOnly, NewFiles(0), disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}

// create opens name with O_CREAT|O_EXCL for writing.
func create(t *testing.T, fsys *FS, name string) sys.File {
	t.Helper()
	f, errno := fsys.OpenFile(name, sys.O_WRONLY|sys.O_CREAT|sys.O_EXCL, 0o644)
	if errno != 0 {
		t.Fatalf("create %s = %v", name, errno)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wantUsed fails t unless disk has spent want bytes.
func wantUsed(t *testing.T, disk *Disk, want int64, after string) {
	t.Helper()
	if got := disk.Used(); got != want {
		t.Errorf("after %s, Disk.Used() = %d, want %d", after, got, want)
	}
}

// TestDiskBudget spends a budget shared by two FSs: a write that only
// partly fits is short, the next one fails with EIO and a refusal the host
// sees once, and so does everything else that would write or create; what
// exists can still be opened, and a file holds what fitted and no more.
func TestDiskBudget(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	const budget = 2*EntryBytes + 10_000
	disk := NewDisk(budget)
	a := openShared(t, fx.dir, false, disk)
	b := openShared(t, fx.dir, false, disk)

	f := create(t, a, "f")
	wantUsed(t, disk, EntryBytes, "a create")
	if n, errno := f.Write(make([]byte, 6000)); n != 6000 || errno != 0 {
		t.Fatalf("Write(6000) = %d, %v", n, errno)
	}
	if disk.Refused() {
		t.Error("Refused() after writes within the budget")
	}
	g := create(t, b, "g") // the second FS spends the same budget
	if n, errno := g.Write(make([]byte, 6000)); n != 4000 || errno != 0 {
		t.Fatalf("Write(6000) with 4000 left = %d, %v; want a short write of 4000", n, errno)
	}
	wantUsed(t, disk, budget, "a short write")
	if n, errno := f.Write([]byte("x")); n != 0 || errno != sys.EIO {
		t.Errorf("Write past the budget = %d, %v; want 0, EIO", n, errno)
	}
	if !disk.Refused() || disk.Refused() {
		t.Error("Refused() after a refused write: want true once")
	}

	refused := []struct {
		name string
		op   func() sys.Errno
	}{
		{"pwrite", func() sys.Errno { _, e := f.Pwrite([]byte("x"), 0); return e }},
		{"truncate up", func() sys.Errno { return f.Truncate(6001) }},
		{"create", func() sys.Errno {
			_, e := a.OpenFile("new", sys.O_WRONLY|sys.O_CREAT, 0o644)
			return e
		}},
		{"mkdir", func() sys.Errno { return b.Mkdir("d", 0o755) }},
		{"symlink", func() sys.Errno { return a.Symlink("f", "l") }},
		{"link", func() sys.Errno { return a.Link("f", "h") }},
	}
	for _, tt := range refused {
		if errno := tt.op(); errno != sys.EIO || !disk.Refused() {
			t.Errorf("%s past the budget = %v; want EIO and a refusal", tt.name, errno)
		}
	}
	// What needs no budget still works, and an existing name is EEXIST as
	// on a full disk.
	allowed := []struct {
		name string
		op   func() sys.Errno
		want sys.Errno
	}{
		{"truncate down", func() sys.Errno { return f.Truncate(10) }, 0},
		{"write nothing", func() sys.Errno { _, e := f.Write(nil); return e }, 0},
		{"open existing with O_CREAT", func() sys.Errno {
			h, e := a.OpenFile("inner.txt", sys.O_WRONLY|sys.O_CREAT|sys.O_TRUNC, 0)
			if h != nil {
				h.Close()
			}
			return e
		}, 0},
		{"mkdir existing", func() sys.Errno { return a.Mkdir("sub", 0o755) }, sys.EEXIST},
		{"create existing O_EXCL", func() sys.Errno {
			_, e := a.OpenFile("f", sys.O_WRONLY|sys.O_CREAT|sys.O_EXCL, 0)
			return e
		}, sys.EEXIST},
		{"rename", func() sys.Errno { return a.Rename("g", "g2") }, 0},
		{"unlink", func() sys.Errno { return a.Unlink("g2") }, 0},
	}
	for _, tt := range allowed {
		if errno := tt.op(); errno != tt.want {
			t.Errorf("%s with the budget spent = %v, want %v", tt.name, errno, tt.want)
		}
	}
	if disk.Refused() {
		t.Error("Refused() after operations that need no budget")
	}
	wantUsed(t, disk, budget, "shrinking and removing (nothing is given back)")
	for name, want := range map[string]int64{"f": 10, "inner.txt": 0} {
		if fi, err := os.Stat(filepath.Join(fx.dir, name)); err != nil || fi.Size() != want {
			t.Errorf("size of %s = %v; want %d", name, err, want)
		}
	}
	fx.checkOutsideUntouched(t)
}

// TestDiskCharges pins what each operation costs: overwrites, holes past
// the end (Pwrite, a Seek then Write, Truncate) and entries, and that
// failed operations and read-only mounts cost nothing.
func TestDiskCharges(t *testing.T) {
	testutil.VerifyNone(t)
	fx := newFixture(t)
	if err := os.Symlink("target", filepath.Join(fx.dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	disk := NewDisk(0)
	if disk.max != DefaultDiskBytes {
		t.Errorf("NewDisk(0) budget = %d, want %d", disk.max, DefaultDiskBytes)
	}
	fsys := openShared(t, fx.dir, false, disk)
	var want int64
	step := func(what string, cost int64, errno sys.Errno) {
		t.Helper()
		if errno != 0 {
			t.Fatalf("%s = %v", what, errno)
		}
		want += cost
		wantUsed(t, disk, want, what)
	}

	f := create(t, fsys, "f")
	step("create", EntryBytes, 0)
	_, errno := f.Write(make([]byte, 100))
	step("write 100", 100, errno)
	_, errno = f.Pwrite(make([]byte, 100), 0)
	step("overwrite 100", 100, errno)
	_, errno = f.Pwrite([]byte("x"), 1000)
	step("pwrite 1 at 1000 of a 100-byte file", 901, errno)
	_, errno = f.Seek(5000, io.SeekStart)
	step("seek past the end", 0, errno)
	_, errno = f.Write([]byte("y"))
	step("write 1 at 5000 of a 1001-byte file", 4000, errno)
	step("truncate to 10000", 10000-5001, f.Truncate(10000))
	step("truncate to 10", 0, f.Truncate(10))

	// A file shrunk behind an open one: its next write leaves a hole.
	t2, errno := fsys.OpenFile("f", sys.O_WRONLY|sys.O_TRUNC, 0)
	step("open O_TRUNC", 0, errno)
	t2.Close()
	_, errno = f.Write([]byte("z"))
	step("write 1 at 5001 (f's offset) of a file truncated to 0", 5002, errno)
	r, errno := fsys.OpenFile("inner.txt", sys.O_RDWR, 0)
	step("open inner.txt", 0, errno)
	if b, err := io.ReadAll(readerOf(r)); err != nil || string(b) != innerText {
		t.Fatalf("read inner.txt = %q, %v", b, err)
	}
	step("truncate inner.txt to 0", 0, r.Truncate(0))
	_, errno = r.Write([]byte("z"))
	step("write 1 at the old end", int64(len(innerText))+1, errno)
	r.Close()

	a, errno := fsys.OpenFile("f", sys.O_WRONLY|sys.O_APPEND, 0)
	step("open existing", 0, errno)
	_, errno = a.Write([]byte("appended"))
	step("append 8", 8, errno)
	a.Close()

	step("mkdir", EntryBytes, fsys.Mkdir("d", 0o755))
	step("symlink", EntryBytes, fsys.Symlink("f", "l"))
	step("link", EntryBytes, fsys.Link("f", "h"))
	c, errno := fsys.OpenFile("dangling", sys.O_WRONLY|sys.O_CREAT, 0o644)
	step("create through a dangling symlink", EntryBytes, errno)
	c.Close()
	c, errno = fsys.OpenFile("f", sys.O_RDWR|sys.O_CREAT, 0o644)
	step("O_CREAT of an existing file", 0, errno)
	c.Close()

	failed := map[string]func() sys.Errno{
		"mkdir existing":  func() sys.Errno { return fsys.Mkdir("d", 0o755) },
		"symlink over f":  func() sys.Errno { return fsys.Symlink("x", "f") },
		"link to missing": func() sys.Errno { return fsys.Link("missing", "m") },
		"create in missing dir": func() sys.Errno {
			_, e := fsys.OpenFile("missing/x", sys.O_WRONLY|sys.O_CREAT, 0o644)
			return e
		},
		"write read-only file": func() sys.Errno {
			r, e := fsys.OpenFile("f", sys.O_RDONLY, 0)
			if e != 0 {
				return 0
			}
			defer r.Close()
			_, e = r.Write([]byte("x"))
			return e
		},
	}
	for name, op := range failed {
		if errno := op(); errno == 0 {
			t.Errorf("%s succeeded", name)
		}
		wantUsed(t, disk, want, name)
	}

	ro := openShared(t, fx.dir, true, disk)
	if errno := ro.Mkdir("e", 0o755); errno != sys.EROFS {
		t.Errorf("read-only Mkdir = %v, want EROFS", errno)
	}
	wantUsed(t, disk, want, "read-only operations")
	if disk.Refused() {
		t.Error("Refused() with budget to spare")
	}
}

// TestDiskHammer writes from many goroutines through FSs sharing a small
// budget: the files together hold exactly what was spent on bytes, never
// more than the budget.
func TestDiskHammer(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	const workers, budget = 16, 256 << 10
	disk := NewDisk(budget)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan string, workers)
	)
	for w := range workers {
		fsys := openShared(t, dir, false, disk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f, errno := fsys.OpenFile(fmt.Sprint("f", w), sys.O_WRONLY|sys.O_CREAT|sys.O_EXCL, 0o644)
			if errno == sys.EIO {
				return // the budget went to the others
			}
			if errno != 0 {
				errs <- fmt.Sprintf("create: %v", errno)
				return
			}
			defer f.Close()
			buf := make([]byte, 1000+w)
			for {
				if _, errno := f.Write(buf); errno == sys.EIO {
					return
				} else if errno != 0 {
					errs <- fmt.Sprintf("write: %v", errno)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		sum += fi.Size()
	}
	if got, want := disk.Used(), sum+int64(len(entries))*EntryBytes; got != want || got != budget {
		t.Errorf("Used() = %d; the %d files hold %d bytes (%d with their entries); want all %d spent on them",
			got, len(entries), sum, want, budget)
	}
}

// readerOf reads f as an io.Reader; its errors are sys.Errno.
func readerOf(f sys.File) io.Reader { return fileReader{f} }

type fileReader struct{ f sys.File }

func (r fileReader) Read(p []byte) (int, error) {
	n, errno := r.f.Read(p)
	switch {
	case errno != 0:
		return n, errno
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
