package gotool

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// fixture lays out what go build names: a GOROOT with its tool directory,
// a build cache entry, a package directory and go's work directory.
type fixture struct {
	goroot, tool, cache, entry, pkg, work, b001 string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{
		goroot: filepath.Join(root, "go"), cache: filepath.Join(root, "cache"), pkg: filepath.Join(root, "src", "hw"),
		work: filepath.Join(root, "go-build123"),
	}
	f.tool = filepath.Join(f.goroot, "pkg", "tool", "linux_amd64", "compile")
	f.entry = filepath.Join(f.cache, "ab", strings.Repeat("ab", 32)+"-d")
	f.b001 = filepath.Join(f.work, "b001")
	for _, d := range []string{filepath.Dir(f.tool), filepath.Join(f.goroot, "pkg", "include"), filepath.Dir(f.entry), f.pkg, f.b001} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, f.entry, "archive")
	write(t, filepath.Join(f.pkg, "main.go"), "package main")
	write(t, filepath.Join(f.b001, "importcfg"), "# import config\npackagefile fmt="+f.entry+"\n")
	return f
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPlanCompile: a compile invocation as go build passes it sees its
// package directory and the build cache (from the importcfg) read-only,
// $WORK read-write, and nothing else; its environment is go's GO*
// variables with GOOS and GOARCH from the tool's directory.
func TestPlanCompile(t *testing.T) {
	f := newFixture(t)
	argv := []string{
		f.tool, "-o", f.b001 + "/_pkg_.a", "-trimpath", f.b001 + "=>", "-p", "main",
		"-importcfg", f.b001 + "/importcfg", "-pack", "./main.go",
	}
	inv, err := Plan(argv, f.pkg, []string{"HOME=/root", "GOFLAGS=-mod=mod", "GOOS=", "CGO_ENABLED=0", "SSH_AUTH_SOCK=/x"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{Dir: f.cache, ReadOnly: true}, {Dir: f.work}, {Dir: f.pkg, ReadOnly: true}}
	if !reflect.DeepEqual(inv.Mounts, want) {
		t.Errorf("mounts = %+v, want %+v", inv.Mounts, want)
	}
	wantEnv := map[string]string{"GOFLAGS": "-mod=mod", "GOOS": "linux", "GOARCH": "amd64", "CGO_ENABLED": "0", "GOROOT": f.goroot, "PWD": f.pkg, "TMPDIR": f.work}
	if !reflect.DeepEqual(inv.Env, wantEnv) {
		t.Errorf("env = %v, want %v", inv.Env, wantEnv)
	}
	if inv.Tool != "compile" || inv.GOROOT != f.goroot || inv.Work != f.work || !reflect.DeepEqual(inv.Args, argv[1:]) {
		t.Errorf("invocation = %+v", inv)
	}
	// Shipped: the archive the importcfg names (not the whole cache), the
	// package's sources, and the output's directory b001 whole (the
	// importcfg with it); not the -trimpath prefix on its own.
	write(t, filepath.Join(f.cache, "ab", strings.Repeat("cd", 32)+"-d"), "another archive")
	if err := os.Mkdir(filepath.Join(f.pkg, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err = Plan(argv, f.pkg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{f.entry, f.b001, filepath.Join(f.pkg, "main.go")}; !reflect.DeepEqual(inv.Files, want) {
		t.Errorf("files = %q, want %q", inv.Files, want)
	}

	// asm's -I names GOROOT's include directory: GOROOT is one mount.
	asm := filepath.Join(filepath.Dir(f.tool), "asm")
	inv, err = Plan([]string{asm, "-I", f.b001 + "/", "-I", filepath.Join(f.goroot, "pkg", "include"), "-o", f.b001 + "/x.o", "./main.go"},
		f.pkg, []string{"GOOS=windows"})
	if err != nil {
		t.Fatal(err)
	}
	want = []Mount{{Dir: f.goroot, ReadOnly: true}, {Dir: f.work}, {Dir: f.pkg, ReadOnly: true}}
	if !reflect.DeepEqual(inv.Mounts, want) || inv.Env["GOOS"] != "windows" {
		t.Errorf("asm: mounts %+v, GOOS %q; want %+v, windows (go's GOOS kept)", inv.Mounts, inv.Env["GOOS"], want)
	}
	// Its -I directories go whole.
	if want := []string{f.b001, filepath.Join(f.goroot, "pkg", "include"), filepath.Join(f.pkg, "main.go")}; !reflect.DeepEqual(inv.Files, want) {
		t.Errorf("asm: files = %q, want %q", inv.Files, want)
	}

	// The headers its sources include from below their directory go
	// too, and theirs (found beside the source, as asm looks), not the
	// rest of that directory; one that is nowhere is left to asm.
	sub := filepath.Join(f.pkg, "cgo")
	if err := os.MkdirAll(filepath.Join(sub, "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.pkg, "asm.s"), "#include \"textflag.h\"\n  # include \"cgo/abi.h\"\n#include \"nowhere.h\"\nTEXT x(SB),0,$0\n")
	write(t, filepath.Join(sub, "abi.h"), "#include \"cgo/deeper/more.h\"\n")
	write(t, filepath.Join(sub, "deeper", "more.h"), "// nothing\n")
	write(t, filepath.Join(sub, "unrelated.c"), "")
	inv, err = Plan([]string{asm, "-I", f.b001 + "/", "-I", filepath.Join(f.goroot, "pkg", "include"), "-o", f.b001 + "/asm.o", "./asm.s"},
		f.pkg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{
		f.b001, filepath.Join(f.goroot, "pkg", "include"), filepath.Join(f.pkg, "asm.s"), filepath.Join(sub, "abi.h"),
		filepath.Join(sub, "deeper", "more.h"),
	}; !reflect.DeepEqual(inv.Files, want) {
		t.Errorf("asm with includes: files = %q, want %q", inv.Files, want)
	}

	// A response file is read as arguments.
	write(t, filepath.Join(f.b001, "args"), "-importcfg\n"+f.b001+"/importcfg\n")
	inv, err = Plan([]string{f.tool, "@" + f.b001 + "/args"}, f.pkg, nil)
	if err != nil || len(inv.Mounts) != 2 || inv.Mounts[0].Dir != f.cache {
		t.Errorf("@args: %+v, %v; want the cache from the importcfg it names, and $WORK", inv, err)
	}

	// go starts compile in its own working directory, naming every file
	// absolutely: that directory is not granted, even when it holds $WORK
	// (go build run in /tmp) or is /.
	abs := []string{f.tool, "-o", f.b001 + "/_pkg_.a", "-p", "main", "-importcfg", f.b001 + "/importcfg", "-pack", filepath.Join(f.pkg, "main.go")}
	for _, cwd := range []string{filepath.Dir(f.work), "/"} {
		inv, err = Plan(abs, cwd, nil)
		want := []Mount{{Dir: f.cache, ReadOnly: true}, {Dir: f.work}, {Dir: f.pkg, ReadOnly: true}}
		if err != nil || !reflect.DeepEqual(inv.Mounts, want) || inv.Env["PWD"] != cwd {
			t.Errorf("compile started in %s: %+v, %v; want mounts %+v and PWD %s", cwd, inv, err, want, cwd)
		}
	}
}

func TestPlanRefusals(t *testing.T) {
	f := newFixture(t)
	if inv, err := Plan([]string{f.tool, "-V=full"}, f.pkg, nil); err != nil || len(inv.Mounts) != 0 || inv.Work != "" {
		t.Errorf("-V=full: %+v, %v; want no mounts", inv, err)
	}
	if _, err := Plan([]string{filepath.Join(filepath.Dir(f.tool), "cgo"), "-V=full"}, f.pkg, nil); !errors.Is(err, ErrNative) {
		t.Errorf("cgo: %v, want ErrNative", err)
	}
	write(t, filepath.Join(f.b001, "outer"), "@"+f.b001+"/inner\n")
	big := filepath.Join(f.b001, "big")
	if err := os.WriteFile(big, make([]byte, MaxFileBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		argv []string
		cwd  string
		want string
	}{
		{nil, f.pkg, "no tool named"},
		{[]string{"/usr/bin/compile"}, f.pkg, "is not a Go tool of GOROOT/pkg/tool/GOOS_GOARCH"},
		{[]string{f.tool}, "rel", "not absolute"},
		{[]string{f.tool, "@" + f.b001 + "/outer"}, f.pkg, "response file " + f.b001 + "/inner inside a response file"},
		{[]string{f.tool, "-importcfg", big}, f.pkg, "is larger than"},
		{[]string{f.tool, "-importcfg", f.b001 + "/missing"}, f.pkg, "no such file"},
	} {
		// Case apart: wasip1 capitalises its errno texts ("No such file").
		if _, err := Plan(tt.argv, tt.cwd, nil); err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
			t.Errorf("Plan(%q) = %v, want %q", tt.argv, err, tt.want)
		}
	}
}

// TestPlanLinks: a named source that is a relative symlink inside its
// directory ships with the file it leads to (a tree holds a link as a
// link); one the sandbox would not follow (absolute, or out of the
// directory granted for it) fails the plan, saying why.
func TestPlanLinks(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.pkg, "impl"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.pkg, "impl", "hi.go.src"), "package main")
	write(t, filepath.Join(filepath.Dir(f.pkg), "elsewhere.go"), "package main")
	for name, target := range map[string]string{
		"one.go": "impl/hi.go.src",
		"two.go": "one.go", // a link to a link
		"abs.go": filepath.Join(f.pkg, "impl", "hi.go.src"),
		"out.go": "../elsewhere.go",
	} {
		err := os.Symlink(target, filepath.Join(f.pkg, name))
		if err != nil && runtime.GOOS == "wasip1" {
			t.Skipf("symlink %s: %v (Spindle's sandbox, and wazero's, make no absolute symlink)", target, err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	compile := func(files ...string) (*Invocation, error) {
		return Plan(append([]string{f.tool, "-o", f.b001 + "/_pkg_.a", "-p", "main", "-importcfg", f.b001 + "/importcfg", "-pack"}, files...), f.pkg, nil)
	}
	inv, err := compile("./main.go", "./two.go")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		f.entry, f.b001, filepath.Join(f.pkg, "impl", "hi.go.src"), filepath.Join(f.pkg, "main.go"),
		filepath.Join(f.pkg, "one.go"), filepath.Join(f.pkg, "two.go"),
	}
	if !reflect.DeepEqual(inv.Files, want) {
		t.Errorf("files = %q, want %q", inv.Files, want)
	}
	for file, msg := range map[string]string{
		"./abs.go": "is an absolute symlink (to " + filepath.Join(f.pkg, "impl", "hi.go.src") + "), which the sandbox does not follow",
		"./out.go": "is a symlink to " + filepath.Join(filepath.Dir(f.pkg), "elsewhere.go") + ", outside " + f.pkg,
	} {
		if _, err := compile("./main.go", file); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error saying it %s", file, err, msg)
		}
	}
}
