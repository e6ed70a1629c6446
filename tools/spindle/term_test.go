package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// forged is testdata/forger's Forged.
const forged = "\x1b[2K\rlocal:other                  ok      {\"fine\":true}\u009b2J\x1b]0;pwned\x07"

// raw reports whether s holds a control a terminal would act on.
func raw(s string) bool {
	return strings.ContainsAny(s, "\x1b\r\x07\u009b")
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, line, text string
	}{
		{"plain text", "plain text", "plain text"},
		{"tab\tand\nnewline", `tab	and\x0anewline`, "tab\tand\nnewline"},
		{"\x1b[2K\rok", `\x1b[2K\x0dok`, `\x1b[2K\x0dok`},
		{"csi \u009b2J bell \x07 del \x7f", `csi \u009b2J bell \x07 del \x7f`, `csi \u009b2J bell \x07 del \x7f`},
		{"bad \xff utf-8 \xc2", `bad \xff utf-8 \xc2`, `bad \xff utf-8 \xc2`},
		{"ünïcode ✓", "ünïcode ✓", "ünïcode ✓"},
	}
	for _, tt := range tests {
		if got := escapeLine(tt.in); got != tt.line {
			t.Errorf("escapeLine(%q) = %q, want %q", tt.in, got, tt.line)
		}
		if got := escapeText(tt.in); got != tt.text {
			t.Errorf("escapeText(%q) = %q, want %q", tt.in, got, tt.text)
		}
	}
	b, _ := json.Marshal(forged)
	safe := jsonSafe(b)
	var back string
	if err := json.Unmarshal(safe, &back); err != nil || back != forged || raw(string(safe)) {
		t.Errorf("jsonSafe(%s) = %s (decodes to %q, %v), want JSON of the same string with no raw controls", b, safe, back, err)
	}
}

// TestTermWriter: a stream cut anywhere, even inside a UTF-8 sequence, is
// escaped as the whole would be.
func TestTermWriter(t *testing.T) {
	in := "a\u009bb ✓\x1b[K\n"
	want := escapeText(in)
	for cut := 0; cut <= len(in); cut++ {
		var out bytes.Buffer
		w := &termWriter{w: &out}
		w.Write([]byte(in[:cut]))
		w.Write([]byte(in[cut:]))
		flush(w)
		if out.String() != want {
			t.Errorf("cut at %d: wrote %q, want %q", cut, out.String(), want)
		}
	}
}

// TestRunEscapesGuestText runs a guest that returns, fails with and logs
// text that would rewrite the operator's terminal and forge an "ok" row:
// none of it reaches spindle's output raw, each row stays one row, and the
// JSON forms still carry the exact text.
func TestRunEscapesGuestText(t *testing.T) {
	testutil.VerifyNone(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	forger := testutil.BuildWasm(t, "tools/spindle/testdata/forger", true)
	_, cmd, _ := cliModules(t)
	two := []string{"run", "-t", "local:x", "-t", "local:y"}
	rows := func(t *testing.T, out string) []string {
		t.Helper()
		if raw(out) {
			t.Errorf("raw control characters reached the table:\n%q", out)
		}
		var r []string
		for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			if !strings.HasPrefix(l, "    | ") {
				r = append(r, l)
			}
		}
		sorted := slices.Sorted(slices.Values(r)) // in the order the targets finished
		if len(r) != 2 || !strings.HasPrefix(sorted[0], "local:x ") || !strings.HasPrefix(sorted[1], "local:y ") {
			t.Errorf("table has rows %q, want one for local:x and one for local:y", r)
		}
		return r
	}

	t.Run("output in the table", func(t *testing.T) {
		code, out, errs := runCmd(t, append(two, forger, "output")...)
		if code != 0 {
			t.Fatalf("spindle run = %d\n%s\n%s", code, out, errs)
		}
		for _, r := range rows(t, out) {
			if !strings.Contains(r, ` ok      "\u001b[2K\rlocal:other`) {
				t.Errorf("row %q does not show the output escaped", r)
			}
		}
	})
	t.Run("error in the table", func(t *testing.T) {
		code, out, _ := runCmd(t, append(two, forger, "error")...)
		for _, r := range rows(t, out) {
			if code != 1 || !strings.Contains(r, "FAILED") || !strings.Contains(r, `\x1b[2K\x0dlocal:other`) {
				t.Errorf("spindle run = %d, row %q; want 1 and FAILED with the message escaped", code, r)
			}
		}
	})
	t.Run("command output in the table", func(t *testing.T) {
		code, out, errs := runCmd(t, append(two, "--env", "GREETING="+forged, cmd)...)
		if code != 0 {
			t.Fatalf("spindle run = %d\n%s\n%s", code, out, errs)
		}
		rows(t, out)
		if n := strings.Count(out, `    | GREETING=\x1b[2K\x0dlocal:other`); n != 2 {
			t.Errorf("%d escaped GREETING lines, want 2:\n%s", n, out)
		}
	})
	t.Run("one target", func(t *testing.T) {
		code, out, errs := runCmd(t, "run", forger, "output")
		var got string
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got != forged || raw(out) {
			t.Errorf("spindle run = %d, %q (%v), want the output as escaped JSON\n%s", code, out, err, errs)
		}
	})
	t.Run("json", func(t *testing.T) {
		_, out, _ := runCmd(t, append(two, "--json", forger, "error")...)
		if raw(out) {
			t.Errorf("raw control characters in --json output:\n%q", out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var l runLine
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.Error == nil || l.Error.Message != forged {
				t.Errorf("--json line %q = %+v, %v; want the exact message", line, l, err)
			}
		}
	})
	t.Run("verbose log", func(t *testing.T) {
		code, _, errs := runCmd(t, "run", "-v", forger, "log")
		if code != 0 || raw(errs) || !strings.Contains(errs, `\x1b[2K\rlocal:other`) {
			t.Errorf("spindle run -v = %d, stderr %q; want the record escaped", code, errs)
		}
	})
	t.Run("command to a pipe", func(t *testing.T) {
		// A command's own output to a pipe or a file is its bytes, as they
		// are: that is what redirecting it is for.
		code, out, errs := runCmd(t, "run", "--env", "GREETING="+forged, cmd)
		if code != 0 || !strings.Contains(out, "GREETING="+forged+"\n") {
			t.Errorf("spindle run cmd = %d, stdout %q, want the raw bytes\n%s", code, out, errs)
		}
	})
}
