package deptest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// msgpackDecoders are the msgpack functions that decode bytes. Outside the
// packages in decodeFree, bytes are decoded only with wire.Unmarshal, which
// checks them (depth, declared lengths) first: a body from a child, a remote
// host or a guest must not reach msgpack unchecked.
var msgpackDecoders = []string{"Unmarshal", "NewDecoder", "GetDecoder"}

// decodeFree are the directories (relative to the module root) whose
// non-test files may call msgpack's decoder: wire is the checked path
// itself; the guest SDK and the example guests run inside the sandbox and
// decode what their trusted host gave them.
var decodeFree = []string{"wire", "guest-sdk", "examples"}

const msgpackPath = "github.com/vmihailenco/msgpack/v5"

// TestOneDecodePath fails on any non-test file outside decodeFree that calls
// one of msgpackDecoders.
func TestOneDecodePath(t *testing.T) {
	root := goCmd(t, "", "env", "GOMOD")
	root = filepath.Dir(root)
	var files int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if slices.Contains(decodeFree, rel) || d.Name() == "testdata" || (strings.HasPrefix(d.Name(), ".") && rel != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		calls, err := directDecodes(rel, src)
		if err != nil {
			return err
		}
		for _, c := range calls {
			t.Errorf("%s: calls msgpack's decoder directly; decode untrusted bytes with wire.Unmarshal", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("looked at %d files under %s, want the whole module", files, root)
	}
}

// directDecodes returns "file:line" for each call of msgpackDecoders in src.
func directDecodes(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	local := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == msgpackPath {
			local = "msgpack"
			if imp.Name != nil {
				local = imp.Name.Name
			}
		}
	}
	if local == "" || local == "_" {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && slices.Contains(msgpackDecoders, sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s:%d: %s.%s", name, fset.Position(sel.Pos()).Line, local, sel.Sel.Name))
		}
		return true
	})
	return out, nil
}

func TestDirectDecodes(t *testing.T) {
	tests := []struct {
		src  string
		want int
	}{
		{`package p; import "github.com/vmihailenco/msgpack/v5"; func f(b []byte) { var v any; msgpack.Unmarshal(b, &v) }`, 1},
		{`package p; import mp "github.com/vmihailenco/msgpack/v5"; var d = mp.NewDecoder(nil); var u = mp.Unmarshal`, 2},
		{`package p; import "github.com/vmihailenco/msgpack/v5"; func f(v any) { msgpack.Marshal(v) }`, 0},
		{`package p; import "example.com/wire"; func f(b []byte) { var v any; wire.Unmarshal(b, &v) }`, 0},
	}
	for _, tt := range tests {
		got, err := directDecodes("x.go", []byte(tt.src))
		if err != nil || len(got) != tt.want {
			t.Errorf("directDecodes(%q) = %v, %v; want %d calls", tt.src, got, err, tt.want)
		}
	}
}
