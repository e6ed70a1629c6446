package gotest

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestLackScan files what wasip1 lacks under the test that printed it, in
// the three shapes of output a test binary prints: -v, go test -json's
// -test.v=test2json (markers after ^V), and plain (only failures, their
// lines after the marker); lines of passed and skipped tests are not kept,
// nor a kind twice, and lines are read across writes of any size.
func TestLackScan(t *testing.T) {
	const exec = "    x_test.go:9: fork/exec /bin/true: Not implemented on wasip1"
	const pipe = "    x_test.go:12: pipe: Not implemented on wasip1"
	const skip = "    testenv.go:84: skipping test: cannot exec subprocess on wasip1/wasm: can't probe for exec support: Executable not implemented for wasip1"
	for name, tc := range map[string]struct {
		out  string
		want []Lack
	}{
		"verbose": {
			"=== RUN   TestSkip\n" + skip + "\n--- SKIP: TestSkip (0.00s)\n" +
				"=== RUN   TestExec\n" + exec + "\n--- FAIL: TestExec (0.00s)\n" +
				"=== RUN   TestPass\n" + pipe + "\n--- PASS: TestPass (0.00s)\n" +
				"=== RUN   TestExec2\n" + exec + "\n--- FAIL: TestExec2 (0.00s)\nFAIL\n",
			[]Lack{{"subprocesses", strings.TrimSpace(exec)}},
		},
		"test2json": {
			"\x16=== RUN   TestSkip\n" + skip + "\n\x16--- SKIP: TestSkip (0.00s)\n" +
				"\x16=== RUN   TestA\n\x16=== RUN   TestA/sub\n" + pipe + "\n    \x16--- FAIL: TestA/sub (0.00s)\n\x16--- FAIL: TestA (0.00s)\n",
			[]Lack{{"pipes", strings.TrimSpace(pipe)}},
		},
		"plain": {
			"--- FAIL: TestExec (0.00s)\n" + exec + "\n--- FAIL: TestPipe (0.00s)\n" + pipe + "\nFAIL\n",
			[]Lack{{"subprocesses", strings.TrimSpace(exec)}, {"pipes", strings.TrimSpace(pipe)}},
		},
		"died in a test": {
			"=== RUN   TestHang\n" + pipe + "\npanic: test timed out after 1s\n",
			[]Lack{{"pipes", strings.TrimSpace(pipe)}},
		},
		"passed": {"=== RUN   TestPass\n" + exec + "\n--- PASS: TestPass (0.00s)\nPASS\n", nil},
	} {
		for _, size := range []int{1, 7, 1 << 20} {
			var s lackScan
			w := &lineScanner{w: io.Discard, scan: &s}
			for rest := tc.out; len(rest) > 0; {
				n := min(size, len(rest))
				if _, err := w.Write([]byte(rest[:n])); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if got := s.result(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s, writes of %d: %+v, want %+v", name, size, got, tc.want)
			}
		}
	}
}

// TestLackScanLongLine: a line past maxLackLine is looked at by its
// start, and the next line is read on its own.
func TestLackScanLongLine(t *testing.T) {
	var s lackScan
	w := &lineScanner{w: io.Discard, scan: &s}
	long := "--- FAIL: TestX (0.00s)\n    x_test.go:1: pipe: Not implemented on wasip1 " + strings.Repeat("x", 3*maxLackLine) +
		"\n    x_test.go:2: fork/exec /bin/true: Not implemented on wasip1\n"
	if _, err := w.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	got := s.result()
	if len(got) != 2 || got[0].What != "pipes" || len(got[0].Line) > maxLackText+len("…") || got[1].What != "subprocesses" {
		t.Errorf("got %+v", got)
	}
}
