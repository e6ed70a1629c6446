package guest

import (
	"errors"
	"io/fs"
	"runtime"
	"testing"
)

func TestMatchPreopen(t *testing.T) {
	dirs := []preopenDir{{3, "/src"}, {4, "/dest"}, {5, "/dest/sub"}, {6, "/"}}
	for _, tt := range []struct {
		p    string
		fd   int32
		rel  string
		none bool
	}{
		{"/src/a/b", 3, "a/b", false},
		{"/src", 3, ".", false},
		{"/srcx/y", 6, "srcx/y", false}, // whole components, not Go's string prefix
		{"/dest/sub/f", 5, "f", false},  // the longest
		{"/dest/subx", 4, "subx", false},
		{"/", 6, ".", false},
		{"/etc/passwd", 6, "etc/passwd", false},
	} {
		d, rel, ok := matchPreopen(dirs, tt.p)
		if ok == tt.none || d.fd != tt.fd || rel != tt.rel {
			t.Errorf("matchPreopen(%q) = %d, %q, %v; want %d, %q", tt.p, d.fd, rel, ok, tt.fd, tt.rel)
		}
	}
	if _, _, ok := matchPreopen(dirs[:2], "/etc"); ok {
		t.Error("matchPreopen(/etc) without / found a preopen")
	}
	// Natively there is no host to ask; under spindle exec (wasip1, a
	// spindle host) /x is not in the view.
	if _, err := Lattrs("/x"); runtime.GOOS != "wasip1" && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Lattrs off wasip1 = %v, want ErrUnsupported", err)
	} else if runtime.GOOS == "wasip1" && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lattrs on wasip1 of a path outside the view = %v, want ErrNotExist", err)
	}
	if _, err := Regrant("/x", 4); !errors.Is(err, ErrInvalid) {
		t.Errorf("Regrant(what 4) = %v, want ErrInvalid", err)
	}
}
