package host

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestGuardCache: with a cache dir, the first guard of a module writes what
// guard and coalesceData made of it; later ones read it back, equal; a
// damaged file is guarded again and rewritten; other limits or another
// budget are another file.
func TestGuardCache(t *testing.T) {
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "examples/wasm/hello", true))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lim := ModuleLimits{}.orDefaults()
	want, err := guardAndCoalesce(wasm, lim, DefaultStackBytes)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, g guarded) {
		t.Helper()
		if !bytes.Equal(g.wasm, want.wasm) || g.tableBytes != want.tableBytes || g.counted != want.counted {
			t.Fatalf("%s: guarded %d bytes (tables %d, counted %v), want %d (tables %d, counted %v)",
				what, len(g.wasm), g.tableBytes, g.counted, len(want.wasm), want.tableBytes, want.counted)
		}
	}
	g, err := guardCached(dir, wasm, lim, DefaultStackBytes)
	if err != nil {
		t.Fatal(err)
	}
	same("first guard", g)
	path := guardFile(dir, wasm, lim, DefaultStackBytes)
	fromFile, err := readGuarded(path)
	if err != nil {
		t.Fatalf("no cache file after the first guard: %v", err)
	}
	same("cache file", fromFile)
	if g, err = guardCached(dir, wasm, lim, DefaultStackBytes); err != nil {
		t.Fatal(err)
	}
	same("second guard", g)

	for _, damage := range [][]byte{nil, []byte("spindle"), append([]byte(guardMagic), 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0)} {
		if err := os.WriteFile(path, damage, 0o600); err != nil {
			t.Fatal(err)
		}
		if g, err = guardCached(dir, wasm, lim, DefaultStackBytes); err != nil {
			t.Fatal(err)
		}
		same("guard over a damaged file", g)
		if fromFile, err = readGuarded(path); err != nil {
			t.Fatalf("damaged file not rewritten: %v", err)
		}
		same("rewritten file", fromFile)
	}

	other := lim
	other.Functions--
	if guardFile(dir, wasm, other, DefaultStackBytes) == path || guardFile(dir, wasm, lim, DefaultStackBytes-1) == path {
		t.Errorf("other limits or budget share the cache file %s", filepath.Base(path))
	}
	// A refusal is not cached: refused again, and no file is left.
	bad := []byte("\x00asm\x01\x00\x00\x00\x01\x7f")
	for range 2 {
		if _, err := guardCached(dir, bad, lim, DefaultStackBytes); err == nil {
			t.Fatalf("a module guard refuses was accepted through the cache")
		}
	}
	if _, err := os.Stat(guardFile(dir, bad, lim, DefaultStackBytes)); !os.IsNotExist(err) {
		t.Errorf("a refused module left a cache file (stat: %v)", err)
	}
}
