package modules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spindle-hq/spindle/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// ErrBadTree is returned for a directory blob that is not a valid,
// canonical encoding, and for a tree that breaks a bound.
var ErrBadTree = errors.New("modules: malformed tree")

// Bounds of trees (see the package doc).
const (
	// MaxDirEntries bounds the entries of one directory.
	MaxDirEntries = 100_000
	// MaxTreeDepth bounds how deep directories nest below a tree's root.
	MaxTreeDepth = 256
	// MaxTreePaths bounds the paths of a tree once expanded (Materialize):
	// a directory blob named by many entries is counted at each.
	MaxTreePaths = 1 << 20
	// MaxNameBytes bounds an entry's name, MaxTargetBytes a symlink's
	// target.
	MaxNameBytes   = 255
	MaxTargetBytes = 4095
	// MaxFileBytes bounds one file of a tree: a file moves as one blob,
	// in one message (wire.DefaultMaxMessageSize); files are not chunked.
	MaxFileBytes = wire.DefaultMaxMessageSize
)

// EntryKind says what an Entry is.
type EntryKind uint8

// The kinds of entry.
const (
	EntryFile    EntryKind = 1
	EntryDir     EntryKind = 2
	EntrySymlink EntryKind = 3
)

func (k EntryKind) String() string {
	switch k {
	case EntryFile:
		return "file"
	case EntryDir:
		return "dir"
	case EntrySymlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one name in a directory.
type Entry struct {
	Name string
	Kind EntryKind
	// Digest is the file's blob, or the subdirectory's; "" for a symlink.
	Digest string
	// Size is the length of the file's blob, or of the subdirectory's;
	// 0 for a symlink.
	Size int64
	// Exec marks an executable file.
	Exec bool
	// Target is a symlink's target ("" for the other kinds).
	Target string
}

// Dir is one directory of a Merkle tree: its entries, sorted by name
// (bytewise), each name once. Its blob is its canonical encoding
// (EncodeDir), and its digest that blob's hash. A Dir is a plain value.
type Dir struct {
	Entries []Entry
}

// entryWire is an entry as it is encoded: an array of six.
type entryWire struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 msgpack reads its tag
	Name     string
	Kind     uint8
	Digest   string
	Size     int64
	Exec     bool
	Target   string
}

// validName reports whether name may be an entry's name.
func validName(name string) bool {
	return name != "" && len(name) <= MaxNameBytes && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/\x00")
}

// check reports what is wrong with d, if anything.
func (d *Dir) check() error {
	if len(d.Entries) > MaxDirEntries {
		return fmt.Errorf("%w: %d entries (max %d)", ErrBadTree, len(d.Entries), MaxDirEntries)
	}
	for i, e := range d.Entries {
		if !validName(e.Name) {
			return fmt.Errorf("%w: entry %d: invalid name %q", ErrBadTree, i, e.Name)
		}
		if i > 0 && d.Entries[i-1].Name >= e.Name {
			return fmt.Errorf("%w: entry %q after %q: names not sorted or repeated", ErrBadTree, e.Name, d.Entries[i-1].Name)
		}
		switch e.Kind {
		case EntryFile, EntryDir:
			if !ValidHash(e.Digest) || e.Size < 0 || e.Target != "" || (e.Kind == EntryDir && e.Exec) {
				return fmt.Errorf("%w: %s entry %q: bad digest, size, exec or target", ErrBadTree, e.Kind, e.Name)
			}
		case EntrySymlink:
			if e.Digest != "" || e.Size != 0 || e.Exec || e.Target == "" || len(e.Target) > MaxTargetBytes || strings.IndexByte(e.Target, 0) >= 0 {
				return fmt.Errorf("%w: symlink %q: bad target, or a digest, size or exec", ErrBadTree, e.Name)
			}
		default:
			return fmt.Errorf("%w: entry %q: unknown kind %d", ErrBadTree, e.Name, e.Kind)
		}
	}
	return nil
}

// EncodeDir returns d's canonical encoding (its blob): a msgpack array of
// the entries, each an array [name, kind, digest, size, exec, target], in
// msgpack's shortest forms. It fails for a Dir that breaks the rules of
// Dir or the bounds.
func EncodeDir(d *Dir) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(len(d.Entries)) // a bytes.Buffer does not fail
	for _, e := range d.Entries {
		_ = enc.EncodeArrayLen(6)
		_ = enc.EncodeString(e.Name)
		_ = enc.EncodeUint(uint64(e.Kind))
		_ = enc.EncodeString(e.Digest)
		_ = enc.EncodeUint(uint64(e.Size))
		_ = enc.EncodeBool(e.Exec)
		_ = enc.EncodeString(e.Target)
	}
	return buf.Bytes(), nil
}

// DecodeDir decodes a directory blob, which must be exactly what EncodeDir
// makes of the Dir it describes.
func DecodeDir(b []byte) (*Dir, error) {
	n, err := arrayLen(b)
	if err != nil {
		return nil, err
	}
	if n > MaxDirEntries { // before decoding: the entries would be allocated
		return nil, fmt.Errorf("%w: %d entries (max %d)", ErrBadTree, n, MaxDirEntries)
	}
	var ws []entryWire
	if err := wire.Unmarshal(b, &ws); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTree, err)
	}
	d := &Dir{Entries: make([]Entry, len(ws))}
	for i, w := range ws {
		d.Entries[i] = Entry{Name: w.Name, Kind: EntryKind(w.Kind), Digest: w.Digest, Size: w.Size, Exec: w.Exec, Target: w.Target}
	}
	enc, err := EncodeDir(d)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrBadTree)
	}
	return d, nil
}

// arrayLen reads the msgpack array header at the start of b.
func arrayLen(b []byte) (int, error) {
	switch {
	case len(b) >= 1 && b[0] >= 0x90 && b[0] <= 0x9f:
		return int(b[0] & 0x0f), nil
	case len(b) >= 3 && b[0] == 0xdc:
		return int(b[1])<<8 | int(b[2]), nil
	case len(b) >= 5 && b[0] == 0xdd:
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]), nil
	}
	return 0, fmt.Errorf("%w: a directory blob is a msgpack array", ErrBadTree)
}

// putDirBlob stores d pinned and returns its digest and blob size.
func (s *Store) putDirBlob(d *Dir) (string, int64, error) {
	b, err := EncodeDir(d)
	if err != nil {
		return "", 0, err
	}
	h, err := s.Put(b)
	return h, int64(len(b)), err
}

// ReadDir decodes the directory blob digest, which the store must hold.
func (s *Store) ReadDir(digest string) (*Dir, error) {
	if !ValidHash(digest) {
		return nil, fmt.Errorf("%w: %q is not a sha256 hex digest", ErrBadHash, digest)
	}
	b, ok := s.Get(digest)
	if !ok {
		return nil, fmt.Errorf("%w: directory %s is not held here", ErrNotFound, short(digest))
	}
	d, err := DecodeDir(b)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", short(digest), err)
	}
	return d, nil
}

// Merge lays the trees overlays, in order, over the tree base and returns
// the digest of the result: where an overlay and what lies below it both
// have a directory of one name, the two merge; otherwise the overlay's
// entry replaces the other. The store must hold the directories involved;
// the new ones are stored pinned.
func (s *Store) Merge(base string, overlays ...string) (string, error) {
	if _, err := s.ReadDir(base); err != nil {
		return "", err
	}
	memo := make(map[[2]string]mergedDir)
	cur := base
	for _, o := range overlays {
		m, err := s.merge(cur, o, 0, memo)
		if err != nil {
			return "", err
		}
		cur = m.digest
	}
	return cur, nil
}

type mergedDir struct {
	digest string
	size   int64
}

// merge merges the directories a (below) and b (over); memo keeps each
// pair's result, so a tree that names one directory many times costs one
// merge of it.
func (s *Store) merge(a, b string, depth int, memo map[[2]string]mergedDir) (mergedDir, error) {
	if depth > MaxTreeDepth {
		return mergedDir{}, fmt.Errorf("%w: merge: deeper than %d", ErrBadTree, MaxTreeDepth)
	}
	if m, ok := memo[[2]string{a, b}]; ok {
		return m, nil
	}
	da, err := s.ReadDir(a)
	if err != nil {
		return mergedDir{}, err
	}
	db, err := s.ReadDir(b)
	if err != nil {
		return mergedDir{}, err
	}
	out := &Dir{Entries: make([]Entry, 0, max(len(da.Entries), len(db.Entries)))}
	i, j := 0, 0
	for i < len(da.Entries) || j < len(db.Entries) {
		switch {
		case j == len(db.Entries) || (i < len(da.Entries) && da.Entries[i].Name < db.Entries[j].Name):
			out.Entries = append(out.Entries, da.Entries[i])
			i++
		case i == len(da.Entries) || db.Entries[j].Name < da.Entries[i].Name:
			out.Entries = append(out.Entries, db.Entries[j])
			j++
		default: // the same name
			ea, eb := da.Entries[i], db.Entries[j]
			if ea.Kind == EntryDir && eb.Kind == EntryDir && ea.Digest != eb.Digest {
				m, err := s.merge(ea.Digest, eb.Digest, depth+1, memo)
				if err != nil {
					return mergedDir{}, err
				}
				eb.Digest, eb.Size = m.digest, m.size
			}
			out.Entries = append(out.Entries, eb)
			i, j = i+1, j+1
		}
	}
	h, size, err := s.putDirBlob(out)
	if err != nil {
		return mergedDir{}, err
	}
	m := mergedDir{h, size}
	memo[[2]string{a, b}] = m
	return m, nil
}

// Blobs returns the digest of every blob the tree digest references: its
// directories (the root first, level by level), then its files, each once.
// The store must hold the directories.
func (s *Store) Blobs(digest string) ([]string, error) {
	dirs := []string{digest}
	// Apart: one blob may be both a file and a directory.
	seenDir, seenFile := map[string]bool{digest: true}, map[string]bool{}
	var files []string
	for i := 0; i < len(dirs); i++ {
		d, err := s.ReadDir(dirs[i])
		if err != nil {
			return nil, err
		}
		for _, e := range d.Entries {
			switch {
			case e.Kind == EntryDir && !seenDir[e.Digest]:
				seenDir[e.Digest] = true
				dirs = append(dirs, e.Digest)
			case e.Kind == EntryFile && !seenFile[e.Digest]:
				seenFile[e.Digest] = true
				files = append(files, e.Digest)
			}
		}
	}
	for _, h := range files {
		if !seenDir[h] { // listed once
			dirs = append(dirs, h)
		}
	}
	return dirs, nil
}

// PutDir stores the tree of the directory root and returns its digest: its
// files and directories as blobs, pinned. The walk never follows a symlink
// (one is recorded as a symlink entry) and skips other non-regular files,
// every entry named .git, and whatever include (if not nil) refuses: it is
// asked with the path relative to root, slash-separated, and whether it is
// a directory (refusing one skips what is under it). A directory left with
// no entries is not recorded (root excepted). File hashes are memoized in
// the store's HashCache by path, size, mtime, ctime and inode, so a rerun
// over unchanged files reads none of them.
func (s *Store) PutDir(root string, include func(rel string, isDir bool) bool) (digest string, err error) {
	return s.PutTree(root, TreeOptions{Include: include})
}

// TreeOptions say what PutTree records of a directory. The zero value
// records what PutDir(root, nil) does.
type TreeOptions struct {
	// Include, if not nil, is PutDir's include.
	Include func(rel string, isDir bool) bool
	// KeepEmptyDirs records a directory that holds nothing (or nothing
	// Include takes) as an empty directory, as a copy of the tree must
	// make it; without it such a directory is left out, so that a
	// filter's leftovers do not change a tree's digest.
	KeepEmptyDirs bool
}

// PutTree is PutDir with options.
func (s *Store) PutTree(root string, opts TreeOptions) (digest string, err error) {
	fi, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("modules: put dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("modules: put dir: %s is not a directory", root)
	}
	digest, _, _, err = s.putDir(root, "", &opts, 0)
	return digest, err
}

// putDir stores the directory abs (rel below the root) and returns its
// digest, blob size and n > 0, its number of entries (1 for an empty one
// that is kept); a directory other than the root with no entries is not
// stored (n = 0) unless opts keeps empty ones.
func (s *Store) putDir(abs, rel string, opts *TreeOptions, depth int) (string, int64, int, error) {
	include := opts.Include
	if depth > MaxTreeDepth {
		return "", 0, 0, fmt.Errorf("%w: put dir: %s is deeper than %d", ErrBadTree, abs, MaxTreeDepth)
	}
	des, err := readDirBounded(abs)
	if err != nil {
		return "", 0, 0, err
	}
	d := &Dir{Entries: make([]Entry, 0, len(des))}
	for _, de := range des {
		name := de.Name()
		if name == ".git" {
			continue
		}
		r := path.Join(rel, name)
		p := filepath.Join(abs, name)
		t := de.Type()
		if include != nil && (t.IsDir() || t.IsRegular() || t&fs.ModeSymlink != 0) && !include(r, t.IsDir()) {
			continue
		}
		switch {
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return "", 0, 0, fmt.Errorf("modules: put dir: %w", err)
			}
			d.Entries = append(d.Entries, Entry{Name: name, Kind: EntrySymlink, Target: target})
		case t.IsDir():
			h, size, n, err := s.putDir(p, r, opts, depth+1)
			if err != nil {
				return "", 0, 0, err
			}
			if n > 0 {
				d.Entries = append(d.Entries, Entry{Name: name, Kind: EntryDir, Digest: h, Size: size})
			}
		case t.IsRegular():
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return "", 0, 0, fmt.Errorf("modules: put dir: %w", err)
			}
			h, size, err := s.putFile(p, fi)
			if err != nil {
				return "", 0, 0, err
			}
			d.Entries = append(d.Entries, Entry{Name: name, Kind: EntryFile, Digest: h, Size: size, Exec: fi.Mode()&0o111 != 0})
		}
	}
	if len(d.Entries) == 0 && rel != "" && !opts.KeepEmptyDirs {
		return "", 0, 0, nil
	}
	h, size, err := s.putDirBlob(d)
	if err != nil {
		return "", 0, 0, fmt.Errorf("modules: put dir %s: %w", abs, err)
	}
	return h, size, max(len(d.Entries), 1), nil
}

// readDirBounded lists the directory at p, sorted by name, failing past
// MaxDirEntries entries.
func readDirBounded(p string) ([]fs.DirEntry, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("modules: read dir: %w", err)
	}
	defer f.Close()
	var des []fs.DirEntry
	for {
		chunk, err := f.ReadDir(1024)
		des = append(des, chunk...)
		if len(des) > MaxDirEntries {
			return nil, fmt.Errorf("%w: %s has more than %d entries", ErrBadTree, p, MaxDirEntries)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("modules: read dir: %w", err)
		}
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return des, nil
}

// fileTooLarge is the error for a file of size bytes past MaxFileBytes.
func fileTooLarge(op, p string, size int64) error {
	return fmt.Errorf("modules: %s: %s: %d MiB, but a file of a tree moves as one blob of at most %d MiB (files are not chunked)",
		op, p, size>>20, MaxFileBytes>>20)
}

// putFile stores the regular file p (fi: its Lstat) pinned, and returns its
// hash and size; the HashCache spares the read when p is unchanged.
func (s *Store) putFile(p string, fi fs.FileInfo) (string, int64, error) {
	key, keyed := statKeyOf(fi)
	if keyed {
		if h, ok := s.hc.lookup(p, key); ok && s.pinLocal(h) {
			return h, key.size, nil
		}
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", 0, fmt.Errorf("modules: put dir: %w", err)
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("modules: put dir: %w", err)
	}
	if !ofi.Mode().IsRegular() || !os.SameFile(fi, ofi) {
		return "", 0, fmt.Errorf("modules: put dir: %s changed while read", p)
	}
	if ofi.Size() > MaxFileBytes {
		return "", 0, fileTooLarge("put dir", p, ofi.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("modules: put dir: %w", err)
	}
	if len(b) > MaxFileBytes {
		return "", 0, fileTooLarge("put dir", p, int64(len(b)))
	}
	h, err := s.Put(b)
	if err != nil {
		return "", 0, err
	}
	if keyed && int64(len(b)) == key.size {
		s.hc.store(p, key, h)
	}
	return h, int64(len(b)), nil
}

// DefaultHashCacheEntries bounds a HashCache made with NewHashCache(0).
const DefaultHashCacheEntries = 1 << 20

// racyWindow is how recently a file may have changed (its ctime) and still
// have its hash memoized: a change made in the same tick of the file
// system's clock as the one seen could leave size, mtime and ctime as they
// were.
const racyWindow = time.Second

// HashCache memoizes the hashes of files by path and what Lstat says of
// them. It is safe for concurrent use; at its bound it starts afresh.
type HashCache struct {
	max int

	mu     sync.Mutex
	m      map[string]hashed // guarded by mu
	hits   int64             // guarded by mu
	misses int64             // guarded by mu
}

type hashed struct {
	key statKey
	h   string
}

// statKey is what must be unchanged for a memoized hash to hold.
type statKey struct {
	size, mtime, ctime int64
	dev, ino           uint64
}

// NewHashCache returns a HashCache of at most maxEntries paths (0:
// DefaultHashCacheEntries).
func NewHashCache(maxEntries int) *HashCache {
	if maxEntries <= 0 {
		maxEntries = DefaultHashCacheEntries
	}
	return &HashCache{max: maxEntries, m: make(map[string]hashed)}
}

// Stats returns how many files were found unchanged (hits) and how many
// had to be read (misses).
func (c *HashCache) Stats() (hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

func (c *HashCache) lookup(p string, key statKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[p]; ok && e.key == key {
		c.hits++
		return e.h, true
	}
	c.misses++
	return "", false
}

func (c *HashCache) store(p string, key statKey, h string) {
	if time.Since(time.Unix(0, key.ctime)) < racyWindow {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[p] = hashed{key, h}
}
