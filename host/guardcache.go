package host

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spindle-hq/spindle/internal/atomicfile"
)

// The guarded-module cache: with a CacheDir, what guard and coalesceData
// make of a module is kept in CacheDir/guarded-v<guardVersion>, so that a
// module already compiled on this machine costs a new Host (a restarted
// process) one read and a hash, not guard's parse and rewrite, before
// wazero's own cache finds its code. A file is named for the hash of the
// module's bytes and of everything guard's output depends on (the module
// limits and the stack budget), and written whole under a temporary name,
// then renamed. It holds a magic, the guarded module's tableBytes and
// counted, and its bytes. The directory has the trust of wazero's cache
// beside it: whoever can write there can already plant compiled code.

// guardVersion names the format of guard's output: bump it whenever guard
// or coalesceData would write different bytes for the same module.
const guardVersion = 6

const guardMagic = "spindle-guarded\x00"

// guardFile is where the cache keeps module wasm guarded under lim and
// budget, below dir.
func guardFile(dir string, wasm []byte, lim ModuleLimits, budget int32) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d %+v %d %d\n", guardVersion, lim, budget, tickFuel)
	h.Write(wasm)
	return filepath.Join(dir, fmt.Sprintf("guarded-v%d", guardVersion), hex.EncodeToString(h.Sum(nil)))
}

// guardCached is guard followed by coalesceData, through the cache in dir
// ("" for none). Refusals are not cached: guard refuses in well under a
// millisecond.
func guardCached(dir string, wasm []byte, lim ModuleLimits, budget int32) (guarded, error) {
	if dir == "" {
		return guardAndCoalesce(wasm, lim, budget)
	}
	path := guardFile(dir, wasm, lim, budget)
	if g, err := readGuarded(path); err == nil {
		return g, nil
	}
	g, err := guardAndCoalesce(wasm, lim, budget)
	if err != nil {
		return g, err
	}
	_ = writeGuarded(path, g) // a cache: a failed write costs the next Host a guard
	return g, nil
}

func guardAndCoalesce(wasm []byte, lim ModuleLimits, budget int32) (guarded, error) {
	g, err := guard(wasm, lim, budget)
	if err != nil {
		return g, err
	}
	g.wasm = coalesceData(g.wasm)
	return g, nil
}

var errGuardFile = errors.New("host: not a guarded-module file")

func readGuarded(path string) (guarded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return guarded{}, err
	}
	head := len(guardMagic) + 9
	if len(b) < head+8 || string(b[:len(guardMagic)]) != guardMagic || b[head-1] > 1 {
		return guarded{}, errGuardFile
	}
	return guarded{
		tableBytes: binary.LittleEndian.Uint64(b[len(guardMagic):]),
		counted:    b[head-1] == 1,
		wasm:       b[head:],
	}, nil
}

func writeGuarded(path string, g guarded) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b := make([]byte, 0, len(guardMagic)+9+len(g.wasm))
	b = append(b, guardMagic...)
	b = binary.LittleEndian.AppendUint64(b, g.tableBytes)
	counted := byte(0)
	if g.counted {
		counted = 1
	}
	b = append(append(b, counted), g.wasm...)
	return atomicfile.Write(path, ".tmp-*", func(f *os.File) error {
		_, err := f.Write(b)
		return err
	})
}
