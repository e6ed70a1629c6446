package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// suiteBeside is where the suite is kept: beside the project's checkout,
// read-only, for developers and CI alike (its PROVENANCE.md says which
// commit).
const suiteBeside = "../shared/wasi-testsuite"

// locateSuite finds the suite when no -suite is given: suiteBeside relative
// to the checkout in the current directory; else relative to the main
// checkout when this one is a git worktree of it; else relative to the
// clone's origin when that is a directory on this machine (CI's fresh
// clone of the project). The error names every place tried.
func locateSuite() (string, error) {
	var tried []string
	try := func(base string) (string, bool) {
		if base == "" {
			return "", false
		}
		p := filepath.Clean(filepath.Join(base, suiteBeside))
		tried = append(tried, p)
		st, err := os.Stat(p)
		return p, err == nil && st.IsDir()
	}
	if p, ok := try("."); ok {
		return p, nil
	}
	if common := gitOutput("rev-parse", "--path-format=absolute", "--git-common-dir"); common != "" {
		if p, ok := try(filepath.Dir(common)); ok {
			return p, nil
		}
	}
	if origin := gitOutput("remote", "get-url", "origin"); origin != "" && filepath.IsAbs(origin) {
		if p, ok := try(origin); ok {
			return p, nil
		}
		// The origin may itself be a worktree of the main checkout.
		if common := gitOutput("-C", origin, "rev-parse", "--path-format=absolute", "--git-common-dir"); common != "" {
			if p, ok := try(filepath.Dir(common)); ok {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no wasi-testsuite found (tried %s): it is kept at %s beside the checkout; point at one with SUITE=DIR (make) or -suite DIR",
		strings.Join(tried, ", "), suiteBeside)
}

// gitOutput is git's trimmed output for args, or "" if it fails.
func gitOutput(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
