package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Write replaces the file whole; a failed fill leaves the old file and no
// temporary one behind.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, ".tmp-*", func(f *os.File) error {
		f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("a failed fill: %v, want its error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("after a failed fill the file holds %q", b)
	}
	if err := Write(path, ".tmp-*", func(f *os.File) error {
		_, err := f.WriteString("new")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("file holds %q, want new", b)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("the directory holds %d entries, want the file alone", len(es))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), ".tmp-*", func(*os.File) error { return nil }); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}
