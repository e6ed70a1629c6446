package ci

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/spindle-hq/spindle/internal/atomicfile"
	"github.com/spindle-hq/spindle/modules"
)

// CacheEntry is what the action cache keeps of one action that ran to its
// exit: enough to replay the step without running it. Stdout, Stderr and
// OutputTree are digests of blobs in the master's store.
type CacheEntry struct {
	Key        string        `json:"key"`
	ExitCode   int           `json:"exit_code"`
	Stdout     string        `json:"stdout"`
	Stderr     string        `json:"stderr"`
	OutputTree string        `json:"output_tree,omitempty"`
	Target     string        `json:"target"`   // where it ran
	Duration   time.Duration `json:"duration"` // how long it ran
	Created    time.Time     `json:"created"`
}

// ActionCache maps action keys to CacheEntry values: in memory, and in a
// directory when it has one (one small JSON file per key, written
// atomically, so concurrent runs sharing the directory never see half an
// entry). It is safe for concurrent use.
type ActionCache struct {
	dir string // "" = memory only
	mu  sync.Mutex
	mem map[string]*CacheEntry // guarded by mu
}

// OpenActionCache opens the cache in dir ("" keeps it in memory).
func OpenActionCache(dir string) (*ActionCache, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ci: action cache: %w", err)
		}
	}
	return &ActionCache{dir: dir, mem: map[string]*CacheEntry{}}, nil
}

// Get returns the entry of key, if any. An entry whose file is unreadable
// or damaged is treated as absent (and removed).
func (c *ActionCache) Get(key string) (*CacheEntry, bool) {
	if !modules.ValidHash(key) {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.mem[key]
	c.mu.Unlock()
	if ok || c.dir == "" {
		return e, ok
	}
	p := filepath.Join(c.dir, key)
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCacheEntryBytes+1))
	f.Close()
	if err != nil {
		return nil, false
	}
	e = new(CacheEntry)
	if len(b) > maxCacheEntryBytes || json.Unmarshal(b, e) != nil || !e.valid(key) {
		os.Remove(p)
		return nil, false
	}
	c.mu.Lock()
	c.mem[key] = e
	c.mu.Unlock()
	return e, true
}

// maxCacheEntryBytes bounds an entry's file: a real one is a few hundred
// bytes; anything larger was not written by Put.
const maxCacheEntryBytes = 16 << 10

// valid reports whether e, read from a file, is an entry Put could have
// written for key: its digests valid, its target one short line.
func (e *CacheEntry) valid(key string) bool {
	return e.Key == key && modules.ValidHash(key) && modules.ValidHash(e.Stdout) && modules.ValidHash(e.Stderr) &&
		(e.OutputTree == "" || modules.ValidHash(e.OutputTree)) &&
		len(e.Target) <= 1024 && !strings.ContainsFunc(e.Target, unicode.IsControl)
}

// Put records e under e.Key.
func (c *ActionCache) Put(e *CacheEntry) error {
	if !e.valid(e.Key) {
		return fmt.Errorf("ci: action cache: entry for %.12q is not one Get would take back (digests, target)", e.Key)
	}
	c.mu.Lock()
	c.mem[e.Key] = e
	c.mu.Unlock()
	if c.dir == "" {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(c.dir, e.Key), ".tmp-*", func(f *os.File) error {
		_, err := f.Write(b)
		return err
	}); err != nil {
		return fmt.Errorf("ci: action cache: %w", err)
	}
	return nil
}
