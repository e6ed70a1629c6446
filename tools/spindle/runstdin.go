package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
)

// How spindle run gives a command its --stdin (issue 14): streamed, as the
// guest reads it, so that a pipe that stays open (an interactive program, a
// producer that never closes) does not keep the guest from starting.

// maxStdinLag bounds how far, in bytes, the fastest target's stdin may run
// ahead of the slowest's when several share one pipe: what spindle run
// keeps of it.
const maxStdinLag = 64 << 20

// stdinFor opens --stdin v for n targets, at most parallel of them at once,
// and returns each target's reader (nil for none) and the function that
// closes what was opened. A target whose Run has returned closes its
// reader if it is an io.Closer. With one target, "-" or a pipe is this
// process's stdin itself; a regular file is read by each target from its
// start (a section reader each). "-" or a pipe with several targets, all
// running at once, is shared (stdinFan): each gets the same bytes, as they
// come, the fastest at most maxStdinLag ahead of the slowest still running.
// With more targets than run at once it is read whole first, at most
// maxStdinLag bytes, and each target gets a copy (a target not started yet
// cannot be waited for).
func stdinFor(v string, n, parallel int) (readers []io.Reader, closeFn func(), err error) {
	readers = make([]io.Reader, n)
	if v == "" {
		return readers, func() {}, nil
	}
	f := os.Stdin
	closeFn = func() {}
	if v != "-" {
		if f, err = os.Open(v); err != nil {
			return nil, nil, err
		}
		closeFn = func() { f.Close() }
	}
	fi, err := f.Stat()
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	switch {
	case fi.Mode().IsRegular() && v != "-":
		for i := range readers {
			readers[i] = io.NewSectionReader(f, 0, fi.Size())
		}
		return readers, closeFn, nil
	case n == 1:
		// Behind a plain reader: the task's stream reads it as it is.
		readers[0] = struct{ io.Reader }{f}
		return readers, closeFn, nil
	case n <= parallel:
		fo := newStdinFan(f, n, maxStdinLag)
		for i := range readers {
			readers[i] = &fanReader{f: fo}
		}
		return readers, closeFn, nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStdinLag+1))
	closeFn()
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxStdinLag {
		return nil, nil, errors.New("more than 64 MiB to share among more targets than --parallel runs at once: a pipe's stdin is then read whole first (raise --parallel to stream it, or give a regular file)")
	}
	for i := range readers {
		readers[i] = bytes.NewReader(b)
	}
	return readers, func() {}, nil
}

// pieceOverhead is what stdinFan counts for each piece kept beyond its bytes.
const pieceOverhead = 64

// stdinFan shares one source among readers: each piece read from it is kept
// until every reader still open has taken it, and the source is read
// only when a reader wants more than has been read and the pieces kept
// hold less than max bytes. It is safe for concurrent use by its readers.
type stdinFan struct {
	src io.Reader
	max int

	mu      sync.Mutex
	cond    *sync.Cond
	pieces  [][]byte             // guarded by mu; pieces[0] is piece number base
	base    int64                // guarded by mu
	kept    int                  // bytes in pieces; guarded by mu
	err     error                // the source's end, after the last piece; guarded by mu
	reading bool                 // a reader is inside src.Read; guarded by mu
	next    map[*fanReader]int64 // each open reader's next piece; guarded by mu
	readers int                  // readers not yet registered
}

func newStdinFan(src io.Reader, n, max int) *stdinFan {
	f := &stdinFan{src: src, max: max, next: map[*fanReader]int64{}, readers: n}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// fanReader is one reader of a stdinFan, for one goroutine at a time.
type fanReader struct {
	f      *stdinFan
	buf    []byte // what is left of the last piece taken
	joined bool   // guarded by f.mu
	closed bool   // guarded by f.mu
}

func (r *fanReader) Read(p []byte) (int, error) {
	if len(r.buf) > 0 {
		n := copy(p, r.buf)
		r.buf = r.buf[n:]
		return n, nil
	}
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	r.joinLocked()
	for {
		if r.closed {
			return 0, os.ErrClosed
		}
		want := f.next[r]
		if i := want - f.base; i < int64(len(f.pieces)) {
			piece := f.pieces[i]
			f.next[r] = want + 1
			f.dropLocked()
			n := copy(p, piece)
			r.buf = piece[n:]
			return n, nil
		}
		switch {
		case f.err != nil:
			return 0, f.err
		case f.reading || f.kept >= f.max && f.max > 0:
			f.cond.Wait()
			continue
		}
		f.reading = true
		f.mu.Unlock()
		buf := make([]byte, 64<<10)
		n, err := f.src.Read(buf)
		f.mu.Lock()
		f.reading = false
		if n > 0 {
			piece := buf[:n]
			if n < len(buf)/4 {
				piece = append([]byte(nil), piece...) // a line typed keeps its own size
			}
			f.pieces = append(f.pieces, piece)
			f.kept += n + pieceOverhead
		}
		if err != nil {
			f.err = err
		}
		f.cond.Broadcast()
		if n == 0 && err == nil {
			return 0, nil
		}
	}
}

// joinLocked registers r, at piece 0, at its first use. Every reader of
// the stdinFan is counted from the start (readers), so nothing is dropped
// before the last has joined.
func (r *fanReader) joinLocked() {
	if r.joined {
		return
	}
	r.joined = true
	r.f.readers--
	r.f.next[r] = 0
}

// dropLocked forgets the pieces every reader has taken, and wakes the
// readers waiting for room.
func (f *stdinFan) dropLocked() {
	if f.readers > 0 {
		return // a reader that has not read yet wants them all
	}
	low := int64(-1)
	for _, n := range f.next {
		if low < 0 || n < low {
			low = n
		}
	}
	if low < 0 {
		low = f.base + int64(len(f.pieces))
	}
	for f.base < low && len(f.pieces) > 0 {
		f.kept -= len(f.pieces[0]) + pieceOverhead
		f.pieces[0] = nil
		f.pieces = f.pieces[1:]
		f.base++
	}
	f.cond.Broadcast()
}

// Close leaves the stdinFan: the others no longer wait for r. A Read in
// progress returns os.ErrClosed.
func (r *fanReader) Close() error {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.closed {
		return nil
	}
	r.joinLocked()
	r.closed = true
	delete(f.next, r)
	f.dropLocked()
	f.cond.Broadcast() // a Read of r waiting returns
	return nil
}
