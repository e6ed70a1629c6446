package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// ErrNotFound is returned for a module nobody in the tree has.
var ErrNotFound = errors.New("modules: module not found")

// ErrBadHash is returned for bytes whose sha256 is not the expected one, or
// a malformed hash.
var ErrBadHash = errors.New("modules: hash mismatch")

// Hash returns the module ID of b: its sha256, lower-case hex.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ValidHash reports whether h has the form of a module ID.
func ValidHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Store holds modules by hash, in memory and (optionally) on disk. It is
// safe for concurrent use.
type Store struct {
	dir string // "" = memory only

	mu  sync.RWMutex
	mem map[string][]byte // guarded by mu
}

// NewStore returns a store; dir, if not empty, is created and used as the
// on-disk cache shared by every process that uses the same dir.
func NewStore(dir string) (*Store, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("modules: store dir: %w", err)
		}
	}
	return &Store{dir: dir, mem: make(map[string][]byte)}, nil
}

// Put stores b and returns its hash.
func (s *Store) Put(b []byte) (string, error) {
	h := Hash(b)
	return h, s.put(h, b)
}

// PutVerified stores b under hash after checking that b hashes to it.
func (s *Store) PutVerified(hash string, b []byte) error {
	if got := Hash(b); got != hash {
		return fmt.Errorf("%w: module %s has sha256 %s", ErrBadHash, short(hash), short(got))
	}
	return s.put(hash, b)
}

func (s *Store) put(h string, b []byte) error {
	s.mu.Lock()
	_, had := s.mem[h]
	s.mem[h] = b
	s.mu.Unlock()
	if had || s.dir == "" {
		return nil
	}
	path := filepath.Join(s.dir, h+".wasm")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	// Write to a temporary name and rename, so a reader never sees half a
	// module and concurrent writers do not clash.
	tmp, err := os.CreateTemp(s.dir, ".tmp-"+h[:12]+"-*")
	if err != nil {
		return fmt.Errorf("modules: store %s: %w", short(h), err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("modules: store %s: %w", short(h), werr)
	}
	return nil
}

// Get returns the module with hash h, from memory or disk (verified when
// read from disk; a corrupt file is removed and reported absent).
func (s *Store) Get(h string) ([]byte, bool) {
	s.mu.RLock()
	b, ok := s.mem[h]
	s.mu.RUnlock()
	if ok || s.dir == "" || !ValidHash(h) {
		return b, ok
	}
	path := filepath.Join(s.dir, h+".wasm")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	if Hash(b) != h {
		os.Remove(path)
		return nil, false
	}
	s.mu.Lock()
	s.mem[h] = b
	s.mu.Unlock()
	return b, true
}

// Has reports whether the store holds h.
func (s *Store) Has(h string) bool {
	_, ok := s.Get(h)
	return ok
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
