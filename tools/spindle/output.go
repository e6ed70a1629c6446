package main

import (
	"io"
	"strconv"
	"sync"
)

// maxCollectedBytes bounds what spindle run keeps of one target's guest
// stdout or stderr for the table or a --json line. The guest's own limit
// (--output-bytes) bounds what it may write; this bounds what a run with
// many targets holds in memory at once.
const maxCollectedBytes = 64 << 10

// capBuffer keeps the first max bytes written to it and counts the rest.
// A write never fails, so a chatty guest is cut, not stopped. It is safe
// for concurrent use: a task's stdout and stderr may share one.
type capBuffer struct {
	max     int
	mu      sync.Mutex
	buf     []byte // guarded by mu
	dropped int64  // guarded by mu
}

func newCapBuffer(max int) *capBuffer { return &capBuffer{max: max} }

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := min(len(p), b.max-len(b.buf))
	b.buf = append(b.buf, p[:keep]...)
	b.dropped += int64(len(p) - keep)
	return len(p), nil
}

// text returns what was kept, and whether anything was dropped.
func (b *capBuffer) text() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf), b.dropped > 0
}

// String returns what was kept.
func (b *capBuffer) String() string {
	s, _ := b.text()
	return s
}

// summary is the kept text, ended by a line saying how much was dropped.
func (b *capBuffer) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return string(b.buf)
	}
	return string(b.buf) + "\n[" + strconv.FormatInt(b.dropped, 10) + " more bytes not shown]\n"
}

// lineJoin is stderr as a lone target's guest and spindle itself both
// write to it: what the guest writes passes as it is, and a write of
// spindle's own (through own: a failure line, a log record, an interrupt
// message) starts on a line of its own, ending the guest's last line
// first when it is unfinished. It is safe for concurrent use.
type lineJoin struct {
	mu   sync.Mutex
	w    io.Writer
	open bool // guarded by mu: the guest's last write did not end its line
}

// Write is the guest's write.
func (l *lineJoin) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(p) > 0 {
		l.open = p[len(p)-1] != '\n'
	}
	return l.w.Write(p)
}

// endLine ends the guest's last line if it is unfinished.
func (l *lineJoin) endLine() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLineLocked()
}

func (l *lineJoin) endLineLocked() {
	if l.open {
		flush(l.w) // a UTF-8 sequence a termWriter holds back, before the newline
		_, _ = io.WriteString(l.w, "\n")
		l.open = false
	}
}

// own is the writer for spindle's own lines.
func (l *lineJoin) own() io.Writer { return ownWriter{l} }

type ownWriter struct{ l *lineJoin }

func (o ownWriter) Write(p []byte) (int, error) {
	o.l.mu.Lock()
	defer o.l.mu.Unlock()
	o.l.endLineLocked()
	return o.l.w.Write(p)
}
