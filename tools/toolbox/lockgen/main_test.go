package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTools(t *testing.T) {
	tests := []struct {
		args    []string
		want    map[string]string
		wantErr string
	}{
		{args: []string{"gofmt=cmd/gofmt", "gojq=x/cmd/gojq"}, want: map[string]string{"gofmt": "cmd/gofmt", "gojq": "x/cmd/gojq"}},
		{args: nil, wantErr: "no tools"},
		{args: []string{"gofmt"}, wantErr: "want NAME=PACKAGE"},
		{args: []string{"=cmd/gofmt"}, wantErr: "want NAME=PACKAGE"},
		{args: []string{"a/b=cmd/gofmt"}, wantErr: "want NAME=PACKAGE"},
		{args: []string{"a=x", "a=y"}, wantErr: "given twice"},
	}
	for _, tt := range tests {
		got, err := parseTools(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseTools(%q) = %v, want an error with %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("parseTools(%q) = %v, %v, want %v", tt.args, got, err, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("parseTools(%q)[%s] = %q, want %q", tt.args, k, got[k], v)
			}
		}
	}
}

// fixture writes two tool files and their lock into a directory.
func fixture(t *testing.T) (dir string, lock *Lock, tools map[string]string) {
	dir = t.TempDir()
	lock = &Lock{Format: Format, Go: "go1.26.8", GOOS: "wasip1", GOARCH: "wasm", Tools: map[string]Tool{}}
	tools = map[string]string{"a": "example.com/a", "b": "cmd/b"}
	for name, pkg := range tools {
		data := []byte("wasm of " + name)
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		lock.Tools[name] = Tool{Module: pkg + "@v1.0.0", Package: pkg, File: name + ".wasm", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	}
	return dir, lock, tools
}

func TestLockRoundTrip(t *testing.T) {
	dir, lock, _ := fixture(t)
	path := filepath.Join(dir, LockName)
	if err := writeLock(path, lock); err != nil {
		t.Fatal(err)
	}
	got, err := readLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := compare(got, lock); len(d) > 0 {
		t.Errorf("read back a different lock: %q", d)
	}
	if err := os.WriteFile(path, []byte(`{"format": 1, "tools": {}, "extra": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLock(path); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("readLock of a lock with an unknown field = %v, want an error naming it", err)
	}
	if err := os.WriteFile(path, []byte(`{"format": 2, "tools": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readLock(path); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Errorf("readLock of format 2 = %v, want an error naming it", err)
	}
}

func TestCompare(t *testing.T) {
	_, want, _ := fixture(t)
	clone := func(edit func(*Lock)) *Lock {
		l := *want
		l.Tools = map[string]Tool{}
		for k, v := range want.Tools {
			l.Tools[k] = v
		}
		edit(&l)
		return &l
	}
	tests := []struct {
		name string
		got  *Lock
		want []string // substrings, one per difference
	}{
		{"equal", clone(func(*Lock) {}), nil},
		{"go", clone(func(l *Lock) { l.Go = "go1.27.0" }), []string{"built with go1.27.0, expected go1.26.8"}},
		{"hash", clone(func(l *Lock) { a := l.Tools["a"]; a.SHA256 = "00"; l.Tools["a"] = a }), []string{"a: built example.com/a@v1.0.0 00 "}},
		{"extra", clone(func(l *Lock) { l.Tools["c"] = Tool{} }), []string{"c: built, but not in the expected lock"}},
		{"missing", clone(func(l *Lock) { delete(l.Tools, "b") }), []string{"b: in the expected lock, but not built"}},
	}
	for _, tt := range tests {
		got := compare(tt.got, want)
		if len(got) != len(tt.want) {
			t.Errorf("%s: compare = %q, want %d differences", tt.name, got, len(tt.want))
			continue
		}
		for i := range got {
			if !strings.Contains(got[i], tt.want[i]) {
				t.Errorf("%s: compare[%d] = %q, want it to hold %q", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestStale(t *testing.T) {
	dir, lock, tools := fixture(t)
	lockPath := filepath.Join(dir, LockName)
	input := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(input, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(input, past, past); err != nil {
		t.Fatal(err)
	}
	if why := stale(lockPath, lock, tools, []string{input}); !strings.Contains(why, "no ") {
		t.Errorf("stale with no lock = %q, want it to say there is none", why)
	}
	if err := writeLock(lockPath, lock); err != nil {
		t.Fatal(err)
	}
	if why := stale(lockPath, lock, tools, []string{input}); why != "" {
		t.Errorf("stale of a fresh lock = %q, want up to date", why)
	}

	moreTools := map[string]string{"a": "example.com/a", "b": "cmd/b", "c": "cmd/c"}
	otherPackage := map[string]string{"a": "example.com/other", "b": "cmd/b"}
	for _, tc := range []struct {
		name  string
		tools map[string]string
		want  string
	}{
		{"more tools", moreTools, "tool list changed"},
		{"other package", otherPackage, "tool list changed"},
	} {
		if why := stale(lockPath, lock, tc.tools, []string{input}); !strings.Contains(why, tc.want) {
			t.Errorf("stale, %s = %q, want %q", tc.name, why, tc.want)
		}
	}

	otherExpected := *lock
	otherExpected.Go = "go1.27.0"
	if why := stale(lockPath, &otherExpected, tools, []string{input}); !strings.Contains(why, "differs from the expected") {
		t.Errorf("stale against another expected lock = %q", why)
	}

	if err := os.WriteFile(filepath.Join(dir, "b.wasm"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := stale(lockPath, lock, tools, []string{input}); !strings.Contains(why, "b.wasm changed") {
		t.Errorf("stale after a file changed = %q, want it to name b.wasm", why)
	}

	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(input, future, future); err != nil {
		t.Fatal(err)
	}
	if why := stale(lockPath, lock, tools, []string{input}); !strings.Contains(why, "go.mod is newer") {
		t.Errorf("stale after go.mod changed = %q, want it to name go.mod", why)
	}
}
