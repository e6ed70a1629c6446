// Package atomicfile writes a file whole or not at all: through a temporary
// file in the file's own directory, renamed over it once complete, so that
// a reader (another process sharing a cache directory, say) finds the old
// file, the new one or none, never part of one, and concurrent writers of
// the same path do not clash. Nothing is synced to disk: a crash may leave
// the new file empty or short, so readers of what it writes check what
// they read (a size, a hash, a magic) as they would anyway.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write creates a temporary file beside path, named as os.CreateTemp names
// pattern, lets fill write it, closes it and renames it to path. On any
// error the temporary file is removed, path is left as it was, and the
// error (fill's first) is returned. The file is made with os.CreateTemp's
// mode (0600); fill may Chmod it, or set its times by f.Name().
func Write(path, pattern string, fill func(f *os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
