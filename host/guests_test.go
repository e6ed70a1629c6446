package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// The test guests are built once per test binary, into workDir, from
// testdata: C with clang and wasi-libc (tools/testdeps.sh installs both), Go with GOOS=wasip1. The tests'
// Hosts share a compilation cache, the one the root package's tests use,
// which outlives the binary: wazero keys it by module content and wazero
// version, and compiling a Go guest takes seconds under -race.
var (
	workDir  string
	cacheDir = filepath.Join(os.TempDir(), "spindle-test-cache")
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spindle-host-test-")
	if err != nil {
		panic(err)
	}
	workDir = dir
	code := m.Run()
	testutil.CleanupWasm()
	os.RemoveAll(dir)
	os.Exit(code)
}

// guestSpec says how to build one test guest.
type guestSpec struct {
	lang    string // "c" or "go"
	src     string // testdata/c/<src>.c or testdata/<src>
	reactor bool
}

var guestSpecs = map[string]guestSpec{
	"creactor":  {"c", "reactor", true},
	"cdispatch": {"c", "dispatch", true},
	"ccommand":  {"c", "command", false},
	"goreactor": {"go", "goreactor", true},
	"goinit":    {"go", "goinit", true},
	"gocmd":     {"go", "gocmd", false},
	"gofiles":   {"go", "gofiles", false},
}

type built struct {
	once sync.Once
	wasm []byte
	out  string // the build's output, if it failed
	err  error
}

var builds sync.Map // guest name -> *built

// guest returns the wasm of the named test guest, building it on first use.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	spec, ok := guestSpecs[name]
	if !ok {
		t.Fatalf("no test guest %q", name)
	}
	v, _ := builds.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() { b.wasm, b.out, b.err = build(name, spec) })
	if b.err != nil {
		if _, err := exec.LookPath("clang"); spec.lang == "c" && err != nil {
			t.Fatalf("no clang to build %s (make test installs it: tools/testdeps.sh ensure): %v", name, err)
		}
		t.Fatalf("build %s: %v\n%s", name, b.err, b.out)
	}
	return b.wasm
}

func build(name string, spec guestSpec) ([]byte, string, error) {
	out := filepath.Join(workDir, name+".wasm")
	var cmd *exec.Cmd
	switch spec.lang {
	case "c":
		args := []string{"--target=wasm32-wasi", "-nostdlibinc", "-isystem", "/usr/include/wasm32-wasi",
			"-L/usr/lib/wasm32-wasi", "-O2", "-o", out, filepath.Join("testdata", "c", spec.src+".c")}
		if spec.reactor {
			args = append(args, "-mexec-model=reactor")
		}
		cmd = exec.Command("clang", args...)
	case "go":
		args := []string{"build", "-o", out}
		if spec.reactor {
			args = append(args, "-buildmode=c-shared")
		}
		// go test puts its own go first on PATH.
		cmd = exec.Command("go", append(args, "./testdata/"+spec.src)...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, string(b), err
	}
	wasm, err := os.ReadFile(out)
	return wasm, "", err
}

// newHost returns a Host closed when the test ends. A zero cfg.CacheDir
// means the binary's shared cache.
func newHost(t testing.TB, cfg host.Config) *host.Host {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	h, err := host.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// compile compiles the named test guest on h, under its name as hash.
func compile(t testing.TB, h *host.Host, name string) *host.Module {
	t.Helper()
	m, err := h.Compile(context.Background(), name, guest(t, name))
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return m
}
