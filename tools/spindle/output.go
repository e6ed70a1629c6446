package main

import (
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
