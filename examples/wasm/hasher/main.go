//go:build wasip1

// Command hasher is a Spindle reactor that hashes files in a mount the
// caller grants, read-only, at /data:
//
//   - "hash": {"path": "a/b.txt"} gives {"sha256": "<hex>", "bytes": n}.
//   - "hash_tree": {"dir": "a"} gives {"files": [{"path", "sha256",
//     "bytes"}, ...], "count": n, "bytes": total} for every regular file
//     under the directory, in lexical order; paths are relative to it.
//
// Relative paths are taken inside /data; absolute ones are used as they
// are. An empty dir means /data.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/spindle-hq/spindle/guest-sdk"
)

// mount is where the caller is expected to mount the files to hash.
const mount = "/data"

type hashIn struct {
	Path string `msgpack:"path"`
}

type fileHash struct {
	Path   string `msgpack:"path,omitempty"`
	SHA256 string `msgpack:"sha256"`
	Bytes  int64  `msgpack:"bytes"`
}

type treeIn struct {
	Dir string `msgpack:"dir"`
}

type treeOut struct {
	Files []fileHash `msgpack:"files"`
	Count int        `msgpack:"count"`
	Bytes int64      `msgpack:"bytes"`
}

func init() {
	guest.Register("hash", hashFile)
	guest.Register("hash_tree", hashTree)
}

// resolve makes p absolute, inside the mount when it is relative.
func resolve(p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join(mount, p)
}

func hashFile(_ guest.Ctx, in hashIn) (fileHash, error) {
	if in.Path == "" {
		return fileHash{}, fmt.Errorf("hash: no path")
	}
	return sum(resolve(in.Path))
}

func hashTree(ctx guest.Ctx, in treeIn) (treeOut, error) {
	root := resolve(in.Dir)
	out := treeOut{Files: []fileHash{}}
	err := fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		h, err := sum(path.Join(root, p))
		if err != nil {
			return err
		}
		h.Path = p
		out.Files = append(out.Files, h)
		out.Count++
		out.Bytes += h.Bytes
		return nil
	})
	if err != nil {
		return treeOut{}, fmt.Errorf("hash_tree %s: %w", root, err)
	}
	ctx.Info("hashed tree", "dir", root, "files", out.Count, "bytes", out.Bytes)
	return out, nil
}

func sum(p string) (fileHash, error) {
	f, err := os.Open(p)
	if err != nil {
		return fileHash{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fileHash{}, fmt.Errorf("read %s: %w", p, err)
	}
	return fileHash{SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: n}, nil
}

// main never runs in a reactor; the package must still have one.
func main() {}
