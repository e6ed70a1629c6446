package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// capturedOutput is real go test -bench -benchmem -count 2 -cpu 2 output
// (./wire and ./host of this repository), plus a benchmark whose stdout
// split its line and one run with -cpu 1, which has no suffix.
const capturedOutput = `goos: linux
goarch: amd64
pkg: github.com/spindle-hq/spindle/wire
cpu: Intel(R) Xeon(R) Processor
BenchmarkAppendHeader-2        	    2000	         6.104 ns/op	       0 B/op	       0 allocs/op
BenchmarkAppendHeader-2        	    2000	         7.285 ns/op	       0 B/op	       0 allocs/op
BenchmarkReadMessage/64B-2     	    2000	       258.0 ns/op	 348.86 MB/s	     128 B/op	       2 allocs/op
BenchmarkReadMessage/64B-2     	    2000	       232.1 ns/op	 387.77 MB/s	     128 B/op	       2 allocs/op
BenchmarkCheck/run_task-2                	    2000	       361.9 ns/op	 350.97 MB/s	       0 B/op	       0 allocs/op
BenchmarkCheck/run_task-2                	    2000	       392.4 ns/op	 323.68 MB/s	       0 B/op	       0 allocs/op
BenchmarkInstancePhases/pool-2         	     300	   1312345 ns/op	       812.0 close-µs	       401.0 initialize-µs	       95.00 instantiate-µs	  123456 B/op	     310 allocs/op
BenchmarkChatty-2
hello from the benchmark
    	     300	      4594 ns/op	    1232 B/op	      13 allocs/op
BenchmarkCPU1   	    2000	        63.16 ns/op	       0 B/op	       0 allocs/op
--- BENCH: BenchmarkChatty-2
    bench_test.go:12: a log line
PASS
ok  	github.com/spindle-hq/spindle/wire	0.984s
`

func TestParseBenchOutput(t *testing.T) {
	got, err := parseBenchOutput(capturedOutput, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []sample{
		{"BenchmarkAppendHeader", 2000, 6.104, 0},
		{"BenchmarkAppendHeader", 2000, 7.285, 0},
		{"BenchmarkReadMessage/64B", 2000, 258.0, 2},
		{"BenchmarkReadMessage/64B", 2000, 232.1, 2},
		{"BenchmarkCheck/run_task", 2000, 361.9, 0},
		{"BenchmarkCheck/run_task", 2000, 392.4, 0},
		{"BenchmarkInstancePhases/pool", 300, 1312345, 310},
		{"BenchmarkChatty", 300, 4594, 13},
		{"BenchmarkCPU1", 2000, 63.16, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseBenchOutput =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseBenchOutputWithoutBenchmem(t *testing.T) {
	out := "BenchmarkX-2   \t    2000\t        63.16 ns/op\n"
	if _, err := parseBenchOutput(out, 2); err == nil || !strings.Contains(err.Error(), "BenchmarkX") {
		t.Errorf("parseBenchOutput(%q) = %v, want an error naming BenchmarkX", out, err)
	}
}

func TestTolerance(t *testing.T) {
	for _, tc := range []struct{ base, want int64 }{
		{0, 1}, {1, 1}, {7, 1}, {10, 1}, {11, 2}, {20, 2}, {29, 3}, {300, 30},
	} {
		if got := tolerance(tc.base); got != tc.want {
			t.Errorf("tolerance(%d) = %d, want %d", tc.base, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	entries := []entry{
		{key{"./wire", "BenchmarkSame"}, 2},
		{key{"./wire", "BenchmarkPlusOne"}, 7},      // +1: noise
		{key{"./wire", "BenchmarkPlusTwo"}, 7},      // +2: a regression
		{key{"./wire", "BenchmarkZeroToOne"}, 0},    // +1 on nothing: still noise
		{key{"./wire", "BenchmarkZeroToTwo"}, 0},    // +2: a regression
		{key{"./host", "BenchmarkBig"}, 29},         // 32 is within 10% (3)
		{key{"./host", "BenchmarkBigger"}, 29},      // 33 is not
		{key{"./host", "BenchmarkImproved"}, 29},    // 25: report it
		{key{"./host", "BenchmarkSlightlyLess"}, 7}, // 6: noise, quiet
		{key{"./latch", "BenchmarkGone"}, 0},
	}
	got := make(results)
	for _, s := range []struct {
		k      key
		allocs []int64
	}{
		{key{"./wire", "BenchmarkSame"}, []int64{2, 2, 2}},
		{key{"./wire", "BenchmarkPlusOne"}, []int64{9, 8, 9}}, // the minimum counts
		{key{"./wire", "BenchmarkPlusTwo"}, []int64{9, 10, 9}},
		{key{"./wire", "BenchmarkZeroToOne"}, []int64{1, 1, 1}},
		{key{"./wire", "BenchmarkZeroToTwo"}, []int64{2, 3, 2}},
		{key{"./host", "BenchmarkBig"}, []int64{32}},
		{key{"./host", "BenchmarkBigger"}, []int64{33}},
		{key{"./host", "BenchmarkImproved"}, []int64{25}},
		{key{"./host", "BenchmarkSlightlyLess"}, []int64{6}},
		{key{"./latch", "BenchmarkNew"}, []int64{0}},
	} {
		for _, a := range s.allocs {
			got.add(s.k, a, 100)
		}
	}
	rep := compare(entries, got)
	wantFail := []string{
		"./wire BenchmarkPlusTwo: 9 allocs/op, baseline 7 (tolerance 1)",
		"./wire BenchmarkZeroToTwo: 2 allocs/op, baseline 0 (tolerance 1)",
		"./host BenchmarkBigger: 33 allocs/op, baseline 29 (tolerance 3)",
		"./latch BenchmarkGone: in the baseline (0 allocs/op) but no such benchmark ran (renamed or removed? -update)",
		"./latch BenchmarkNew: 0 allocs/op, not in the baseline (a new benchmark? -update)",
	}
	if !reflect.DeepEqual(rep.Failures, wantFail) {
		t.Errorf("compare failures =\n%s\nwant\n%s", strings.Join(rep.Failures, "\n"), strings.Join(wantFail, "\n"))
	}
	wantImproved := []string{"./host BenchmarkImproved: 25 allocs/op, baseline 29"}
	if !reflect.DeepEqual(rep.Improved, wantImproved) {
		t.Errorf("compare improvements = %q, want %q", rep.Improved, wantImproved)
	}
}

const sampleBaseline = `# a comment
bench ./wire . 2000x
bench ./latch ^BenchmarkPutGet$ 100x

# entries
./wire  BenchmarkA   0
./latch BenchmarkPutGet 3
`

func TestBaselineRoundTrip(t *testing.T) {
	b, err := parseBaseline(sampleBaseline)
	if err != nil {
		t.Fatal(err)
	}
	wantBenches := []bench{{"./wire", ".", "2000x"}, {"./latch", "^BenchmarkPutGet$", "100x"}}
	if !reflect.DeepEqual(b.Benches, wantBenches) {
		t.Errorf("benches = %+v, want %+v", b.Benches, wantBenches)
	}
	wantEntries := []entry{{key{"./wire", "BenchmarkA"}, 0}, {key{"./latch", "BenchmarkPutGet"}, 3}}
	if !reflect.DeepEqual(b.Entries, wantEntries) {
		t.Errorf("entries = %+v, want %+v", b.Entries, wantEntries)
	}
	text := b.withEntries([]entry{{key{"./latch", "BenchmarkPutGet"}, 0}, {key{"./wire", "BenchmarkLongerName/sub"}, 12}})
	want := `# a comment
bench ./wire . 2000x
bench ./latch ^BenchmarkPutGet$ 100x

# entries

./latch BenchmarkPutGet         0
./wire  BenchmarkLongerName/sub 12
`
	if text != want {
		t.Errorf("withEntries =\n%s\nwant\n%s", text, want)
	}
	again, err := parseBaseline(text)
	if err != nil || len(again.Entries) != 2 || !reflect.DeepEqual(again.Benches, wantBenches) {
		t.Errorf("parseBaseline(withEntries) = %+v, %v", again, err)
	}
}

func TestBaselineErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"# nothing\n", "no bench lines"},
		{"bench ./wire .\n", "line 1: want \"bench PACKAGE REGEXP BENCHTIME\""},
		{"bench ./wire . 1s\n", "line 1: benchtime \"1s\" is not a fixed iteration count"},
		{"bench ./wire . 0x\n", "is not a fixed iteration count"},
		{"bench ./wire . 10x\n./wire BenchmarkA 1\nbench ./latch . 10x\n", "line 3: a bench line after the entries"},
		{"bench ./wire . 10x\n./wire BenchmarkA\n", "line 2: want \"PACKAGE BENCHMARK ALLOCS\""},
		{"bench ./wire . 10x\n./wire BenchmarkA -1\n", "line 2: allocs/op \"-1\" is not a count"},
		{"bench ./wire . 10x\n./wire BenchmarkA 1\n./wire BenchmarkA 2\n", "line 3: ./wire BenchmarkA listed twice"},
	} {
		if _, err := parseBaseline(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseBaseline(%q) = %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

// TestRealBenchmark runs the checker on one cheap real benchmark
// (latch's BenchmarkPutGet, which does not allocate): a passing baseline,
// a stale one, and -update.
func TestRealBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a benchmark binary")
	}
	testutil.VerifyNone(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "baseline.txt")
	const head = "bench ./latch ^BenchmarkPutGet$ 100x\n"
	check := func(text string, args ...string) (int, string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"-C", root, "-baseline", path, "-count", "1"}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}

	if code, out := check(head + "./latch BenchmarkPutGet 0\n"); code != exitOK || !strings.Contains(out, "1 benchmarks within their baseline") {
		t.Errorf("a true baseline: exit %d, want %d; output:\n%s", code, exitOK, out)
	}
	code, out := check(head + "./latch BenchmarkPutGet 0\n./latch BenchmarkGone 0\n")
	if want := "benchallocs: FAIL: ./latch BenchmarkGone: in the baseline"; code != exitFail || !strings.Contains(out, want) {
		t.Errorf("a stale entry: exit %d, want %d and %q; output:\n%s", code, exitFail, want, out)
	}
	if code, out := check(head+"./latch BenchmarkGone 0\n", "-update"); code != exitOK {
		t.Errorf("-update: exit %d; output:\n%s", code, out)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := head + "\n./latch BenchmarkPutGet 0\n"; string(text) != want {
		t.Errorf("-update wrote\n%s\nwant\n%s", text, want)
	}
}
