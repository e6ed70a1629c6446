package gotest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PickSlot returns the index of the target of names to try first, and a
// function that gives it back. Runs that share dir (each its own process,
// as go test and go build start -exec and -toolexec programs) take the
// first free target from one chosen by the hash of key (a package
// directory): its lock file, held with flock while the test runs,
// tells the others it is busy. With every target busy, or no dir, the
// hash's choice is taken without a lock. The locks are the kernel's: a
// process that dies gives its slot back.
func PickSlot(dir string, names []string, key string) (int, func()) {
	n := len(names)
	h := sha256.Sum256([]byte(key))
	start := int(binary.BigEndian.Uint64(h[:8]) % uint64(n))
	if n == 1 || dir == "" {
		return start, func() {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return start, func() {}
	}
	set := sha256.Sum256([]byte(strings.Join(names, "\x00")))
	prefix := "slot-" + hex.EncodeToString(set[:6]) + "-"
	for i := range n {
		idx := (start + i) % n
		f, err := os.OpenFile(filepath.Join(dir, prefix+strconv.Itoa(idx)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return idx, func() { f.Close() } // closing the last descriptor drops the lock
	}
	return start, func() {}
}
