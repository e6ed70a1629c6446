package modules

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// walkTree gets the directories of the tree root level by level with get
// (which calls fn for each blob of ws it has made available) and returns
// them by digest, with the files they name, each once, with their sizes.
// Each directory is fetched once however many entries name it. A tree of
// more than maxEntries entries (distinct directories and files, and the
// symlinks of each distinct directory), or whose distinct files' sizes,
// or distinct directories' sizes, add up to more than maxBytes, is
// refused as soon as the walk sees it: before any of its files is fetched,
// and before the next level of directories is.
func walkTree(ctx context.Context, root string, maxEntries int, maxBytes int64, get func(ctx context.Context, ws []want, fn func(h string, b []byte) error) error) (map[string]*Dir, []want, error) {
	if !ValidHash(root) {
		return nil, nil, fmt.Errorf("%w: %q is not a sha256 hex digest", ErrBadHash, root)
	}
	dirs := make(map[string]*Dir)
	// Apart: one blob may be both a file and a directory (a file whose
	// bytes encode a directory).
	seenDir, seenFile := map[string]bool{root: true}, map[string]bool{}
	var files []want
	var fileBytes, dirBytes int64
	symlinks := 0
	level := []want{{h: root, size: -1}}
	for depth := 0; len(level) > 0; depth++ {
		// A directory first found this far down lies at least this deep.
		if depth > MaxTreeDepth {
			return nil, nil, fmt.Errorf("%w: deeper than %d", ErrBadTree, MaxTreeDepth)
		}
		sizes := make(map[string]int64, len(level))
		for _, w := range level {
			sizes[w.h] = w.size
		}
		err := get(ctx, level, func(h string, b []byte) error {
			if n := sizes[h]; n >= 0 && int64(len(b)) != n {
				return fmt.Errorf("%w: directory %s has %d bytes, its entry says %d", ErrBadTree, short(h), len(b), n)
			}
			d, err := DecodeDir(b)
			if err != nil {
				return fmt.Errorf("directory %s: %w", short(h), err)
			}
			dirs[h] = d
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		var next []want
		for _, w := range level {
			d := dirs[w.h]
			if d == nil {
				return nil, nil, fmt.Errorf("%w: directory %s", ErrNotFound, short(w.h))
			}
			for _, e := range d.Entries {
				switch {
				case e.Kind == EntryDir && !seenDir[e.Digest]:
					seenDir[e.Digest] = true
					next = append(next, want{h: e.Digest, size: e.Size})
					dirBytes += e.Size // checked against the blob when it comes
				case e.Kind == EntryFile && !seenFile[e.Digest]:
					seenFile[e.Digest] = true
					files = append(files, want{h: e.Digest, size: e.Size})
					fileBytes += e.Size // DecodeDir bounds each size: no overflow
				case e.Kind == EntrySymlink:
					symlinks++
				}
			}
			if n := len(seenDir) + len(seenFile) + symlinks; n > maxEntries {
				return nil, nil, fmt.Errorf("%w: more than %d distinct directories, files and symlinks", ErrBadTree, maxEntries)
			}
			if fileBytes > maxBytes {
				return nil, nil, fmt.Errorf("%w: its files hold more than %d bytes", ErrBadTree, maxBytes)
			}
			if dirBytes > maxBytes {
				return nil, nil, fmt.Errorf("%w: its directories hold more than %d bytes", ErrBadTree, maxBytes)
			}
		}
		level = next
	}
	return dirs, files, nil
}

// PullTree pulls the whole tree digest (directories level by level, then
// the files in batches) from the descendant from into this context's
// store, pinned, as Pull does; blobs already here are not transferred.
// The descendant's tree is held to lim as Collect held it there (zero
// fields: Collect's defaults), so a context that lies about its outputs
// costs no more than one that told the truth: a larger tree is ErrBadTree
// before its files move, and a file whose bytes are not the size its
// entry says is refused.
func (s *Service) PullTree(ctx context.Context, from uint32, digest string, lim CollectLimits) error {
	lim = lim.orDefaults()
	// Collect counts each entry it finds, not the directories it makes on
	// the way to a declared path: room for those.
	_, files, err := walkTree(ctx, digest, lim.MaxFiles+collectPathSlack, lim.MaxBytes, func(ctx context.Context, ws []want, fn func(string, []byte) error) error {
		if err := s.pullWants(ctx, from, ws); err != nil {
			return err
		}
		for _, w := range ws {
			b, ok := s.st.Get(w.h)
			if !ok {
				return fmt.Errorf("%w: directory %s", ErrNotFound, short(w.h))
			}
			if err := fn(w.h, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.pullWants(ctx, from, files)
}

// TreeShape is what a tree comes to once expanded: its paths (each entry
// at each place it is named), the levels below its root, and the bytes
// of its files counted at each path. Paths and Bytes saturate just past
// MaxTreePaths and math.MaxInt64/2: they never overflow.
type TreeShape struct {
	Paths, Depth int
	Bytes        int64
}

// maxShapeBytes is where TreeShape.Bytes saturates.
const maxShapeBytes = math.MaxInt64 / 2

// shapeOf is the shape of the tree root, its directories given by dir.
// Each directory is counted once, its result kept: a tree naming one
// directory from many places costs what its distinct directories do. A
// tree deeper than MaxTreeDepth is ErrBadTree.
func shapeOf(root string, dir func(h string) (*Dir, error)) (TreeShape, error) {
	memo := make(map[string]TreeShape)
	var walk func(h string, level int) (TreeShape, error)
	walk = func(h string, level int) (TreeShape, error) {
		if level > MaxTreeDepth {
			return TreeShape{}, fmt.Errorf("%w: deeper than %d", ErrBadTree, MaxTreeDepth)
		}
		if sh, ok := memo[h]; ok {
			return sh, nil
		}
		d, err := dir(h)
		if err != nil {
			return TreeShape{}, err
		}
		var sh TreeShape
		for _, e := range d.Entries {
			sh.Paths++
			switch e.Kind {
			case EntryDir:
				k, err := walk(e.Digest, level+1)
				if err != nil {
					return TreeShape{}, err
				}
				sh.Paths = min(sh.Paths+k.Paths, MaxTreePaths+1) // saturates: no overflow
				sh.Bytes = min(sh.Bytes+k.Bytes, maxShapeBytes)
				sh.Depth = max(sh.Depth, k.Depth+1)
			case EntryFile:
				sh.Bytes = min(sh.Bytes+e.Size, maxShapeBytes)
			}
		}
		memo[h] = sh
		return sh, nil
	}
	return walk(root, 0)
}

// Shape is the shape of the tree digest, whose directories the store
// must hold, counted before anything of it is made: a caller that writes
// a tree from elsewhere out holds it to its own bounds first. A tree
// past MaxTreePaths or MaxTreeDepth is ErrBadTree.
func (s *Store) Shape(digest string) (TreeShape, error) {
	sh, err := shapeOf(digest, s.ReadDir)
	if err == nil && sh.Paths > MaxTreePaths {
		err = fmt.Errorf("%w: more than %d paths", ErrBadTree, MaxTreePaths)
	}
	return sh, err
}

// checkShape checks, before anything is expanded, that the tree root
// (whose directories are all in dirs) has at most MaxTreePaths paths and
// MaxTreeDepth levels once expanded.
func checkShape(dirs map[string]*Dir, root string) error {
	sh, err := shapeOf(root, func(h string) (*Dir, error) {
		d := dirs[h]
		if d == nil {
			return nil, fmt.Errorf("%w: directory %s", ErrNotFound, short(h))
		}
		return d, nil
	})
	if err != nil {
		return err
	}
	if sh.Paths > MaxTreePaths {
		return fmt.Errorf("%w: more than %d paths", ErrBadTree, MaxTreePaths)
	}
	return nil
}

// fileDst is one place a file blob goes.
type fileDst struct {
	rel  string
	exec bool
	size int64
}

type linkDst struct {
	rel, target string
}

// plan is a tree expanded into the paths to make.
type plan struct {
	dirs  []string             // parents before children
	files map[string][]fileDst // blob -> where it goes
	links []linkDst
	paths int
}

func (p *plan) expand(dirs map[string]*Dir, d *Dir, rel string, depth int) error {
	for _, e := range d.Entries {
		if p.paths++; p.paths > MaxTreePaths {
			return fmt.Errorf("%w: more than %d paths", ErrBadTree, MaxTreePaths)
		}
		r := path.Join(rel, e.Name)
		switch e.Kind {
		case EntryDir:
			if depth+1 > MaxTreeDepth {
				return fmt.Errorf("%w: %s is deeper than %d", ErrBadTree, r, MaxTreeDepth)
			}
			p.dirs = append(p.dirs, r)
			if err := p.expand(dirs, dirs[e.Digest], r, depth+1); err != nil {
				return err
			}
		case EntryFile:
			p.files[e.Digest] = append(p.files[e.Digest], fileDst{rel: r, exec: e.Exec, size: e.Size})
		case EntrySymlink:
			p.links = append(p.links, linkDst{rel: r, target: e.Target})
		}
	}
	return nil
}

// Materialize makes the tree digest as files under dst, which must not
// exist (its parent must) or be an empty directory. It fetches what this
// context lacks from the parent like EnsureAll: the directories level by
// level, then the files in batches. Files are hard links to the store's
// files where it can (read-only ones), else written; they are 0444, or
// 0555 when executable; directories are 0555 once filled (RemoveTree
// removes such a tree); symlinks are made as symlinks, last, and never
// followed. On failure what was made under dst is removed.
func (s *Service) Materialize(ctx context.Context, digest, dst string) (err error) {
	created, err := prepareDst(dst)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if created {
				_ = RemoveTree(dst)
			} else {
				clearDir(dst)
			}
		}
	}()
	get := func(ctx context.Context, ws []want, fn func(string, []byte) error) error {
		return s.ensure(ctx, ws, true, func(h string, b []byte, err error) error {
			if err != nil {
				return fmt.Errorf("modules: materialize %s: %w", short(digest), err)
			}
			return fn(h, b)
		})
	}
	dirs, files, err := walkTree(ctx, digest, MaxTreePaths, math.MaxInt64, get)
	if err != nil {
		return err
	}
	if err := checkShape(dirs, digest); err != nil {
		return fmt.Errorf("modules: materialize %s: %w", short(digest), err)
	}
	p := &plan{files: make(map[string][]fileDst)}
	if err := p.expand(dirs, dirs[digest], "", 0); err != nil {
		return fmt.Errorf("modules: materialize %s: %w", short(digest), err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("modules: materialize: %w", err)
	}
	defer root.Close()
	for _, d := range p.dirs {
		if err := root.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("modules: materialize: %w", err)
		}
	}
	err = get(ctx, files, func(h string, b []byte) error {
		for _, fd := range p.files[h] {
			if err := s.placeFile(root, dst, h, b, fd); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range p.links {
		if err := root.Symlink(l.target, l.rel); err != nil {
			return fmt.Errorf("modules: materialize: %w", err)
		}
	}
	for _, d := range slices.Backward(p.dirs) {
		if err := root.Chmod(d, 0o555); err != nil {
			return fmt.Errorf("modules: materialize: %w", err)
		}
	}
	if err := root.Chmod(".", 0o555); err != nil {
		return fmt.Errorf("modules: materialize: %w", err)
	}
	return nil
}

// placeFile makes fd.rel under root with the bytes b of blob h.
func (s *Service) placeFile(root *os.Root, dst, h string, b []byte, fd fileDst) error {
	if int64(len(b)) != fd.size {
		return fmt.Errorf("modules: materialize: %w: %s: blob %s has %d bytes, its entry says %d", ErrBadTree, fd.rel, short(h), len(b), fd.size)
	}
	if !fd.exec {
		// Only a store file as the store writes it: read-only, whole.
		if src, ok := s.st.diskFile(h); ok {
			fi, err := os.Lstat(src)
			if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o444 && fi.Size() == fd.size &&
				os.Link(src, filepath.Join(dst, filepath.FromSlash(fd.rel))) == nil {
				return nil
			}
		}
	}
	f, err := root.OpenFile(fd.rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("modules: materialize: %w", err)
	}
	_, err = f.Write(b)
	mode := os.FileMode(0o444)
	if fd.exec {
		mode = 0o555
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("modules: materialize: %w", err)
	}
	return nil
}

// prepareDst makes dst an empty directory; created says it did not exist.
func prepareDst(dst string) (created bool, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return false, fmt.Errorf("modules: materialize: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("modules: materialize: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("modules: materialize: %s exists and is not a directory", dst)
	}
	f, err := os.Open(dst)
	if err != nil {
		return false, fmt.Errorf("modules: materialize: %w", err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if len(names) > 0 {
		return false, fmt.Errorf("modules: materialize: %s is not empty", dst)
	}
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("modules: materialize: %w", err)
	}
	return false, nil
}

// clearDir removes what is in dir, best effort.
func clearDir(dir string) {
	_ = os.Chmod(dir, 0o755)
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		_ = RemoveTree(filepath.Join(dir, de.Name()))
	}
}

// RemoveTree removes dir and everything under it, making read-only
// directories (as Materialize leaves them) writable first. It never
// follows a symlink.
func RemoveTree(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// Defaults of CollectLimits.
const (
	DefaultCollectBytes int64 = 1 << 30
	DefaultCollectFiles       = 100_000
)

// CollectLimits bounds what Collect takes; zero fields mean the defaults.
type CollectLimits struct {
	// MaxBytes bounds the bytes of all the files (default 1 GiB).
	MaxBytes int64
	// MaxFiles bounds the entries (files, directories, symlinks) found
	// under the declared paths, these included (default 100000).
	MaxFiles int
}

// collectPathSlack is how many directories PullTree allows beyond
// MaxFiles: the root and those Collect makes on the way to the declared
// paths, which it does not count.
const collectPathSlack = 4096

// orDefaults is lim with Collect's defaults in its zero (or negative)
// fields.
func (lim CollectLimits) orDefaults() CollectLimits {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultCollectBytes
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = DefaultCollectFiles
	}
	return lim
}

// Collect stores the declared output paths under dir as a tree and returns
// its digest: each path (relative, slash-separated, clean, no "..", "." for
// all of dir; none inside another) is a file, a symlink or a directory
// taken whole, and sits at that path in the tree, the directories on the
// way made for it. The walk opens dir with os.Root, never follows a
// symlink (one is recorded as a symlink entry; one on the way to a
// declared path is an error) and skips non-regular files. Blobs are stored
// cached; a file's hash is memoized in the store's HashCache as PutDir's
// are, so an unchanged file whose blob is still held is not read again. A
// declared path that does not exist is an error naming it, and so is
// passing lim.
func (s *Store) Collect(dir string, paths []string, lim CollectLimits) (digest string, err error) {
	if lim.MaxBytes < 0 || lim.MaxFiles < 0 {
		return "", fmt.Errorf("modules: collect: negative limits")
	}
	lim = lim.orDefaults()
	ps, err := checkOutputs(paths)
	if err != nil {
		return "", err
	}
	rt, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("modules: collect: %w", err)
	}
	defer rt.Close()
	c := &collector{st: s, root: filepath.Clean(dir), rt: rt, lim: lim}
	top := &tnode{kids: make(map[string]*tnode)}
	for _, p := range ps {
		if p == "." {
			fi, err := rt.Lstat(".")
			if err != nil {
				return "", fmt.Errorf("modules: collect: %w", err)
			}
			h, _, err := c.dir(".", fi, 0)
			return h, err
		}
		comps := strings.Split(p, "/")
		n := top
		for i, name := range comps[:len(comps)-1] {
			prefix := strings.Join(comps[:i+1], "/")
			fi, err := rt.Lstat(prefix)
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("modules: collect: declared output %q does not exist", p)
			}
			if err != nil {
				return "", fmt.Errorf("modules: collect %q: %w", p, err)
			}
			if !fi.IsDir() {
				return "", fmt.Errorf("modules: collect: declared output %q: %q is not a directory (a %s)", p, prefix, kindOf(fi.Mode()))
			}
			k := n.kids[name]
			if k == nil {
				k = &tnode{kids: make(map[string]*tnode)}
				n.kids[name] = k
			}
			n = k
		}
		fi, err := rt.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("modules: collect: declared output %q does not exist", p)
		}
		if err != nil {
			return "", fmt.Errorf("modules: collect %q: %w", p, err)
		}
		e, ok, err := c.entry(p, fi, len(comps)-1)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("modules: collect: declared output %q is a %s, not a file, directory or symlink", p, kindOf(fi.Mode()))
		}
		n.kids[comps[len(comps)-1]] = &tnode{leaf: &e}
	}
	h, _, err := top.store(s)
	return h, err
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

// checkOutputs checks declared output paths and returns them sorted.
func checkOutputs(paths []string) ([]string, error) {
	ps := slices.Clone(paths)
	slices.Sort(ps)
	for i, p := range ps {
		ok := p != "" && path.Clean(p) == p && !path.IsAbs(p) && p != ".." && !strings.HasPrefix(p, "../")
		if ok && p != "." {
			for _, name := range strings.Split(p, "/") {
				ok = ok && validName(name)
			}
		}
		if !ok {
			return nil, fmt.Errorf("modules: collect: declared output %q is not a clean relative path inside the output directory", p)
		}
		if i > 0 && (ps[i-1] == p || ps[i-1] == "." || strings.HasPrefix(p, ps[i-1]+"/")) {
			return nil, fmt.Errorf("modules: collect: declared outputs %q and %q overlap", ps[i-1], p)
		}
	}
	return ps, nil
}

// tnode is a directory of Collect's result being built: the entries made
// for declared paths on the way (kids), or one collected entry (leaf).
type tnode struct {
	kids map[string]*tnode
	leaf *Entry
}

// store stores n's directory and those below it, cached.
func (n *tnode) store(s *Store) (string, int64, error) {
	d := &Dir{Entries: make([]Entry, 0, len(n.kids))}
	for _, name := range slices.Sorted(maps.Keys(n.kids)) {
		k := n.kids[name]
		if k.leaf != nil {
			e := *k.leaf
			e.Name = name
			d.Entries = append(d.Entries, e)
			continue
		}
		h, size, err := k.store(s)
		if err != nil {
			return "", 0, err
		}
		d.Entries = append(d.Entries, Entry{Name: name, Kind: EntryDir, Digest: h, Size: size})
	}
	return s.putDirCached(d)
}

// putDirCached stores d cached and returns its digest and blob size.
func (s *Store) putDirCached(d *Dir) (string, int64, error) {
	b, err := EncodeDir(d)
	if err != nil {
		return "", 0, err
	}
	h := Hash(b)
	return h, int64(len(b)), s.cache(h, b)
}

// collector walks an output directory for Collect.
type collector struct {
	st    *Store
	root  string // rt's path, for the HashCache
	rt    *os.Root
	lim   CollectLimits
	files int
	bytes int64
}

// entry collects rel (fi: its Lstat); ok is false for a special file.
func (c *collector) entry(rel string, fi fs.FileInfo, depth int) (e Entry, ok bool, err error) {
	e.Name = path.Base(rel)
	m := fi.Mode()
	if m&fs.ModeSymlink == 0 && !m.IsDir() && !m.IsRegular() {
		return e, false, nil
	}
	if c.files++; c.files > c.lim.MaxFiles {
		return e, false, fmt.Errorf("modules: collect: more than %d files", c.lim.MaxFiles)
	}
	switch {
	case m&fs.ModeSymlink != 0:
		target, err := c.rt.Readlink(rel)
		if err != nil {
			return e, false, fmt.Errorf("modules: collect: %w", err)
		}
		if len(target) > MaxTargetBytes {
			return e, false, fmt.Errorf("modules: collect: symlink %q: target longer than %d bytes", rel, MaxTargetBytes)
		}
		e.Kind, e.Target = EntrySymlink, target
	case m.IsDir():
		if depth > MaxTreeDepth {
			return e, false, fmt.Errorf("modules: collect: %q is deeper than %d", rel, MaxTreeDepth)
		}
		e.Kind = EntryDir
		if e.Digest, e.Size, err = c.dir(rel, fi, depth); err != nil {
			return e, false, err
		}
	default:
		e.Kind, e.Exec = EntryFile, m&0o111 != 0
		if e.Digest, e.Size, err = c.file(rel, fi); err != nil {
			return e, false, err
		}
	}
	return e, true, nil
}

// open opens rel and checks it is still what fi (its Lstat) describes: a
// symlink put in its place since would have been followed.
func (c *collector) open(rel string, fi fs.FileInfo) (*os.File, error) {
	f, err := c.rt.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("modules: collect: %w", err)
	}
	ofi, err := f.Stat()
	if err == nil && !os.SameFile(fi, ofi) {
		err = fmt.Errorf("modules: collect: %q changed while collected", rel)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (c *collector) file(rel string, fi fs.FileInfo) (string, int64, error) {
	left := c.lim.MaxBytes - c.bytes
	if fi.Size() > left {
		return "", 0, fmt.Errorf("modules: collect: %q: outputs exceed %d bytes", rel, c.lim.MaxBytes)
	}
	if fi.Size() > MaxFileBytes {
		return "", 0, fileTooLarge("collect", strconv.Quote(rel), fi.Size())
	}
	left = min(left, MaxFileBytes)
	// An unchanged file whose blob the store still holds is not read
	// again (the files a shipped tool run names, collected run after run).
	p := filepath.Join(c.root, filepath.FromSlash(rel))
	key, keyed := statKeyOf(fi)
	if keyed {
		if h, ok := c.st.hc.lookup(p, key); ok && c.st.Has(h) {
			c.bytes += key.size
			return h, key.size, nil
		}
	}
	f, err := c.open(rel, fi)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, left+1))
	if err != nil {
		return "", 0, fmt.Errorf("modules: collect: %w", err)
	}
	if len(b) > MaxFileBytes {
		return "", 0, fileTooLarge("collect", strconv.Quote(rel), int64(len(b)))
	}
	if int64(len(b)) > left {
		return "", 0, fmt.Errorf("modules: collect: %q: outputs exceed %d bytes", rel, c.lim.MaxBytes)
	}
	c.bytes += int64(len(b))
	h := Hash(b)
	if err := c.st.cache(h, b); err != nil {
		return "", 0, err
	}
	if keyed && int64(len(b)) == key.size {
		c.st.hc.store(p, key, h)
	}
	return h, int64(len(b)), nil
}

func (c *collector) dir(rel string, fi fs.FileInfo, depth int) (string, int64, error) {
	f, err := c.open(rel, fi)
	if err != nil {
		return "", 0, err
	}
	var des []fs.DirEntry
	for {
		chunk, err := f.ReadDir(1024)
		des = append(des, chunk...)
		if len(des) > MaxDirEntries || c.files+len(des) > c.lim.MaxFiles {
			f.Close()
			return "", 0, fmt.Errorf("modules: collect: %q: more than %d files", rel, min(MaxDirEntries, c.lim.MaxFiles))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return "", 0, fmt.Errorf("modules: collect: %w", err)
		}
	}
	f.Close()
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	d := &Dir{Entries: make([]Entry, 0, len(des))}
	for _, de := range des {
		r := path.Join(rel, de.Name())
		fi, err := c.rt.Lstat(r)
		if err != nil {
			return "", 0, fmt.Errorf("modules: collect: %w", err)
		}
		e, ok, err := c.entry(r, fi, depth+1)
		if err != nil {
			return "", 0, err
		}
		if ok {
			d.Entries = append(d.Entries, e)
		}
	}
	return c.st.putDirCached(d)
}
