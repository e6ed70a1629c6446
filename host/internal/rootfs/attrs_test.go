package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tetratelabs/wazero/experimental/sys"
)

// TestRegrant: Attrs reports the mode bits and owner of an entry, not
// following a symlink; Regrant gives an existing entry the granted mode
// for its type and the granted owner, only where they differ, and says
// what it changed; it changes nothing where nothing is granted.
func TestRegrant(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "f"), "x")
	if err := os.Chmod(filepath.Join(dir, "f"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "ln")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	fsys, err := New(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	uid, gid := os.Geteuid(), os.Getegid()
	if a, errno := fsys.Attrs("f"); errno != 0 || a != (Attrs{Mode: 0o755 | fs.ModeSetuid, UID: uid, GID: gid}) {
		t.Errorf("Attrs(f) = %+v, %v; want 04755, %d:%d", a, errno, uid, gid)
	}
	if a, errno := fsys.Attrs("ln"); errno != 0 || a.Mode != 0o777 {
		t.Errorf("Attrs(ln) = %+v, %v; want the link's own 0777", a, errno)
	}
	if _, errno := fsys.Attrs("missing"); errno != sys.ENOENT {
		t.Errorf("Attrs(missing) = %v, want ENOENT", errno)
	}
	if _, errno := fsys.Attrs("../x"); errno != sys.EPERM {
		t.Errorf("Attrs(../x) = %v, want EPERM", errno)
	}

	// Nothing granted: nothing changed.
	fsys.SetMade(Made{UID: -1, GID: -1})
	for _, what := range []int{RegrantMode, RegrantOwner} {
		if c, granted, errno := fsys.Regrant("f", what); granted || c != 0 || errno != 0 {
			t.Errorf("Regrant(f, %d) without a grant = %d, %v, %v; want not granted", what, c, granted, errno)
		}
	}
	// A file mode only: a directory's mode is not granted.
	fsys.SetMade(Made{FileMode: 0o640, UID: -1, GID: -1})
	if _, granted, _ := fsys.Regrant("d", RegrantMode); granted {
		t.Error("Regrant(d, mode) with a file mode only was granted")
	}
	fsys.SetMade(Made{FileMode: 0o640, DirMode: 0o750, Chown: true, UID: uid, GID: gid})
	for _, tt := range []struct {
		name     string
		what     int
		changed  int
		errno    sys.Errno
		wantMode fs.FileMode
	}{
		{"f", RegrantMode, RegrantMode, 0, 0o640}, // setuid cleared
		{"f", RegrantMode | RegrantOwner, 0, 0, 0o640},
		{"d", RegrantMode, RegrantMode, 0, 0o750},
		{"ln", RegrantMode | RegrantOwner, 0, 0, 0o777}, // a symlink has no mode to give
		{"fifo", RegrantMode, 0, sys.ENOTSUP, 0o600},
		{"missing", RegrantMode, 0, sys.ENOENT, 0},
		{"f", 4, 0, sys.EINVAL, 0o640},
	} {
		c, granted, errno := fsys.Regrant(tt.name, tt.what)
		if !granted || c != tt.changed || errno != tt.errno {
			t.Errorf("Regrant(%s, %d) = %d, %v, %v; want %d, granted, %v", tt.name, tt.what, c, granted, errno, tt.changed, tt.errno)
		}
		if tt.wantMode != 0 {
			if a, _ := fsys.Attrs(tt.name); a.Mode != tt.wantMode {
				t.Errorf("after Regrant(%s, %d): mode %v, want %v", tt.name, tt.what, a.Mode, tt.wantMode)
			}
		}
	}
	for _, root := range []string{".", "d/.."} {
		if c, granted, errno := fsys.Regrant(root, RegrantMode|RegrantOwner); granted || c != 0 || errno != 0 {
			t.Errorf("Regrant(%q) of the mount's own directory = %d, %v, %v; want not granted", root, c, granted, errno)
		}
	}
	if os.Geteuid() == 0 {
		fsys.SetMade(Made{FileMode: 0o640, Chown: true, UID: 65534, GID: -1})
		if c, _, errno := fsys.Regrant("ln", RegrantOwner); c != RegrantOwner || errno != 0 {
			t.Errorf("Regrant(ln, owner) = %d, %v", c, errno)
		}
		if a, _ := fsys.Attrs("ln"); a.UID != 65534 || a.GID != gid {
			t.Errorf("ln after Regrant: %+v, want uid 65534, gid %d kept", a, gid)
		}
		if a, _ := fsys.Attrs("f"); a.UID != uid {
			t.Errorf("f's owner changed through the symlink: %+v", a)
		}
	}
	// Read-only: nothing is granted.
	ro, err := New(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ro.SetMade(Made{FileMode: 0o600, UID: -1, GID: -1})
	if _, granted, _ := ro.Regrant("f", RegrantMode); granted {
		t.Error("Regrant in a read-only FS was granted")
	}
	if _, errno := ro.Attrs("f"); errno != 0 {
		t.Errorf("Attrs in a read-only FS = %v", errno)
	}
}
