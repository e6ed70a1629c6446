package modules_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/modules"
	"github.com/vmihailenco/msgpack/v5"
)

var (
	hashA = modules.Hash([]byte("a"))
	hashB = modules.Hash([]byte("b"))
)

// rawDir encodes entries given as []any values with msgpack's defaults,
// for blobs EncodeDir would not make.
func rawDir(t testing.TB, entries ...any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEncode(t testing.TB, d *modules.Dir) []byte {
	t.Helper()
	b, err := modules.EncodeDir(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDirCodec(t *testing.T) {
	d := &modules.Dir{Entries: []modules.Entry{
		{Name: "a.txt", Kind: modules.EntryFile, Digest: hashA, Size: 1},
		{Name: "bin", Kind: modules.EntryDir, Digest: hashB, Size: 300},
		{Name: "link", Kind: modules.EntrySymlink, Target: "a.txt"},
		{Name: "run", Kind: modules.EntryFile, Digest: hashB, Size: 1 << 40, Exec: true},
	}}
	b := mustEncode(t, d)
	got, err := modules.DecodeDir(b)
	if err != nil {
		t.Fatalf("DecodeDir(%x) = %v", b, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(d) {
		t.Fatalf("DecodeDir(EncodeDir(d)) = %+v, want %+v", got, d)
	}
	// The spelling is fixed: shortest forms, arrays of six.
	want := "94" + "96a5612e747874" + "01" + "d940" + fmt.Sprintf("%x", hashA) + "01" + "c2" + "a0"
	if h := fmt.Sprintf("%x", b); !strings.HasPrefix(h, want) {
		t.Fatalf("EncodeDir = %s..., want prefix %s", h[:len(want)], want)
	}
	empty := mustEncode(t, &modules.Dir{})
	if !bytes.Equal(empty, []byte{0x90}) {
		t.Fatalf("EncodeDir(empty) = %x, want 90", empty)
	}
}

// TestDecodeDirHostile feeds the decoder directory blobs a hostile context
// could send: each must be refused with ErrBadTree, never decoded.
func TestDecodeDirHostile(t *testing.T) {
	file := func(name string) []any { return []any{name, 1, hashA, 1, false, ""} }
	long := strings.Repeat("n", 256)
	huge := []byte{0xdd, 0x00, 0x03, 0x0d, 0x41} // 200001 entries declared
	huge = append(huge, bytes.Repeat([]byte{0x96, 0xa1, 'a', 1, 0xa0, 0, 0xc2, 0xa0}, 8)...)
	// Kind spelled as a uint8 (cc 01) where a fixint (01) is canonical.
	nonCanonical := append([]byte{0x91, 0x96, 0xa1, 'a', 0xcc, 0x01, 0xd9, 0x40}, hashA...)
	nonCanonical = append(nonCanonical, 0x01, 0xc2, 0xa0)
	if _, err := modules.DecodeDir(append(append([]byte{0x91, 0x96, 0xa1, 'a', 0x01, 0xd9, 0x40}, hashA...), 0x01, 0xc2, 0xa0)); err != nil {
		t.Fatalf("the canonical spelling of the same entry: %v", err)
	}
	tests := []struct {
		name string
		blob []byte
	}{
		{"empty", nil},
		{"not an array", []byte{0x80}},
		{"an int", []byte{0x01}},
		{"trailing bytes", append(rawDir(t, file("a")), 0xc0)},
		{"too many entries", huge},
		{"truncated", rawDir(t, file("a"))[:20]},
		{"unsorted", rawDir(t, file("b"), file("a"))},
		{"repeated name", rawDir(t, file("a"), file("a"))},
		{"empty name", rawDir(t, file(""))},
		{"dot", rawDir(t, file("."))},
		{"dot dot", rawDir(t, file(".."))},
		{"slash", rawDir(t, file("a/b"))},
		{"NUL", rawDir(t, file("a\x00b"))},
		{"long name", rawDir(t, file(long))},
		{"kind 0", rawDir(t, []any{"a", 0, hashA, 1, false, ""})},
		{"kind 4", rawDir(t, []any{"a", 4, hashA, 1, false, ""})},
		{"kind 257", rawDir(t, []any{"a", 257, hashA, 1, false, ""})},
		{"upper-case digest", rawDir(t, []any{"a", 1, strings.ToUpper(hashA), 1, false, ""})},
		{"short digest", rawDir(t, []any{"a", 1, hashA[:10], 1, false, ""})},
		{"negative size", rawDir(t, []any{"a", 1, hashA, -1, false, ""})},
		{"size past int64", rawDir(t, []any{"a", 1, hashA, uint64(1 << 63), false, ""})},
		{"exec dir", rawDir(t, []any{"a", 2, hashA, 1, true, ""})},
		{"file with target", rawDir(t, []any{"a", 1, hashA, 1, false, "x"})},
		{"symlink with digest", rawDir(t, []any{"a", 3, hashA, 0, false, "x"})},
		{"symlink without target", rawDir(t, []any{"a", 3, "", 0, false, ""})},
		{"symlink target NUL", rawDir(t, []any{"a", 3, "", 0, false, "x\x00"})},
		{"symlink target too long", rawDir(t, []any{"a", 3, "", 0, false, strings.Repeat("x", 4096)})},
		{"five fields", rawDir(t, []any{"a", 1, hashA, 1, false})},
		{"seven fields", rawDir(t, []any{"a", 1, hashA, 1, false, "", 0})},
		{"entry as map", rawDir(t, map[string]any{"Name": "a", "Kind": 1, "Digest": hashA, "Size": 1})},
		{"wrong types", rawDir(t, []any{1, "a", hashA, "1", 0, nil})},
		{"non-canonical int", nonCanonical},
		{"deep nesting", bytes.Repeat([]byte{0x91}, 200)},
	}
	for _, tt := range tests {
		d, err := modules.DecodeDir(tt.blob)
		if !errors.Is(err, modules.ErrBadTree) {
			t.Errorf("%s: DecodeDir(%x) = %+v, %v; want %v", tt.name, tt.blob, d, err, modules.ErrBadTree)
		}
	}
	if _, err := modules.EncodeDir(&modules.Dir{Entries: []modules.Entry{{Name: "a", Kind: modules.EntryFile, Digest: "x"}}}); !errors.Is(err, modules.ErrBadTree) {
		t.Errorf("EncodeDir(bad digest) = %v, want %v", err, modules.ErrBadTree)
	}
}

func FuzzDecodeDir(f *testing.F) {
	valid := mustEncode(f, &modules.Dir{Entries: []modules.Entry{
		{Name: "a", Kind: modules.EntryFile, Digest: hashA, Size: 1},
		{Name: "d", Kind: modules.EntryDir, Digest: hashB, Size: 70},
		{Name: "l", Kind: modules.EntrySymlink, Target: "../x"},
	}})
	f.Add(valid)
	for i := 0; i < len(valid); i += 17 {
		f.Add(valid[:i])
	}
	f.Add([]byte{0x90})
	f.Add(rawDir(f, []any{"b", 1, hashA, 1, false, ""}, []any{"a", 1, hashA, 1, false, ""}))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := modules.DecodeDir(b)
		if err != nil {
			if !errors.Is(err, modules.ErrBadTree) {
				t.Fatalf("DecodeDir(%x) = %v, not %v", b, err, modules.ErrBadTree)
			}
			return
		}
		// Whatever decodes is canonical: one tree, one digest.
		if enc, err := modules.EncodeDir(d); err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("EncodeDir(DecodeDir(%x)) = %x, %v", b, enc, err)
		}
	})
}

// writeTree makes files under dir from a map of slash paths to contents;
// a content starting with "->" makes a symlink, "x:" an executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(c, "->"):
			err = os.Symlink(c[2:], full)
		case strings.HasPrefix(c, "x:"):
			err = os.WriteFile(full, []byte(c[2:]), 0o755)
		default:
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// listTree returns the tree digest as slash paths: "f:content", "x:content"
// (executable), "l:target" and "d" for directories.
func listTree(t *testing.T, st *modules.Store, digest string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	var walk func(digest, rel string)
	walk = func(digest, rel string) {
		d, err := st.ReadDir(digest)
		if err != nil {
			t.Fatalf("ReadDir(%s) at %q: %v", digest, rel, err)
		}
		for _, e := range d.Entries {
			p := e.Name
			if rel != "" {
				p = rel + "/" + e.Name
			}
			switch e.Kind {
			case modules.EntryDir:
				out[p] = "d"
				walk(e.Digest, p)
			case modules.EntrySymlink:
				out[p] = "l:" + e.Target
			case modules.EntryFile:
				b, ok := st.Get(e.Digest)
				if !ok || int64(len(b)) != e.Size {
					t.Fatalf("file %s: blob %s held %v, %d bytes, entry says %d", p, e.Digest, ok, len(b), e.Size)
				}
				kind := "f:"
				if e.Exec {
					kind = "x:"
				}
				out[p] = kind + string(b)
			}
		}
	}
	walk(digest, "")
	return out
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tree =\n%v\nwant\n%v", got, want)
	}
}

func TestPutDir(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	writeTree(t, ws, map[string]string{
		"a.txt":           "alpha",
		"bin/run.sh":      "x:#!/bin/sh",
		"sub/deep/c.go":   "package c",
		"sub/skip.log":    "noise",
		"only-logs/x.log": "noise",
		"link":            "->a.txt",
		"dangling":        "->../nowhere",
		".git/config":     "secret",
		"sub/.git":        "gitdir: ..",
	})
	if err := os.MkdirAll(filepath.Join(ws, "empty/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(ws, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked []string
	include := func(rel string, isDir bool) bool {
		asked = append(asked, fmt.Sprint(rel, isDir))
		return !strings.HasSuffix(rel, ".log")
	}
	st, _ := modules.NewStore("")
	h, err := st.PutDir(ws, include)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, listTree(t, st, h), map[string]string{
		"a.txt": "f:alpha", "bin": "d", "bin/run.sh": "x:#!/bin/sh",
		"sub": "d", "sub/deep": "d", "sub/deep/c.go": "f:package c",
		"link": "l:a.txt", "dangling": "l:../nowhere",
	})
	for _, a := range asked {
		if strings.Contains(a, ".git") || strings.Contains(a, "fifo") {
			t.Errorf("include was asked about %s", a)
		}
	}
	// The digest is the content's: another store, another run, the same.
	st2, _ := modules.NewStore("")
	if h2, err := st2.PutDir(ws, include); err != nil || h2 != h {
		t.Fatalf("PutDir again = %s, %v; want %s", h2, err, h)
	}
	// Without include, everything but .git and the fifo.
	hAll, err := st.PutDir(ws, nil)
	if err != nil || hAll == h {
		t.Fatalf("PutDir(nil) = %s, %v", hAll, err)
	}
	if got := listTree(t, st, hAll); got["sub/skip.log"] != "f:noise" || got["only-logs/x.log"] != "f:noise" || got["empty"] != "" {
		t.Fatalf("PutDir(nil) = %v", got)
	}
	// Blobs lists every directory and file once, directories first.
	bs, err := st.Blobs(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 4+3 || bs[0] != h { // root, bin, sub, sub/deep; three files
		t.Fatalf("Blobs = %d blobs (first %s), want 7, the root first", len(bs), bs[0])
	}
	if _, err := st.PutDir(filepath.Join(ws, "a.txt"), nil); err == nil {
		t.Fatal("PutDir on a file succeeded")
	}
}

// TestPutTreeKeepEmptyDirs: with KeepEmptyDirs an empty directory, and
// one whose entries Include refused, are recorded as empty directories
// (what a copy must make); without it the same walk leaves them out.
func TestPutTreeKeepEmptyDirs(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	writeTree(t, ws, map[string]string{"a.txt": "alpha", "logs/x.log": "noise"})
	if err := os.MkdirAll(filepath.Join(ws, "empty/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, _ := modules.NewStore("")
	noLogs := func(rel string, _ bool) bool { return !strings.HasSuffix(rel, ".log") }
	h, err := st.PutTree(ws, modules.TreeOptions{Include: noLogs, KeepEmptyDirs: true})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, listTree(t, st, h), map[string]string{
		"a.txt": "f:alpha", "empty": "d", "empty/dir": "d", "logs": "d",
	})
	if h2, err := st.PutDir(ws, noLogs); err != nil || h2 == h {
		t.Fatalf("PutDir = %s, %v; want another digest", h2, err)
	} else {
		sameTree(t, listTree(t, st, h2), map[string]string{"a.txt": "f:alpha"})
	}
}

// TestPutDirHashCache checks a rerun over an unchanged workspace reads no
// file, and a changed file is read again.
func TestPutDirHashCache(t *testing.T) {
	testutil.VerifyNone(t)
	ws := t.TempDir()
	files := make(map[string]string)
	for i := range 500 {
		files[fmt.Sprintf("pkg%d/f%d.go", i%20, i)] = fmt.Sprintf("package p%d\n", i)
	}
	writeTree(t, ws, files)
	// A file changed less than a second ago may change again unseen
	// within one tick of the file system clock: it is not memoized.
	time.Sleep(1100 * time.Millisecond)
	hc := modules.NewHashCache(0)
	st, _ := modules.NewStoreConfig(modules.StoreConfig{HashCache: hc})
	h1, err := st.PutDir(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits, misses := hc.Stats(); hits != 0 || misses != 500 {
		t.Fatalf("first run: %d hits, %d misses; want 0, 500", hits, misses)
	}
	h2, err := st.PutDir(ws, nil)
	if err != nil || h2 != h1 {
		t.Fatalf("rerun = %s, %v; want %s", h2, err, h1)
	}
	if hits, misses := hc.Stats(); hits != 500 || misses != 500 {
		t.Fatalf("rerun: %d hits, %d misses; want 500 hits, no read", hits, misses)
	}
	// Same size, new content: the ctime (and mtime) changed.
	if err := os.WriteFile(filepath.Join(ws, "pkg3/f3.go"), []byte("package xx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h3, err := st.PutDir(ws, nil)
	if err != nil || h3 == h1 {
		t.Fatalf("after a change = %s, %v; want a new digest", h3, err)
	}
	if hits, misses := hc.Stats(); hits != 999 || misses != 501 {
		t.Fatalf("after a change: %d hits, %d misses; want 999, 501", hits, misses)
	}
	if got := listTree(t, st, h3)["pkg3/f3.go"]; got != "f:package xx\n" {
		t.Fatalf("changed file = %q", got)
	}

	// Collect uses it too (a shipped tool run's files, collected run after
	// run): the unchanged files are not read again, the changed one is.
	time.Sleep(1100 * time.Millisecond)
	paths := []string{"pkg1", "pkg3/f3.go"}
	c1, err := st.Collect(ws, paths, modules.CollectLimits{})
	if err != nil {
		t.Fatal(err)
	}
	h0, m0 := hc.Stats()
	if c2, err := st.Collect(ws, paths, modules.CollectLimits{}); err != nil || c2 != c1 {
		t.Fatalf("Collect again = %s, %v; want %s", c2, err, c1)
	}
	if hits, misses := hc.Stats(); hits-h0 != 26 || misses != m0 {
		t.Fatalf("Collect again: %d hits, %d misses; want 26 hits (pkg1's 25 and f3.go), no read", hits-h0, misses-m0)
	}
	if err := os.WriteFile(filepath.Join(ws, "pkg3/f3.go"), []byte("package yy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c3, err := st.Collect(ws, paths, modules.CollectLimits{})
	if err != nil || c3 == c1 {
		t.Fatalf("Collect after a change = %s, %v; want a new digest", c3, err)
	}
	if got := listTree(t, st, c3)["pkg3/f3.go"]; got != "f:package yy\n" {
		t.Fatalf("Collect: changed file = %q", got)
	}
}

func TestMerge(t *testing.T) {
	testutil.VerifyNone(t)
	st, _ := modules.NewStore("")
	base, over := t.TempDir(), t.TempDir()
	writeTree(t, base, map[string]string{
		"a": "base a", "d/x": "base x", "d/y": "base y", "s": "->a",
		"fileThenDir": "base file", "dirThenFile/z": "base z",
	})
	writeTree(t, over, map[string]string{
		"a": "over a", "d/y": "over y", "d/z": "x:over z", "n": "over n",
		"fileThenDir/w": "over w", "dirThenFile": "over file",
	})
	hb, _ := st.PutDir(base, nil)
	ho, _ := st.PutDir(over, nil)
	m, err := st.Merge(hb, ho)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, listTree(t, st, m), map[string]string{
		"a": "f:over a", "d": "d", "d/x": "f:base x", "d/y": "f:over y", "d/z": "x:over z",
		"n": "f:over n", "s": "l:a", "fileThenDir": "d", "fileThenDir/w": "f:over w",
		"dirThenFile": "f:over file",
	})
	// The result is the tree PutDir makes of the merged directory.
	both := t.TempDir()
	writeTree(t, both, map[string]string{
		"a": "over a", "d/x": "base x", "d/y": "over y", "d/z": "x:over z", "n": "over n", "s": "->a",
		"fileThenDir/w": "over w", "dirThenFile": "over file",
	})
	if hBoth, _ := st.PutDir(both, nil); hBoth != m {
		t.Fatalf("Merge = %s, PutDir of the merged files = %s", m, hBoth)
	}
	if m2, err := st.Merge(hb); err != nil || m2 != hb {
		t.Fatalf("Merge(base) = %s, %v; want base", m2, err)
	}
	if _, err := st.Merge(hb, hashA); !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("Merge with a missing overlay = %v, want %v", err, modules.ErrNotFound)
	}
}

// bomb stores a tree of levels directories, each naming the next twice,
// over one file: 2^levels paths in few blobs.
func bomb(t *testing.T, st *modules.Store, levels int, leaf string) string {
	t.Helper()
	fh, _ := st.Put([]byte(leaf))
	cur := &modules.Dir{Entries: []modules.Entry{{Name: "f", Kind: modules.EntryFile, Digest: fh, Size: int64(len(leaf))}}}
	for range levels {
		b := mustEncode(t, cur)
		h, _ := st.Put(b)
		cur = &modules.Dir{Entries: []modules.Entry{
			{Name: "a", Kind: modules.EntryDir, Digest: h, Size: int64(len(b))},
			{Name: "b", Kind: modules.EntryDir, Digest: h, Size: int64(len(b))},
		}}
	}
	h, _ := st.Put(mustEncode(t, cur))
	return h
}

// chainTree stores levels directories nested one in the next.
func chainTree(t *testing.T, st *modules.Store, levels int) string {
	t.Helper()
	h, _ := st.Put(mustEncode(t, &modules.Dir{}))
	size := int64(1)
	for range levels {
		b := mustEncode(t, &modules.Dir{Entries: []modules.Entry{{Name: "d", Kind: modules.EntryDir, Digest: h, Size: size}}})
		h, _ = st.Put(b)
		size = int64(len(b))
	}
	return h
}

func TestTreeBounds(t *testing.T) {
	testutil.VerifyNone(t)
	st, _ := modules.NewStore("")
	// A merge of two bombs is one merge per level, not per path.
	b1, b2 := bomb(t, st, 40, "one"), bomb(t, st, 40, "two")
	start := time.Now()
	m, err := st.Merge(b1, b2)
	if err != nil || m != b2 {
		t.Fatalf("Merge(bomb, bomb) = %s, %v; want the overlay", m, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Merge(bomb, bomb) took %v", d)
	}
	if bs, err := st.Blobs(b1); err != nil || len(bs) != 42 {
		t.Fatalf("Blobs(bomb) = %d blobs, %v; want 42", len(bs), err)
	}
	deep := chainTree(t, st, modules.MaxTreeDepth+2)
	if _, err := st.Merge(deep, chainTree(t, st, modules.MaxTreeDepth+1)); !errors.Is(err, modules.ErrBadTree) {
		t.Fatalf("Merge(too deep) = %v, want %v", err, modules.ErrBadTree)
	}
}

// TestFileBound: a file past MaxFileBytes (one message) is refused by name,
// before it is read, going into a tree (PutDir) and coming out of a step
// (Collect); one at the bound goes in.
func TestFileBound(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	sparse := func(name string, size int64) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	sparse("big.bin", modules.MaxFileBytes+1)
	st, _ := modules.NewStore("")
	for name, run := range map[string]func() error{
		"PutDir":  func() error { _, err := st.PutDir(dir, nil); return err },
		"Collect": func() error { _, err := st.Collect(dir, []string{"big.bin"}, modules.CollectLimits{}); return err },
	} {
		err := run()
		if err == nil || !strings.Contains(err.Error(), "big.bin") || !strings.Contains(err.Error(), "at most 128 MiB") {
			t.Errorf("%s of a file past the bound: %v", name, err)
		}
	}
	os.Remove(filepath.Join(dir, "big.bin"))
	sparse("edge.bin", modules.MaxFileBytes)
	if _, err := st.PutDir(dir, nil); err != nil {
		t.Errorf("PutDir of a file at the bound: %v", err)
	}
}
