package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// sig is a function type, written as "(i32,i32)->i32".
type sig string

func sigOf(d api.FunctionDefinition) sig {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ",")
	}
	return sig("(" + names(d.ParamTypes()) + ")->" + names(d.ResultTypes()))
}

// spindleImports are the host functions of docs/abi.md.
var spindleImports = map[string]sig{
	"task_name":    "(i32,i32)->i32",
	"input_len":    "()->i32",
	"input_read":   "(i32,i32)->i32",
	"output_write": "(i32,i32)->i32",
	"error_set":    "(i32,i32)->i32",
	"log":          "(i32,i32,i32)->i32",
	"send":         "(i32,i32,i32,i32,i32)->i32",
	"exec":         "(i32,i32,i32,i32)->i32",
	"path_attrs":   "(i32,i32,i32,i32)->i32",
	"path_regrant": "(i32,i32,i32,i32,i32)->i32",
}

func TestWasm(t *testing.T) {
	t.Cleanup(CleanupWasm)
	goReactor := map[string]sig{"spindle_call": "()->i32", "_initialize": "()->"}
	tests := []struct {
		name    string
		build   func(t testing.TB) string
		exports map[string]sig // must be among the exports, with these types
		spindle []string       // must be among the spindle imports
		wasi    bool           // may import wasi_snapshot_preview1
		slow    bool
	}{
		{
			name:    "hello",
			build:   func(t testing.TB) string { return BuildWasm(t, "examples/wasm/hello", true) },
			exports: goReactor,
			spindle: []string{"task_name", "input_len", "input_read", "output_write", "error_set", "log"},
			wasi:    true,
		},
		{
			name:    "c-hello",
			build:   func(t testing.TB) string { return BuildC(t, "examples/wasm/c-hello") },
			exports: map[string]sig{"hello": "()->i32", "fail": "()->i32"},
			spindle: []string{"input_len", "input_read", "output_write", "error_set"},
		},
		{
			name:    "c-bad",
			build:   func(t testing.TB) string { return BuildC(t, "examples/wasm/c-bad") },
			exports: map[string]sig{"recurse": "()->i32", "unreachable": "()->i32", "loop": "()->i32", "membomb": "()->i32"},
			spindle: []string{"error_set"},
		},
		{
			name:    "hasher",
			build:   func(t testing.TB) string { return BuildWasm(t, "examples/wasm/hasher", true) },
			exports: goReactor, wasi: true, slow: true,
		},
		{
			name:    "progress",
			build:   func(t testing.TB) string { return BuildWasm(t, "examples/wasm/progress", true) },
			exports: goReactor, wasi: true, slow: true,
			spindle: []string{"send"},
		},
		{
			name:    "bad",
			build:   func(t testing.TB) string { return BuildWasm(t, "examples/wasm/bad", true) },
			exports: goReactor, wasi: true, slow: true,
		},
		{
			name:    "cmd",
			build:   func(t testing.TB) string { return BuildWasm(t, "examples/wasm/cmd", false) },
			exports: map[string]sig{"_start": "()->"}, wasi: true, slow: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.slow && testing.Short() {
				t.Skip("-short: building only hello and c-hello")
			}
			path := tt.build(t)
			if again := tt.build(t); again != path {
				t.Errorf("second build = %s, want the cached %s", again, path)
			}
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if magic := []byte("\x00asm\x01\x00\x00\x00"); !bytes.HasPrefix(bin, magic) {
				t.Fatalf("%s starts %x, want %x", path, bin[:min(len(bin), 8)], magic)
			}
			t.Logf("%s: %d bytes", path, len(bin))

			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
			defer r.Close(ctx)
			m, err := r.CompileModule(ctx, bin)
			if err != nil {
				t.Fatalf("CompileModule(%s): %v", path, err)
			}
			if _, ok := m.ExportedMemories()["memory"]; !ok {
				t.Errorf("%s exports no memory named \"memory\"", path)
			}
			exports := m.ExportedFunctions()
			for name, want := range tt.exports {
				if d, ok := exports[name]; !ok {
					t.Errorf("%s does not export %s", path, name)
				} else if got := sigOf(d); got != want {
					t.Errorf("%s exports %s as %s, want %s", path, name, got, want)
				}
			}
			var spindle []string
			for _, d := range m.ImportedFunctions() {
				module, name, _ := d.Import()
				switch {
				case module == "spindle":
					spindle = append(spindle, name)
					if want, ok := spindleImports[name]; !ok {
						t.Errorf("%s imports spindle.%s, which docs/abi.md does not define", path, name)
					} else if got := sigOf(d); got != want {
						t.Errorf("%s imports spindle.%s as %s, want %s", path, name, got, want)
					}
				case module == "wasi_snapshot_preview1" && tt.wasi:
				default:
					t.Errorf("%s imports %s.%s", path, module, name)
				}
			}
			for _, name := range tt.spindle {
				if !slices.Contains(spindle, name) {
					t.Errorf("%s does not import spindle.%s", path, name)
				}
			}
		})
	}
}

// fatalTB records the first Fatalf and ends its goroutine, as testing.T
// does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalOf runs build with a fatalTB and returns what it failed with.
func fatalOf(t *testing.T, build func(testing.TB) string) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := build(f)
		f.msg = "no failure; built " + path
	}()
	<-done
	return f.msg
}

func TestBuildFailure(t *testing.T) {
	t.Cleanup(CleanupWasm)
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module broken\n\ngo 1.24\n",
		"main.go": "package main\n\nfunc main() { notDefined() }\n",
		"bad.c":   "int f(void) { return not_defined; }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		build func(testing.TB) string
		want  string
	}{
		{"go", func(t testing.TB) string { return BuildWasm(t, dir, true) }, "undefined: notDefined"},
		{"c", func(t testing.TB) string { return BuildC(t, dir) }, "not_defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 2 { // the second gets the cached failure
				if msg := fatalOf(t, tt.build); !strings.Contains(msg, tt.want) {
					t.Errorf("build %d failed with %q, want the compiler's %q", i, msg, tt.want)
				}
			}
		})
	}
}
