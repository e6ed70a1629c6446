package modules

import (
	"cmp"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/internal/atomicfile"
)

// ErrNotFound is returned for a blob (a module, a file, a directory) nobody
// in the tree has.
var ErrNotFound = errors.New("modules: blob not found")

// ErrBadHash is returned for bytes whose sha256 is not the expected one, or
// a malformed hash.
var ErrBadHash = errors.New("modules: hash mismatch")

// Default bounds of a Store (StoreConfig's zero values).
const (
	DefaultMaxDiskBytes int64 = 4 << 30
	DefaultMaxMemBytes  int64 = 256 << 20
)

const (
	// diskBlock is what a file costs on disk at least: a store's disk
	// total counts each file as its size rounded up to it, so that a
	// million empty blobs are not free.
	diskBlock = 4096
	// touchEvery is how stale a cached file's mtime may get while the
	// store keeps serving it from memory: the mtime orders eviction across
	// processes and restarts; inside one process the store's own record of
	// use does, to the nanosecond.
	touchEvery = 10 * time.Second
	// staleTemp is the age past which a temporary file in the store dir is
	// taken for the leftover of a crashed writer and removed at open.
	staleTemp = time.Hour
)

// Hash returns the ID of b: its sha256, lower-case hex.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ValidHash reports whether h has the form of a blob ID: 64 lower-case hex
// digits (the only spelling Hash produces, so that one blob has one name).
func ValidHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// StoreConfig configures NewStoreConfig. The zero value is a memory-only
// store with the default bounds.
type StoreConfig struct {
	// Dir, if not empty, is created and holds one file per blob, named by
	// its hash. Several processes may share it.
	Dir string
	// MaxDiskBytes bounds the files in Dir (each counted as its size
	// rounded up to 4 KiB); past it the least recently used cached files
	// are removed until the total is at most 90% of it. Pinned blobs are
	// never removed. 0 means DefaultMaxDiskBytes (4 GiB).
	MaxDiskBytes int64
	// MaxMemBytes bounds the cached blobs kept in memory (a single blob
	// larger than it is kept until the next one arrives). 0 means
	// DefaultMaxMemBytes (256 MiB). Pinned blobs do not count.
	MaxMemBytes int64
	// HashCache memoizes file hashes for PutDir; nil gives the store one
	// of its own.
	HashCache *HashCache
	// LazyScan leaves Dir unread at open: the blob files already there
	// are found as they are asked for, and counted (and evicted past the
	// bound) at the store's first eviction check, once it has written a
	// twentieth of MaxDiskBytes. For a process that opens the dir often
	// and writes little to it (a child context: a cache of thousands of
	// blobs made its start 4x slower), so that opening costs the same
	// however many files the dir holds.
	LazyScan bool
}

// StoreStats is a snapshot of a store's contents and evictions.
type StoreStats struct {
	// DiskBytes and DiskFiles are the blob files this store knows in its
	// dir (other processes sharing it may add more; each eviction rescans).
	DiskBytes int64
	DiskFiles int
	// MemBytes is the bytes of cached blobs held in memory, PinnedBytes
	// those of pinned blobs (always in memory).
	MemBytes    int64
	PinnedBytes int64
	// DiskEvictions and MemEvictions count the cached blobs dropped from
	// disk and from memory to stay within the bounds.
	DiskEvictions int64
	MemEvictions  int64
}

// Store holds blobs by hash. A blob is either pinned (Put: an original of
// this process, kept in memory and never evicted) or cached (PutVerified: a
// copy of a blob whose origin is elsewhere, kept on disk when the store has
// a dir and in a bounded memory LRU, and evicted least recently used
// first). It is safe for concurrent use.
type Store struct {
	dir     string // "" = memory only
	maxDisk int64
	maxMem  int64
	hc      *HashCache

	evictMu sync.Mutex // one disk eviction at a time; taken before mu

	mu            sync.Mutex
	pinned        map[string][]byte        // guarded by mu
	pinnedBytes   int64                    // guarded by mu
	lru           *list.List               // guarded by mu: of *memEnt, most recent first
	mem           map[string]*list.Element // guarded by mu: hash -> lru element
	memBytes      int64                    // guarded by mu
	disk          map[string]*diskEnt      // guarded by mu: files known in dir
	diskBytes     int64                    // guarded by mu: sum of disk[*].cost
	sinceScan     int64                    // guarded by mu: cost of the files this store wrote since it last scanned the dir
	memEvictions  int64                    // guarded by mu
	diskEvictions int64                    // guarded by mu
}

type memEnt struct {
	h string
	b []byte
}

type diskEnt struct {
	cost    int64 // size rounded up to diskBlock
	used    int64 // unix ns of the last use known to this store
	touched int64 // unix ns the file's mtime was last set to
}

// NewStore returns a store with the default bounds; dir, if not empty, is
// created and used as the on-disk cache shared by every process that uses
// the same dir.
func NewStore(dir string) (*Store, error) {
	return NewStoreConfig(StoreConfig{Dir: dir})
}

// NewStoreConfig returns a store configured by cfg (see StoreConfig). It
// scans cfg.Dir for the blob files already there, unless cfg.LazyScan;
// files of other names are left alone.
func NewStoreConfig(cfg StoreConfig) (*Store, error) {
	if cfg.MaxDiskBytes < 0 || cfg.MaxMemBytes < 0 {
		return nil, fmt.Errorf("modules: store bounds must not be negative (disk %d, memory %d)", cfg.MaxDiskBytes, cfg.MaxMemBytes)
	}
	s := &Store{
		dir:     cfg.Dir,
		maxDisk: cmp.Or(cfg.MaxDiskBytes, DefaultMaxDiskBytes),
		maxMem:  cmp.Or(cfg.MaxMemBytes, DefaultMaxMemBytes),
		hc:      cfg.HashCache,
		pinned:  make(map[string][]byte),
		lru:     list.New(),
		mem:     make(map[string]*list.Element),
		disk:    make(map[string]*diskEnt),
	}
	if s.hc == nil {
		s.hc = NewHashCache(0)
	}
	if s.dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("modules: store dir: %w", err)
	}
	if cfg.LazyScan {
		return s, nil
	}
	files, err := s.scan(true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.adoptLocked(files)
	over := s.diskBytes > s.maxDisk
	s.mu.Unlock()
	if over {
		s.evictDisk()
	}
	return s, nil
}

type scanned struct {
	h     string
	cost  int64
	mtime int64
}

// scan lists the blob files in the dir, removing stale temporaries when
// asked.
func (s *Store) scan(cleanTemps bool) ([]scanned, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("modules: scan store dir: %w", err)
	}
	out := make([]scanned, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if cleanTemps && strings.HasPrefix(name, ".tmp-") {
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				os.Remove(filepath.Join(s.dir, name))
			}
			continue
		}
		if !ValidHash(name) || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, scanned{h: name, cost: diskCost(fi.Size()), mtime: fi.ModTime().UnixNano()})
	}
	return out, nil
}

// adoptLocked makes the disk index what a scan found, keeping this store's
// own record of use where it is newer than the file's mtime.
func (s *Store) adoptLocked(files []scanned) {
	idx := make(map[string]*diskEnt, len(files))
	var total int64
	for _, f := range files {
		e := &diskEnt{cost: f.cost, used: f.mtime, touched: f.mtime}
		if old := s.disk[f.h]; old != nil {
			e.used = max(e.used, old.used)
			e.touched = max(e.touched, old.touched)
		}
		idx[f.h] = e
		total += f.cost
	}
	s.disk, s.diskBytes, s.sinceScan = idx, total, 0
}

func diskCost(size int64) int64 {
	return max(diskBlock, (size+diskBlock-1)/diskBlock*diskBlock)
}

func (s *Store) path(h string) string { return filepath.Join(s.dir, h) }

// Put stores b pinned and returns its hash: b is an original of this
// process, kept in memory for the store's life (and written to the dir,
// when there is one, for other processes to find).
func (s *Store) Put(b []byte) (string, error) {
	h := Hash(b)
	return h, s.pin(h, b)
}

// PutVerified stores b cached under hash after checking that b hashes to
// it.
func (s *Store) PutVerified(hash string, b []byte) error {
	if got := Hash(b); got != hash {
		return fmt.Errorf("%w: blob %s has sha256 %s", ErrBadHash, short(hash), short(got))
	}
	return s.cache(hash, b)
}

// pin stores b (already known to hash to h) pinned.
func (s *Store) pin(h string, b []byte) error {
	s.mu.Lock()
	if _, ok := s.pinned[h]; ok {
		s.mu.Unlock()
		return nil
	}
	if el, ok := s.mem[h]; ok {
		s.dropMemLocked(el)
	}
	s.pinned[h] = b
	s.pinnedBytes += int64(len(b))
	s.mu.Unlock()
	return s.writeDisk(h, b)
}

// Release makes the pinned blob h cached: kept in the memory LRU, and in
// the dir where Put wrote it, within their bounds, instead of for the
// store's life. A process that pins blobs for one use (a run's outputs,
// pulled to be written out) releases them after it, so that a long-lived
// one stays bounded. A blob that is not pinned is left as it is.
func (s *Store) Release(h string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.pinned[h]
	if !ok {
		return
	}
	delete(s.pinned, h)
	s.pinnedBytes -= int64(len(b))
	s.memPutLocked(h, b)
}

// pinLocal pins h if the store holds it; it reports whether it does.
func (s *Store) pinLocal(h string) bool {
	if s.isPinned(h) {
		return true
	}
	b, ok := s.Get(h)
	return ok && s.pin(h, b) == nil
}

func (s *Store) isPinned(h string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pinned[h]
	return ok
}

// cache stores b (already known to hash to h) cached.
func (s *Store) cache(h string, b []byte) error {
	s.mu.Lock()
	if _, ok := s.pinned[h]; ok {
		s.mu.Unlock()
		return nil
	}
	s.memPutLocked(h, b)
	s.mu.Unlock()
	return s.writeDisk(h, b)
}

// memPutLocked puts h at the front of the memory LRU and evicts from the
// back down to the bound, never the entry just put.
func (s *Store) memPutLocked(h string, b []byte) {
	if el, ok := s.mem[h]; ok {
		s.lru.MoveToFront(el)
		return
	}
	s.mem[h] = s.lru.PushFront(&memEnt{h: h, b: b})
	s.memBytes += int64(len(b))
	for s.memBytes > s.maxMem && s.lru.Len() > 1 {
		s.dropMemLocked(s.lru.Back())
		s.memEvictions++
	}
}

func (s *Store) dropMemLocked(el *list.Element) {
	e := s.lru.Remove(el).(*memEnt)
	delete(s.mem, e.h)
	s.memBytes -= int64(len(e.b))
}

// writeDisk writes b as the file for h unless it is there already, then
// evicts if the dir passed its bound.
func (s *Store) writeDisk(h string, b []byte) error {
	if s.dir == "" {
		return nil
	}
	now := time.Now().UnixNano()
	s.mu.Lock()
	e, known := s.disk[h]
	if known {
		e.used = now
	}
	s.mu.Unlock()
	if known {
		return nil
	}
	path := s.path(h)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		s.noteDisk(h, fi.Size(), now, fi.ModTime().UnixNano())
		return nil
	}
	// Write to a temporary name and rename, so a reader never sees half a
	// blob and concurrent writers do not clash. The file is read-only
	// (Materialize may hard-link it) and its mtime is the time of use.
	err := atomicfile.Write(path, ".tmp-"+h[:12]+"-*", func(f *os.File) error {
		if _, err := f.Write(b); err != nil {
			return err
		}
		if err := f.Chmod(0o444); err != nil {
			return err
		}
		t := time.Unix(0, now) // after the last write: closing keeps it
		return os.Chtimes(f.Name(), t, t)
	})
	if err != nil {
		return fmt.Errorf("modules: store %s: %w", short(h), err)
	}
	if s.noteDisk(h, int64(len(b)), now, now) {
		s.evictDisk()
	}
	return nil
}

// noteDisk records the file of h; it reports whether it is time to evict:
// the dir is over its bound, or this store has written a twentieth of the
// bound since it last scanned it (other processes sharing the dir write
// too: so each overshoots the bound by at most that much).
func (s *Store) noteDisk(h string, size, used, mtime int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.disk[h]; ok {
		e.used = max(e.used, used)
		return false
	}
	e := &diskEnt{cost: diskCost(size), used: used, touched: mtime}
	s.disk[h] = e
	s.diskBytes += e.cost
	s.sinceScan += e.cost
	return s.diskBytes > s.maxDisk || s.sinceScan > s.maxDisk/20
}

// evictDisk rescans the dir (other processes may share it), removing
// stale temporaries, and, if the files pass the bound, removes the least
// recently used cached ones until they take at most 90% of it.
func (s *Store) evictDisk() {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	files, err := s.scan(true) // a LazyScan store's first look at the dir
	if err != nil {
		return
	}
	s.mu.Lock()
	s.adoptLocked(files)
	if s.diskBytes <= s.maxDisk {
		s.mu.Unlock()
		return
	}
	type cand struct {
		h    string
		used int64
	}
	cands := make([]cand, 0, len(s.disk))
	for h, e := range s.disk {
		if _, ok := s.pinned[h]; !ok {
			cands = append(cands, cand{h, e.used})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.used, b.used) })
	target := s.maxDisk / 10 * 9
	for _, c := range cands {
		s.mu.Lock()
		done := s.diskBytes <= target
		e := s.disk[c.h]
		_, pinned := s.pinned[c.h]
		s.mu.Unlock()
		if done {
			return
		}
		if e == nil || pinned {
			continue
		}
		if err := os.Remove(s.path(c.h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.mu.Lock()
		if s.disk[c.h] == e {
			delete(s.disk, c.h)
			s.diskBytes -= e.cost
			s.diskEvictions++
		}
		s.mu.Unlock()
	}
}

// Get returns the blob with hash h: a pinned one, a cached one from memory,
// or from the dir (verified on reading; a corrupt file is removed and
// reported absent). A hit counts as a use for eviction. The bytes are
// shared: the caller must not change them.
func (s *Store) Get(h string) ([]byte, bool) {
	now := time.Now().UnixNano()
	touch := false
	s.mu.Lock()
	if b, ok := s.pinned[h]; ok {
		s.mu.Unlock()
		return b, true
	}
	el, inMem := s.mem[h]
	if inMem {
		s.lru.MoveToFront(el)
		if e := s.disk[h]; e != nil {
			e.used = now
			if now-e.touched > int64(touchEvery) {
				e.touched, touch = now, true
			}
		}
	}
	s.mu.Unlock()
	if inMem {
		if touch {
			t := time.Unix(0, now)
			_ = os.Chtimes(s.path(h), t, t)
		}
		return el.Value.(*memEnt).b, true
	}
	if s.dir == "" || !ValidHash(h) {
		return nil, false
	}
	path := s.path(h)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	if Hash(b) != h {
		os.Remove(path)
		s.mu.Lock()
		if e := s.disk[h]; e != nil {
			delete(s.disk, h)
			s.diskBytes -= e.cost
		}
		s.mu.Unlock()
		return nil, false
	}
	t := time.Unix(0, now)
	_ = os.Chtimes(path, t, t)
	s.mu.Lock()
	s.memPutLocked(h, b)
	s.mu.Unlock()
	if s.noteDisk(h, int64(len(b)), now, now) {
		s.evictDisk()
	}
	s.mu.Lock()
	if e := s.disk[h]; e != nil {
		e.used, e.touched = now, now
	}
	s.mu.Unlock()
	return b, true
}

// Has reports whether the store holds h (a file in the dir counts without
// being read).
func (s *Store) Has(h string) bool {
	_, ok := s.size(h)
	return ok
}

// size returns the length of blob h if the store holds it, without reading
// a file.
func (s *Store) size(h string) (int64, bool) {
	s.mu.Lock()
	if b, ok := s.pinned[h]; ok {
		s.mu.Unlock()
		return int64(len(b)), true
	}
	if el, ok := s.mem[h]; ok {
		s.mu.Unlock()
		return int64(len(el.Value.(*memEnt).b)), true
	}
	s.mu.Unlock()
	return s.statDisk(h)
}

// statDisk returns the length of h's file in the dir, if there is one,
// and records it in the disk index.
func (s *Store) statDisk(h string) (int64, bool) {
	if s.dir == "" || !ValidHash(h) {
		return 0, false
	}
	fi, err := os.Lstat(s.path(h))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	s.noteDisk(h, fi.Size(), fi.ModTime().UnixNano(), fi.ModTime().UnixNano())
	return fi.Size(), true
}

// diskFile returns the path of h's file in the dir if there is one: one
// this store knows, or finds (a store opened with LazyScan knows none of
// those that were there).
func (s *Store) diskFile(h string) (string, bool) {
	if s.dir == "" {
		return "", false
	}
	s.mu.Lock()
	_, ok := s.disk[h]
	s.mu.Unlock()
	if !ok {
		_, ok = s.statDisk(h)
	}
	return s.path(h), ok
}

// Stats returns a snapshot of the store's contents and evictions.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{
		DiskBytes:     s.diskBytes,
		DiskFiles:     len(s.disk),
		MemBytes:      s.memBytes,
		PinnedBytes:   s.pinnedBytes,
		DiskEvictions: s.diskEvictions,
		MemEvictions:  s.memEvictions,
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
