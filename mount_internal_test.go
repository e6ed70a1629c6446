package spindle

import (
	"strings"
	"testing"
)

func TestCheckMount(t *testing.T) {
	tree := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		host, tree   string
		ro, collect  bool
		file, dir    uint32
		owner, group string
		want         string // "" for valid
	}{
		{host: "/srv", file: 0o640, dir: 0o750, owner: "web", group: "web"},
		{tree: tree, ro: true},
		{tree: tree},
		{host: "/srv", tree: tree, want: "not both"},
		{tree: "nothex", want: "not a digest"},
		{tree: tree, file: 0o644, want: "tree mount takes no file mode"},
		{tree: tree, collect: true},
		{tree: tree, collect: true, ro: true, want: "a collected mount is a writable copy of a tree"},
		{host: "/srv", collect: true, want: "a collected mount is a writable copy of a tree"},
		{tree: tree, collect: true, owner: "root", want: "tree mount takes no file mode"},
		{host: "/srv", ro: true, owner: "root", want: "read-only mount takes no"},
		{host: "/srv", file: 0o4755, want: "only permission bits"},
		{host: "/srv", dir: 0o1777, want: "only permission bits"},
	} {
		err := checkMount(tt.host, tt.tree, tt.ro, tt.collect, tt.file, tt.dir, tt.owner, tt.group)
		if (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want))) {
			t.Errorf("checkMount(%+v) = %v, want %q", tt, err, tt.want)
		}
	}
	if id, err := lookupID("0", false); err != nil || id != 0 {
		t.Errorf("lookupID(0) = %d, %v", id, err)
	}
	if id, err := lookupID("root", false); err != nil || id != 0 {
		t.Errorf("lookupID(root) = %d, %v", id, err)
	}
	if _, err := lookupID("no-such-user-here", true); err == nil || !strings.Contains(err.Error(), `group "no-such-user-here": not known on this machine`) {
		t.Errorf("lookupID of an unknown group = %v", err)
	}
}
