package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// importRules says, for each package of this module (its path relative to
// the module root, "." for the root package spindle), which packages of this
// module it may import directly. Keep it in step with docs/imports.md.
//
// Packages under examples/ and tools/ may import anything. Any other package
// missing from this table fails the test: add it here.
var importRules = map[string][]string{
	"wire":                 nil,
	"latch":                nil,
	"broker":               {"wire", "latch"},
	"routing":              {"wire", "latch", "broker"},
	"modules":              {"wire", "latch", "broker", "routing", "internal/atomicfile"},
	"host/internal/rootfs": nil,
	"host":                 {"wire", "host/internal/rootfs", "internal/atomicfile"},
	".":                    {"wire", "latch", "broker", "routing", "modules", "host", "target", "internal/oslayer"},
	"target":               nil,
	"guest-sdk":            nil,
	"ci":                   {".", "wire", "host", "modules", "target", "ci/mask", "ci/report", "internal/atomicfile"},
	"ci/mask":              nil,
	"ci/report":            nil,
	"ci/gotest":            {".", "ci", "ci/report", "target"},
	"ci/gotool":            nil,
	"ci/gocache":           {"internal/atomicfile"},
	"tools/spindle":        {anything},
	"internal/testutil":    nil,
	"internal/deptest":     nil,
	"internal/oslayer":     nil,
	"internal/atomicfile":  nil,
}

// thirdPartyRules says, for the packages it lists, the only modules outside
// the standard library and this module that they may import. Packages it
// does not list may import any module go.mod allows.
var thirdPartyRules = map[string][]string{
	"wire":             {"github.com/vmihailenco/msgpack/v5"},
	"latch":            nil,
	"guest-sdk":        {"github.com/vmihailenco/msgpack/v5"},
	"target":           nil,
	"ci/mask":          nil,
	"ci/report":        nil,
	"internal/oslayer": {"golang.org/x/sys", "github.com/landlock-lsm/go-landlock"},
}

// freeDirs hold packages that may import anything.
var freeDirs = []string{"examples", "tools"}

const anything = "*"

// listedPackage is the part of `go list -json` output this test reads.
type listedPackage struct {
	ImportPath string
	Standard   bool
	Module     *struct{ Path string }
	Imports    []string // of the non-test files only
	Error      *struct{ Err string }
}

func TestImports(t *testing.T) {
	root := goCmd(t, "", "env", "GOMOD")
	if root == "" || root == os.DevNull {
		t.Fatalf("go env GOMOD = %q, want a go.mod", root)
	}
	root = filepath.Dir(root)
	mod := goCmd(t, root, "list", "-m")

	out := goCmd(t, root, "list", "-e", "-deps", "-json", "./...")
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}

	present := map[string]bool{}
	for _, p := range pkgs {
		if rel, ok := relPath(mod, p.ImportPath); ok && p.Module != nil && p.Module.Path == mod {
			present[rel] = true
			if p.Error != nil {
				// The build and the other tests report it; the imports
				// go list did read are still checked.
				t.Logf("%s: %s", p.ImportPath, p.Error.Err)
			}
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(importRules)) {
		if !present[rel] {
			t.Logf("%s: in the table but not in the module (yet)", display(rel))
		}
	}
	if !present["internal/deptest"] {
		t.Fatalf("go list ./... in %s did not list internal/deptest itself; is %s the right module?", root, mod)
	}

	for _, v := range checkImports(mod, pkgs) {
		t.Error(v)
	}
}

// goCmd runs the go command in dir and returns its trimmed standard output.
// go test puts its own go first on PATH.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go command: %v", err) // under wasip1, there is none
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// checkImports returns one message for each broken rule among the packages
// of module mod in pkgs, which holds them and (as `go list -deps` gives) the
// packages they import.
func checkImports(mod string, pkgs []listedPackage) []string {
	byPath := make(map[string]*listedPackage, len(pkgs))
	for i := range pkgs {
		byPath[pkgs[i].ImportPath] = &pkgs[i]
	}
	isOurs := func(path string) bool {
		if p, ok := byPath[path]; ok && p.Module != nil {
			return p.Module.Path == mod
		}
		_, ok := relPath(mod, path)
		return ok
	}
	isStandard := func(path string) bool {
		if p, ok := byPath[path]; ok {
			return p.Standard
		}
		// The go command's own rule: no dot in the first element.
		first, _, _ := strings.Cut(path, "/")
		return !strings.Contains(first, ".")
	}
	moduleOf := func(path string) string {
		if p, ok := byPath[path]; ok && p.Module != nil {
			return p.Module.Path
		}
		return path
	}

	var msgs []string
	var ours []*listedPackage
	for i := range pkgs {
		if isOurs(pkgs[i].ImportPath) {
			ours = append(ours, &pkgs[i])
		}
	}
	slices.SortFunc(ours, func(a, b *listedPackage) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	for _, p := range ours {
		rel, _ := relPath(mod, p.ImportPath)
		if inFreeDir(rel) {
			continue
		}
		allowed, ok := importRules[rel]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s: package is not in the import table; add it to the table in internal/deptest/deptest_test.go and to docs/imports.md", display(rel)))
			continue
		}
		modules, restricted := thirdPartyRules[rel]
		for _, imp := range p.Imports {
			switch {
			case isOurs(imp):
				irel, _ := relPath(mod, imp)
				if !slices.Contains(allowed, anything) && !slices.Contains(allowed, irel) {
					msgs = append(msgs, fmt.Sprintf("forbidden import edge %s -> %s: %s may import %s of this module (see docs/imports.md)",
						display(rel), display(irel), display(rel), describe(allowed)))
				}
			case isStandard(imp):
			case restricted && !allowedModule(modules, moduleOf(imp)):
				msgs = append(msgs, fmt.Sprintf("forbidden third-party import %s -> %s: %s may use %s outside the standard library (see docs/imports.md)",
					display(rel), imp, display(rel), describe(modules)))
			}
		}
	}
	return msgs
}

// relPath returns path relative to module mod, "." for mod itself.
func relPath(mod, path string) (string, bool) {
	if path == mod {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, mod+"/")
	return rel, ok
}

func inFreeDir(rel string) bool {
	for _, d := range freeDirs {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

func allowedModule(modules []string, m string) bool {
	for _, a := range modules {
		if m == a || strings.HasPrefix(m, a+"/") {
			return true
		}
	}
	return false
}

func display(rel string) string {
	if rel == "." {
		return "spindle (root)"
	}
	return rel
}

func describe(allowed []string) string {
	if len(allowed) == 0 {
		return "nothing"
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = display(a)
	}
	return "only " + strings.Join(names, ", ")
}

func TestCheckImports(t *testing.T) {
	const mod = "example.com/spindle"
	ours := func(rel string, imports ...string) listedPackage {
		path := mod + "/" + rel
		if rel == "." {
			path = mod
		}
		return listedPackage{ImportPath: path, Module: &struct{ Path string }{mod}, Imports: imports}
	}
	std := func(path string) listedPackage { return listedPackage{ImportPath: path, Standard: true} }
	dep := func(path, module string) listedPackage {
		return listedPackage{ImportPath: path, Module: &struct{ Path string }{module}}
	}
	base := []listedPackage{
		std("fmt"), std("io"),
		dep("github.com/vmihailenco/msgpack/v5", "github.com/vmihailenco/msgpack/v5"),
		dep("github.com/vmihailenco/msgpack/v5/msgpcode", "github.com/vmihailenco/msgpack/v5"),
		dep("go.uber.org/goleak", "go.uber.org/goleak"),
		ours("wire", "fmt", "github.com/vmihailenco/msgpack/v5", "github.com/vmihailenco/msgpack/v5/msgpcode"),
		ours("latch", "io"),
		ours("broker", mod+"/wire", mod+"/latch", "fmt"),
		ours("routing", mod+"/wire", mod+"/broker", "go.uber.org/goleak"),
		ours(".", mod+"/routing", mod+"/broker"),
		ours("tools/spindle", mod, mod+"/internal/testutil"),
		ours("examples/hello", mod, mod+"/wire", mod+"/tools/spindle"),
		ours("internal/testutil", "go.uber.org/goleak"),
	}
	tests := []struct {
		name string
		add  []listedPackage
		want []string // substrings, one per message, in order
	}{
		{name: "clean"},
		{
			name: "wire imports broker",
			add:  []listedPackage{ours("wire", "fmt", mod+"/broker")},
			want: []string{"forbidden import edge wire -> broker: wire may import nothing"},
		},
		{
			name: "package missing from the table",
			add:  []listedPackage{ours("wire/extra")},
			want: []string{"wire/extra: package is not in the import table; add it to the table"},
		},
		{
			name: "bottom package imports ours",
			add:  []listedPackage{ours("latch", mod+"/wire")},
			want: []string{"forbidden import edge latch -> wire: latch may import nothing"},
		},
		{
			name: "upward edge",
			add:  []listedPackage{ours("broker", mod+"/routing")},
			want: []string{"forbidden import edge broker -> routing: broker may import only wire, latch"},
		},
		{
			name: "root imports a tool",
			add:  []listedPackage{ours(".", mod+"/tools/spindle")},
			want: []string{"forbidden import edge spindle (root) -> tools/spindle"},
		},
		{
			name: "testutil imported by library code",
			add:  []listedPackage{ours("routing", mod+"/internal/testutil")},
			want: []string{"forbidden import edge routing -> internal/testutil"},
		},
		{
			name: "wire imports another module",
			add:  []listedPackage{ours("wire", "go.uber.org/goleak")},
			want: []string{"forbidden third-party import wire -> go.uber.org/goleak: wire may use only github.com/vmihailenco/msgpack/v5"},
		},
		{
			name: "latch imports msgpack",
			add:  []listedPackage{ours("latch", "github.com/vmihailenco/msgpack/v5")},
			want: []string{"forbidden third-party import latch -> github.com/vmihailenco/msgpack/v5: latch may use nothing"},
		},
		{
			name: "third-party import not listed by go list",
			add:  []listedPackage{ours("latch", "example.org/x/y")},
			want: []string{"forbidden third-party import latch -> example.org/x/y"},
		},
		{
			name: "free dirs import anything",
			add:  []listedPackage{ours("tools/other", mod+"/internal/deptest"), ours("examples/x/y", mod+"/tools/other")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs := withReplaced(base, tt.add)
			got := checkImports(mod, pkgs)
			if len(got) != len(tt.want) {
				t.Fatalf("checkImports = %q, want %d message(s) containing %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("checkImports message %d = %q, want it to contain %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// withReplaced returns base with each package of add replacing the one of
// the same path, or appended.
func withReplaced(base, add []listedPackage) []listedPackage {
	pkgs := slices.Clone(base)
	for _, a := range add {
		if i := slices.IndexFunc(pkgs, func(p listedPackage) bool { return p.ImportPath == a.ImportPath }); i >= 0 {
			pkgs[i] = a
		} else {
			pkgs = append(pkgs, a)
		}
	}
	return pkgs
}
