package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixtureModule is a throwaway module with passing, failing and skipping
// tests and subtests, a package that does not build, one with no test
// files, and one whose tests all pass.
var fixtureModule = map[string]string{
	"go.mod": "module example.com/fixture\n\ngo 1.26\n",
	"mixed/mixed_test.go": `package mixed

import (
	"fmt"
	"testing"
)

func TestPass(t *testing.T) { t.Log("all good") }

func TestFail(t *testing.T) {
	fmt.Println("printed by the test")
	t.Error("boom: \x01 <&> \xff")
}

func TestSkip(t *testing.T) { t.Skip("not today") }

func TestSub(t *testing.T) {
	t.Run("pass", func(t *testing.T) {})
	t.Run("fail", func(t *testing.T) { t.Fatal("sub failed") })
	t.Run("skip", func(t *testing.T) { t.Skip("sub skipped") })
}
`,
	"good/good_test.go": `package good

import "testing"

func TestOne(t *testing.T) {}
func TestTwo(t *testing.T) { t.Parallel() }
`,
	"broken/broken.go":      "package broken\n\nfunc F() int { return \"not an int\" }\n",
	"broken/broken_test.go": "package broken\n\nimport \"testing\"\n\nfunc TestF(t *testing.T) { F() }\n",
	"notest/notest.go":      "package notest\n",
}

var (
	goTestOnce sync.Once
	goTestOut  []byte
	goTestErr  error
)

// realGoTestJSON runs `go test -json` on fixtureModule, once per test
// binary, and returns what it printed (stdout and stderr, as a CI step
// would capture them).
func realGoTestJSON(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go command: %v", err) // under wasip1, there is none
	}
	goTestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "report-fixture-")
		if err != nil {
			goTestErr = err
			return
		}
		defer os.RemoveAll(dir)
		for name, src := range fixtureModule {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				goTestErr = err
				return
			}
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				goTestErr = err
				return
			}
		}
		cmd := exec.Command("go", "test", "-json", "-count=1", "-p=1", "./...")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=")
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err = cmd.Run()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			goTestErr = err
		}
		goTestOut = out.Bytes()
	})
	if goTestErr != nil {
		t.Fatalf("go test -json on the fixture: %v\n%s", goTestErr, goTestOut)
	}
	return goTestOut
}

func findPackage(r *Report, suffix string) *Package {
	for i := range r.Packages {
		if strings.HasSuffix(r.Packages[i].Name, "/"+suffix) {
			return &r.Packages[i]
		}
	}
	return nil
}

func findTest(p *Package, name string) *Test {
	for i := range p.Tests {
		if p.Tests[i].Name == name {
			return &p.Tests[i]
		}
	}
	return nil
}

func TestGoTestReal(t *testing.T) {
	raw := realGoTestJSON(t)
	r, err := ParseGoTest(bytes.NewReader(raw), Options{})
	if err != nil {
		t.Fatalf("ParseGoTest: %v", err)
	}
	if r.Truncated {
		t.Errorf("Truncated with the default bounds")
	}
	if len(r.Packages) != 4 {
		t.Fatalf("got %d packages, want 4:\n%s", len(r.Packages), raw)
	}

	mixed := findPackage(r, "mixed")
	if mixed == nil {
		t.Fatalf("no package mixed in %+v", r.Packages)
	}
	if mixed.Status != StatusFail || mixed.Pass != 2 || mixed.Fail != 3 || mixed.Skip != 2 {
		t.Errorf("mixed: status %s, %d/%d/%d pass/fail/skip; want fail, 2/3/2", mixed.Status, mixed.Pass, mixed.Fail, mixed.Skip)
	}
	if !strings.Contains(mixed.Output, "FAIL") {
		t.Errorf("mixed: package output %q, want the FAIL line", mixed.Output)
	}
	wantTests := []struct{ name, status, output string }{
		{"TestPass", StatusPass, "all good"},
		{"TestFail", StatusFail, "printed by the test"},
		{"TestSkip", StatusSkip, "not today"},
		{"TestSub", StatusFail, "--- FAIL: TestSub"},
		{"TestSub/pass", StatusPass, "--- PASS: TestSub/pass"},
		{"TestSub/fail", StatusFail, "sub failed"},
		{"TestSub/skip", StatusSkip, "sub skipped"},
	}
	if len(mixed.Tests) != len(wantTests) {
		t.Errorf("mixed: %d tests, want %d", len(mixed.Tests), len(wantTests))
	}
	for i, w := range wantTests {
		got := findTest(mixed, w.name)
		switch {
		case got == nil:
			t.Errorf("mixed: no test %s", w.name)
		case got.Status != w.status || !strings.Contains(got.Output, w.output) || got.Truncated:
			t.Errorf("mixed: %s = %s (truncated %v), output %q; want %s with %q", w.name, got.Status, got.Truncated, got.Output, w.status, w.output)
		case mixed.Tests[i].Name != w.name:
			t.Errorf("mixed: test %d is %s, want %s (the order they started)", i, mixed.Tests[i].Name, w.name)
		}
	}
	if f := findTest(mixed, "TestFail"); f != nil && !strings.Contains(f.Output, "boom: \x01 <&> \uFFFD") {
		t.Errorf("TestFail output %q, want the bytes the test printed (test2json made \\xff U+FFFD)", f.Output)
	}

	good := findPackage(r, "good")
	if good == nil || good.Status != StatusPass || good.Pass != 2 || good.Fail+good.Skip != 0 || good.Elapsed <= 0 {
		t.Errorf("good = %+v, want pass with 2 passed and an elapsed time", good)
	}

	broken := findPackage(r, "broken")
	if broken == nil {
		t.Fatalf("no package broken")
	}
	if broken.Status != StatusFail || len(broken.Tests) != 0 || !strings.Contains(broken.Message, "build failed") ||
		!strings.Contains(broken.Output, "cannot use") || !strings.Contains(broken.Output, "[build failed]") {
		t.Errorf("broken = %+v, want a build failure with the compiler's message", broken)
	}

	notest := findPackage(r, "notest")
	if notest == nil || notest.Status != StatusSkip || len(notest.Tests) != 0 {
		t.Errorf("notest = %+v, want skip with no tests", notest)
	}

	if got, want := r.Summary(), "4 passed, 3 failed, 2 skipped in 4 packages; 1 package failed outside any test"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}

	// The same stream, cut off in the middle of TestSub/fail (the test
	// binary killed): what started and did not end failed.
	cut := raw[:bytes.Index(raw, []byte(`"Test":"TestSub/fail","Output":"=== RUN`))]
	cut = cut[:bytes.LastIndexByte(cut, '\n')+1]
	r, err = ParseGoTest(bytes.NewReader(cut), Options{})
	if err != nil {
		t.Fatalf("ParseGoTest(cut): %v", err)
	}
	mixed = findPackage(r, "mixed")
	if mixed == nil || mixed.Status != StatusFail || !strings.Contains(mixed.Message, "no result") {
		t.Fatalf("cut: mixed = %+v, want failed with no result", mixed)
	}
	for _, name := range []string{"TestSub", "TestSub/fail"} {
		if st := findTest(mixed, name); st == nil || st.Status != StatusFail || !strings.Contains(st.Message, "no result") {
			t.Errorf("cut: %s = %+v, want failed with no result", name, st)
		}
	}
	if st := findTest(mixed, "TestSub/pass"); st == nil || st.Status != StatusPass {
		t.Errorf("cut: TestSub/pass = %+v, want pass", st)
	}
}

func goEvent(t *testing.T, e map[string]any) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestGoTestNonJSON(t *testing.T) {
	in := "go: downloading example.com/x v1.0.0\n" +
		goEvent(t, map[string]any{"Action": "run", "Package": "p", "Test": "TestA"}) +
		"{not json at all\n" +
		goEvent(t, map[string]any{"Action": "pass", "Package": "p", "Test": "TestA", "Elapsed": 1.5}) +
		`{"Package": "p"}` + "\n" + // no Action: not an event
		goEvent(t, map[string]any{"Action": "pass", "Package": "p", "Elapsed": 2}) +
		"trailing line without newline"
	r, err := ParseGoTest(strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantOut := "go: downloading example.com/x v1.0.0\n{not json at all\n{\"Package\": \"p\"}\ntrailing line without newline\n"
	if r.Output != wantOut {
		t.Errorf("Output = %q, want %q", r.Output, wantOut)
	}
	if len(r.Packages) != 1 || r.Packages[0].Status != StatusPass || r.Packages[0].Elapsed != 2*time.Second ||
		len(r.Packages[0].Tests) != 1 || r.Packages[0].Tests[0].Elapsed != 1500*time.Millisecond {
		t.Errorf("Packages = %+v", r.Packages)
	}
}

func TestGoTestBounds(t *testing.T) {
	var in strings.Builder
	for i := range 5 {
		name := "Test" + string(rune('A'+i))
		in.WriteString(goEvent(t, map[string]any{"Action": "run", "Package": "p", "Test": name}))
		in.WriteString(goEvent(t, map[string]any{"Action": "output", "Package": "p", "Test": name, "Output": strings.Repeat("x", 30) + "\n"}))
		in.WriteString(goEvent(t, map[string]any{"Action": "output", "Package": "p", "Test": name, "Output": "middle " + strings.Repeat("y", 300) + "\n"}))
		in.WriteString(goEvent(t, map[string]any{"Action": "output", "Package": "p", "Test": name, "Output": "the end\n"}))
		in.WriteString(goEvent(t, map[string]any{"Action": "fail", "Package": "p", "Test": name}))
	}
	in.WriteString(goEvent(t, map[string]any{"Action": "fail", "Package": "p"}))
	for _, pkg := range []string{"q", "r"} {
		in.WriteString(goEvent(t, map[string]any{"Action": "pass", "Package": pkg}))
	}
	// A line longer than the longest line read.
	in.WriteString(goEvent(t, map[string]any{"Action": "output", "Package": "p", "Output": strings.Repeat("z", maxLine)}))

	r, err := ParseGoTest(strings.NewReader(in.String()), Options{MaxTests: 3, MaxOutput: 60, MaxPackages: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Packages) != 2 {
		t.Fatalf("Truncated %v with %d packages, want true with 2", r.Truncated, len(r.Packages))
	}
	p := r.Packages[0]
	if len(p.Tests) != 3 || p.Fail != 5 || !p.Truncated {
		t.Errorf("p: %d tests listed, %d failed, truncated %v; want 3, 5, true", len(p.Tests), p.Fail, p.Truncated)
	}
	for _, tt := range p.Tests {
		want := strings.Repeat("x", 30) + "\n[... 287 bytes of output left out ...]\n" + strings.Repeat("y", 21) + "\nthe end\n"
		if !tt.Truncated || tt.Output != want {
			t.Errorf("%s: truncated %v, output %q; want true, %q", tt.Name, tt.Truncated, tt.Output, want)
		}
	}
	if strings.Contains(p.Output, "zzz") {
		t.Errorf("the cut line reached the output")
	}
	if got, want := r.Summary(), "0 passed, 5 failed, 0 skipped in 2 packages (truncated)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}

	// The total bound: the second test's output finds the budget spent.
	r, err = ParseGoTest(strings.NewReader(in.String()), Options{MaxOutput: 1000, MaxTotalOutput: 400})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || r.Packages[0].Tests[0].Truncated || !r.Packages[0].Tests[1].Truncated {
		t.Errorf("with a total of 400 bytes: report %v, test 0 %v, test 1 %v truncated; want true, false, true",
			r.Truncated, r.Packages[0].Tests[0].Truncated, r.Packages[0].Tests[1].Truncated)
	}
	total := 0
	for _, tt := range r.Packages[0].Tests {
		total += len(tt.Output)
		if m := marker(tt.Output); m != "" {
			// The marker line, and the newline put before it when the
			// kept head does not end in one, are not kept output.
			total -= len(m) + 1
		}
	}
	if total > 400 {
		t.Errorf("kept %d bytes of test output, want at most 400", total)
	}
}

// marker returns the "left out" line in s, or "".
func marker(s string) string {
	i := strings.Index(s, "[... ")
	if i < 0 {
		return ""
	}
	j := strings.Index(s[i:], "\n")
	return s[i : i+j+1]
}

type errReader struct{ data *strings.Reader }

var errBroken = errors.New("pipe broke")

func (e errReader) Read(p []byte) (int, error) {
	if e.data.Len() == 0 {
		return 0, errBroken
	}
	return e.data.Read(p)
}

func TestReadError(t *testing.T) {
	in := `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n"
	r, err := ParseGoTest(errReader{strings.NewReader(in)}, Options{})
	if !errors.Is(err, errBroken) || r == nil || len(r.Packages) != 1 || r.Packages[0].Pass != 1 {
		t.Errorf("ParseGoTest over a failing reader = %+v, %v; want what was read and the error", r, err)
	}
	r, err = ParseTAP(errReader{strings.NewReader("1..1\nok 1\n")}, Options{})
	if !errors.Is(err, errBroken) || r == nil || r.Packages[0].Pass != 1 {
		t.Errorf("ParseTAP over a failing reader = %+v, %v; want what was read and the error", r, err)
	}
	if _, err := Parse("junit", strings.NewReader(""), Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("Parse(junit) = %v, want ErrFormat", err)
	}
}

// TestWasip1Reasons reads the go test -json output of a real run under
// spindle exec (testdata/wasip1-lacks.json: GOOS=wasip1 GOARCH=wasm go
// test -json -exec 'spindle exec' over two packages whose tests call what
// wasip1 lacks, skip with and without a reason, pass, and fail plainly;
// times removed) and checks each test's reason and the tallies.
func TestWasip1Reasons(t *testing.T) {
	f, err := os.Open("testdata/wasip1-lacks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ParseGoTest(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ status, lacks, message string }
	wants := map[string]want{
		"lack TestExec":         {StatusFail, "subprocesses", "lack_test.go:12: fork/exec /bin/true: Not implemented on wasip1"},
		"lack TestPipe":         {StatusFail, "pipes", "lack_test.go:18: pipe: Not implemented on wasip1"},
		"lack TestChown":        {StatusFail, "file ownership", ""},
		"lack TestExecutable":   {StatusFail, "os.Executable", "lack_test.go:34: Executable not implemented for wasip1"},
		"lack TestSkipSymlink":  {StatusSkip, "", "skipping on wasip1: no absolute symlinks"},
		"lack TestSkipSymlink2": {StatusSkip, "", "skipping on wasip1: no absolute symlinks"},
		"lack TestSkipBare":     {StatusSkip, "", ""},
		"lack TestPass":         {StatusPass, "", ""},
		"lack TestPlainFail":    {StatusFail, "", ""},
		"lack/net TestGet":      {StatusFail, "outside network", ""},
	}
	seen := 0
	for _, p := range r.Packages {
		for _, tt := range p.Tests {
			name := p.Name + " " + tt.Name
			w, ok := wants[name]
			if !ok {
				t.Errorf("unexpected test %s", name)
				continue
			}
			seen++
			if tt.Status != w.status || tt.Lacks != w.lacks {
				t.Errorf("%s: status %q lacks %q, want %q %q", name, tt.Status, tt.Lacks, w.status, w.lacks)
			}
			if w.message != "" && tt.Message != w.message {
				t.Errorf("%s: message %q, want %q", name, tt.Message, w.message)
			}
			if w.status == StatusFail && w.lacks == "" && tt.Message != "" {
				t.Errorf("%s: a plain failure got message %q", name, tt.Message)
			}
		}
	}
	if seen != len(wants) {
		t.Errorf("saw %d of %d tests", seen, len(wants))
	}
	skips := r.Skips()
	if len(skips) != 2 || skips[0] != (Tally{"skipping on wasip1: no absolute symlinks", 2, "lack TestSkipSymlink"}) ||
		skips[1] != (Tally{"", 1, "lack TestSkipBare"}) {
		t.Errorf("Skips = %+v", skips)
	}
	lack := r.Lacking()
	if len(lack) != 5 || lack[0] != (Tally{"subprocesses", 1, "lack TestExec"}) || lack[4].Reason != "outside network" {
		t.Errorf("Lacking = %+v", lack)
	}
	const sum = "1 passed, 6 failed, 3 skipped in 2 packages; 5 of the failures on what wasip1 lacks (subprocesses 1, pipes 1, file ownership 1, os.Executable 1, outside network 1)"
	if got := r.Summary(); got != sum {
		t.Errorf("Summary = %q, want %q", got, sum)
	}
}

// TestLack checks Lack on lines of the kinds Go prints natively too: only
// wasip1's own words count.
func TestLack(t *testing.T) {
	for line, want := range map[string]string{
		"    x_test.go:1: fork/exec /bin/sh: Not implemented on wasip1":                                                     "subprocesses",
		"exec: Not implemented on wasip1":                                                                                   "subprocesses",
		"    x_test.go:1: flock /tmp/x: Not implemented on wasip1":                                                          "flock",
		"Not implemented on wasip1":                                                                                         "",
		": Not implemented on wasip1":                                                                                       "a system call",
		"    x_test.go:1: dial tcp 127.0.0.1:1: connect: connection refused":                                                "",
		"    x_test.go:1: lookup example.com: read: connection reset by peer":                                               "",
		"    x_test.go:1: lookup example.com on [::1]:53: write udp 127.0.0.1:8->[::1]:53: write: Connection reset by peer": "outside network",
		"\t/usr/local/go/src/net/net_fake.go:570 +0xb":                                                                      "outside network",
		"    x_test.go:1: fork/exec /bin/sh: function not implemented":                                                      "",
		"    x_test.go:1: Executable not implemented for wasip1":                                                            "os.Executable",
	} {
		if got := Lack(line); got != want {
			t.Errorf("Lack(%q) = %q, want %q", line, got, want)
		}
	}
}
