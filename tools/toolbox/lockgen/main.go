// Command lockgen builds the toolbox, the pinned Go tools that CI steps run
// as wasip1 commands, and writes its lock: what `make toolbox` and
// `make toolbox-relock` run, from tools/toolbox (this module).
//
//	lockgen [-out DIR] [-expected FILE] [-relock] NAME=PACKAGE...
//
// Each NAME=PACKAGE is built with GOOS=wasip1 GOARCH=wasm -trimpath into
// DIR/NAME.wasm, by the go command on PATH, at the versions this module's
// go.mod requires (a standard-library package such as cmd/gofmt comes
// from GOROOT). DIR/toolbox.lock then records, for each tool, the module
// that provides it (module@version, or go@GOVERSION for the standard
// library), the package, the file, its sha256 and its size; package
// github.com/spindle-hq/spindle/ci reads it (ci.LoadToolbox).
//
// The hashes must equal those of the checked-in expected lock (-expected,
// default expected.lock): the same Go version and the same module
// versions build the same bytes. A difference fails, names the tools that
// differ and leaves no DIR/toolbox.lock, so nothing runs a tool that is not
// the pinned one. With -relock the new lock becomes the expected one.
//
// When DIR/toolbox.lock is newer than go.mod and go.sum, names the same
// tools and Go version, equals the expected lock, and every file still has
// its recorded hash, nothing is built. Otherwise every tool is built: the
// go command's cache makes that a second or two when nothing changed.
//
// lockgen belongs to the toolbox module, not to the spindle module: it
// needs the toolbox's go.mod to resolve the tools' modules, and it must not
// make the spindle module depend on the toolbox. It uses the standard
// library only; the lock's format is written down twice, here and in
// ci/toolbox.go, and ci's test reads a lock this program wrote.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// LockName is the lock's file name in the output directory.
const LockName = "toolbox.lock"

// Format is the version of the lock's format.
const Format = 1

// Lock is the JSON of toolbox.lock and expected.lock.
type Lock struct {
	Format int             `json:"format"`
	Go     string          `json:"go"` // the go command's GOVERSION, e.g. go1.26.8
	GOOS   string          `json:"goos"`
	GOARCH string          `json:"goarch"`
	Tools  map[string]Tool `json:"tools"` // by tool name
}

// Tool is one tool of a Lock.
type Tool struct {
	Module  string `json:"module"`  // module@version; go@GOVERSION for the standard library
	Package string `json:"package"` // the main package built
	File    string `json:"file"`    // the .wasm, relative to the lock's directory
	SHA256  string `json:"sha256"`  // lower-case hex
	Size    int64  `json:"size"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "toolbox:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lockgen", flag.ContinueOnError)
	out := fs.String("out", "../../bin/toolbox", "the directory of the .wasm files and toolbox.lock")
	expectedPath := fs.String("expected", "expected.lock", "the checked-in lock the build must equal")
	relock := fs.Bool("relock", false, "build, then write the new lock to -expected as well")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tools, err := parseTools(fs.Args())
	if err != nil {
		return err
	}
	goVersion, err := goEnv("GOVERSION")
	if err != nil {
		return err
	}
	lockPath := filepath.Join(*out, LockName)
	var expected *Lock
	if !*relock {
		if expected, err = readLock(*expectedPath); err != nil {
			return fmt.Errorf("%w (make toolbox-relock writes it)", err)
		}
		if expected.Go != goVersion {
			return fmt.Errorf("%s was recorded with %s but the go command is %s: the tools' hashes differ between Go versions; build with %s (GOTOOLCHAIN=%s make toolbox) or, to move the toolbox to %s, run make toolbox-relock and commit %s",
				*expectedPath, expected.Go, goVersion, expected.Go, expected.Go, goVersion, *expectedPath)
		}
		// The expected lock is compared whole, not by time: relock writes
		// it and toolbox.lock within one tick of the file system's clock.
		if why := stale(lockPath, expected, tools, []string{"go.mod", "go.sum"}); why == "" {
			fmt.Fprintf(stdout, "toolbox: %s is up to date (%d tools, %s)\n", *out, len(tools), goVersion)
			return nil
		} else {
			fmt.Fprintf(stdout, "toolbox: building (%s)\n", why)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	// A lock that no longer describes the files must not outlive a failed
	// build.
	if err := os.Remove(lockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lock, err := build(*out, tools, goVersion, stdout)
	if err != nil {
		return err
	}
	if *relock {
		switch old, err := readLock(*expectedPath); {
		case err != nil:
			fmt.Fprintf(stdout, "toolbox: no earlier %s (%v)\n", *expectedPath, err)
		case len(compare(lock, old)) == 0:
			fmt.Fprintf(stdout, "toolbox: %s is unchanged\n", *expectedPath)
		default:
			fmt.Fprintf(stdout, "toolbox: %s changes:\n  %s\n", *expectedPath, strings.Join(compare(lock, old), "\n  "))
		}
		if err := writeLock(*expectedPath, lock); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "toolbox: wrote %s; commit it\n", *expectedPath)
	} else if diffs := compare(lock, expected); len(diffs) > 0 {
		return fmt.Errorf("the build differs from %s, so %s is not written:\n  %s\nthe same Go version and go.mod should build the same bytes; if go.mod or the tool list changed on purpose, run make toolbox-relock and commit %s",
			*expectedPath, lockPath, strings.Join(diffs, "\n  "), *expectedPath)
	}
	if err := writeLock(lockPath, lock); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "toolbox: wrote %s (%d tools, %s)\n", lockPath, len(lock.Tools), goVersion)
	return nil
}

// parseTools parses NAME=PACKAGE arguments.
func parseTools(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no tools: give NAME=PACKAGE arguments")
	}
	tools := make(map[string]string)
	for _, a := range args {
		name, pkg, ok := strings.Cut(a, "=")
		if !ok || name == "" || pkg == "" || strings.ContainsAny(name, `/\. `) {
			return nil, fmt.Errorf("tool %q: want NAME=PACKAGE, NAME a plain file name", a)
		}
		if _, dup := tools[name]; dup {
			return nil, fmt.Errorf("tool %q given twice", name)
		}
		tools[name] = pkg
	}
	return tools, nil
}

// wasmEnv is the environment of the go commands that build and list the
// tools: the wasip1 port, and none of the settings that would change the
// bytes built or the modules chosen.
func wasmEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off",
		"GOWASM=", "GOEXPERIMENT=", "CGO_ENABLED=0")
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// build builds every tool into dir and returns their lock. The go command
// skips the link of a tool whose file is already the one it would build.
func build(dir string, tools map[string]string, goVersion string, stdout io.Writer) (*Lock, error) {
	lock := &Lock{Format: Format, Go: goVersion, GOOS: "wasip1", GOARCH: "wasm", Tools: make(map[string]Tool)}
	modules, err := listModules(slices.Collect(maps.Values(tools)), goVersion)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(tools)) {
		pkg := tools[name]
		file := name + ".wasm"
		fmt.Fprintf(stdout, "toolbox: %s (%s)\n", name, modules[pkg])
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, file), pkg)
		cmd.Env = wasmEnv()
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s for wasip1: %w", pkg, err)
		}
		sum, size, err := hashFile(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		lock.Tools[name] = Tool{Module: modules[pkg], Package: pkg, File: file, SHA256: sum, Size: size}
	}
	return lock, nil
}

// listModules returns module@version for each package, as the go command
// resolves it in this module.
func listModules(pkgs []string, goVersion string) (map[string]string, error) {
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{.Standard}} {{with .Module}}{{.Path}}@{{.Version}}{{end}}"}, pkgs...)...)
	cmd.Env = wasmEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w\n%s", strings.Join(pkgs, " "), err, stderr.Bytes())
	}
	modules := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[1] == "true":
			modules[f[0]] = "go@" + goVersion
		case len(f) == 3 && f[1] == "false":
			modules[f[0]] = f[2]
		default:
			return nil, fmt.Errorf("go list: unexpected line %q", line)
		}
	}
	for _, p := range pkgs {
		if modules[p] == "" {
			return nil, fmt.Errorf("go list: no module for %s", p)
		}
	}
	return modules, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func readLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Format != Format {
		return nil, fmt.Errorf("%s: format %d, want %d", path, l.Format, Format)
	}
	return &l, nil
}

// writeLock writes l to path, replacing it whole.
func writeLock(path string, l *Lock) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// compare returns how got differs from want, one line per difference;
// none if they are equal.
func compare(got, want *Lock) []string {
	var diffs []string
	if got.Go != want.Go {
		diffs = append(diffs, fmt.Sprintf("Go version: built with %s, expected %s", got.Go, want.Go))
	}
	for _, name := range slices.Sorted(maps.Keys(got.Tools)) {
		g := got.Tools[name]
		w, ok := want.Tools[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: built, but not in the expected lock", name))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: built %s %s (%d bytes), expected %s %s (%d bytes)",
				name, g.Module, g.SHA256, g.Size, w.Module, w.SHA256, w.Size))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want.Tools)) {
		if _, ok := got.Tools[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: in the expected lock, but not built", name))
		}
	}
	return diffs
}

// stale returns why the lock at lockPath needs a build, or "" if it does
// not: it is newer than every input, equals expected, names exactly tools
// (by package), and every file it names has its recorded hash.
func stale(lockPath string, expected *Lock, tools map[string]string, inputs []string) string {
	li, err := os.Stat(lockPath)
	if err != nil {
		return "no " + lockPath
	}
	for _, in := range inputs {
		fi, err := os.Stat(in)
		if err != nil {
			return err.Error()
		}
		if !fi.ModTime().Before(li.ModTime()) {
			return in + " is newer than " + lockPath
		}
	}
	lock, err := readLock(lockPath)
	if err != nil {
		return err.Error()
	}
	if diffs := compare(lock, expected); len(diffs) > 0 {
		return lockPath + " differs from the expected lock"
	}
	if len(lock.Tools) != len(tools) {
		return "the tool list changed"
	}
	dir := filepath.Dir(lockPath)
	for _, name := range slices.Sorted(maps.Keys(lock.Tools)) {
		t := lock.Tools[name]
		if tools[name] != t.Package {
			return "the tool list changed"
		}
		sum, size, err := hashFile(filepath.Join(dir, t.File))
		if err != nil {
			return err.Error()
		}
		if sum != t.SHA256 || size != t.Size {
			return t.File + " changed since it was built"
		}
	}
	return ""
}
