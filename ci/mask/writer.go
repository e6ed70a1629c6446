package mask

import (
	"fmt"
	"io"
)

// chunk is how many bytes of one Write are scanned before the final part
// of them is passed on; it bounds the Writer's buffers.
const chunk = 64 << 10

// Writer masks what is written to it and passes the rest on to the
// io.Writer it wraps, holding back only the bytes that an occurrence
// beginning there could still cover. It is not safe for concurrent use:
// all its fields are owned by the one goroutine that writes to it.
type Writer struct {
	ac *automaton
	w  io.Writer

	state int32  // of ac after every byte written so far
	held  []byte // scanned, not yet passed on; held[0] is at stream offset base
	base  int64

	// spans are the covered intervals [start, end) of the stream that
	// reach into held: sorted, disjoint, never touching one another, and
	// every start >= base.
	spans []span

	masking bool   // the last thing passed on was Replacement, for a run that may go on
	out     []byte // scratch for what one pass passes on
	err     error  // the first error of w; returned ever after
	closed  bool
}

type span struct{ start, end int64 }

// Write masks p and passes on all of it but the held-back tail. It returns
// len(p) unless the io.Writer beneath fails; that error, wrapped, is
// returned now and by every later call.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	keep := max(w.ac.maxLen-1, 0)
	done := 0
	for done < len(p) {
		c := p[done:min(len(p), done+chunk)]
		w.scan(c)
		if n := len(w.held) - keep; n > 0 {
			if err := w.pass(n); err != nil {
				return done, err
			}
		}
		done += len(c)
	}
	return len(p), nil
}

// Flush passes on every byte held back. An occurrence that began in them
// and ends in a later Write has the rest of it masked then.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return w.pass(len(w.held))
}

// Close flushes w and makes later writes fail with ErrClosed. It does not
// close the io.Writer beneath. Calling it again returns nil, or the error
// of the io.Writer beneath if it failed.
func (w *Writer) Close() error {
	if w.closed || w.err != nil {
		return w.err
	}
	err := w.pass(len(w.held))
	w.closed = true
	w.held, w.spans, w.out = nil, nil, nil
	return err
}

// scan appends c to held, runs the automaton over it and records the
// occurrences that end in it.
func (w *Writer) scan(c []byte) {
	off := w.base + int64(len(w.held)) // stream offset of c[0]
	w.held = append(w.held, c...)
	a := w.ac
	st := w.state
	for i, b := range c {
		// a.next, inlined by hand for the root's fast path.
		for {
			if st == 0 {
				st = a.root[b]
				break
			}
			found := false
			for k := a.edgeOff[st]; k < a.edgeOff[st+1]; k++ {
				if a.edgeByte[k] == b {
					st = a.edgeNext[k]
					found = true
					break
				}
			}
			if found {
				break
			}
			st = a.fail[st]
		}
		if l := a.match[st]; l != 0 {
			end := off + int64(i) + 1
			w.cover(end-int64(l), end)
		}
	}
	w.state = st
}

// cover records that [start, end) is an occurrence. Occurrences arrive in
// the order of their ends, so only the last spans can meet the new one.
func (w *Writer) cover(start, end int64) {
	// Only after a Flush can an occurrence begin in bytes already passed
	// on; the rest of it is still masked.
	start = max(start, w.base)
	for len(w.spans) > 0 && w.spans[len(w.spans)-1].end >= start {
		start = min(start, w.spans[len(w.spans)-1].start)
		w.spans = w.spans[:len(w.spans)-1]
	}
	w.spans = append(w.spans, span{start, end})
}

// pass passes on the first n held bytes, each covered run as Replacement.
func (w *Writer) pass(n int) error {
	if n == 0 {
		return nil
	}
	limit := w.base + int64(n)
	var out []byte
	if len(w.spans) == 0 || w.spans[0].start >= limit {
		out = w.held[:n] // nothing covered: no copy
		w.masking = false
	} else {
		out = w.out[:0]
		cur := w.base
		i := 0
		for cur < limit {
			if i < len(w.spans) && w.spans[i].start <= cur {
				if !w.masking {
					out = append(out, Replacement...)
					w.masking = true
				}
				if w.spans[i].end <= limit {
					cur = w.spans[i].end
					i++
				} else {
					cur = limit
					w.spans[i].start = limit
				}
				continue
			}
			next := limit
			if i < len(w.spans) && w.spans[i].start < limit {
				next = w.spans[i].start
			}
			out = append(out, w.held[cur-w.base:next-w.base]...)
			w.masking = false
			cur = next
		}
		w.spans = w.spans[:copy(w.spans, w.spans[i:])]
		w.out = out
	}
	if err := w.write(out); err != nil {
		return err
	}
	w.held = w.held[:copy(w.held, w.held[n:])]
	w.base = limit
	return nil
}

func (w *Writer) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("mask: write: %w", err)
	}
	return w.err
}
