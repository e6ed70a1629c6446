package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// suite is one directory of tests with a manifest.json.
type suite struct {
	Name  string // the manifest's name
	Dir   string
	Tests []test
}

// test is one NAME.wasm of a suite and its spec.
type test struct {
	ID   string // the suite's directory under the checkout's tests/, and NAME: "rust/wasm32-wasip1/renumber"
	Wasm string
	Spec spec
}

// spec is a test's NAME.json, in the suite's legacy form.
type spec struct {
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Root     string            `json:"root"` // relative to the spec's directory; mounted at "/"
	Stdout   *string           `json:"stdout"`
	Stderr   *string           `json:"stderr"`
	ExitCode int               `json:"exit_code"`
}

// maxSpecBytes bounds a spec file: the suite's are under 200 bytes.
const maxSpecBytes = 1 << 20

// findSuites finds every suite under dir (a directory holding a
// manifest.json) and its tests, in name order.
func findSuites(dir string) ([]suite, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("no wasi-testsuite at %s: want a checkout of github.com/WebAssembly/wasi-testsuite, branch prod/testsuite-base (SUITE=DIR, -suite DIR)", dir)
	}
	var suites []suite
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "manifest.json" {
			return nil
		}
		s, err := readSuite(dir, filepath.Dir(p))
		if err != nil {
			return err
		}
		suites = append(suites, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("no test suite under %s: no directory there holds a manifest.json", dir)
	}
	return suites, nil
}

func readSuite(root, dir string) (suite, error) {
	var man struct {
		Name string `json:"name"`
	}
	if err := readJSON(filepath.Join(dir, "manifest.json"), &man, nil); err != nil {
		return suite{}, err
	}
	s := suite{Name: man.Name, Dir: dir}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return suite{}, err
	}
	// tests/rust/testsuite/wasm32-wasip1 -> rust/wasm32-wasip1
	rel = filepath.ToSlash(rel)
	rel = strings.TrimPrefix(rel, "tests/")
	rel = strings.Replace(rel, "/testsuite/", "/", 1)
	if s.Name == "" {
		s.Name = rel
	}
	wasms, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		return suite{}, err
	}
	slices.Sort(wasms)
	for _, w := range wasms {
		name := strings.TrimSuffix(filepath.Base(w), ".wasm")
		t := test{ID: rel + "/" + name, Wasm: w}
		specPath := strings.TrimSuffix(w, ".wasm") + ".json"
		err := readJSON(specPath, &t.Spec, legacyKeys)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return suite{}, err
		}
		if t.Spec.Root != "" {
			t.Spec.Root = filepath.Join(dir, t.Spec.Root)
		}
		s.Tests = append(s.Tests, t)
	}
	return s, nil
}

// legacyKeys are the fields of the suite's legacy spec form. The newer form
// ("operations", "proposals", "world", "servers") is used only by its
// wasip3 and HTTP tests, which a wasip1 runtime does not run; a spec with
// any other field is refused rather than half understood.
var legacyKeys = []string{"args", "env", "root", "stdout", "stderr", "exit_code"}

// readJSON decodes the file at p into v; with keys, a field not among them
// is an error.
func readJSON(p string, v any, keys []string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	if len(b) > maxSpecBytes {
		return fmt.Errorf("%s: more than %d bytes", p, maxSpecBytes)
	}
	if keys != nil {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		for k := range fields {
			if !slices.Contains(keys, k) {
				return fmt.Errorf("%s: field %q is not one this runner knows (it reads %s)", p, k, strings.Join(keys, ", "))
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	return nil
}
