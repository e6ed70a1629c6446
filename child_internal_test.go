package spindle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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

// TestChildCPUProfile: a child started with SPINDLE_CHILD_CPUPROFILE=DIR
// in its environment writes DIR/cpu-PID.pprof, a CPU profile that ends
// when it exits.
func TestChildCPUProfile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(childProfileEnv, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := NewMaster(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.StartLocal(ctx, LocalOptions{Name: "profiled"})
	if err != nil {
		t.Fatal(err)
	}
	var st StatsResult
	if err := c.Call(ctx, "stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", st.PID)))
	if err != nil {
		t.Fatal(err)
	}
	// A profile is gzipped protobuf: written whole only at StopCPUProfile.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("cpu-%d.pprof is %d bytes, not a gzipped profile", st.PID, len(b))
	}
}
