package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// probeDir is the test suite in testdata: specs for examples/wasm/ciprobe,
// a command whose arguments say what it does.
const probeDir = "tests/probe/testsuite/wasm32-wasip1"

// probeSuite copies testdata/suite to a temporary directory and puts the
// ciprobe command, built from source, beside each spec as NAME.wasm, and
// once more as nospec.wasm, a test with no spec (the defaults: no
// arguments, exit 0).
func probeSuite(t *testing.T) string {
	t.Helper()
	probe, err := os.ReadFile(testutil.BuildWasm(t, "examples/wasm/ciprobe", false))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "suite")
	if err := copyTree("testdata/suite", dir); err != nil {
		t.Fatal(err)
	}
	specs, _ := filepath.Glob(filepath.Join(dir, probeDir, "*.json"))
	for _, s := range append(specs, filepath.Join(dir, probeDir, "nospec.json")) {
		if filepath.Base(s) == "manifest.json" {
			continue
		}
		if err := os.WriteFile(strings.TrimSuffix(s, ".json")+".wasm", probe, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestWasitest runs the probe suite through a real spindle binary with
// three known-failures files: the failures listed (exit 0); some not
// listed, a passing test listed and a listed test that does not exist
// (exit 1); and no suite at all (exit 2).
func TestWasitest(t *testing.T) {
	testutil.VerifyNone(t)
	suite := probeSuite(t)
	spindle := testutil.BuildBroker(t)
	id := func(name string) string { return "probe/wasm32-wasip1/" + name }
	writeKnown := func(lines ...string) string {
		p := filepath.Join(t.TempDir(), "known.txt")
		if err := os.WriteFile(p, []byte("# a comment\n\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		known string
		code  int
		want  []string // lines of stdout, in order
	}{{
		name: "failures listed",
		known: writeKnown(id("known")+" it exits 2", id("wrongout")+" it says bye",
			id("wrongexit")+" it exits 1"),
		code: exitOK,
		want: []string{
			"known " + id("known") + ": exit status 2, want 0 (listed: it exits 2)",
			"known " + id("wrongexit") + ": exit status 1, want 0 (listed: it exits 1)",
			"known " + id("wrongout") + `: stdout "bye\n", want "hello\n" (listed: it says bye)`,
			"probe tests: 6 passed, 3 failed (3 known)",
			"6 passed, 3 failed",
		},
	}, {
		name:  "failures not listed",
		known: writeKnown(id("echo")+" listed, but passes", id("gone")+" no such test"),
		code:  exitFail,
		want: []string{
			"PASS " + id("echo") + ": listed as a known failure (listed, but passes): take it off the list",
			"FAIL " + id("known") + ": exit status 2, want 0",
			"FAIL " + id("wrongexit") + ": exit status 1, want 0",
			"FAIL " + id("wrongout") + `: stdout "bye\n", want "hello\n"`,
			"probe tests: 6 passed, 3 failed",
			"listed as a known failure, but no such test: " + id("gone"),
			"6 passed, 3 failed",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"-suite", suite, "-spindle", spindle, "-known", tc.known, "-j", "2"}, &out, &errOut)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				// A failing probe's own stderr follows its reason; the
				// reason is what is checked.
				l, _, _ = strings.Cut(l, "; stderr: ")
				got = append(got, l)
			}
			if code != tc.code || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("wasitest = %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s",
					code, tc.code, out.String(), strings.Join(tc.want, "\n"), errOut.String())
			}
		})
	}
	// The suite's own fixture was copied, not written.
	if b, err := os.ReadFile(filepath.Join(suite, probeDir, "fixture", "f.txt")); err != nil || string(b) != "fixture\n" {
		t.Errorf("the suite's fixture = %q, %v; want it untouched", b, err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"-suite", filepath.Join(t.TempDir(), "none"), "-spindle", spindle}, &out, &errOut); code != exitCantRun ||
		!strings.Contains(errOut.String(), "no wasi-testsuite at") {
		t.Errorf("wasitest with no suite = %d, stderr %q; want %d and why", code, errOut.String(), exitCantRun)
	}
}

// TestReadKnownErrors: an entry with no reason, or listed twice, is
// refused with its line.
func TestReadKnownErrors(t *testing.T) {
	testutil.VerifyNone(t)
	for _, tc := range []struct{ text, want string }{
		{"a/b/c\n", ":1: a/b/c has no reason"},
		{"# c\na/b/c why\na/b/c why again\n", ":3: a/b/c is listed twice"},
	} {
		p := filepath.Join(t.TempDir(), "known.txt")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readKnown(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readKnown(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
}
