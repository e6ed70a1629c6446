package ci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/modules"
)

// TestActionCacheFiles: an entry read back from its file is the entry
// written; a file that Put could not have written (damaged, too large,
// another key's, digests that are not digests, a target with control
// characters) is treated as absent and removed.
func TestActionCacheFiles(t *testing.T) {
	dir := t.TempDir()
	key, out := modules.Hash([]byte("key")), modules.Hash([]byte("out"))
	good := CacheEntry{Key: key, ExitCode: 3, Stdout: out, Stderr: out, OutputTree: out, Target: "local:a"}
	c, err := OpenActionCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(&good); err != nil {
		t.Fatal(err)
	}
	fresh := func() *ActionCache {
		c, err := OpenActionCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if e, ok := fresh().Get(key); !ok || *e != good {
		t.Fatalf("Get = %+v, %v; want %+v", e, ok, good)
	}
	entry := func(change func(*CacheEntry)) string {
		e := good
		change(&e)
		b, _ := json.Marshal(e)
		return string(b)
	}
	for name, text := range map[string]string{
		"damaged":      `{"key": "` + key,
		"too large":    entry(func(e *CacheEntry) { e.Target = "x" }) + strings.Repeat(" ", maxCacheEntryBytes),
		"another key":  entry(func(e *CacheEntry) { e.Key = out }),
		"bad stdout":   entry(func(e *CacheEntry) { e.Stdout = "../../etc/passwd" }),
		"bad tree":     entry(func(e *CacheEntry) { e.OutputTree = "nope" }),
		"control char": entry(func(e *CacheEntry) { e.Target = "local\x1b[2K\rok" }),
	} {
		p := filepath.Join(dir, key)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if e, ok := fresh().Get(key); ok {
			t.Errorf("%s: Get = %+v, want absent", name, e)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: the file is still there (%v)", name, err)
		}
	}
}

// TestActionCachePutRefuses: Put refuses what Get would throw away, so a
// step never reruns silently for want of a cache entry it thought it had.
func TestActionCachePutRefuses(t *testing.T) {
	c, err := OpenActionCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := modules.Hash([]byte("out"))
	for _, e := range []CacheEntry{
		{Key: "nope", Stdout: out, Stderr: out},
		{Key: out, Stdout: "x", Stderr: out},
		{Key: out, Stdout: out, Stderr: out, Target: "local\x1b[2J"},
		{Key: out, Stdout: out, Stderr: out, Target: strings.Repeat("t", 1025)},
	} {
		if err := c.Put(&e); err == nil {
			t.Errorf("Put(%+v) = nil, want an error", e)
		}
	}
}
