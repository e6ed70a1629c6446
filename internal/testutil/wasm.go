package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// CFlags are the clang flags BuildC uses for a C reactor with no libc; the
// Makefile's wasm-c target uses the same. Freestanding (clang's own
// headers only), so clang and lld are all a C guest needs: no wasi-libc.
var CFlags = []string{
	"--target=wasm32-wasi", "-ffreestanding", "-nostdlibinc", "-mexec-model=reactor", "-nostdlib",
	"-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--no-entry",
}

// wasmCacheDirPrefix names the per-process build directories under
// os.TempDir(): spindle-wasm-<pid>.
const wasmCacheDirPrefix = "spindle-wasm-"

// wasmCache holds the modules built by this process, so that each example
// is built once per test binary however many tests ask for it. It is
// package state because it must outlive any one test.
var wasmCache struct {
	mu     sync.Mutex
	root   string                  // guarded by mu; the module root, "" until found
	dir    string                  // guarded by mu; "" until the first build
	builds map[wasmKey]*wasmResult // guarded by mu
}

type wasmKey struct {
	dir  string // as the caller gave it
	kind string // "reactor", "command" or "c"
}

// wasmResult is one build, shared by every caller that asks for it.
type wasmResult struct {
	src  string        // the directory to build, set before the build
	out  string        // where the build writes, set before the build
	done chan struct{} // closed when the build has ended
	path string        // out, once built; read after done
	err  error         // with the compiler's output; read after done
}

// BuildWasm builds the Go program in dir (relative to the module root, or
// absolute) for GOOS=wasip1 GOARCH=wasm, as a reactor
// (-buildmode=c-shared) when reactor is set and as a command otherwise, and
// returns the path of the .wasm file. It fails t, with the compiler's
// output, if the build fails.
//
// Each (dir, reactor) is built once per process: later calls, from any
// test or goroutine, get the same file (and the same failure). The files
// live in os.TempDir()/spindle-wasm-<pid>; call CleanupWasm from TestMain
// to remove them when the tests end. Directories left by processes that
// have exited (those that did not call CleanupWasm) are removed by the
// next process that builds.
func BuildWasm(t testing.TB, dir string, reactor bool) string {
	t.Helper()
	kind, args := "command", []string{"build"}
	if reactor {
		kind, args = "reactor", append(args, "-buildmode=c-shared")
	}
	return buildWasm(t, wasmKey{filepath.Clean(dir), kind}, func(src, out string) *exec.Cmd {
		cmd := exec.Command("go", append(args, "-o", out, ".")...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		return cmd
	})
}

// BuildC builds the C files in dir (relative to the module root, or
// absolute) into one reactor with clang ($CLANG if set) and CFlags, and
// returns the path of the .wasm file. Caching and failure are as for
// BuildWasm.
func BuildC(t testing.TB, dir string) string {
	t.Helper()
	return buildWasm(t, wasmKey{filepath.Clean(dir), "c"}, func(src, out string) *exec.Cmd {
		files, _ := filepath.Glob(filepath.Join(src, "*.c"))
		clang := os.Getenv("CLANG")
		if clang == "" {
			clang = "clang"
		}
		args := append(append([]string{}, CFlags...), "-o", out)
		cmd := exec.Command(clang, append(args, files...)...)
		cmd.Dir = src
		return cmd
	})
}

// BuildBroker builds the spindle command (tools/spindle) as a static
// linux binary of this machine's architecture (CGO_ENABLED=0), as make
// build builds bin/spindle-linux-*, and returns its path: the broker to
// give Config.Executable where the test binary cannot run (it is linked
// against libc, for the race detector; a busybox container has none).
// Caching and failure are as for BuildWasm.
func BuildBroker(t testing.TB) string {
	t.Helper()
	return buildWasm(t, wasmKey{"tools/spindle", "native"}, func(src, out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		return cmd
	})
}

// CleanupWasm removes the modules built by BuildWasm and BuildC in this
// process; a later call builds again. Call it from TestMain after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testutil.CleanupWasm()
//		os.Exit(code)
//	}
//
// It must not run while a test may still use the files.
func CleanupWasm() {
	wasmCache.mu.Lock()
	defer wasmCache.mu.Unlock()
	if wasmCache.dir != "" {
		os.RemoveAll(wasmCache.dir)
	}
	wasmCache.dir = ""
	wasmCache.builds = nil
}

func buildWasm(t testing.TB, key wasmKey, command func(src, out string) *exec.Cmd) string {
	t.Helper()
	r, first, err := wasmEntry(key)
	if err != nil {
		t.Fatalf("testutil: build %s (%s): %v", key.dir, key.kind, err)
	}
	if first {
		func() {
			defer close(r.done)
			r.path, r.err = runBuild(r.src, r.out, command)
		}()
	}
	<-r.done
	if r.err != nil {
		t.Fatalf("testutil: build %s (%s): %v", key.dir, key.kind, r.err)
	}
	return r.path
}

// wasmEntry returns the cache entry for key, and whether the caller must
// build it (and then close its done).
func wasmEntry(key wasmKey) (r *wasmResult, first bool, err error) {
	wasmCache.mu.Lock()
	defer wasmCache.mu.Unlock()
	if r := wasmCache.builds[key]; r != nil {
		return r, false, nil
	}
	if wasmCache.root == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, false, err
		}
		wasmCache.root = root
	}
	if wasmCache.dir == "" {
		reapWasmDirs()
		dir := filepath.Join(os.TempDir(), wasmCacheDirPrefix+strconv.Itoa(os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, false, err
		}
		wasmCache.dir = dir
	}
	if wasmCache.builds == nil {
		wasmCache.builds = make(map[wasmKey]*wasmResult)
	}
	r = &wasmResult{src: key.dir, done: make(chan struct{})}
	if !filepath.IsAbs(r.src) {
		r.src = filepath.Join(wasmCache.root, r.src)
	}
	name := strings.ReplaceAll(strings.Trim(filepath.ToSlash(key.dir), "/"), "/", "_")
	ext := ".wasm"
	if key.kind == "native" {
		ext = "" // BuildBroker's
	}
	r.out = filepath.Join(wasmCache.dir, name+"."+key.kind+ext)
	wasmCache.builds[key] = r
	return r, true, nil
}

func runBuild(src, out string, command func(src, out string) *exec.Cmd) (string, error) {
	var output bytes.Buffer
	cmd := command(src, out)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, output.Bytes())
	}
	return out, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// reapWasmDirs removes the build directories of processes that have
// exited, where /proc tells which are alive.
func reapWasmDirs() {
	if _, err := os.Stat("/proc/self"); err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), wasmCacheDirPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), wasmCacheDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(dir)
		}
	}
}

// BuildGoTool builds the Go toolchain's tool name (compile, asm, link)
// from this Go's GOROOT for GOOS=wasip1 GOARCH=wasm, as make gotools does,
// and returns the path of the .wasm file: the tools spindle toolexec runs.
// The first build takes a minute or more (cmd/compile is 49 MB of wasm);
// go's build cache makes later ones a link. Caching and failure are as for
// BuildWasm.
func BuildGoTool(t testing.TB, name string) string {
	t.Helper()
	return buildWasm(t, wasmKey{"cmd/" + name, "gotool"}, func(_, out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "cmd/"+name)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
		return cmd
	})
}
