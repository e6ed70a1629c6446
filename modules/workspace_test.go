package modules_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/modules"
)

// tempDst returns a path for Materialize to make, removed (read-only
// directories and all) after the test.
func tempDst(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dst")
	t.Cleanup(func() {
		if err := modules.RemoveTree(dst); err != nil {
			t.Errorf("RemoveTree(%s): %v", dst, err)
		}
	})
	return dst
}

// readDisk returns the files under dir as listTree does, checking the
// modes Materialize promises.
func readDisk(t *testing.T, dir string, modes bool) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		m := fi.Mode()
		switch {
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "l:" + target
		case m.IsDir():
			if modes && m.Perm() != 0o555 {
				t.Errorf("%s: directory mode %v, want 0555", rel, m.Perm())
			}
			out[rel] = "d"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			kind := "f:"
			if m&0o111 != 0 {
				kind = "x:"
			}
			if want := map[string]fs.FileMode{"f:": 0o444, "x:": 0o555}[kind]; modes && m.Perm() != want {
				t.Errorf("%s: mode %v, want %v", rel, m.Perm(), want)
			}
			out[rel] = kind + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func nlink(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Nlink)
}

// TestMaterializeEachEdgeOnce materializes a tree of 200 files in two
// grandchildren of the master at once (master -> a -> {b, c}) and counts
// what crossed each edge: every blob once.
func TestMaterializeEachEdgeOnce(t *testing.T) {
	testutil.VerifyNone(t)
	m := newNode(t, nil, nodeOpts{store: modules.StoreConfig{Dir: t.TempDir()}})
	a := newCtx(t, m)
	b := newNode(t, a, nodeOpts{store: modules.StoreConfig{Dir: t.TempDir()}}) // hard links
	c := newCtx(t, a)                                                          // memory only: writes
	ctx := ctxT(t)

	ws := t.TempDir()
	files := make(map[string]string)
	for i := range 190 {
		content := fmt.Sprintf("file %d\n", i)
		if i%10 == 0 {
			content = "the same in 19 files\n"
		}
		files[fmt.Sprintf("d%d/s%d/f%d.txt", i%7, i%3, i)] = content
	}
	for i := range 6 {
		files[fmt.Sprintf("bin/tool%d", i)] = fmt.Sprintf("x:#!/bin/sh\necho %d\n", i)
	}
	for i := range 3 {
		files[fmt.Sprintf("big/mid%d", i)] = string(blob(i, 3<<20))
	}
	files["big/large"] = string(blob(9, 8<<20+1)) // alone, by GET_MODULE
	files["link"] = "->d1/s1/f1.txt"
	files["d0/up"] = "->../bin"
	writeTree(t, ws, files)
	root, err := m.svc.Store().PutDir(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := m.svc.Store().Blobs(root)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, h := range blobs {
		bs, _ := m.svc.Store().Get(h)
		total += int64(len(bs))
	}

	dstB, dstC := tempDst(t), tempDst(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, job := range []struct {
		n   *ctxNode
		dst string
	}{{b, dstB}, {c, dstC}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = job.n.svc.Materialize(ctx, root, job.dst)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := readDisk(t, ws, false)
	sameTree(t, readDisk(t, dstB, true), want)
	sameTree(t, readDisk(t, dstC, true), want)

	n := int64(len(blobs))
	for _, e := range []struct {
		from, to *ctxNode
	}{{m, a}, {a, b}, {a, c}} {
		if got, bytes := e.from.svc.ServedTo(e.to.r.ID()); got != n || bytes != total {
			t.Errorf("edge %d->%d carried %d blobs, %d bytes; want %d, %d", e.from.r.ID(), e.to.r.ID(), got, bytes, n, total)
		}
	}
	for _, x := range []*ctxNode{a, b, c} {
		if st := x.svc.Stats(); st.Fetches != n || st.FetchedBytes != total {
			t.Errorf("context %d fetched %d blobs, %d bytes; want %d, %d", x.r.ID(), st.Fetches, st.FetchedBytes, n, total)
		}
	}
	t.Logf("%d blobs, %d bytes; requests: a %d, b %d, c %d", n, total, a.svc.Stats().FetchRequests, b.svc.Stats().FetchRequests, c.svc.Stats().FetchRequests)
	// b's store is on disk: its files are links to it; c's is in memory.
	if got := nlink(t, filepath.Join(dstB, "d1/s1/f1.txt")); got < 2 {
		t.Errorf("b: a file has %d links, want a link to the store", got)
	}
	if got := nlink(t, filepath.Join(dstB, "bin/tool1")); got != 1 {
		t.Errorf("b: an executable has %d links, want a copy (its mode is not the store's)", got)
	}
	if got := nlink(t, filepath.Join(dstC, "d1/s1/f1.txt")); got != 1 {
		t.Errorf("c: a file has %d links, want 1", got)
	}

	// Again in b: from its own store, nothing fetched.
	before := b.svc.Stats()
	dst2 := tempDst(t)
	if err := os.Mkdir(dst2, 0o700); err != nil { // an empty dir will do
		t.Fatal(err)
	}
	if err := b.svc.Materialize(ctx, root, dst2); err != nil {
		t.Fatal(err)
	}
	if after := b.svc.Stats(); after != before {
		t.Errorf("a second Materialize fetched: %+v, then %+v", before, after)
	}
	sameTree(t, readDisk(t, dst2, true), want)
	// A non-empty destination is refused.
	if err := b.svc.Materialize(ctx, root, dst2); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Materialize into a full directory = %v", err)
	}
}

func TestMaterializeErrors(t *testing.T) {
	testutil.VerifyNone(t)
	m := newCtx(t, nil)
	c := newNode(t, m, nodeOpts{store: modules.StoreConfig{Dir: t.TempDir()}})
	ctx := ctxT(t)
	st := m.svc.Store()
	put := func(d *modules.Dir) (string, int64) {
		b := mustEncode(t, d)
		h, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		return h, int64(len(b))
	}
	good, _ := st.Put([]byte("good"))
	missing := modules.Hash([]byte("nobody has this"))
	sub, subSize := put(&modules.Dir{Entries: []modules.Entry{{Name: "x", Kind: modules.EntryFile, Digest: missing, Size: 3}}})
	withMissing, _ := put(&modules.Dir{Entries: []modules.Entry{
		{Name: "a", Kind: modules.EntryFile, Digest: good, Size: 4},
		{Name: "sub", Kind: modules.EntryDir, Digest: sub, Size: subSize},
	}})
	missingDir, _ := put(&modules.Dir{Entries: []modules.Entry{{Name: "d", Kind: modules.EntryDir, Digest: missing, Size: 1}}})
	wrongSize, _ := put(&modules.Dir{Entries: []modules.Entry{{Name: "a", Kind: modules.EntryFile, Digest: good, Size: 5}}})
	wrongDirSize, _ := put(&modules.Dir{Entries: []modules.Entry{{Name: "d", Kind: modules.EntryDir, Digest: sub, Size: subSize + 1}}})
	notADir, _ := put(&modules.Dir{Entries: []modules.Entry{{Name: "d", Kind: modules.EntryDir, Digest: good, Size: 4}}})
	for _, tt := range []struct {
		name string
		tree string
		want error
	}{
		{"missing file", withMissing, modules.ErrNotFound},
		{"missing dir", missingDir, modules.ErrNotFound},
		{"wrong size", wrongSize, modules.ErrBadTree},
		{"wrong dir size", wrongDirSize, modules.ErrBadTree},
		{"a file named as a dir", notADir, modules.ErrBadTree},
		{"2^21 paths", bomb(t, st, 21, "leaf"), modules.ErrBadTree},
		{"too deep", chainTree(t, st, modules.MaxTreeDepth+1), modules.ErrBadTree},
		{"malformed digest", "xyz", modules.ErrBadHash},
	} {
		dst := tempDst(t)
		err := c.svc.Materialize(ctx, tt.tree, dst)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Materialize = %v, want %v", tt.name, err, tt.want)
		}
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the failed destination was left: %v", tt.name, err)
		}
	}
	// Just deep enough works.
	if err := c.svc.Materialize(ctx, chainTree(t, st, modules.MaxTreeDepth), tempDst(t)); err != nil {
		t.Errorf("Materialize(%d levels) = %v", modules.MaxTreeDepth, err)
	}
	// An empty directory given as dst is emptied again after a failure.
	dst := tempDst(t)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.svc.Materialize(ctx, withMissing, dst); !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("Materialize = %v", err)
	}
	if des, err := os.ReadDir(dst); err != nil || len(des) != 0 {
		t.Fatalf("dst after a failure: %v, %v; want it empty", des, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if err := c.svc.Materialize(ctx, wrongSize, file); err == nil {
		t.Error("Materialize onto a file succeeded")
	}
	if err := c.svc.Materialize(ctx, wrongSize, filepath.Join(t.TempDir(), "no/such/parent")); err == nil {
		t.Error("Materialize under a missing parent succeeded")
	}
}

func TestCollect(t *testing.T) {
	testutil.VerifyNone(t)
	out := t.TempDir()
	writeTree(t, out, map[string]string{
		"fmt.txt":         "formatted",
		"dist/a.txt":      "a",
		"dist/sub/b.bin":  "x:binary",
		"dist/link":       "->a.txt",
		"dist/esc":        "->/etc/passwd",
		"notdeclared.txt": "not taken",
		"lnk":             "->dist",
		"deep/x/y.txt":    "y",
		"deep/x/z.txt":    "z, not declared",
	})
	os.MkdirAll(filepath.Join(out, "dist/empty"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(out, "dist/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := modules.NewStore("")
	h, err := st.Collect(out, []string{"fmt.txt", "dist", "deep/x/y.txt"}, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, listTree(t, st, h), map[string]string{
		"fmt.txt": "f:formatted",
		"dist":    "d", "dist/a.txt": "f:a", "dist/sub": "d", "dist/sub/b.bin": "x:binary",
		"dist/link": "l:a.txt", "dist/esc": "l:/etc/passwd", "dist/empty": "d",
		"deep": "d", "deep/x": "d", "deep/x/y.txt": "f:y",
	})
	if s := st.Stats(); s.PinnedBytes != 0 || s.MemBytes == 0 {
		t.Errorf("Stats() = %+v; want the outputs cached, not pinned", s)
	}
	// The order of the declared paths does not matter.
	if h2, err := st.Collect(out, []string{"deep/x/y.txt", "fmt.txt", "dist"}, modules.CollectLimits{}); err != nil || h2 != h {
		t.Errorf("Collect in another order = %s, %v; want %s", h2, err, h)
	}
	// A declared symlink is a symlink entry, never followed.
	if h, err := st.Collect(out, []string{"lnk"}, modules.CollectLimits{}); err != nil {
		t.Error(err)
	} else {
		sameTree(t, listTree(t, st, h), map[string]string{"lnk": "l:dist"})
	}
	// "." is all of it.
	hAll, err := st.Collect(out, []string{"."}, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if all := listTree(t, st, hAll); all["notdeclared.txt"] != "f:not taken" || all["lnk"] != "l:dist" || len(all) != 14 {
		t.Errorf("Collect(.) = %v", all)
	}
	for _, tt := range []struct {
		paths []string
		lim   modules.CollectLimits
		want  string
	}{
		{[]string{"nope.txt"}, modules.CollectLimits{}, `"nope.txt" does not exist`},
		{[]string{"deep/nope/y.txt"}, modules.CollectLimits{}, `"deep/nope/y.txt" does not exist`},
		{[]string{"lnk/a.txt"}, modules.CollectLimits{}, `"lnk" is not a directory (a symlink)`},
		{[]string{"fmt.txt/x"}, modules.CollectLimits{}, `is not a directory (a file)`},
		{[]string{"dist/fifo"}, modules.CollectLimits{}, "special file"},
		{[]string{"dist", "dist/a.txt"}, modules.CollectLimits{}, "overlap"},
		{[]string{"fmt.txt", "fmt.txt"}, modules.CollectLimits{}, "overlap"},
		{[]string{".", "fmt.txt"}, modules.CollectLimits{}, "overlap"},
		{[]string{"../x"}, modules.CollectLimits{}, "not a clean relative path"},
		{[]string{"/etc/passwd"}, modules.CollectLimits{}, "not a clean relative path"},
		{[]string{"dist//a.txt"}, modules.CollectLimits{}, "not a clean relative path"},
		{[]string{"./fmt.txt"}, modules.CollectLimits{}, "not a clean relative path"},
		{[]string{""}, modules.CollectLimits{}, "not a clean relative path"},
		{[]string{"dist"}, modules.CollectLimits{MaxBytes: 5}, "exceed 5 bytes"},
		{[]string{"fmt.txt"}, modules.CollectLimits{MaxBytes: 8}, "exceed 8 bytes"},
		{[]string{"dist"}, modules.CollectLimits{MaxFiles: 4}, "more than 4 files"},
		{[]string{"fmt.txt"}, modules.CollectLimits{MaxFiles: -1}, "negative"},
	} {
		_, err := st.Collect(out, tt.paths, tt.lim)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Collect(%q, %+v) = %v, want an error with %q", tt.paths, tt.lim, err, tt.want)
		}
	}
	if _, err := st.Collect(filepath.Join(out, "missing"), []string{"x"}, modules.CollectLimits{}); err == nil {
		t.Error("Collect of a missing dir succeeded")
	}
}

// TestCollectPullMaterialize runs the flow of one step: the master puts an
// input tree, a context materializes it, collects outputs, and the master
// pulls them and materializes them locally.
func TestCollectPullMaterialize(t *testing.T) {
	testutil.VerifyNone(t)
	m := newCtx(t, nil)
	mid := newCtx(t, m)
	c := newNode(t, mid, nodeOpts{store: modules.StoreConfig{Dir: t.TempDir()}})
	ctx := ctxT(t)
	ws := t.TempDir()
	writeTree(t, ws, map[string]string{"main.go": "package main", "lib/a.go": "package lib"})
	in, err := m.svc.Store().PutDir(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := tempDst(t)
	if err := c.svc.Materialize(ctx, in, src); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	outs := map[string]string{"report.txt": "ok\n", "build/app": "x:" + string(blob(1, 3<<20))}
	for i := range 50 {
		outs[fmt.Sprintf("build/obj/%d.o", i)] = fmt.Sprintf("object %d", i)
	}
	writeTree(t, outDir, outs)
	outTree, err := c.svc.Store().Collect(outDir, []string{"report.txt", "build"}, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.svc.PullTree(ctx, c.r.ID(), outTree, modules.CollectLimits{}); err != nil {
		t.Fatal(err)
	}
	bs, err := m.svc.Store().Blobs(outTree)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.svc.Stats(); st.Pulled != int64(len(bs)) {
		t.Fatalf("master pulled %d blobs, the tree has %d", st.Pulled, len(bs))
	}
	if mid.svc.Store().Has(outTree) {
		t.Error("the context between kept a pulled blob")
	}
	// Again: nothing moves.
	if err := m.svc.PullTree(ctx, c.r.ID(), outTree, modules.CollectLimits{}); err != nil || m.svc.Stats().Pulled != int64(len(bs)) {
		t.Fatalf("PullTree again: %v, %d pulled", err, m.svc.Stats().Pulled)
	}
	art := tempDst(t)
	if err := m.svc.Materialize(ctx, outTree, art); err != nil {
		t.Fatal(err)
	}
	got := readDisk(t, art, true)
	for p, c := range outs {
		if !strings.HasPrefix(c, "x:") {
			c = "f:" + c
		}
		if got[p] != c {
			t.Errorf("artifact %s = %.20q, want %.20q", p, got[p], c)
		}
	}
	if !bytes.Equal([]byte(got["build/app"][2:]), blob(1, 3<<20)) {
		t.Error("the executable's bytes differ")
	}
	if err := m.svc.PullTree(ctx, c.r.ID(), modules.Hash([]byte("no tree")), modules.CollectLimits{}); !errors.Is(err, modules.ErrNotFound) {
		t.Errorf("PullTree(missing) = %v, want %v", err, modules.ErrNotFound)
	}
}

// TestFileThatIsADir materializes a tree where one blob is both a file (its
// bytes) and a directory (their meaning): each use gets its own.
func TestFileThatIsADir(t *testing.T) {
	testutil.VerifyNone(t)
	m := newCtx(t, nil)
	c := newCtx(t, m)
	st := m.svc.Store()
	empty := mustEncode(t, &modules.Dir{}) // 0x90: also a one-byte file
	eh, _ := st.Put(empty)
	root, _ := st.Put(mustEncode(t, &modules.Dir{Entries: []modules.Entry{
		{Name: "dir", Kind: modules.EntryDir, Digest: eh, Size: 1},
		{Name: "file", Kind: modules.EntryFile, Digest: eh, Size: 1},
	}}))
	bs, err := st.Blobs(root)
	if err != nil || len(bs) != 2 {
		t.Fatalf("Blobs = %v, %v; want the root and the one blob", bs, err)
	}
	dst := tempDst(t)
	if err := c.svc.Materialize(ctxT(t), root, dst); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readDisk(t, dst, true), map[string]string{"dir": "d", "file": "f:\x90"})
}

// TestPullTreeBounds: the tree a context names as its outputs is held to
// the puller's limits, not the context's: too many entries or too many
// bytes is refused before any file moves, and a file whose bytes are not
// the size its entry declares is refused.
func TestPullTreeBounds(t *testing.T) {
	testutil.VerifyNone(t)
	m := newCtx(t, nil)
	c := newCtx(t, m)
	ctx := ctxT(t)
	st := c.svc.Store()
	dir := t.TempDir()
	files := map[string]string{"big": string(blob(7, 2<<20))}
	for i := range 5000 {
		files[fmt.Sprintf("many/%d", i)] = fmt.Sprint(i)
	}
	writeTree(t, dir, files)
	big, err := st.Collect(dir, []string{"big"}, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	many, err := st.Collect(dir, []string{"many"}, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	// 20 distinct directories of 5000 symlinks each, under one root.
	var top []modules.Entry
	for d := range 20 {
		var ents []modules.Entry
		for i := range 5000 {
			ents = append(ents, modules.Entry{Name: fmt.Sprintf("l%05d", i), Kind: modules.EntrySymlink, Target: fmt.Sprint(d)})
		}
		b := mustEncode(t, &modules.Dir{Entries: ents})
		h, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		top = append(top, modules.Entry{Name: fmt.Sprintf("d%02d", d), Kind: modules.EntryDir, Digest: h, Size: int64(len(b))})
	}
	links, err := st.Put(mustEncode(t, &modules.Dir{Entries: top}))
	if err != nil {
		t.Fatal(err)
	}
	// What may move before the refusal: the directories of the levels the
	// walk has seen (the one of 5000 entries is about 380 KB; the 20 of
	// symlinks 1.4 MB, declared, so within the byte bound), none of the
	// files, which hold 2 MiB or 19 KB in 5000 blobs.
	for _, tt := range []struct {
		name, tree string
		lim        modules.CollectLimits
		want       string
		moved      int64
		blobs      int64
	}{
		{"bytes", big, modules.CollectLimits{MaxBytes: 1 << 20}, "more than 1048576 bytes", 4 << 10, 1},
		{"entries", many, modules.CollectLimits{MaxFiles: 100}, "distinct directories, files and symlinks", 512 << 10, 2},
		{"directory bytes", links, modules.CollectLimits{MaxBytes: 1 << 20}, "its directories hold more than 1048576 bytes", 4 << 10, 1},
		{"symlinks", links, modules.CollectLimits{MaxFiles: 100}, "distinct directories, files and symlinks", 2 << 20, 20},
	} {
		before, beforeN := m.svc.Stats().PulledBytes, m.svc.Stats().Pulled
		err := m.svc.PullTree(ctx, c.r.ID(), tt.tree, tt.lim)
		if !errors.Is(err, modules.ErrBadTree) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: PullTree = %v, want %v saying %q", tt.name, err, modules.ErrBadTree, tt.want)
		}
		if moved, n := m.svc.Stats().PulledBytes-before, m.svc.Stats().Pulled-beforeN; moved > tt.moved || n > tt.blobs {
			t.Errorf("%s: %d bytes in %d blobs pulled before the refusal: more than its directories", tt.name, moved, n)
		}
	}
	if err := m.svc.PullTree(ctx, c.r.ID(), many, modules.CollectLimits{}); err != nil {
		t.Errorf("PullTree within the defaults: %v", err)
	}

	// A directory whose entry understates its file's size.
	f, err := st.Put([]byte(strings.Repeat("x", 100)))
	if err != nil {
		t.Fatal(err)
	}
	lie, err := st.Put(mustEncode(t, &modules.Dir{Entries: []modules.Entry{{Name: "f", Kind: modules.EntryFile, Digest: f, Size: 1}}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.svc.PullTree(ctx, c.r.ID(), lie, modules.CollectLimits{}); !errors.Is(err, modules.ErrBadTree) || !strings.Contains(err.Error(), "its entry says 1") {
		t.Errorf("PullTree of an understated file = %v, want %v", err, modules.ErrBadTree)
	}
	// One that understates it so much it claims to fit a batch: refused when
	// the context names it large, before it is pulled alone.
	huge, err := st.Put(blob(8, 9<<20))
	if err != nil {
		t.Fatal(err)
	}
	small, err := st.Put([]byte("honest"))
	if err != nil {
		t.Fatal(err)
	}
	lie, err = st.Put(mustEncode(t, &modules.Dir{Entries: []modules.Entry{
		{Name: "f", Kind: modules.EntryFile, Digest: huge, Size: 10},
		{Name: "g", Kind: modules.EntryFile, Digest: small, Size: 6}, // a batch of two: a one-hash pull may take a whole message
	}}))
	if err != nil {
		t.Fatal(err)
	}
	before := m.svc.Stats().PulledBytes
	if err := m.svc.PullTree(ctx, c.r.ID(), lie, modules.CollectLimits{}); !errors.Is(err, modules.ErrBadTree) || !strings.Contains(err.Error(), "its entry says 10 bytes") {
		t.Errorf("PullTree of a file named large, declared small = %v, want %v", err, modules.ErrBadTree)
	}
	if moved := m.svc.Stats().PulledBytes - before; moved > 4<<10 {
		t.Errorf("%d bytes pulled: the large file came before the refusal", moved)
	}
}

// TestShape: a tree's shape counts each entry and each file's bytes at
// every place a directory is named, from its distinct directories, and a
// tree that expands past MaxTreePaths is refused without being expanded.
func TestShape(t *testing.T) {
	st, _ := modules.NewStore("")
	put := func(d *modules.Dir) (string, int64) {
		t.Helper()
		b, err := modules.EncodeDir(d)
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.Put(b)
		if err != nil {
			t.Fatal(err)
		}
		return h, int64(len(b))
	}
	file, _ := st.Put([]byte("12345"))
	leaf, n := put(&modules.Dir{Entries: []modules.Entry{{Name: "f", Kind: modules.EntryFile, Digest: file, Size: 5}}})
	both, m := put(&modules.Dir{Entries: []modules.Entry{
		{Name: "a", Kind: modules.EntryDir, Digest: leaf, Size: n}, {Name: "b", Kind: modules.EntryDir, Digest: leaf, Size: n},
	}})
	sh, err := st.Shape(both)
	if err != nil || sh != (modules.TreeShape{Paths: 4, Depth: 1, Bytes: 10}) {
		t.Errorf("Shape = %+v, %v; want 4 paths, depth 1, 10 bytes", sh, err)
	}
	// 2^21 paths from 22 directory blobs.
	bomb, size := both, m
	for range 20 {
		bomb, size = put(&modules.Dir{Entries: []modules.Entry{
			{Name: "a", Kind: modules.EntryDir, Digest: bomb, Size: size}, {Name: "b", Kind: modules.EntryDir, Digest: bomb, Size: size},
		}})
	}
	if _, err := st.Shape(bomb); !errors.Is(err, modules.ErrBadTree) {
		t.Errorf("Shape of 2^21 paths = %v, want ErrBadTree", err)
	}
	if _, err := st.Shape(strings.Repeat("ab", 32)); !errors.Is(err, modules.ErrNotFound) {
		t.Errorf("Shape of a tree not held = %v, want ErrNotFound", err)
	}
}
