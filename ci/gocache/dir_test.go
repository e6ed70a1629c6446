package gocache_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/ci/gocache"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(serveHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

func openDir(t *testing.T) *gocache.Dir {
	t.Helper()
	d, err := gocache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// id is a made-up action ID.
func id(s string) []byte { h := sha256.Sum256([]byte("action " + s)); return h[:] }

// out is the output ID of body.
func out(body []byte) []byte { h := sha256.Sum256(body); return h[:] }

func TestDirPutGet(t *testing.T) {
	d := openDir(t)
	body := []byte("an archive's bytes")
	if _, ok, err := d.Get(id("a")); ok || err != nil {
		t.Fatalf("Get of an empty cache = %v, %v; want a miss", ok, err)
	}
	e, err := d.Put(id("a"), out(body), int64(len(body)), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(e.Path) || !strings.HasPrefix(e.Path, d.Root()) {
		t.Errorf("Put's path %q is not an absolute path in %s", e.Path, d.Root())
	}
	// The shape of go's own cache, which gotool mounts whole.
	if rel, _ := filepath.Rel(d.Root(), e.Path); rel != fmt.Sprintf("%x/%x-d", out(body)[:1], out(body)) {
		t.Errorf("output at %s, want XX/OUTPUT-d", rel)
	}
	got, ok, err := d.Get(id("a"))
	if !ok || err != nil {
		t.Fatalf("Get after Put = %v, %v", ok, err)
	}
	if !bytes.Equal(got.Output, out(body)) || got.Size != int64(len(body)) || got.Path != e.Path || time.Since(got.Time) > time.Minute {
		t.Errorf("Get = %+v, want output %x, size %d, path %s, a time of now", got, out(body), len(body), e.Path)
	}
	if b, _ := os.ReadFile(got.Path); !bytes.Equal(b, body) {
		t.Errorf("output file holds %q, want %q", b, body)
	}

	// A second action with the same output shares its file, not rewritten.
	before, _ := os.Stat(e.Path)
	e2, err := d.Put(id("b"), out(body), int64(len(body)), bytes.NewReader(body))
	if err != nil || e2.Path != e.Path {
		t.Fatalf("Put of a known output = %+v, %v; want the same path", e2, err)
	}
	if after, _ := os.Stat(e.Path); !os.SameFile(before, after) {
		t.Error("a known output was written again")
	}

	// An empty output.
	e3, err := d.Put(id("empty"), out(nil), 0, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := d.Get(id("empty")); !ok || got.Size != 0 || got.Path != e3.Path {
		t.Errorf("Get of the empty output = %+v, %v", got, ok)
	}
}

func TestDirRefuses(t *testing.T) {
	d := openDir(t)
	body := []byte("the real bytes")
	for _, tc := range []struct {
		name           string
		action, output []byte
		size           int64
		body           []byte
		want           error
	}{
		{"other bytes", id("x"), out(body), int64(len(body)), []byte("other bytes, xx"), gocache.ErrMismatch},
		{"short", id("x"), out(body), int64(len(body)), body[:4], gocache.ErrMismatch},
		{"long", id("x"), out(body), int64(len(body)), append(body, '!'), gocache.ErrMismatch},
		{"short action", id("x")[:8], out(body), int64(len(body)), body, gocache.ErrBadID},
		{"no output", id("x"), nil, int64(len(body)), body, gocache.ErrBadID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Put(tc.action, tc.output, tc.size, bytes.NewReader(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			if _, ok, _ := d.Get(id("x")); ok {
				t.Fatal("a refused put left an entry")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(d.Root(), fmt.Sprintf("%x", out(body)[:1]), fmt.Sprintf("%x-d", out(body)))); !os.IsNotExist(err) {
		t.Errorf("a refused output was kept: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(d.Root(), "*", ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := gocache.Open("relative/dir"); err == nil {
		t.Error("Open of a relative path succeeded")
	}
}

// TestDirDamage: an entry whose output went, or was truncated, or whose
// own file is garbage, is a miss, and a put mends it.
func TestDirDamage(t *testing.T) {
	d := openDir(t)
	body := []byte("bytes of an output")
	put := func(a string) gocache.Entry {
		e, err := d.Put(id(a), out(body), int64(len(body)), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := put("a")
	os.Remove(e.Path)
	if _, ok, err := d.Get(id("a")); ok || err != nil {
		t.Fatalf("Get with its output gone = %v, %v; want a miss", ok, err)
	}
	put("a")
	os.WriteFile(e.Path, body[:3], 0o600)
	if _, ok, _ := d.Get(id("a")); ok {
		t.Fatal("Get of a truncated output hit")
	}
	put("a") // the output has another size: written again
	if _, ok, _ := d.Get(id("a")); !ok {
		t.Fatal("a put did not mend a truncated output")
	}
	entries, _ := filepath.Glob(filepath.Join(d.Root(), "*", "*-a"))
	if len(entries) != 1 {
		t.Fatalf("entries: %v", entries)
	}
	for _, garbage := range []string{"", "spindle-gocache-v1 zz 1 1\n", strings.Repeat("x", 1000)} {
		os.WriteFile(entries[0], []byte(garbage), 0o600)
		if _, ok, err := d.Get(id("a")); ok || err != nil {
			t.Errorf("Get of entry %.20q = %v, %v; want a miss", garbage, ok, err)
		}
	}
}

func TestDirTrim(t *testing.T) {
	d := openDir(t)
	now := time.Now()
	ages := map[string]time.Duration{"ancient": 200 * time.Hour, "old": 50 * time.Hour, "older": 60 * time.Hour, "recent": 30 * time.Minute}
	bodyOf := func(a string) []byte { return []byte(strings.Repeat(a, 100)[:100]) }
	// age sets the mtimes of what is left of each entry (Get touches them).
	age := func() {
		for a, age := range ages {
			files, _ := filepath.Glob(filepath.Join(d.Root(), "*", fmt.Sprintf("%x-a", id(a))))
			more, _ := filepath.Glob(filepath.Join(d.Root(), "*", fmt.Sprintf("%x-d", out(bodyOf(a)))))
			for _, p := range append(files, more...) {
				os.Chtimes(p, now.Add(-age), now.Add(-age))
			}
		}
	}
	for a := range ages {
		body := bodyOf(a)
		if _, err := d.Put(id(a), out(body), int64(len(body)), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	age()
	tmp := filepath.Join(d.Root(), "ab", ".tmp-123")
	os.MkdirAll(filepath.Dir(tmp), 0o700)
	os.WriteFile(tmp, []byte("half a file"), 0o600)
	os.Chtimes(tmp, now.Add(-3*time.Hour), now.Add(-3*time.Hour))
	hits := func() string {
		var s []string
		for _, a := range []string{"ancient", "old", "older", "recent"} {
			if _, ok, _ := d.Get(id(a)); ok {
				s = append(s, a)
			}
		}
		age()
		return strings.Join(s, " ")
	}

	for _, tc := range []struct {
		maxAge   time.Duration
		maxBytes int64
		want     string
	}{
		{120 * time.Hour, 0, "old older recent"},
		// By size the oldest go first.
		{0, 250, "old recent"},
		// What was used within TrimGrace stays, whatever the bound.
		{0, 1, "recent"},
	} {
		st, err := d.Trim(now, tc.maxAge, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := hits(); got != tc.want {
			t.Errorf("Trim(%v, %d): hits %q, want %q (%+v)", tc.maxAge, tc.maxBytes, got, tc.want, st)
		}
		if n := len(strings.Fields(tc.want)); st.Kept != n || st.KeptBytes != int64(100*n) {
			t.Errorf("Trim(%v, %d) kept %d outputs of %d bytes, want %d of %d", tc.maxAge, tc.maxBytes, st.Kept, st.KeptBytes, n, 100*n)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Error("a stale temporary file was kept")
	}

	// TrimIfDue: once a period.
	if _, did, err := d.TrimIfDue(now, time.Hour, 0, 1); !did || err != nil {
		t.Errorf("first TrimIfDue = %v, %v; want a trim", did, err)
	}
	if _, did, _ := d.TrimIfDue(now.Add(30*time.Minute), time.Hour, 0, 1); did {
		t.Error("TrimIfDue trimmed again within its period")
	}
	if _, did, _ := d.TrimIfDue(now.Add(2*time.Hour), time.Hour, 0, 1); !did {
		t.Error("TrimIfDue did not trim once its period was over")
	}
}

// TestDirHammer: goroutines of two Dirs on one directory (as two go
// commands) put and get the same actions at once; every hit reads whole.
func TestDirHammer(t *testing.T) {
	root := t.TempDir()
	var dirs [2]*gocache.Dir
	for i := range dirs {
		var err error
		if dirs[i], err = gocache.Open(root); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			d := dirs[g%2]
			<-start
			for i := range 50 {
				a := fmt.Sprint(i % 10)
				body := bytes.Repeat([]byte(a), 4096+i%10)
				if _, err := d.Put(id(a), out(body), int64(len(body)), bytes.NewReader(body)); err != nil {
					errs <- err
					return
				}
				e, ok, err := d.Get(id(a))
				if err != nil || !ok {
					errs <- fmt.Errorf("Get %s after its put = %v, %v", a, ok, err)
					return
				}
				if b, err := os.ReadFile(e.Path); err != nil || !bytes.Equal(out(b), e.Output) {
					errs <- fmt.Errorf("output of %s: %v, or not its bytes", a, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
