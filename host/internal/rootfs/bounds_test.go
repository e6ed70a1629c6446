package rootfs

import (
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// TestOpenFileBound holds files open up to a shared bound: the next open
// fails with EAGAIN on either FS sharing it, an FS with a bound of its own
// still opens, and closing one file frees a slot.
func TestOpenFileBound(t *testing.T) {
	fx := newFixture(t)
	const bound = 8
	files := NewFiles(bound)
	a, err := NewShared(fx.dir, false, files, NewDisk(0))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewShared(fx.dir, true, files, NewDisk(0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := fx.open(t, true) // a bound of its own: another call

	var open []sys.File
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	for i := range bound {
		fsys := a
		if i%2 == 1 {
			fsys = b
		}
		f, errno := fsys.OpenFile("inner.txt", sys.O_RDONLY, 0)
		if errno != 0 {
			t.Fatalf("open %d: %v", i, errno)
		}
		open = append(open, f)
	}
	if got := files.Open(); got != bound {
		t.Errorf("Files.Open() = %d, want %d", got, bound)
	}
	for name, fsys := range map[string]*FS{"a": a, "b": b} {
		if f, errno := fsys.OpenFile("inner.txt", sys.O_RDONLY, 0); errno != sys.EAGAIN {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: open past the bound = %v, want EAGAIN", name, errno)
		}
	}
	f, errno := other.OpenFile("inner.txt", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatalf("another FS's open = %v, want success", errno)
	}
	f.Close()
	// A failed open does not keep its slot.
	if _, errno := a.OpenFile("missing", sys.O_RDONLY, 0); errno != sys.EAGAIN {
		t.Errorf("open of a missing file at the bound = %v, want EAGAIN", errno)
	}
	open[0].Close()
	open[0].Close() // idempotent: releases once
	if got := files.Open(); got != bound-1 {
		t.Errorf("after Close, Files.Open() = %d, want %d", got, bound-1)
	}
	if _, errno := a.OpenFile("missing", sys.O_RDONLY, 0); errno != sys.ENOENT {
		t.Errorf("open of a missing file = %v, want ENOENT", errno)
	}
	f, errno = b.OpenFile("inner.txt", sys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatalf("open after a Close = %v", errno)
	}
	open[0] = f
}

// TestSpecialFilesRefused opens a FIFO with no writer, a FIFO with no
// reader and a socket: each fails at once with ENOTSUP, where a plain open
// of the FIFO would block until its other end appears.
func TestSpecialFilesRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_NONBLOCK opens are Linux only")
	}
	fx := newFixture(t)
	if err := syscall.Mkfifo(filepath.Join(fx.dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(fx.dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fsys := fx.open(t, false)
	files := fsys.files
	for _, tc := range []struct {
		name string
		flag sys.Oflag
	}{
		{"fifo", sys.O_RDONLY},
		{"fifo", sys.O_WRONLY},
		{"fifo", sys.O_RDWR},
		{"sock", sys.O_RDONLY},
	} {
		done := make(chan sys.Errno, 1)
		go func() {
			f, errno := fsys.OpenFile(tc.name, tc.flag, 0)
			if f != nil {
				f.Close()
			}
			done <- errno
		}()
		select {
		case errno := <-done:
			if errno != sys.ENOTSUP && !(tc.name == "sock" && errno != 0) {
				t.Errorf("OpenFile(%s, %v) = %v, want ENOTSUP", tc.name, tc.flag, errno)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("OpenFile(%s, %v) blocked", tc.name, tc.flag)
		}
	}
	if n := files.Open(); n != 0 {
		t.Errorf("refused opens hold %d slots", n)
	}
}
