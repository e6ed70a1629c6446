package ci

// The toolbox: the pinned Go tools that `make toolbox` builds as wasip1
// commands into bin/toolbox/, and the lock that names them. A job's
// `tool: gofmt` is resolved here to exactly the module the lock records.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// ToolboxLock is the lock's file name in a toolbox directory.
const ToolboxLock = "toolbox.lock"

// toolboxFormat is the version of the lock's format that LoadToolbox reads.
// tools/toolbox/lockgen writes it; the two must change together.
const toolboxFormat = 1

var (
	// ErrUnknownTool is wrapped by Resolve's error for a name the lock
	// does not record; the message lists the names it does.
	ErrUnknownTool = errors.New("ci: unknown tool")
	// ErrToolMismatch is wrapped by Resolve's and Read's error when a
	// tool's file is missing or its sha256 is not the lock's: the toolbox
	// was not built, or not by this lock (run make toolbox).
	ErrToolMismatch = errors.New("ci: tool file does not match the toolbox lock")
)

// Tool is one tool of a Toolbox: a wasip1 command module.
type Tool struct {
	Name    string // the name a job's step gives (tool: gofmt)
	Module  string // module@version that provides it; go@GOVERSION for the standard library
	Package string // the main package it was built from
	SHA256  string // lower-case hex sha256 of the module: its hash in the store and in action keys
	Path    string // the absolute path of the .wasm file
	Size    int64  // the module's size in bytes
}

// Toolbox is a toolbox directory as its lock describes it. It is safe for
// concurrent use. It holds no open files and needs no closing.
type Toolbox struct {
	dir    string
	lock   string          // the lock's path, for messages
	tools  map[string]Tool // by name; read-only after LoadToolbox
	byHash map[string]Tool // by sha256; the first name in order for a hash two tools share

	mu       sync.Mutex
	verified map[string]fileStamp // by name: the file as it was when its hash last matched; guarded by mu
}

// fileStamp is what Resolve compares to skip hashing a file again.
type fileStamp struct {
	size    int64
	modTime time.Time
	info    os.FileInfo // for os.SameFile
}

// lockFile is the JSON of toolbox.lock, as tools/toolbox/lockgen writes it.
type lockFile struct {
	Format int                 `json:"format"`
	Go     string              `json:"go"`
	GOOS   string              `json:"goos"`
	GOARCH string              `json:"goarch"`
	Tools  map[string]lockTool `json:"tools"`
}

type lockTool struct {
	Module  string `json:"module"`
	Package string `json:"package"`
	File    string `json:"file"` // relative to the lock's directory
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// Compiled at first use: package init runs at every context's start.
var (
	toolNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]+$`) })
	sha256RE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })
)

// LoadToolbox reads dir/toolbox.lock (ToolboxLock), as `make toolbox`
// writes it into bin/toolbox. It checks the lock's form, not the files:
// Resolve and Read do that.
func LoadToolbox(dir string) (*Toolbox, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("ci: toolbox %s: %w", dir, err)
	}
	lockPath := filepath.Join(abs, ToolboxLock)
	b, err := os.ReadFile(lockPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("ci: toolbox: %w; run make toolbox", err)
	}
	if err != nil {
		return nil, fmt.Errorf("ci: toolbox: %w", err)
	}
	var lf lockFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lf); err != nil {
		return nil, fmt.Errorf("ci: toolbox lock %s: %w; run make toolbox", lockPath, err)
	}
	if lf.Format != toolboxFormat {
		return nil, fmt.Errorf("ci: toolbox lock %s: format %d, this spindle reads format %d; run make toolbox", lockPath, lf.Format, toolboxFormat)
	}
	if lf.GOOS != "wasip1" || lf.GOARCH != "wasm" {
		return nil, fmt.Errorf("ci: toolbox lock %s: built for %s/%s, want wasip1/wasm", lockPath, lf.GOOS, lf.GOARCH)
	}
	tb := &Toolbox{
		dir:      abs,
		lock:     lockPath,
		tools:    make(map[string]Tool, len(lf.Tools)),
		byHash:   make(map[string]Tool, len(lf.Tools)),
		verified: make(map[string]fileStamp),
	}
	for _, name := range slices.Sorted(maps.Keys(lf.Tools)) {
		lt := lf.Tools[name]
		switch {
		case !toolNameRE().MatchString(name):
			return nil, fmt.Errorf("ci: toolbox lock %s: tool name %q: want letters, digits, '_', '.' or '-'", lockPath, name)
		case !sha256RE().MatchString(lt.SHA256):
			return nil, fmt.Errorf("ci: toolbox lock %s: tool %s: sha256 %q is not 64 lower-case hex digits", lockPath, name, lt.SHA256)
		case !filepath.IsLocal(lt.File):
			return nil, fmt.Errorf("ci: toolbox lock %s: tool %s: file %q is not a path inside %s", lockPath, name, lt.File, abs)
		case lt.Size < 0:
			return nil, fmt.Errorf("ci: toolbox lock %s: tool %s: size %d", lockPath, name, lt.Size)
		}
		t := Tool{
			Name:    name,
			Module:  lt.Module,
			Package: lt.Package,
			SHA256:  lt.SHA256,
			Path:    filepath.Join(abs, lt.File),
			Size:    lt.Size,
		}
		tb.tools[name] = t
		if _, ok := tb.byHash[t.SHA256]; !ok {
			tb.byHash[t.SHA256] = t
		}
	}
	return tb, nil
}

// Dir returns the toolbox's directory, absolute.
func (tb *Toolbox) Dir() string { return tb.dir }

// Tools returns the lock's tools, sorted by name.
func (tb *Toolbox) Tools() []Tool {
	out := make([]Tool, 0, len(tb.tools))
	for _, name := range slices.Sorted(maps.Keys(tb.tools)) {
		out = append(out, tb.tools[name])
	}
	return out
}

// Resolve returns the tool the lock names name, after checking that its
// file exists and has the lock's sha256. The file is hashed the first time,
// and again whenever its size, modification time or identity has changed
// since its hash last matched. An unknown name is an error wrapping
// ErrUnknownTool that lists the known names; a missing or different file
// wraps ErrToolMismatch.
func (tb *Toolbox) Resolve(name string) (Tool, error) {
	t, err := tb.lookup(name)
	if err != nil {
		return Tool{}, err
	}
	fi, err := os.Stat(t.Path)
	if err != nil {
		return Tool{}, tb.mismatch(t, err.Error())
	}
	tb.mu.Lock()
	st, ok := tb.verified[name]
	tb.mu.Unlock()
	if ok && st.size == fi.Size() && st.modTime.Equal(fi.ModTime()) && os.SameFile(st.info, fi) {
		return t, nil
	}
	f, err := os.Open(t.Path)
	if err != nil {
		return Tool{}, tb.mismatch(t, err.Error())
	}
	defer f.Close()
	// The stamp is of the file opened, so that a file replaced between
	// the Stat above and here is not remembered as checked.
	if fi, err = f.Stat(); err != nil {
		return Tool{}, tb.mismatch(t, err.Error())
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Tool{}, fmt.Errorf("ci: tool %s: %w", name, err)
	}
	if err := tb.check(t, h.Sum(nil)); err != nil {
		return Tool{}, err
	}
	tb.mu.Lock()
	tb.verified[name] = fileStamp{size: fi.Size(), modTime: fi.ModTime(), info: fi}
	tb.mu.Unlock()
	return t, nil
}

// Read returns the tool the lock names name and its module's bytes, which
// have the lock's sha256: it hashes what it read, every time. Its errors
// are Resolve's.
func (tb *Toolbox) Read(name string) (Tool, []byte, error) {
	t, err := tb.lookup(name)
	if err != nil {
		return Tool{}, nil, err
	}
	wasm, err := os.ReadFile(t.Path)
	if err != nil {
		return Tool{}, nil, tb.mismatch(t, err.Error())
	}
	sum := sha256.Sum256(wasm)
	if err := tb.check(t, sum[:]); err != nil {
		return Tool{}, nil, err
	}
	return t, wasm, nil
}

// ByHash returns the tool whose module has sha256 h (lower-case hex), if
// the lock records one. It does not read the file: whoever loads the
// module by its hash checks the bytes (Read does).
func (tb *Toolbox) ByHash(h string) (Tool, bool) {
	t, ok := tb.byHash[h]
	return t, ok
}

func (tb *Toolbox) lookup(name string) (Tool, error) {
	t, ok := tb.tools[name]
	if !ok {
		known := slices.Sorted(maps.Keys(tb.tools))
		return Tool{}, fmt.Errorf("%w %q: the toolbox %s has %s", ErrUnknownTool, name, tb.lock, strings.Join(known, ", "))
	}
	return t, nil
}

func (tb *Toolbox) check(t Tool, sum []byte) error {
	if got := hex.EncodeToString(sum); got != t.SHA256 {
		return tb.mismatch(t, fmt.Sprintf("%s has sha256 %s, the lock records %s", t.Path, got, t.SHA256))
	}
	return nil
}

func (tb *Toolbox) mismatch(t Tool, what string) error {
	return fmt.Errorf("%w: tool %s (%s): %s; run make toolbox", ErrToolMismatch, t.Name, t.Module, what)
}
