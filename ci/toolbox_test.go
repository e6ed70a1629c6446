package ci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// writeToolbox writes files (name -> contents) as NAME.wasm into a new
// directory, and a lock for them; edit may change the lock's JSON object
// before it is written.
func writeToolbox(t *testing.T, files map[string]string, edit func(lock map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	tools := map[string]any{}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		tools[name] = map[string]any{
			"module":  "example.com/" + name + "@v1.2.3",
			"package": "example.com/" + name + "/cmd/" + name,
			"file":    name + ".wasm",
			"sha256":  hexSum(data),
			"size":    len(data),
		}
	}
	lock := map[string]any{"format": 1, "go": "go1.26.8", "goos": "wasip1", "goarch": "wasm", "tools": tools}
	if edit != nil {
		edit(lock)
	}
	b, err := json.Marshal(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ci.ToolboxLock), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestLoadToolbox(t *testing.T) {
	testutil.VerifyNone(t)
	dir := writeToolbox(t, map[string]string{"fmt": "fmt module", "lint": "lint module"}, nil)
	tb, err := ci.LoadToolbox(dir)
	if err != nil {
		t.Fatalf("LoadToolbox: %v", err)
	}
	tools := tb.Tools()
	if len(tools) != 2 || tools[0].Name != "fmt" || tools[1].Name != "lint" {
		t.Fatalf("Tools() = %+v, want fmt and lint", tools)
	}
	want := ci.Tool{
		Name:    "fmt",
		Module:  "example.com/fmt@v1.2.3",
		Package: "example.com/fmt/cmd/fmt",
		SHA256:  hexSum("fmt module"),
		Path:    filepath.Join(dir, "fmt.wasm"),
		Size:    int64(len("fmt module")),
	}
	got, err := tb.Resolve("fmt")
	if err != nil || got != want {
		t.Errorf("Resolve(fmt) = %+v, %v, want %+v", got, err, want)
	}
	got, wasm, err := tb.Read("fmt")
	if err != nil || got != want || string(wasm) != "fmt module" {
		t.Errorf("Read(fmt) = %+v, %q, %v, want %+v and its bytes", got, wasm, err, want)
	}
	if got, ok := tb.ByHash(hexSum("fmt module")); !ok || got != want {
		t.Errorf("ByHash(fmt's hash) = %+v, %v, want %+v", got, ok, want)
	}
	if got, ok := tb.ByHash(hexSum("no such module")); ok {
		t.Errorf("ByHash(another hash) = %+v, want none", got)
	}

	// A relative directory is made absolute.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	tb, err = ci.LoadToolbox(rel)
	if err != nil {
		t.Fatalf("LoadToolbox(%s): %v", rel, err)
	}
	if tb.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", tb.Dir(), dir)
	}
}

func TestLoadToolboxErrors(t *testing.T) {
	testutil.VerifyNone(t)
	tool := func(lock map[string]any) map[string]any {
		return lock["tools"].(map[string]any)["fmt"].(map[string]any)
	}
	tests := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"format", func(l map[string]any) { l["format"] = 2 }, "format 2, this spindle reads format 1; run make toolbox"},
		{"unknown field", func(l map[string]any) { l["extra"] = true }, `unknown field "extra"`},
		{"wrong type", func(l map[string]any) { tool(l)["size"] = "big" }, "cannot unmarshal"},
		{"goos", func(l map[string]any) { l["goos"] = "linux" }, "built for linux/wasm, want wasip1/wasm"},
		{"name", func(l map[string]any) { l["tools"].(map[string]any)["a b"] = tool(l) }, `tool name "a b"`},
		{"sha256", func(l map[string]any) { tool(l)["sha256"] = "ABC" }, `sha256 "ABC" is not 64 lower-case hex digits`},
		{"file outside", func(l map[string]any) { tool(l)["file"] = "../fmt.wasm" }, `file "../fmt.wasm" is not a path inside`},
		{"file absolute", func(l map[string]any) { tool(l)["file"] = "/bin/sh" }, `file "/bin/sh" is not a path inside`},
		{"size", func(l map[string]any) { tool(l)["size"] = -1 }, "size -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeToolbox(t, map[string]string{"fmt": "fmt module"}, tt.edit)
			tb, err := ci.LoadToolbox(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadToolbox = %v, %v, want an error with %q", tb, err, tt.want)
			}
		})
	}

	_, err := ci.LoadToolbox(t.TempDir())
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "run make toolbox") {
		t.Errorf("LoadToolbox of an empty directory = %v, want ErrNotExist saying to run make toolbox", err)
	}
}

func TestResolveErrors(t *testing.T) {
	testutil.VerifyNone(t)
	dir := writeToolbox(t, map[string]string{"fmt": "fmt module", "lint": "lint module", "vet": "vet module"}, nil)
	tb, err := ci.LoadToolbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tb.Resolve("gofmt")
	if !errors.Is(err, ci.ErrUnknownTool) || !strings.Contains(err.Error(), `"gofmt"`) || !strings.Contains(err.Error(), "has fmt, lint, vet") {
		t.Errorf("Resolve(gofmt) = %v, want ErrUnknownTool listing fmt, lint, vet", err)
	}
	if _, _, err := tb.Read("gofmt"); !errors.Is(err, ci.ErrUnknownTool) {
		t.Errorf("Read(gofmt) = %v, want ErrUnknownTool", err)
	}

	if err := os.Remove(filepath.Join(dir, "lint.wasm")); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		f    func() error
	}{
		{"Resolve", func() error { _, err := tb.Resolve("lint"); return err }},
		{"Read", func() error { _, _, err := tb.Read("lint"); return err }},
	} {
		err := call.f()
		if !errors.Is(err, ci.ErrToolMismatch) || !strings.Contains(err.Error(), "no such file") ||
			!strings.Contains(err.Error(), "run make toolbox") {
			t.Errorf("%s(lint) with its file gone = %v, want ErrToolMismatch saying no such file and to run make toolbox", call.name, err)
		}
	}

	// A file rewritten after a Resolve that passed is hashed again: in the
	// first case its size changes, in the second only its bytes and time.
	if _, err := tb.Resolve("fmt"); err != nil {
		t.Fatalf("Resolve(fmt): %v", err)
	}
	path := filepath.Join(dir, "fmt.wasm")
	for _, rewrite := range []string{"another fmt module", "FMT module"} {
		if err := os.WriteFile(path, []byte(rewrite), 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
		wantMsg := "has sha256 " + hexSum(rewrite) + ", the lock records " + hexSum("fmt module") + "; run make toolbox"
		if _, err := tb.Resolve("fmt"); !errors.Is(err, ci.ErrToolMismatch) || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("Resolve(fmt) of %q = %v, want ErrToolMismatch with %q", rewrite, err, wantMsg)
		}
		if _, _, err := tb.Read("fmt"); !errors.Is(err, ci.ErrToolMismatch) {
			t.Errorf("Read(fmt) of %q = %v, want ErrToolMismatch", rewrite, err)
		}
	}
	// Put back, it passes again.
	if err := os.WriteFile(path, []byte("fmt module"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Resolve("fmt"); err != nil {
		t.Errorf("Resolve(fmt) restored = %v", err)
	}
}

// buildToolbox runs make toolbox at the repository's root, the parent of
// this package (it builds nothing when bin/toolbox is up to date), and
// loads bin/toolbox.
func buildToolbox(t *testing.T) *ci.Toolbox {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "toolbox")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make toolbox (in %s) failed: %v; its output:\n%s", root, err, out)
	}
	tb, err := ci.LoadToolbox(filepath.Join(root, "bin", "toolbox"))
	if err != nil {
		t.Fatalf("after make toolbox: %v", err)
	}
	return tb
}

// TestToolboxLockFromMake reads the lock that make toolbox wrote (so the
// format lockgen writes is the one LoadToolbox reads) and checks that it
// names the pinned tools, each resolving to its file.
func TestToolboxLockFromMake(t *testing.T) {
	testutil.VerifyNone(t)
	tb := buildToolbox(t)
	want := map[string]string{
		"gofmt":      "go@go",
		"gofumpt":    "mvdan.cc/gofumpt@v0.12.0",
		"shfmt":      "mvdan.cc/sh/v3@v3.14.1",
		"gojq":       "github.com/itchyny/gojq@v0.12.19",
		"actionlint": "github.com/rhysd/actionlint@v1.7.12",
		"jsonnet":    "github.com/google/go-jsonnet@v0.22.0",
	}
	if got := len(tb.Tools()); got != len(want) {
		t.Errorf("the toolbox has %d tools, want %d", got, len(want))
	}
	for name, module := range want {
		tool, err := tb.Resolve(name)
		if err != nil {
			t.Errorf("Resolve(%s): %v", name, err)
			continue
		}
		if !strings.HasPrefix(tool.Module, module) {
			t.Errorf("Resolve(%s).Module = %s, want %s", name, tool.Module, module)
		}
		if byHash, ok := tb.ByHash(tool.SHA256); !ok || byHash != tool {
			t.Errorf("ByHash(%s) = %+v, %v, want %+v", tool.SHA256, byHash, ok, tool)
		}
	}
}

// Fixtures of TestToolboxRuns, mounted at /src.
const (
	goodGo = "package p\n\nfunc F() int { return 1 }\n"
	badGo  = "package p\nfunc G( ) int {return 2}\n"
	// gofmt keeps the empty line opening the body; gofumpt removes it.
	fumptGo = "package p\n\nfunc H() int {\n\n\treturn 3\n}\n"

	badSh  = "#!/bin/sh\nif true;then\n  echo hi\nfi\n"
	goodSh = "#!/bin/sh\nif true; then\n\techo hi\nfi\n"

	dataJSON = `{"jobs": [{"name": "lint", "steps": 2}, {"name": "test", "steps": 3}]}`

	// Two faults actionlint finds: a timeout that is not a number, and an
	// untrusted input expanded into a script.
	badWorkflow = `on: issues
jobs:
  greet:
    runs-on: ubuntu-latest
    timeout-minutes: "ten"
    steps:
      - run: echo "${{ github.event.issue.title }}"
`
	goodWorkflow = `on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo ok
`

	jsonnetSrc = `local steps(n) = [{ step: i } for i in std.range(1, n)];
{ name: 'demo', steps: steps(2) }
`
)

// TestToolboxRuns runs each tool of bin/toolbox (made by make toolbox
// first) as a command on package host, in the sandbox a CI step gets: a
// read-only input tree at /src, the working directory, and a writable
// /out, /tmp and /home.
func TestToolboxRuns(t *testing.T) {
	testutil.VerifyNone(t)
	tb := buildToolbox(t)
	h, err := host.New(context.Background(), host.Config{
		// The compilation cache of the contexts that TestOwnJobFile's
		// master starts (a context's host keeps it in CACHEDIR/compiled):
		// it outlives the test binary, compiling these tools takes a
		// minute each under -race, and wazero keys it by module and
		// version, so each tool compiles once for both tests.
		CacheDir: filepath.Join(os.TempDir(), "spindle-test-cache", "compiled"),
		// The default module bounds: actionlint, the largest tool, sets
		// them (one function of 76,377 control instructions, compile
		// work 5.9e9).
	})
	if err != nil {
		t.Fatalf("host.New: %v", err)
	}
	defer func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	tests := []struct {
		name     string
		tool     string
		files    map[string]string // the input tree at /src
		args     []string
		wantCode int
		want     []string          // each in stdout; none: stdout is empty
		notWant  []string          // none in stdout
		wantOut  map[string]string // files under /out, each holding the string
	}{
		{
			name:    "gofmt lists the badly formatted file",
			tool:    "gofmt",
			files:   map[string]string{"good.go": goodGo, "sub/bad.go": badGo, "fumpt.go": fumptGo},
			args:    []string{"-l", "."},
			want:    []string{"sub/bad.go\n"},
			notWant: []string{"good.go", "fumpt.go"},
		},
		{
			name:  "gofmt clean tree",
			tool:  "gofmt",
			files: map[string]string{"good.go": goodGo},
			args:  []string{"-l", "."},
		},
		{
			name:    "gofumpt lists what gofmt accepts",
			tool:    "gofumpt",
			files:   map[string]string{"good.go": goodGo, "fumpt.go": fumptGo},
			args:    []string{"-l", "."},
			want:    []string{"fumpt.go\n"},
			notWant: []string{"good.go"},
		},
		{
			name:     "shfmt diff",
			tool:     "shfmt",
			files:    map[string]string{"tools/x.sh": badSh},
			args:     []string{"-d", "tools/x.sh"},
			wantCode: 1,
			want:     []string{"-if true;then", "+if true; then"},
		},
		{
			name:  "shfmt clean",
			tool:  "shfmt",
			files: map[string]string{"x.sh": goodSh},
			args:  []string{"-d", "x.sh"},
		},
		{
			name:  "gojq",
			tool:  "gojq",
			files: map[string]string{"data.json": dataJSON},
			args:  []string{"-r", "[.jobs[].steps] | add", "data.json"},
			want:  []string{"5\n"},
		},
		{
			name:     "gojq -e false",
			tool:     "gojq",
			files:    map[string]string{"data.json": dataJSON},
			args:     []string{"-e", ".jobs | length > 2", "data.json"},
			wantCode: 1,
			want:     []string{"false\n"},
		},
		{
			name:     "actionlint finds the faults",
			tool:     "actionlint",
			files:    map[string]string{"workflows/bad.yml": badWorkflow, "workflows/good.yml": goodWorkflow},
			args:     []string{"-no-color", "-shellcheck=", "-pyflakes=", "workflows/bad.yml", "workflows/good.yml"},
			wantCode: 1,
			want:     []string{"workflows/bad.yml:", "github.event.issue.title", "timeout-minutes"},
			notWant:  []string{"good.yml"},
		},
		{
			name:  "jsonnet to stdout",
			tool:  "jsonnet",
			files: map[string]string{"demo.jsonnet": jsonnetSrc},
			args:  []string{"demo.jsonnet"},
			want:  []string{`"name": "demo"`, `"step": 2`},
		},
		{
			name:    "jsonnet to /out",
			tool:    "jsonnet",
			files:   map[string]string{"demo.jsonnet": jsonnetSrc},
			args:    []string{"-o", "/out/demo.json", "demo.jsonnet"},
			wantOut: map[string]string{"demo.json": `"step": 1`},
		},
	}
	modules := map[string]*host.Module{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := modules[tt.tool]
			if m == nil {
				tool, wasm, err := tb.Read(tt.tool)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if m, err = h.Compile(t.Context(), tool.SHA256, wasm); err != nil {
					t.Fatalf("Compile(%s): %v", tt.tool, err)
				}
				t.Logf("compiled %s (%d bytes) in %v", tt.tool, len(wasm), time.Since(start).Round(time.Millisecond))
				modules[tt.tool] = m
			}
			src, out := t.TempDir(), t.TempDir()
			for name, data := range tt.files {
				path := filepath.Join(src, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			start := time.Now()
			res, err := h.Run(t.Context(), m, host.Call{
				Task:   tt.tool,
				Args:   tt.args,
				Stdout: &stdout,
				Stderr: &stderr,
				Limits: host.Limits{Timeout: time.Minute},
				Grants: host.Grants{
					Mounts: []host.Mount{
						{HostDir: src, GuestDir: "/src", ReadOnly: true},
						{HostDir: out, GuestDir: "/out"},
						{HostDir: t.TempDir(), GuestDir: "/tmp"},
						{HostDir: t.TempDir(), GuestDir: "/home"},
					},
					Env: map[string]string{"PWD": "/src", "HOME": "/home", "TMPDIR": "/tmp"},
				},
			})
			t.Logf("%s %s: %v; stdout %q; stderr %q", tt.tool, strings.Join(tt.args, " "),
				time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
			if err != nil {
				t.Fatalf("Run(%s %q): %v", tt.tool, tt.args, err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("%s %q: exit code %d, want %d; stderr %q", tt.tool, tt.args, res.ExitCode, tt.wantCode, stderr.String())
			}
			if len(tt.want) == 0 && stdout.Len() > 0 {
				t.Errorf("%s %q: stdout %q, want none", tt.tool, tt.args, stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("%s %q: stdout %q, want it to hold %q", tt.tool, tt.args, stdout.String(), w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("%s %q: stdout %q holds %q", tt.tool, tt.args, stdout.String(), w)
				}
			}
			for name, w := range tt.wantOut {
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil || !strings.Contains(string(b), w) {
					t.Errorf("%s %q: /out/%s = %q, %v, want it to hold %q", tt.tool, tt.args, name, b, err, w)
				}
			}
		})
	}
}

// TestResolveHammer resolves tools from many goroutines at once, started
// together, while one of the files is rewritten: each Resolve sees the
// file either good or bad, never an error of another kind.
func TestResolveHammer(t *testing.T) {
	testutil.VerifyNone(t)
	dir := writeToolbox(t, map[string]string{"fmt": "fmt module", "lint": "lint module"}, nil)
	tb, err := ci.LoadToolbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 16, 50
	start := make(chan struct{})
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range rounds {
				name := []string{"fmt", "lint"}[i%2]
				if _, err := tb.Resolve(name); err != nil && (name == "lint" || !errors.Is(err, ci.ErrToolMismatch)) {
					errs <- err
				}
			}
		}()
	}
	close(start)
	for i := range rounds {
		data := "fmt module"
		if i%2 == 1 {
			data = "bad module"
		}
		if err := os.WriteFile(filepath.Join(dir, "fmt.wasm.tmp"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "fmt.wasm.tmp"), filepath.Join(dir, "fmt.wasm")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Resolve: %v", err)
	}
	// The last rewrite put back the bad module: it is seen as bad.
	if _, err := tb.Resolve("fmt"); !errors.Is(err, ci.ErrToolMismatch) {
		t.Errorf("Resolve(fmt) after the hammer = %v, want ErrToolMismatch", err)
	}
}
