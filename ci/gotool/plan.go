// Package gotool plans a Go toolchain invocation, as go build -toolexec
// passes it, as a sandboxed wasm command: which tool module runs it, with
// which arguments and environment, and which directories of the machine
// it may see. It is the planner of spindle toolexec; it runs nothing.
//
// # What a tool sees
//
// The go command names every file a tool reads or writes by its absolute
// path (or relative to the working directory it starts the tool in): the
// sources, the importcfg and the package archives it lists, the
// embedcfg, -I include directories, -o outputs. Plan collects them, from
// the arguments, the response files (@FILE) and the importcfg/embedcfg
// files they name, and grants each at the same path in the sandbox, so
// the tool runs with its arguments unchanged and writes byte-identical
// outputs: GOROOT, the build cache and the module cache read-only as one
// mount each, any other directory (a package's) read-only, and the
// build's work directory ($WORK, go-buildNNN) read-write, the one place a
// tool writes. Nothing else of the machine is there: a path outside the
// mounts does not exist for the tool. The working directory is granted
// only when an argument names a path relative to it: go starts compile in
// its own working directory (which may be / or hold $WORK) and names
// every file absolutely, asm in the package's directory.
//
// # What a tool is shipped
//
// On another machine the directories are not there: the caller ships
// Invocation.Files instead, as trees at the same paths. They are what the
// tool reads: each regular file the invocation names (the importcfg's
// archives one by one, not the whole build cache; the sources), the
// headers asm's sources include, each -I or -L directory whole, and in
// $WORK the directories its outputs go to, whole (the action's own
// directory, b001/, holding its inputs). A directory named for another reason (a
// -trimpath prefix) is not shipped.
//
// The tool's environment is the GO* and CGO_* variables of the go
// command's, with GOOS and GOARCH set from the native tool's directory
// (pkg/tool/GOOS_GOARCH) when the go command did not set them: a tool
// built for wasip1 would otherwise target wasip1. PWD is the working
// directory (a wasip1 Go program's working directory is $PWD).
package gotool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Tools are the tools Plan runs as wasm: compile, asm and link. Any other
// (cgo, vet, buildid, pack, cover, ...) is not planned (ErrNative).
var Tools = []string{"compile", "asm", "link"}

// ErrNative is a tool Plan does not run as wasm: the caller runs it
// natively.
var ErrNative = errors.New("gotool: not a tool run as wasm")

// The bounds of what Plan reads: it never reads more than MaxFileBytes of
// one file the invocation names, nor grants more than MaxMounts
// directories.
const (
	MaxFileBytes = 16 << 20
	MaxMounts    = 1024
)

// MaxFiles bounds Invocation.Files.
const MaxFiles = 100_000

// Mount is a directory of this machine granted to the tool at the same
// path.
type Mount struct {
	Dir      string
	ReadOnly bool
}

// Invocation is a planned tool run.
type Invocation struct {
	// Tool is the tool's name: "compile", "asm" or "link".
	Tool string
	// Native is the path of the native tool go named.
	Native string
	// GOROOT is the Go root the native tool belongs to.
	GOROOT string
	// Args are the tool's arguments after its name, as go passed them.
	Args []string
	// Env is the tool's whole environment.
	Env map[string]string
	// Mounts are the directories it sees, sorted by path, none inside
	// another.
	Mounts []Mount
	// Work is the build's work directory (the one read-write mount), or
	// "" for an invocation that writes nothing (compile -V=full).
	Work string
	// Files are what a shipped run needs of the mounts (see the package
	// doc): absolute paths, sorted, each a regular file or a directory
	// that stands for all it holds, none inside another, each inside one
	// of Mounts.
	Files []string
}

// The regexps are compiled at first use, not at init: every context is
// this binary started again, and package init runs at each start.

// toolDirRE matches a native tool's directory, GOROOT/pkg/tool/GOOS_GOARCH.
var toolDirRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z0-9]+)_([a-z0-9]+)$`) })

// workRE matches the base name of go's work directory.
var workRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^go-build[0-9]+$`) })

// cacheEntryRE matches an entry of the go build cache, CACHE/XX/HASH-d.
var cacheEntryRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{2}/[0-9a-f]{64}-[ad]$`) })

// Plan plans argv (the native tool's path, then its arguments, as go
// build -toolexec passes them) started in directory cwd with environment
// environ. It returns ErrNative for a tool that is not one of Tools.
func Plan(argv []string, cwd string, environ []string) (*Invocation, error) {
	if len(argv) == 0 {
		return nil, errors.New("gotool: no tool named (want TOOL [ARGS...], as go build -toolexec passes them)")
	}
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("gotool: working directory %q is not absolute", cwd)
	}
	name := strings.TrimSuffix(filepath.Base(argv[0]), ".exe")
	if !slices.Contains(Tools, name) {
		return nil, fmt.Errorf("%w: %s", ErrNative, name)
	}
	native := argv[0]
	if !filepath.IsAbs(native) {
		native = filepath.Join(cwd, native)
	}
	toolDir := filepath.Dir(native)
	m := toolDirRE().FindStringSubmatch(filepath.Base(toolDir))
	goroot := filepath.Dir(filepath.Dir(filepath.Dir(toolDir)))
	if m == nil || filepath.Base(filepath.Dir(toolDir)) != "tool" || filepath.Base(filepath.Dir(filepath.Dir(toolDir))) != "pkg" {
		return nil, fmt.Errorf("gotool: %s is not a Go tool of GOROOT/pkg/tool/GOOS_GOARCH", argv[0])
	}
	inv := &Invocation{Tool: name, Native: native, GOROOT: goroot, Args: argv[1:], Env: toolEnv(environ, m[1], m[2], goroot, cwd)}
	c := collector{cwd: cwd, goroot: goroot, dirs: map[string]bool{}, files: map[string]bool{}}
	if err := c.args(inv.Args, 0); err != nil {
		return nil, err
	}
	if len(inv.Args) == 1 && strings.HasPrefix(inv.Args[0], "-V") {
		// The go command asks for the tool's version: nothing to see.
		return inv, nil
	}
	if c.err != nil {
		return nil, c.err
	}
	if name == "asm" {
		c.asmIncludes()
	}
	mounts, work, err := c.mounts()
	if err != nil {
		return nil, err
	}
	inv.Mounts, inv.Work = mounts, work
	if work != "" {
		// The tool's temporary files (link's, when it would run the
		// external linker) go where it may write: /tmp is not there.
		inv.Env["TMPDIR"] = work
	}
	if inv.Files, err = c.shipped(); err != nil {
		return nil, err
	}
	return inv, nil
}

// toolEnv is the tool's environment: the GO* and CGO_* variables of
// environ, GOOS and GOARCH defaulting to the native tool's, GOROOT, PWD.
func toolEnv(environ []string, goos, goarch, goroot, cwd string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && (strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "CGO_")) {
			env[k] = v
		}
	}
	if env["GOOS"] == "" {
		env["GOOS"] = goos
	}
	if env["GOARCH"] == "" {
		env["GOARCH"] = goarch
	}
	env["GOROOT"] = goroot
	env["PWD"] = cwd
	return env
}

// collector gathers the paths an invocation names.
type collector struct {
	cwd, goroot string
	dirs        map[string]bool // directories to grant
	files       map[string]bool // what a shipped run needs: files, and directories whole
	incdirs     []string        // -I and -L directories, absolute, in order
	work        string          // go's work directory, when seen
	err         error           // the first named file the sandbox cannot open (see links)
}

// args scans arguments: each may be a path, FLAG=PATH, a -trimpath list
// (FROM=>TO;...), a response file @PATH, or a file whose contents name
// more (-importcfg, -embedcfg).
func (c *collector) args(args []string, depth int) error {
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "@") && len(a) > 1:
			if depth > 0 {
				return fmt.Errorf("gotool: response file %s inside a response file", a[1:])
			}
			b, err := c.read(a[1:])
			if err != nil {
				return err
			}
			if err := c.args(responseArgs(b), depth+1); err != nil {
				return err
			}
		case i > 0 && (args[i-1] == "-importcfg" || args[i-1] == "-embedcfg"):
			b, err := c.read(a)
			if err != nil {
				return err
			}
			if args[i-1] == "-importcfg" {
				c.importcfg(b)
			} else {
				c.embedcfg(b)
			}
		case i > 0 && args[i-1] == "-trimpath":
			// A prefix to rewrite, not a path read: granted, not shipped.
			for _, rule := range strings.Split(a, ";") {
				from, _, _ := strings.Cut(rule, "=>")
				c.grant(from)
			}
			continue
		case i > 0 && (args[i-1] == "-I" || args[i-1] == "-L"):
			// A directory searched: shipped whole, if it is there.
			if p := c.grant(a); p != "" && isDir(p) {
				c.files[p] = true
				c.incdirs = append(c.incdirs, p)
			}
			continue
		}
		c.path(a)
		if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			c.path(v)
		}
	}
	return nil
}

// responseArgs splits a response file as cmd/internal/objabi does: one
// argument a line.
func responseArgs(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSuffix(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// importcfg takes the archives "packagefile PATH=FILE" names.
func (c *collector) importcfg(b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxFileBytes)
	for sc.Scan() {
		verb, rest, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if verb == "packagefile" || verb == "packageshlib" {
			if _, file, ok := strings.Cut(rest, "="); ok {
				c.path(file)
			}
		}
	}
}

// embedcfg takes the files of an embedcfg's "Files" object: every string
// value of its JSON that is an absolute path.
func (c *collector) embedcfg(b []byte) {
	for _, f := range bytes.Split(b, []byte(`"`)) {
		c.path(string(f))
	}
}

// read reads a file the invocation names (bounded), and grants its
// directory.
func (c *collector) read(p string) ([]byte, error) {
	p = c.abs(p)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("gotool: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gotool: %s: %w", p, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("gotool: %s is larger than %d bytes", p, MaxFileBytes)
	}
	c.path(p)
	return b, nil
}

func (c *collector) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.cwd, p)
}

// path grants what p names, as grant does, and ships it when it is a
// regular file, or the directory in $WORK where a file not yet there
// is to be written.
func (c *collector) path(p string) {
	p = c.grant(p)
	if p == "" {
		return
	}
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.Mode().IsRegular():
		c.files[p] = true
		c.links(p)
	case errors.Is(err, fs.ErrNotExist) && c.work != "" && within(p, c.work):
		// An output: its directory (the nearest that exists) whole.
		for d := filepath.Dir(p); d != c.work && within(d, c.work); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				c.files[d] = true
				break
			}
		}
	}
}

// maxLinks bounds the symlinks links follows from one file.
const maxLinks = 40

// links follows the file p while it is a symlink, shipping each link on
// the way and the file it ends at (a shipped tree holds a link as a
// link). The sandbox follows a relative link that stays inside the
// mount, and never an absolute one nor one that leaves p's directory (the
// directory granted for p): for such a link it sets c.err, so that the
// run fails with why, not with the tool's "operation not permitted".
func (c *collector) links(p string) {
	dir := filepath.Dir(p)
	for range maxLinks {
		li, err := os.Lstat(p)
		if err != nil || li.Mode()&fs.ModeSymlink == 0 {
			return
		}
		t, err := os.Readlink(p)
		next := filepath.Join(filepath.Dir(p), t)
		switch {
		case err != nil:
			return // the tool will say
		case filepath.IsAbs(t):
			c.fail(fmt.Errorf("gotool: %s is an absolute symlink (to %s), which the sandbox does not follow: make it a relative link that stays in %s, or a copy", p, t, dir))
			return
		case !within(next, dir):
			c.fail(fmt.Errorf("gotool: %s is a symlink to %s, outside %s, where the sandbox does not follow it: make it a copy", p, next, dir))
			return
		}
		p = next
		c.files[p] = true
	}
}

// fail keeps the first of the errors found while collecting.
func (c *collector) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// grant grants what p names if it is an absolute path (or ./, ../) that
// exists, or is to be written in go's work directory: a directory itself,
// a file its directory. It returns p made absolute, or "" when p is not a
// path.
func (c *collector) grant(p string) string {
	if p == "" || !(filepath.IsAbs(p) || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../")) {
		return ""
	}
	p = c.abs(p)
	if w := workDir(p); w != "" {
		c.work = w
		return p
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
	case fi.IsDir():
		c.dirs[p] = true
	case cacheEntryRE().MatchString(filepath.Base(filepath.Dir(p)) + "/" + filepath.Base(p)):
		// An entry of the go build cache: the cache is one mount.
		c.dirs[filepath.Dir(filepath.Dir(p))] = true
	default:
		c.dirs[filepath.Dir(p)] = true
	}
	return p
}

// shipped is Invocation.Files: the files and directories to ship, sorted,
// those inside a shipped directory left out.
func (c *collector) shipped() ([]string, error) {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(c.files)) {
		if !c.inShipped(p) {
			out = append(out, p)
		}
	}
	if len(out) > MaxFiles {
		return nil, fmt.Errorf("gotool: the invocation names %d files (at most %d)", len(out), MaxFiles)
	}
	return out, nil
}

// includeRE matches an #include line of an assembly source or header.
var includeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^[ \t]*#[ \t]*include[ \t]*["<]([^">\n]+)[">]`) })

// maxIncludeDepth bounds how deeply asmIncludes follows headers.
const maxIncludeDepth = 16

// asmIncludes ships the headers asm's sources include (runtime's
// "cgo/abi_amd64.h", below the source's directory): asm looks for an
// include in the directory of the file it assembles, then in each -I
// directory. A header is scanned for its own includes in turn.
func (c *collector) asmIncludes() {
	seen := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(c.files)) {
		if strings.HasSuffix(p, ".s") {
			c.includes(p, filepath.Dir(p), seen, 0)
		}
	}
}

// includes reads file, which ships it (collector.read), and follows the
// includes it names up to maxIncludeDepth levels below a source; asm looks
// for each in the directory of the source it assembles (top), then in
// the -I directories.
func (c *collector) includes(file, top string, seen map[string]bool, depth int) {
	if seen[file] || len(seen) >= MaxFiles {
		return
	}
	seen[file] = true
	b, err := c.read(file)
	if err != nil || depth > maxIncludeDepth {
		return // asm says what is wrong with it
	}
	dirs := append([]string{top}, c.incdirs...)
	for _, m := range includeRE().FindAllSubmatch(b, -1) {
		name := string(m[1])
		if filepath.IsAbs(name) {
			c.includes(name, top, seen, depth+1)
			continue
		}
		for _, d := range dirs {
			if p := filepath.Join(d, name); isFile(p) {
				c.includes(p, top, seen, depth+1)
				break
			}
		}
	}
}

// workDir is the go-buildNNN directory p lies in, or "".
func workDir(p string) string {
	for d := p; d != "/" && d != "."; d = filepath.Dir(d) {
		if workRE().MatchString(filepath.Base(d)) {
			return d
		}
	}
	return ""
}

// mounts turns the directories seen into mounts: GOROOT and the build
// cache whole, nested directories under the outermost, the work directory
// read-write.
func (c *collector) mounts() ([]Mount, string, error) {
	roots := map[string]bool{}
	for d := range c.dirs {
		if within(d, c.goroot) {
			d = c.goroot
		}
		roots[d] = true
	}
	if c.work != "" {
		roots[c.work] = true
	}
	var dirs []string
	for d := range roots {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var out []Mount
	for _, d := range dirs {
		if n := len(out); n > 0 && within(d, out[n-1].Dir) {
			continue
		}
		if within(c.work, d) && d != c.work {
			return nil, "", fmt.Errorf("gotool: the work directory %s lies inside %s, which the tool would see read-only", c.work, d)
		}
		out = append(out, Mount{Dir: d, ReadOnly: d != c.work})
	}
	if len(out) > MaxMounts {
		return nil, "", fmt.Errorf("gotool: the invocation names files in %d directories (at most %d)", len(out), MaxMounts)
	}
	return out, c.work, nil
}

// within reports whether p is dir or lies inside it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// inShipped reports whether a directory above p is shipped whole.
func (c *collector) inShipped(p string) bool {
	for d := filepath.Dir(p); d != p; p, d = d, filepath.Dir(d) {
		if c.files[d] {
			return true
		}
	}
	return false
}
