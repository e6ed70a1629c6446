package spindle

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParentStream(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// Dups, which parentStream's result owns and closes.
	fd := func(f *os.File) string {
		rc, _ := f.SyscallConn()
		var d int
		_ = rc.Control(func(fd uintptr) { d, _ = dupFD(int(fd)) })
		return strconv.Itoa(d)
	}
	for _, bad := range []string{"", "x", "-1", "3,4,5", "3,", ",4"} {
		if _, err := parentStream(bad); err == nil {
			t.Errorf("parentStream(%q) = nil error", bad)
		}
	}
	c, err := parentStream(fd(r) + "," + fd(w))
	if err != nil {
		t.Fatalf("parentStream(R,W): %v", err)
	}
	defer c.Close()
	pc, ok := c.(*pipeConn)
	if !ok {
		t.Fatalf("parentStream(R,W) = %T, want a *pipeConn", c)
	}
	// What goes out of the write end comes back in at the read end: the
	// two descriptors are used the way round they were given.
	if _, err := pc.Write([]byte("hop")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 3)
	if _, err := pc.Read(buf); err != nil || string(buf) != "hop" {
		t.Fatalf("read = %q, %v; want %q", buf, err, "hop")
	}
	if _, err := pc.SyscallConn(); err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
}

func dupFD(fd int) (int, error) { return unix.Dup(fd) }
