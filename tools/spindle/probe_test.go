package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
)

// buildNoLibC compiles one C function, hello, to a wasm reactor with
// clang and lld, with extra linker flags.
func buildNoLibC(t *testing.T, ldflags ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	if err := os.WriteFile(src, []byte("int hello(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.wasm")
	args := append(append([]string{}, testutil.CFlags...), "-Wl,--export=hello")
	for _, f := range ldflags {
		args = append(args, "-Wl,"+f)
	}
	if b, err := exec.Command("clang", append(args, "-o", out, src)...).CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	return out
}

// TestRunChecksBeforeStart: a module without a "memory" export (or with
// an imported one), a --mount whose host directory is missing on this
// machine, and a TASK that a guest-SDK reactor does not register are bad
// input: exit 2 with one line saying what is wrong, and no context is
// started (with -vv, the master would log "starting child").
func TestRunChecksBeforeStart(t *testing.T) {
	testutil.VerifyNone(t)
	hello := testutil.BuildWasm(t, "examples/wasm/hello", true)
	hasher := testutil.BuildWasm(t, "examples/wasm/hasher", true)
	imported := buildNoLibC(t, "--import-memory")
	// lld always exports the memory it defines as "memory": rename the
	// export (same length, so the module stays well formed).
	exported := buildNoLibC(t)
	b, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, []byte("\x06memory\x02")) != 1 {
		t.Fatalf("%s has no export \"memory\" to rename", exported)
	}
	noMemory := filepath.Join(t.TempDir(), "nomem.wasm")
	if err := os.WriteFile(noMemory, bytes.Replace(b, []byte("\x06memory\x02"), []byte("\x06memorx\x02"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{noMemory, "hello"}, noMemory + `: it does not export its memory as "memory"`},
		{[]string{imported, "hello"}, imported + `: it imports a memory; a module must define and export its own as "memory"`},
		{[]string{"-t", "local:a", "-t", "local:b/local:c", hello, "nosuch"}, hello + `: a reactor module with no task "nosuch" (its tasks: hello)`},
		{[]string{"-t", "local:a", hello}, hello + `: a reactor module: name a TASK (its tasks: hello)`},
		{[]string{"--mount", missing + ":/data", hasher, "hash", "--input", `{"path": "x"}`}, "--mount " + missing + ":/data: the host directory: stat " + missing + ": no such file or directory"},
		{[]string{"--dir", missing, "-t", "local:a", hasher, "hash"}, "--dir " + missing + ": the host directory: stat"},
		{[]string{"--mount", file + ":/data", hasher, "hash"}, "--mount " + file + ":/data: the host path " + file + " is not a directory"},
	} {
		args := append([]string{"run", "-vv"}, tt.args...)
		code, out, errOut := cli(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "spindle run: "+tt.want) {
			t.Errorf("spindle %q = %d, stdout %q, stderr:\n%s\nwant %d and %q", args, code, out, errOut, exitUsage, tt.want)
		}
		if strings.Contains(errOut, `msg="starting child"`) {
			t.Errorf("spindle %q started a context before refusing:\n%s", args, errOut)
		}
	}
	// The same checks pass what is right, and -vv does show the start.
	code, out, errOut := cli(t, "run", "-vv", "--mount", filepath.Dir(file)+":/data", hasher, "hash", "--input", `{"path": "file"}`)
	if code != 0 || !strings.Contains(out, "sha256") || !strings.Contains(errOut, `msg="starting child"`) {
		t.Errorf("spindle run -vv hasher hash = %d\n%s\n%s", code, out, errOut)
	}
}

// TestOnThisMachine: the host directories are checked on the master only
// when every target runs on this machine.
func TestOnThisMachine(t *testing.T) {
	for s, want := range map[string]bool{
		"local": true, "local:a/local:b": true, "ssh://web1": false, "local:a/ssh://web1": false, "ssh://b/local": false,
	} {
		tg, err := target.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := onThisMachine([]target.Named{{Name: s, Target: tg}}); got != want {
			t.Errorf("onThisMachine(%s) = %v, want %v", s, got, want)
		}
	}
}
