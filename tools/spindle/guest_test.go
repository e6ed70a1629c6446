package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// The tests of what spindle run shows of a guest (issue 10): its crashes,
// its input errors, the files it makes, its output limit. Each runs the
// test binary as the spindle command, a real process with its own tree
// (cli, in ssh_test.go).

// runJSON runs spindle run with --json on one target and decodes its line.
func runJSON(t *testing.T, args ...string) (int, runLine, string) {
	t.Helper()
	code, out, errOut := cli(t, append([]string{"run", "--json"}, args...)...)
	var l runLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil {
		t.Fatalf("spindle run %q = %d: stdout %q is not one JSON line: %v\nstderr:\n%s", args, code, out, err, errOut)
	}
	if !l.OK && l.Error == nil {
		t.Fatalf("spindle run %q: a failed line without an error: %s", args, out)
	}
	return code, l, errOut
}

// show is l as its JSON line, for test messages.
func show(l runLine) string {
	b, _ := json.Marshal(l)
	return string(b)
}

// TestRunOutputBytes: --output-bytes sets the output limit. A guest that
// writes 100,000 bytes to stdout runs within 1MiB and is stopped, with
// kind output_limit, within 64KiB; so is a reactor's output_write.
func TestRunOutputBytes(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	flood := []string{bad, "stdout_flood", "--input", `{"n": 100000}`}
	code, l, errOut := runJSON(t, append(flood, "--output-bytes", "1MiB")...)
	if code != 0 || !l.OK {
		t.Fatalf("stdout_flood of 100000 bytes with --output-bytes 1MiB = %d, %s; want ok\n%s", code, show(l), errOut)
	}
	for _, limit := range []string{"64KiB", "64K", "65536"} {
		code, l, errOut = runJSON(t, append(flood, "--output-bytes", limit)...)
		if code != 1 || l.OK || l.Error.Kind != "output_limit" || !strings.Contains(l.Error.Message, "65536") {
			t.Errorf("stdout_flood with --output-bytes %s = %d, %s; want 1, kind output_limit naming 65536 bytes\n%s", limit, code, show(l), errOut)
		}
	}
	code, l, errOut = runJSON(t, bad, "output_flood", "--output-bytes", "2M")
	if code != 1 || l.OK || l.Error.Kind != "output_limit" || !strings.Contains(l.Error.Message, "2097152") {
		t.Errorf("output_flood with --output-bytes 2M = %d, %s; want 1, kind output_limit naming 2097152 bytes\n%s", code, show(l), errOut)
	}
}

// TestRunOutputBytesUsage: a size that is not one, or out of bounds, is a
// usage error that says what is wanted.
func TestRunOutputBytesUsage(t *testing.T) {
	testutil.VerifyNone(t)
	for _, v := range []string{"0", "-1", "+5", "1.5MiB", "lots", "MiB", "65MiB", "67108865", "1TiB", "99999999999999999999"} {
		code, _, errOut := cli(t, "run", "--output-bytes", v, "m.wasm")
		if code != 2 || !strings.Contains(errOut, "--output-bytes") || !strings.Contains(errOut, "from 1 to 64MiB") {
			t.Errorf("spindle run --output-bytes %s = %d, stderr %q; want 2 and the bounds", v, code, errOut)
		}
	}
	for v, want := range map[string]int64{"1": 1, "64MiB": 64 << 20, "67108864": 64 << 20, "3K": 3 << 10, "5MiB": 5 << 20, "7KiB": 7 << 10} {
		o, err := parseRunArgs([]string{"--output-bytes", v, "m.wasm"})
		if err != nil || o.outBytes != want {
			t.Errorf("parseRunArgs(--output-bytes %s) = %v; want %d", v, err, want)
		} else if o2, _ := parseRunArgs([]string{"--output-bytes=" + v, "m.wasm"}); o2 == nil || o2.outBytes != want {
			t.Errorf("parseRunArgs(--output-bytes=%s) = %v; want %d", v, o2, want)
		}
	}
	if o, err := parseRunArgs([]string{"m.wasm"}); err != nil || o.outBytes != 0 {
		t.Errorf("parseRunArgs without --output-bytes = %v, %v; want 0 (the default)", o, err)
	}
}

// TestRunCreatedModes: what a guest writes into a --mount gets 0644 for a
// file and 0755 for a directory, less the umask, on the host; the CLI and
// its child inherit the umask this test sets.
func TestRunCreatedModes(t *testing.T) {
	testutil.VerifyNone(t)
	probe := testutil.BuildWasm(t, "examples/wasm/ciprobe", false)
	for _, umask := range []int{0o022, 0o027} {
		dir := t.TempDir()
		old := syscall.Umask(umask)
		code, out, errOut := cli(t, "run", "-t", "local:modes", "--mount", dir+":/out", probe, "--", "write", "/out/a/b/f.txt", "hi")
		syscall.Umask(old)
		if code != 0 {
			t.Fatalf("umask %03o: spindle run write = %d\n%s\n%s", umask, code, out, errOut)
		}
		for name, mode := range map[string]os.FileMode{"a": 0o755, "a/b": 0o755, "a/b/f.txt": 0o644} {
			fi, err := os.Lstat(filepath.Join(dir, name))
			if want := mode &^ os.FileMode(umask); err != nil || fi.Mode().Perm() != want {
				t.Errorf("umask %03o: %s: mode %v, %v; want %04o", umask, name, fi.Mode(), err, want)
			}
		}
	}
}

// TestRunInputTypeError: an --input whose field has the wrong type is
// reported by the guest SDK by field, what it wanted and what it got, not
// in msgpack's terms; the exit status is a task's failure.
func TestRunInputTypeError(t *testing.T) {
	testutil.VerifyNone(t)
	hello := testutil.BuildWasm(t, "examples/wasm/hello", true)
	tests := []struct{ input, want string }{
		{`{"name": 3}`, `input field "name": want string, got integer 3`},
		{`{"name": ["a"]}`, `input field "name": want string, got array of 1`},
		{`{"name": 1.5}`, `input field "name": want string, got float 1.5`},
		{`"just a string"`, `input: want map, got string "just a string"`},
		// An array as long as the struct has fields: msgpack alone would
		// take ["a"] as {"name": "a"}, and [1] failed in its own words.
		{`["a"]`, `input: want map, got array of 1`},
		{`[1]`, `input: want map, got array of 1`},
		{`[]`, `input: want map, got array of 0`},
		{`3`, `input: want map, got integer 3`},
	}
	for _, tt := range tests {
		code, l, errOut := runJSON(t, hello, "hello", "--input", tt.input)
		if code != 1 || l.OK || l.Error.Kind != "guest" || !strings.Contains(l.Error.Message, tt.want) || strings.Contains(l.Error.Message, "msgpack") {
			t.Errorf("--input %s = %d, %s; want 1, kind guest with %q and no msgpack internals\n%s", tt.input, code, show(l), tt.want, errOut)
		}
	}
	// A file name is not JSON: --input reads a file only as @FILE.
	in := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(in, []byte(`{"name": "file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "run", hello, "hello", "--input", in)
	if want := "--input @" + in; code != 2 || out != "" || !strings.Contains(errOut, "--input is not JSON") || !strings.Contains(errOut, want) {
		t.Errorf("spindle run hello --input %s = %d, stdout %q, stderr %q; want 2 and %q", in, code, out, errOut, want)
	}
	// The failure line (on stderr: one target) says the same.
	code, out, errOut = cli(t, "run", hello, "hello", "--input", `{"name": 3}`)
	if code != 1 || out != "" || !strings.Contains(errOut, `FAILED  guest: task hello: input field "name": want string, got integer 3`) {
		t.Errorf("spindle run hello --input {\"name\": 3} = %d\n%s\n%s", code, out, errOut)
	}
}

// TestRunInputNestedArray: an array where a struct inside a guest-SDK
// task's input is wanted is refused at its path, as the input as a whole
// is: msgpack alone would fill the struct from it by position ([0, 5] as
// {"ctx": 0, "handle": 5}).
func TestRunInputNestedArray(t *testing.T) {
	testutil.VerifyNone(t)
	progress := testutil.BuildWasm(t, "examples/wasm/progress", true)
	code, l, errOut := runJSON(t, progress, "count", "--input", `{"n": 1, "progress": [0, 5]}`)
	want := `input field "progress": want map, got array of 2`
	if code != exitCIFailed || l.OK || l.Error == nil || l.Error.Kind != "guest" || !strings.Contains(l.Error.Message, want) {
		t.Errorf("--input with an array for progress = %d, %s; want %d, kind guest with %q\n%s", code, show(l), exitCIFailed, want, errOut)
	}
}

// failureLine is the line of a lone target's failure in spindle run's
// stderr.
func failureLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "local ") && strings.Contains(l, " FAILED ") {
			return l
		}
	}
	return ""
}

// TestRunGuestCrash: a Go guest that runs out of memory fails with the
// cause on its row, "runtime: out of memory" and the task's own frame, in
// one bounded line; the whole traceback goes to stderr, as the guest
// wrote it.
func TestRunGuestCrash(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errOut := cli(t, "run", bad, "membomb", "--memory-pages", "512")
	row := failureLine(errOut)
	want := "FAILED  memory: memory limit of 512 pages reached; stderr: runtime: out of memory: cannot allocate "
	if code != 1 || out != "" || !strings.Contains(row, want) {
		t.Fatalf("spindle run membomb = %d, stdout %q, failure line %q; want 1, nothing on stdout and one line with %q", code, out, row, want)
	}
	for _, w := range []string{" | fatal error: out of memory | in main.membomb at bad/main.go:", "more lines of stderr not shown)"} {
		if !strings.Contains(row, w) {
			t.Errorf("row lacks %q:\n%s", w, row)
		}
	}
	if len(row) > 2500 || strings.Contains(row, "gopark") || strings.Contains(row, `\x0a`) {
		t.Errorf("row is %d bytes, or holds goroutine dumps or escaped newlines:\n%s", len(row), row)
	}
	if !strings.Contains(errOut, "runtime: out of memory") || !strings.Contains(errOut, "runtime.gopark") {
		t.Errorf("stderr lacks the guest's whole traceback:\n%s", errOut)
	}
}

// TestRunGuestPanicLog: a panic the SDK recovers is, without -v, one
// readable ERROR record on stderr, the panic's first line and where it was
// raised, and its row says the whole value; the stack is at debug level,
// not shown.
func TestRunGuestPanicLog(t *testing.T) {
	testutil.VerifyNone(t)
	bad := testutil.BuildWasm(t, "examples/wasm/bad", true)
	code, out, errOut := cli(t, "run", bad, "panic")
	if code != 1 || !strings.Contains(failureLine(errOut), `FAILED  guest: panic: bad: panicking on purpose`) {
		t.Fatalf("spindle run panic = %d, stdout %q; want 1 and the panic on its row\n%s", code, out, errOut)
	}
	var records []string
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if strings.Contains(line, "level=") {
			records = append(records, line)
		}
	}
	if len(records) != 1 {
		t.Fatalf("stderr has %d log records, want one:\n%s", len(records), errOut)
	}
	r := records[0]
	if !strings.Contains(r, `level=ERROR msg="panic: bad: panicking on purpose (in main.panicky at bad/main.go:`) ||
		strings.Contains(r, `\n`) || strings.Contains(r, "second line") || strings.Contains(errOut, "goroutine") {
		t.Errorf("the panic's record is not one readable line (or the stack is shown):\n%s", errOut)
	}
}
