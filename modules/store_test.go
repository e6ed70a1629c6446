package modules_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/modules"
)

// blob returns n bytes that differ for each i (n >= 4).
func blob(i, n int) []byte {
	b := bytes.Repeat([]byte{byte(i), byte(i >> 8), 'x'}, n/3+1)[:n]
	binary.BigEndian.PutUint32(b, uint32(i))
	copy(b[4:], fmt.Sprintf("blob %d:", i))
	return b
}

func putCached(t *testing.T, st *modules.Store, b []byte) string {
	t.Helper()
	h := modules.Hash(b)
	if err := st.PutVerified(h, b); err != nil {
		t.Fatal(err)
	}
	return h
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestStoreDiskEviction(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	st, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, MaxDiskBytes: 10 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	// A pinned original, the oldest file of all: never evicted.
	pin, err := st.Put(blob(-1, 1000))
	if err != nil {
		t.Fatal(err)
	}
	var hs []string
	for i := range 9 { // with the pinned one: 10 files of one block each
		hs = append(hs, putCached(t, st, blob(i, 1000)))
	}
	if s := st.Stats(); s.DiskFiles != 10 || s.DiskBytes != 10*4096 || s.DiskEvictions != 0 {
		t.Fatalf("Stats() = %+v, want 10 files, 40960 bytes, no eviction", s)
	}
	// A use of the oldest cached blob makes it the newest.
	if _, ok := st.Get(hs[0]); !ok {
		t.Fatal("Get(hs[0]) missed")
	}
	hs = append(hs, putCached(t, st, blob(9, 1000))) // 11 files: evict down to 9
	s := st.Stats()
	if s.DiskFiles != 9 || s.DiskEvictions != 2 {
		t.Fatalf("Stats() = %+v, want 9 files after 2 evictions", s)
	}
	for i, h := range hs {
		want := i != 1 && i != 2 // the two least recently used
		if got := exists(filepath.Join(dir, h)); got != want {
			t.Errorf("file of blob %d present = %v, want %v", i, got, want)
		}
	}
	if !exists(filepath.Join(dir, pin)) {
		t.Error("the pinned blob's file was evicted")
	}
	// Evicted from disk, the blobs are still in memory (they fit its bound).
	if _, ok := st.Get(hs[1]); !ok {
		t.Error("an evicted file's blob is gone from memory too")
	}
	// Files are read-only (Materialize hard-links them).
	fi, err := os.Stat(filepath.Join(dir, hs[0]))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("store file mode = %v, %v; want 0444", fi.Mode(), err)
	}

	// Another process's store on the dir finds the files, and evicts from
	// them at open if it has a smaller bound.
	st2, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, MaxDiskBytes: 5 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	if s := st2.Stats(); s.DiskFiles > 4 || s.DiskEvictions < 5 {
		t.Errorf("second store: Stats() = %+v, want at most 4 files after evictions", s)
	}
	if _, ok := st2.Get(hs[9]); !ok {
		t.Error("second store: the newest file was evicted")
	}
}

func TestStoreMemoryLRU(t *testing.T) {
	testutil.VerifyNone(t)
	st, err := modules.NewStoreConfig(modules.StoreConfig{MaxMemBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := st.Put(blob(100, 5000)) // pinned: does not count
	var hs []string
	for i := range 3 {
		hs = append(hs, putCached(t, st, blob(i, 1000)))
	}
	st.Get(hs[0]) // now the most recent
	hs = append(hs, putCached(t, st, blob(3, 1000)))
	for i, h := range hs {
		if _, got := st.Get(h); got != (i != 1) {
			t.Errorf("blob %d held = %v, want %v", i, got, i != 1)
		}
	}
	if s := st.Stats(); s.MemBytes != 3000 || s.PinnedBytes != 5000 || s.MemEvictions != 1 {
		t.Errorf("Stats() = %+v, want 3000 in memory, 5000 pinned, 1 eviction", s)
	}
	if !st.Has(pin) {
		t.Error("pinned blob evicted")
	}
	// One blob larger than the bound is kept, alone, until the next.
	big := putCached(t, st, blob(4, 4000))
	if !st.Has(big) || st.Has(hs[3]) {
		t.Error("a blob larger than the bound: want it held alone")
	}
	// Pinning a cached blob takes it out of the LRU.
	small := putCached(t, st, blob(5, 10))
	if _, err := st.Put(blob(5, 10)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		putCached(t, st, blob(10+i, 1000))
	}
	if !st.Has(small) {
		t.Error("a blob pinned after it was cached was evicted")
	}
	// A released blob is cached: it counts, and is evicted in its turn.
	st.Release(pin)
	if s := st.Stats(); s.PinnedBytes != 10 || !st.Has(pin) {
		t.Errorf("after Release: %+v, has %v; want 10 pinned bytes and the blob still held", s, st.Has(pin))
	}
	for i := range 4 {
		putCached(t, st, blob(20+i, 1000))
	}
	if st.Has(pin) {
		t.Error("a released blob was never evicted")
	}
	st.Release(pin) // neither pinned nor held: nothing
	st.Release(small)
	if s := st.Stats(); s.PinnedBytes != 0 {
		t.Errorf("after releasing both: %d pinned bytes, want 0", s.PinnedBytes)
	}
	if _, err := modules.NewStoreConfig(modules.StoreConfig{MaxMemBytes: -1}); err == nil {
		t.Error("negative bound accepted")
	}
}

// TestStoreLazyScan: a store opened with LazyScan reads nothing of its
// dir at open, finds the files there as they are asked for, and counts
// and evicts them at its first eviction check.
func TestStoreLazyScan(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	st, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var hs []string
	for i := range 120 {
		hs = append(hs, putCached(t, st, blob(i, 1000)))
	}
	stale := filepath.Join(dir, ".tmp-0123456789ab-1")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	lazy, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, MaxDiskBytes: 100 * 4096, LazyScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := lazy.Stats(); s.DiskFiles != 0 || s.DiskEvictions != 0 {
		t.Errorf("at open: %+v, want nothing counted (120 files on disk, past the bound of 100)", s)
	}
	if got, ok := lazy.Get(hs[3]); !ok || !bytes.Equal(got, blob(3, 1000)) || !lazy.Has(hs[4]) {
		t.Error("a file there at open is not found")
	}
	if s := lazy.Stats(); s.DiskFiles != 2 || s.DiskEvictions != 0 {
		t.Errorf("after a Get and a Has: %+v, want the two files counted", s)
	}
	// The first write past a twentieth of the bound looks at the dir:
	// the bound holds again (90% of it), the stale temporary is gone.
	putCached(t, lazy, blob(1000, 25000))
	if s := lazy.Stats(); s.DiskBytes > 90*4096 || s.DiskEvictions < 30 {
		t.Errorf("after the first check: %+v, want at most 90 blocks after evictions", s)
	}
	if exists(stale) {
		t.Error("a stale temporary was left")
	}
}

func TestStoreDiskFiles(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	// Files of the old naming, and other names, are left alone.
	old := []byte("an old module")
	oldPath := filepath.Join(dir, modules.Hash(old)+".wasm")
	if err := os.WriteFile(oldPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, MaxMemBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Has(modules.Hash(old)) || !exists(oldPath) || st.Stats().DiskFiles != 0 {
		t.Fatal("a <hash>.wasm file was taken for a blob, or removed")
	}
	// A cached blob evicted from memory is read back from disk, verified.
	a := putCached(t, st, blob(1, 100))
	b := putCached(t, st, blob(2, 100))
	if s := st.Stats(); s.MemEvictions != 1 {
		t.Fatalf("Stats() = %+v, want one memory eviction", s)
	}
	if got, ok := st.Get(a); !ok || !bytes.Equal(got, blob(1, 100)) {
		t.Fatalf("Get(a) from disk = %d bytes, %v", len(got), ok)
	}
	// A file corrupted on disk is removed and reported absent.
	path := filepath.Join(dir, b)
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	st.Get(a) // pushes b out of memory
	if _, ok := st.Get(b); ok {
		t.Fatal("served a corrupt file")
	}
	if exists(path) {
		t.Fatal("corrupt file left in place")
	}
}

// TestStoreHammer runs puts, gets and evictions from many goroutines at
// once on two stores sharing a dir; every Get must return the right bytes
// and the books must balance at the end.
func TestStoreHammer(t *testing.T) {
	testutil.VerifyNone(t)
	dir := t.TempDir()
	cfg := modules.StoreConfig{Dir: dir, MaxDiskBytes: 40 * 4096, MaxMemBytes: 20 * 1000}
	st1, err := modules.NewStoreConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := modules.NewStoreConfig(cfg)
	const workers, ops, blobs = 16, 300, 120
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := st1
			if w%2 == 1 {
				st = st2
			}
			for i := range ops {
				k := (w*7 + i*13) % blobs
				b := blob(k, 500+k)
				h := modules.Hash(b)
				switch i % 4 {
				case 0:
					if err := st.PutVerified(h, b); err != nil {
						errs <- err
						return
					}
				case 1:
					if k%10 == 0 {
						st.Put(b)
					}
				default:
					if got, ok := st.Get(h); ok && !bytes.Equal(got, b) {
						errs <- fmt.Errorf("Get(%d) returned other bytes", k)
						return
					}
					st.Has(h)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, st := range []*modules.Store{st1, st2} {
		s := st.Stats()
		if s.MemBytes > cfg.MaxMemBytes {
			t.Errorf("Stats() = %+v: memory past its bound", s)
		}
		if s.DiskEvictions == 0 && s.MemEvictions == 0 {
			t.Errorf("Stats() = %+v: the hammer evicted nothing", s)
		}
	}
	// A fresh store's count is what is on disk; the bound held, give or
	// take what one store wrote since its last look at the dir (a
	// twentieth of the bound: 2 files) and the writes in progress then.
	st3, _ := modules.NewStoreConfig(modules.StoreConfig{Dir: dir, MaxDiskBytes: 1 << 30})
	des, _ := os.ReadDir(dir)
	var files int
	for _, de := range des {
		if modules.ValidHash(de.Name()) {
			files++
		}
	}
	if s := st3.Stats(); s.DiskFiles != files || s.DiskBytes != int64(files)*4096 || files > 40+6 {
		t.Errorf("on disk %d files; a fresh store counts %+v; want at most 46", files, s)
	}
}
