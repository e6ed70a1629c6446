package gotest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTestFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		timeout time.Duration
		count   bool
		err     string
	}{
		{[]string{"-test.paniconexit0", "-test.timeout=10m0s"}, 10 * time.Minute, false, ""},
		{[]string{"-test.timeout", "1s", "-test.count=1"}, time.Second, true, ""},
		{[]string{"-test.coverprofile=/tmp/c.out"}, 0, false, "names a path on this machine"},
		{[]string{"--", "-test.coverprofile=x"}, 0, false, ""}, // the test's own argument
		{[]string{"-test.timeout=soon"}, 0, false, "not a duration"},
	} {
		tf, err := parseTestFlags(c.args)
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseTestFlags(%q) error %v, want %q", c.args, err, c.err)
			continue
		}
		if err == nil && (tf.timeout != c.timeout || tf.count != c.count) {
			t.Errorf("parseTestFlags(%q) = %+v, want timeout %v count %v", c.args, tf, c.timeout, c.count)
		}
	}
}

// TestPickSlot: a slot held by one run is not taken by another while a
// free one remains; with all held, the hash's choice is taken.
func TestPickSlot(t *testing.T) {
	dir := t.TempDir()
	ts := []string{"a", "b"}
	i, rel1 := PickSlot(dir, ts, "/pkg")
	j, rel2 := PickSlot(dir, ts, "/pkg")
	if i == j {
		t.Fatalf("two runs took slot %d", i)
	}
	k, rel3 := PickSlot(dir, ts, "/pkg")
	if k != i {
		t.Errorf("all busy: slot %d, want the hash's %d", k, i)
	}
	rel3()
	rel1()
	if l, rel := PickSlot(dir, ts, "/pkg"); l != i {
		t.Errorf("after release: slot %d, want %d", l, i)
	} else {
		rel()
	}
	rel2()
}

// TestModuleRoot finds the nearest go.mod at or above a directory, and
// says so when there is none; a directory named go.mod does not count.
func TestModuleRoot(t *testing.T) {
	top := t.TempDir()
	pkg := filepath.Join(top, "a", "b")
	if err := os.MkdirAll(filepath.Join(pkg, "go.mod"), 0o755); err != nil { // a directory, not a go.mod
		t.Fatal(err)
	}
	if _, err := ModuleRoot(pkg); err == nil || !strings.Contains(err.Error(), "no go.mod in "+pkg+" or above it") {
		t.Errorf("no module: %v", err)
	}
	if err := os.WriteFile(filepath.Join(top, "go.mod"), []byte("module m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{pkg, top} {
		if got, err := ModuleRoot(d); err != nil || got != top {
			t.Errorf("ModuleRoot(%s) = %q, %v; want %s", d, got, err, top)
		}
	}
}

// TestRootNotAbove: a Root that is not at or above the package directory
// is a usage error, before anything is stored or run.
func TestRootNotAbove(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	bin := filepath.Join(dir, "x.test")
	if err := os.WriteFile(bin, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(t.Context(), nil, Options{Binary: bin, Dir: dir, Root: other})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is not inside the root "+other) {
		t.Errorf("Run = %v, want a usage error naming the root", err)
	}
}
