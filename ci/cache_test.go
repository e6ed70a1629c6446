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
