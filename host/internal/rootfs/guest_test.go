package rootfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	wazerosys "github.com/tetratelabs/wazero/sys"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// escapeAttempts are the lines of testdata/escape that try to get out of
// /data; "ok" is the one that stays inside.
var escapeAttempts = []string{"dotdot", "link", "abs", "new", "up", "rawdotdot"}

// TestGuestCannotEscape runs a real wasip1 guest that tries to read files
// outside its /data mount: through this package, every attempt fails;
// through wazero's own directory mounts, some succeed, which is why this
// package exists.
func TestGuestCannotEscape(t *testing.T) {
	testutil.VerifyNone(t)
	if testing.Short() {
		t.Skip("builds a Go wasip1 guest and compiles it with wazero")
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("wazero has no compiler engine on %s", runtime.GOARCH)
	}
	wasm := buildGuest(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("CompileModule: %v", err)
	}

	rootfsMount := func(readOnly bool) func(*testing.T, string) wazero.FSConfig {
		return func(t *testing.T, dir string) wazero.FSConfig {
			fsys, err := New(dir, readOnly)
			if err != nil {
				t.Fatal(err)
			}
			// The module has closed by the time cleanups run.
			t.Cleanup(func() { fsys.Close() })
			return wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/data")
		}
	}
	tests := []struct {
		name       string
		mount      func(t *testing.T, dir string) wazero.FSConfig
		wantEscape bool
	}{
		{"rootfs read-write", rootfsMount(false), false},
		{"rootfs read-only", rootfsMount(true), false},
		{"wazero WithDirMount", func(_ *testing.T, dir string) wazero.FSConfig {
			return wazero.NewFSConfig().WithDirMount(dir, "/data")
		}, true},
		{"wazero WithReadOnlyDirMount", func(_ *testing.T, dir string) wazero.FSConfig {
			return wazero.NewFSConfig().WithReadOnlyDirMount(dir, "/data")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			out := runGuest(ctx, t, r, compiled, tt.mount(t, fx.dir))
			t.Logf("guest output:\n%s", out)
			results := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				name, result, _ := strings.Cut(line, ": ")
				results[name] = result
			}

			if got, want := results["ok"], `ok "inner\n"`; got != want {
				t.Errorf("ok: %s, want %s", got, want)
			}
			var escaped []string
			for _, name := range escapeAttempts {
				result, ran := results[name]
				switch {
				case !ran:
					t.Errorf("%s: no line from the guest", name)
				case strings.HasPrefix(result, "ok"):
					escaped = append(escaped, name)
				case !strings.HasPrefix(result, "err "):
					t.Errorf("%s: %q is neither ok nor err", name, result)
				}
			}
			if tt.wantEscape {
				if len(escaped) == 0 {
					t.Errorf("no attempt escaped %s: this package may no longer be needed", tt.name)
				}
				return
			}
			if len(escaped) > 0 {
				t.Errorf("attempts %q escaped the mount", escaped)
			}
			if strings.Contains(out, strings.TrimSpace(fx.secret)) || strings.Contains(out, "root:") {
				t.Errorf("guest output holds a file from outside the mount")
			}
			fx.checkOutsideUntouched(t)
		})
	}
}

// buildGuest builds testdata/escape for wasip1 and returns the binary.
func buildGuest(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "escape.wasm")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", "escape")
	// GOFLAGS is cleared so that a -race from the environment does not
	// reach a wasm build.
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/escape: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// runGuest instantiates the command module, which runs main and exits, and
// returns what it printed.
func runGuest(ctx context.Context, t *testing.T, r wazero.Runtime, compiled wazero.CompiledModule, fsCfg wazero.FSConfig) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStdout(&stdout).
		WithStderr(&stderr).
		WithFSConfig(fsCfg)
	mod, err := r.InstantiateModule(ctx, compiled, cfg)
	if mod != nil {
		defer mod.Close(ctx)
	}
	var exitErr *wazerosys.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 0) {
		t.Fatalf("guest: %v\nstderr:\n%s", err, stderr.Bytes())
	}
	return stdout.String()
}
