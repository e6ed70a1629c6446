package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// tmpSeq numbers replaceIn's temporary files within this process.
var tmpSeq atomic.Uint64

// replaceIn writes b as p under rt with exactly mode: a new file,
// renamed over p.
func replaceIn(rt *os.Root, p string, b []byte, mode fs.FileMode) error {
	tmp := fmt.Sprintf("%s.spindle-%d-%d", p, os.Getpid(), tmpSeq.Add(1))
	f, err := rt.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rt.Rename(tmp, p)
	}
	if err != nil {
		rt.Remove(tmp)
	}
	return err
}

// replaceFile writes data to a new file beside path (0644) and renames it
// over path.
func replaceFile(path string, data []byte) error {
	rt, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer rt.Close()
	return replaceIn(rt, filepath.Base(path), data, 0o644)
}
