package ci_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spindle-hq/spindle/ci"
)

// TestOwnJobFile runs this repository's own job file, spindle.yaml (what
// make ci-demo runs), over the repository with the toolbox, on its
// two-level local tree: every step passes. It is the third use on real
// code, and it keeps the tree clean by its own checks: a file gofumpt
// would rewrite fails here, not first in a user's make ci-demo.
func TestOwnJobFile(t *testing.T) {
	tb := buildToolbox(t)
	e := newEnv(t, filepath.Join(os.TempDir(), "spindle-test-cache"))
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e.ws = root
	f, err := ci.ParseJobFile("spindle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sum := e.run(f, ci.Options{Toolbox: tb})
	for _, s := range sum.Steps {
		if s.Status != ci.Passed {
			t.Errorf("%s/%s: %s (%s): %s; its log: %q", s.Job, s.Step, s.Status, s.Kind, s.Error, e.logs(s.Job, s.Step))
		}
	}
	if len(sum.Steps) < 6 {
		t.Errorf("%d steps ran, want the job file's 6 or more", len(sum.Steps))
	}
}
