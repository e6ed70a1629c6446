package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// statusLine is the one-line progress display of spindle run and spindle
// ci, drawn on stderr when it is a terminal and never elsewhere. Every
// other line written while it is on screen goes through print (or
// through Writer, for log records), which erases it first and draws it
// again after, so a result or a log line never shares a line with it.
// It redraws itself once a second, so the elapsed times move.
//
// All its methods are safe for concurrent use; the funcs passed to print
// and update run under its lock, so the state they change is guarded by
// it too. A write that blocks (stdout piped to a pager that stopped
// reading) holds the lock, and log records wait behind it: the tree's own
// writers to the log are then held up too, as they would be by a blocked
// stderr. close stops the redraws and erases the line.
type statusLine struct {
	w      io.Writer
	on     bool // guarded by mu once made
	label  string
	counts func() string // under mu: "3/8 done: 2 ok, 1 failed"

	mu      sync.Mutex
	started time.Time
	running map[string]time.Time // guarded by mu: name -> since
	drawn   bool                 // guarded by mu

	stop   chan struct{}
	done   chan struct{}
	close1 sync.Once
}

// newStatusLine returns the status line of one run, on w if w is a
// terminal (and on is true). counts renders the run's counts; it is
// called with the line's lock held.
func newStatusLine(w io.Writer, on bool, label string, counts func() string) *statusLine {
	s := &statusLine{w: w, on: on && isTerminal(w), label: label, counts: counts,
		started: time.Now(), running: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	if !s.on {
		close(s.done)
		return s
	}
	go s.tick()
	return s
}

func (s *statusLine) tick() {
	defer close(s.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.update(nil)
		}
	}
}

// begin marks name running.
func (s *statusLine) begin(name string) {
	s.update(func() { s.running[name] = time.Now() })
}

// finish marks name no longer running and runs write as print does, in one
// hold of the lock: the line is never drawn with name still running after
// its result.
func (s *statusLine) finish(name string, write func()) {
	s.print(func() {
		delete(s.running, name)
		write()
	})
}

// update runs change (if not nil) under the lock and redraws the line.
func (s *statusLine) update(change func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if change != nil {
		change()
	}
	s.draw()
}

// print runs write under the lock with the line erased, then draws it
// again: write's lines stand alone, and two print calls never interleave.
func (s *statusLine) print(write func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clear()
	write()
	s.draw()
}

// Writer returns a writer whose every Write goes out whole between two
// draws of the line: for a logger that writes one record per Write.
func (s *statusLine) Writer(w io.Writer) io.Writer {
	if !s.on {
		return w
	}
	return statusWriter{s, w}
}

type statusWriter struct {
	s *statusLine
	w io.Writer
}

func (sw statusWriter) Write(p []byte) (n int, err error) {
	sw.s.print(func() { n, err = sw.w.Write(p) })
	return n, err
}

// close stops the redraws and erases the line. Calls after the first do
// nothing.
func (s *statusLine) close() {
	s.close1.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clear()
	s.on = false
}

func (s *statusLine) clear() {
	if s.drawn {
		fmt.Fprint(s.w, "\r\033[K")
		s.drawn = false
	}
}

// slowestShown is how many of the longest-running names the line shows.
const slowestShown = 3

// draw writes the line: label and elapsed time, the counts, and the
// names running longest with their times, cut to the terminal's width
// so it never wraps (a wrapped line could not be erased).
func (s *statusLine) draw() {
	if !s.on {
		return
	}
	line := fmt.Sprintf("[%s %s] %s", s.label, time.Since(s.started).Truncate(time.Second), s.counts())
	if len(s.running) > 0 {
		names := make([]string, 0, len(s.running))
		for n := range s.running {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool {
			ti, tj := s.running[names[i]], s.running[names[j]]
			return ti.Before(tj) || ti.Equal(tj) && names[i] < names[j]
		})
		more := len(names) - slowestShown
		names = names[:min(len(names), slowestShown)]
		for i, n := range names {
			names[i] = fmt.Sprintf("%s %s", escapeLine(n), time.Since(s.running[n]).Truncate(time.Second))
		}
		line += fmt.Sprintf("; %d running: %s", len(s.running), strings.Join(names, ", "))
		if more > 0 {
			line += fmt.Sprintf(" (+%d)", more)
		}
	}
	if r := []rune(line); len(r) >= termWidth(s.w) && termWidth(s.w) > 1 {
		line = string(r[:termWidth(s.w)-2]) + "…"
	}
	fmt.Fprint(s.w, "\r\033[K"+line)
	s.drawn = true
}

// termWidth is the terminal's width in columns, or 0 when unknown.
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
