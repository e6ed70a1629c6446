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
	if err := writeOutputs(st, tree, work, []string{"b001"}); err != nil {
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
	if err := writeOutputs(st, tree, t.TempDir(), []string{"b001"}); err == nil || !strings.Contains(err.Error(), "b001/link: a symlink") {
		t.Errorf("writeOutputs of a tree with a symlink = %v, want it refused by name", err)
	}
}

// TestWriteOutputsHostile: a tree from a hostile context costs a bounded
// amount and writes nothing outside the run's own directories: a path
// beside them, a directory named from many places (2^16 and 2^20 paths
// from 17 and 21 directory blobs: past the outputs' bound, and past any
// tree's), a file over a directory, a size that lies.
func TestWriteOutputsHostile(t *testing.T) {
	st, err := modules.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file, _ := st.Put([]byte("x"))
	put := func(entries ...modules.Entry) (string, int64) {
		t.Helper()
		b, err := modules.EncodeDir(&modules.Dir{Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		return h, int64(len(b))
	}
	fileEntry := func(name string) modules.Entry {
		return modules.Entry{Name: name, Kind: modules.EntryFile, Digest: file, Size: 1}
	}
	dirEntry := func(name, h string, size int64) modules.Entry {
		return modules.Entry{Name: name, Kind: modules.EntryDir, Digest: h, Size: size}
	}
	b001, n := put(fileEntry("_pkg_.a"))
	b002, m := put(fileEntry("_pkg_.a"))
	beside, _ := put(dirEntry("b001", b001, n), dirEntry("b002", b002, m))

	// A directory named from many places: 2^levels paths from levels+1
	// directory blobs.
	bomb := func(levels int) string {
		d, size := put(fileEntry("f"))
		for range levels {
			d, size = put(dirEntry("a", d, size), dirEntry("b", d, size))
		}
		h, _ := put(dirEntry("b001", d, size))
		return h
	}

	overDir, _ := put(dirEntry("b001", func() string { h, _ := put(fileEntry("sub")); return h }(), 0))
	liar, _ := put(dirEntry("b001", func() string {
		h, _ := put(modules.Entry{Name: "big", Kind: modules.EntryFile, Digest: file, Size: 5})
		return h
	}(), 0))

	for _, tt := range []struct {
		name, tree, want string
	}{
		{"beside", beside, "b002: outside the run's own directories"},
		{"past the outputs' bound", bomb(16), "more than 100000 entries"},
		{"past any tree's bound", bomb(20), "more than 1048576 paths"},
		{"file over a directory", overDir, "sub: file exists"},
		{"size that lies", liar, "b001/big: 1 bytes, where its entry says 5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			if err := os.MkdirAll(filepath.Join(work, "b001", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(work, "b001", "sub", "keep"), []byte("kept"), 0o644)
			if err := os.Mkdir(filepath.Join(work, "b002"), 0o755); err != nil {
				t.Fatal(err)
			}
			err := writeOutputs(st, tt.tree, work, []string{"b001"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("writeOutputs = %v, want an error with %q", err, tt.want)
			}
			if des, _ := os.ReadDir(filepath.Join(work, "b002")); len(des) != 0 {
				t.Errorf("b002, not the run's, holds %d entries", len(des))
			}
			if b, err := os.ReadFile(filepath.Join(work, "b001", "sub", "keep")); err != nil || string(b) != "kept" {
				t.Errorf("b001/sub/keep = %q, %v: a directory was replaced", b, err)
			}
		})
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

	// A file that is its mount's directory ships it whole; one in no
	// mount is an error.
	got, err = toolMounts(st, mounts, []string{unused, filepath.Join(work, "b001")}, work, true)
	if err != nil || len(got) != 2 || got[0].Guest != unused {
		t.Fatalf("shipping a whole mount: %+v, %v", got, err)
	}
	if d, err := st.ReadDir(got[0].Tree); err != nil || len(d.Entries) != 1 || d.Entries[0].Name != "x" {
		t.Errorf("the whole mount's tree = %+v (%v), want x", d, err)
	}
	if _, err := toolMounts(st, mounts, []string{"/elsewhere/f"}, work, true); err == nil || !strings.Contains(err.Error(), "/elsewhere/f: in none of the run's directories") {
		t.Errorf("a file in no mount: %v", err)
	}

	got, err = toolMounts(st, mounts, files, work, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[1].Host != unused || got[1].Guest != unused || got[2].Host != work || got[2].ReadOnly || got[2].Tree != "" {
		t.Errorf("granted mounts = %+v, want the three directories", got)
	}
}
