package spindle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spindle-hq/spindle/internal/oslayer"
	"github.com/spindle-hq/spindle/routing"
)

// sandboxMaxFiles is RLIMIT_NOFILE in a sandboxed context: room for 16
// guests at their default OpenFiles (256) with its streams and caches.
const sandboxMaxFiles = 4096

// sandboxCacheSubdir is where, below the cache dir it was given, a
// sandboxed context keeps modules and compiled code: what it writes there
// (compiled native code included) is never read by a context that is not
// sandboxed.
const sandboxCacheSubdir = "sandbox"

// SandboxResult is the reply of the built-in "sandbox" function: the OS
// layers the context put in force when it started (ChildOptions.Sandbox).
type SandboxResult struct {
	// Sandboxed reports whether the context was started with Sandbox.
	Sandboxed bool `msgpack:"sandboxed"`
	// Layers are no_new_privs, rlimit and landlock, in the order applied.
	Layers []SandboxLayer `msgpack:"layers"`
	// Report is the layers in one line, as StatsResult.Sandbox has it:
	// "no_new_privs on; rlimit nofile=4096 core=0 on; landlock abi=7 rw=2
	// ro=5 exec=0 on".
	Report string `msgpack:"report"`
}

// SandboxLayer is one OS layer of a sandboxed context.
type SandboxLayer struct {
	Name   string `msgpack:"name"`
	Active bool   `msgpack:"active"`
	// Detail says what was set or, for a layer that is off, why.
	Detail string `msgpack:"detail"`
}

// notSandboxed is StatsResult.Sandbox of a context started without Sandbox.
const notSandboxed = "off (not started with Sandbox)"

// workRoot returns the directory below which this context's CI workspaces
// live, and makes sure it is there: os.TempDir()/spindle-work-UID, a
// directory of this user's that only this user can enter (a sandboxed
// context may write there and nowhere else outside its cache). It refuses
// one that another user owns or that is a symlink: os.TempDir() is usually
// shared.
func workRoot() (string, error) {
	dir := filepath.Join(os.TempDir(), "spindle-work-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("spindle: work root: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("spindle: work root: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
		return "", fmt.Errorf("spindle: work root %s: not a directory owned by uid %d (%v)", dir, os.Getuid(), fi.Mode())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("spindle: work root: %w", err)
		}
	}
	return dir, nil
}

// sandboxConfig is what a sandboxed context may still touch: its cache dir
// ("" if it keeps everything in memory) and its work root, read-write; its
// own executable, /proc/self (the "stats" function reads it), /dev/null,
// /dev/urandom and /etc/localtime, read-only; no program to execute.
func sandboxConfig(cacheDir, work string) oslayer.Config {
	var rw []string
	for _, d := range []string{cacheDir, work} {
		if d != "" {
			rw = append(rw, d)
		}
	}
	ro := []string{executable(), "/proc/self", os.DevNull, "/dev/urandom"}
	if _, err := os.Stat("/etc/localtime"); err == nil {
		ro = append(ro, "/etc/localtime")
	}
	return oslayer.Config{ReadWrite: rw, ReadOnly: ro, MaxFiles: sandboxMaxFiles, NoCore: true}
}

// applySandbox confines this process (irreversibly) and logs, once, which
// layers are in force. It runs before the context serves anything.
func (n *node) applySandbox() {
	work, err := workRoot()
	if err != nil {
		n.log.Warn("sandbox: no work root; the context can write only to its cache", "err", err)
	}
	cfg := sandboxConfig(n.cacheDir, work)
	rep := oslayer.Apply(cfg)
	n.sandbox = &rep
	n.log.Info("sandbox applied", "layers", rep.String(), "read_write", cfg.ReadWrite, "read_only", cfg.ReadOnly)
}

// sandboxResult is the "sandbox" function.
func (n *node) sandboxResult(context.Context, *CallInfo, []byte) (any, error) {
	if n.sandbox == nil {
		return SandboxResult{Report: notSandboxed}, nil
	}
	res := SandboxResult{Sandboxed: true, Report: n.sandbox.String()}
	for _, l := range n.sandbox.Layers {
		res.Layers = append(res.Layers, SandboxLayer{Name: l.Name, Active: l.Active, Detail: l.Detail})
	}
	return res, nil
}

// sandboxSummary is StatsResult.Sandbox.
func (n *node) sandboxSummary() string {
	if n.sandbox == nil {
		return notSandboxed
	}
	return n.sandbox.String()
}

// refuseIfSandboxed fails a start of a child from a sandboxed context.
// Landlock would refuse the exec anyway where the kernel has it; this says
// why, everywhere.
func (n *node) refuseIfSandboxed() *StartError {
	if n.sandbox == nil {
		return nil
	}
	return &StartError{Class: ClassRefused, Err: routing.ErrRefused,
		Detail: fmt.Sprintf("context %s is sandboxed: a sandboxed context is a leaf and starts no children", n.name)}
}
