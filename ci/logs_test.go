package ci

import (
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/ci/mask"
)

// TestLogLines: lines become one event each, whatever the writes; a line
// longer than MaxLogLine is one event, cut, however long it goes on, and
// the line after it is whole again.
func TestLogLines(t *testing.T) {
	m, err := mask.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	r := &runner{mask: m, opts: Options{MaxLogLine: 8, Events: func(e Event) { lines = append(lines, e.Line) }}}
	w := r.newLog("j", "s", "local", "stdout", 1<<20)
	for _, p := range []string{"one\ntw", "o\n", strings.Repeat("x", 5), strings.Repeat("y", 100000), "z\nthree\n", strings.Repeat("w", 20) + "\nfour"} {
		w.Write([]byte(p))
	}
	w.Close()
	want := []string{"one", "two", "xxxxxyyy…", "three", "wwwwwwww…", "four"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", lines, want)
	}
	if n := len(w.Bytes()); n != 3+1+3+1+5+100000+2+6+21+4 {
		t.Errorf("kept %d bytes, want all of them", n)
	}
}
