package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// TestMade: what the guest makes in a mount gets the granted mode exactly
// (not less the umask) and the granted owner; what was there keeps its
// own; a grant that cannot be honoured fails the create and leaves
// nothing.
func TestMade(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "old"), "x")
	if err := os.Chmod(filepath.Join(dir, "old"), 0o600); err != nil {
		t.Fatal(err)
	}
	fsys, err := New(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	made := Made{FileMode: 0o664, DirMode: 0o751, UID: -1, GID: -1}
	if os.Geteuid() == 0 {
		made.Chown, made.UID, made.GID = true, 65534, 65534
	}
	fsys.SetMade(made)
	for _, p := range []string{"new", "old"} {
		f, errno := fsys.OpenFile(p, sys.O_CREAT|sys.O_RDWR, 0o600)
		if errno != 0 {
			t.Fatalf("OpenFile(%s, O_CREAT) = %v", p, errno)
		}
		f.Close()
	}
	if errno := fsys.Mkdir("d", 0o700); errno != 0 {
		t.Fatalf("Mkdir = %v", errno)
	}
	if errno := fsys.Symlink("new", "l"); errno != 0 {
		t.Fatalf("Symlink = %v", errno)
	}
	for _, tt := range []struct {
		name string
		mode fs.FileMode
		uid  int
	}{
		{"new", 0o664, made.UID},
		{"old", 0o600, os.Geteuid()}, // there before: untouched
		{"d", fs.ModeDir | 0o751, made.UID},
		{"l", 0, made.UID},
	} {
		fi, err := os.Lstat(filepath.Join(dir, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		uid := int(fi.Sys().(*syscall.Stat_t).Uid)
		if tt.uid == -1 {
			tt.uid = os.Geteuid()
		}
		if (tt.mode != 0 && fi.Mode() != tt.mode) || uid != tt.uid {
			t.Errorf("%s: mode %v, uid %d; want %v, %d", tt.name, fi.Mode(), uid, tt.mode, tt.uid)
		}
	}

	// A chown the process may not make: the create fails, nothing stays.
	if os.Geteuid() == 0 {
		return
	}
	fsys.SetMade(Made{Chown: true, UID: 0, GID: -1})
	if _, errno := fsys.OpenFile("denied", sys.O_CREAT|sys.O_RDWR, 0); errno != sys.EPERM {
		t.Errorf("create with an owner it cannot give = %v, want EPERM", errno)
	}
	if _, err := os.Lstat(filepath.Join(dir, "denied")); err == nil {
		t.Error("a create whose chown failed left its file")
	}
}
