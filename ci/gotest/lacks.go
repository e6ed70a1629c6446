package gotest

import (
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/spindle-hq/spindle/ci/report"
)

// A Lack is something wasip1 lacks that the test's output shows it
// failed on (report.Lack names it), with the first line that said so.
type Lack struct {
	What string
	Line string
}

// Bounds of the lack scan: the kinds kept, and the longest line read
// whole (the rest of a longer one is not looked at).
const (
	maxLacks    = 8
	maxLackLine = 4 << 10
	maxLackText = 200 // of a Lack's Line
)

// lackScan reads a test's output for what wasip1 lacks, and files what
// it finds under the test that printed it, by the testing package's
// markers: in -v output (and go test -json's -test.v=test2json) a test's
// lines come before its "--- FAIL", "--- PASS" or "--- SKIP", after its
// "=== RUN" or "=== CONT"; without -v only failed tests print, their
// lines after their "--- FAIL". So a line is kept when the test it belongs
// to failed, or never ended (the binary died in it), and not when it
// passed or skipped (testenv's skips name what wasip1 lacks, too). Both
// of a test's streams write to it, each through its own lineScanner; it
// is safe from both goroutines.
type lackScan struct {
	mu        sync.Mutex
	lacks     []Lack // guarded by mu: kept
	pending   []Lack // guarded by mu: of the test running, not ended yet
	afterFail bool   // guarded by mu: the lines now are a failed test's
}

func (s *lackScan) note(line []byte) {
	marker := strings.TrimLeft(string(line), " \t\x16")
	what := report.Lack(string(line))
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(marker, "=== RUN"), strings.HasPrefix(marker, "=== CONT"), strings.HasPrefix(marker, "=== NAME"):
		s.pending, s.afterFail = s.pending[:0], false
	case strings.HasPrefix(marker, "--- FAIL"):
		for _, l := range s.pending {
			s.keep(l)
		}
		s.pending, s.afterFail = s.pending[:0], true
	case strings.HasPrefix(marker, "--- PASS"), strings.HasPrefix(marker, "--- SKIP"):
		s.pending, s.afterFail = s.pending[:0], false
	case what != "":
		text := strings.TrimSpace(string(line))
		if len(text) > maxLackText {
			text = strings.ToValidUTF8(text[:maxLackText], "") + "…"
		}
		if s.afterFail {
			s.keep(Lack{What: what, Line: text})
		} else if len(s.pending) < maxLacks {
			s.pending = append(s.pending, Lack{What: what, Line: text})
		}
	}
}

// keep adds l unless its kind is kept already or there are maxLacks;
// s.mu is held.
func (s *lackScan) keep(l Lack) {
	for _, k := range s.lacks {
		if k.What == l.What {
			return
		}
	}
	if len(s.lacks) < maxLacks {
		s.lacks = append(s.lacks, l)
	}
}

// result returns what was kept, and what the test that never ended had
// printed.
func (s *lackScan) result() []Lack {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.pending {
		s.keep(l)
	}
	s.pending = nil
	return append([]Lack(nil), s.lacks...)
}

// lineScanner passes each line of what is written to it to scan, and the
// bytes on to w. A line longer than maxLackLine is looked at by its first
// maxLackLine bytes. One goroutine writes to it at a time.
type lineScanner struct {
	w       io.Writer
	scan    *lackScan
	partial []byte
	long    bool // partial was cut: skip to the end of the line
}

func (l *lineScanner) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		chunk := rest
		if i >= 0 {
			chunk = rest[:i]
		}
		if !l.long {
			room := maxLackLine - len(l.partial)
			if len(chunk) > room {
				chunk, l.long = chunk[:room], true
			}
			l.partial = append(l.partial, chunk...)
		}
		if i < 0 {
			break
		}
		l.scan.note(l.partial)
		l.partial, l.long = l.partial[:0], false
		rest = rest[i+1:]
	}
	return l.w.Write(p)
}
