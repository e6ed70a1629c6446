package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/ci/gotool"
	"github.com/spindle-hq/spindle/modules"
)

// TestWriteOutputs: a run's outputs are written into $WORK as new files
// (a file linked elsewhere keeps its bytes), with their exec bit, the
// directories on the way made; a tree with a symlink is refused.
func TestWriteOutputs(t *testing.T) {
	st, err := modules.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	made := t.TempDir()
	writeFile(t, filepath.Join(made, "b001/_pkg_.a"), []byte("archive"), 0o644)
	writeFile(t, filepath.Join(made, "b001/exe/a.out"), []byte("binary"), 0o755)
	tree, err := st.PutDir(made, nil)
	if err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	writeFile(t, filepath.Join(work, "b001/_pkg_.a"), []byte("old"), 0o644)
	other := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Link(filepath.Join(work, "b001/_pkg_.a"), other); err != nil {
		t.Fatal(err)
	}
	if err := writeOutputs(st, tree, work); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"b001/_pkg_.a": "archive", "b001/exe/a.out": "binary"} {
		if b, err := os.ReadFile(filepath.Join(work, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", name, b, err, want)
		}
	}
	if b, _ := os.ReadFile(other); string(b) != "old" {
		t.Errorf("a link to the file replaced reads %q: it was written in place", b)
	}
	if fi, err := os.Stat(filepath.Join(work, "b001/exe/a.out")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("a.out: %v (%v), want executable", fi.Mode(), err)
	}
	if des, _ := os.ReadDir(filepath.Join(work, "b001")); len(des) != 2 {
		t.Errorf("b001 holds %d entries, want 2 (no temporary file left)", len(des))
	}

	// A symlink in the tree is refused, by name.
	if err := os.Symlink("/etc/passwd", filepath.Join(made, "b001/link")); err != nil {
		t.Fatal(err)
	}
	tree, err = st.PutDir(made, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeOutputs(st, tree, t.TempDir()); err == nil || !strings.Contains(err.Error(), "b001/link: a symlink") {
		t.Errorf("writeOutputs of a tree with a symlink = %v, want it refused by name", err)
	}
}

// TestToolMounts: shipped, a run's mounts are trees of the files it names
// at their own paths, a directory it names nothing of is left out, and
// the work directory is the one collected mount; granted, they are the
// directories themselves.
func TestToolMounts(t *testing.T) {
	st, err := modules.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	src, work, unused := filepath.Join(root, "src"), filepath.Join(root, "go-build1"), filepath.Join(root, "unused")
	writeFile(t, filepath.Join(src, "main.go"), []byte("package main"), 0o644)
	writeFile(t, filepath.Join(src, "secret"), []byte("not named"), 0o644)
	writeFile(t, filepath.Join(work, "b001/importcfg"), []byte(""), 0o644)
	writeFile(t, filepath.Join(unused, "x"), []byte(""), 0o644)
	mounts := []gotool.Mount{{Dir: src, ReadOnly: true}, {Dir: unused, ReadOnly: true}, {Dir: work}}
	files := []string{filepath.Join(src, "main.go"), filepath.Join(work, "b001")}

	got, err := toolMounts(st, mounts, files, work, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Guest != src || !got[0].ReadOnly || got[0].Collect || got[0].Host != "" ||
		got[1].Guest != work || got[1].ReadOnly || !got[1].Collect {
		t.Fatalf("shipped mounts = %+v, want src read-only and work collected, as trees", got)
	}
	d, err := st.ReadDir(got[0].Tree)
	if err != nil || len(d.Entries) != 1 || d.Entries[0].Name != "main.go" {
		t.Errorf("src's tree = %+v (%v), want main.go alone", d, err)
	}

	got, err = toolMounts(st, mounts, files, work, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Host != unused || got[1].Guest != unused || got[2].Host != work || got[2].ReadOnly || got[2].Tree != "" {
		t.Errorf("granted mounts = %+v, want the three directories", got)
	}
}
