package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestRunGolden holds spindle run's scripting contract to files in
// testdata/golden: for fixed runs on the inventory there (a target that
// works, one whose task fails, one that cannot be reached), the table's
// rows with what a command wrote indented below them, the recap line on
// stderr, the --json lines, and the exit status. Rows come in the order
// their targets finish, which is no part of the contract: the test sorts
// them (a row with the lines below it), and the recap's wall time reads
// TIME. A change of the contract is a change of these files; the test
// prints what it got, to compare and copy.
func TestRunGolden(t *testing.T) {
	testutil.VerifyNone(t)
	progress := testutil.BuildWasm(t, "examples/wasm/progress", true)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	inv := filepath.Join("testdata", "golden", "hosts.ini")
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"run-table.golden", []string{"run", "-i", inv, "-t", "all", "MODULE", "count", "--input", "{}"}},
		{"run-json.golden", []string{"run", "--json", "-i", inv, "-t", "all", "MODULE", "count", "--input", "{}"}},
		{"run-command.golden", []string{"run", "-i", inv, "-t", "all", "MODULE", "--", "env", "n", ";", "echo", "hello", ";", "stderr", "a", "warning"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			args := slices.Clone(tt.args)
			module := progress
			if strings.Contains(tt.golden, "command") {
				module = probe
			}
			args[slices.Index(args, "MODULE")] = module
			code, out, errs := cli(t, args...)
			shown := slices.Clone(tt.args)
			shown[slices.Index(shown, "MODULE")] = strings.TrimPrefix(strings.Split(filepath.Base(module), ".")[0], "examples_wasm_") + ".wasm"
			got := fmt.Sprintf("$ spindle %s\nexit %d\n--- stdout\n%s--- stderr\n%s",
				strings.Join(shown, " "), code, sortRecords(out), recapTime.ReplaceAllString(errs, " in TIME\n"))
			want, err := os.ReadFile(filepath.Join("testdata", "golden", tt.golden))
			if err != nil || got != string(want) {
				t.Errorf("testdata/golden/%s (%v): got\n%s\nwant\n%s", tt.golden, err, got, want)
			}
		})
	}
}

// recapTime is the wall time at the end of a recap line.
var recapTime = regexp.MustCompile(` in [0-9.]+[µmn]?s\n`)

// sortRecords sorts out's records, each a line that does not start with
// a space and the lines after it that do (a row's hint and output).
func sortRecords(out string) string {
	var recs []string
	for _, line := range strings.SplitAfter(out, "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, " ") && len(recs) > 0:
			recs[len(recs)-1] += line
		default:
			recs = append(recs, line)
		}
	}
	slices.Sort(recs)
	return strings.Join(recs, "")
}
