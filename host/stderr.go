package host

import (
	"bytes"
	"strconv"
	"strings"
)

// What a failed call's message keeps of the guest's stderr (stderrLog):
// at most crashLines lines and crashBytes bytes, each line at most
// crashLineBytes. The whole of stderr still goes to the call's writers.
const (
	crashLines     = 10
	crashBytes     = 2048
	crashLineBytes = 256

	crashHeadLines = 4 // of a Go crash report: "panic: ...", "fatal error: ...", ...
	crashFrames    = 3 // of a Go crash report's first stack
	plainHead      = 3 // of other stderr: its first lines...
	plainTail      = 5 // ...and its last
)

// maxPendingLine bounds the line being written that stderrLog holds; the
// rest of a longer line is counted, not kept.
const maxPendingLine = 1024

// stderrLog keeps what a call's stderr says about why the guest died, in
// bounded memory however much it writes: for a Go guest, the first lines
// of the runtime's crash report ("runtime: out of memory: ...", "fatal
// error: ...", "panic: ...", "[signal ...") and the top frames of the
// first stack after them, without the goroutine dumps that follow; for
// any other stderr, its first and last lines. It is owned by the
// goroutine running the call.
type stderrLog struct {
	pending     []byte // the line being written, up to maxPendingLine
	pendingLong bool   // pending was cut
	lines       int    // complete lines, blank ones not counted
	head        []string
	tail        []string // the last plainTail lines, oldest first

	crash struct {
		state  int      // crashNone, crashHeader, crashStack, crashDone
		header []string // the report's first lines, at most crashHeadLines
		frames []string // "in F at dir/file.go:N", at most crashFrames
		// runtime holds the first frames inside package runtime, shown
		// when the stack has no other (a stack overflow or a fault in
		// the runtime itself).
		runtime []string
		fn      string // a frame's function, waiting for its file line
		fnKept  bool   // fn is to be kept (frames or runtime)
		lines   int    // the lines of stderr the frames and header stand for
	}
}

const (
	crashNone = iota
	crashHeader
	crashStack
	crashDone
)

// write takes p, the next bytes the guest wrote to stderr.
func (l *stderrLog) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxPendingLine - len(l.pending); len(chunk) > room {
			l.pending = append(l.pending, chunk[:room]...)
			l.pendingLong = true
		} else {
			l.pending = append(l.pending, chunk...)
		}
		if i < 0 {
			return
		}
		l.endLine()
		p = p[i+1:]
	}
}

// endLine takes the pending line as complete.
func (l *stderrLog) endLine() {
	line := strings.TrimRight(string(l.pending), "\r")
	if l.pendingLong {
		line += "…"
	}
	l.pending, l.pendingLong = l.pending[:0], false
	l.goLine(line)
	if strings.TrimSpace(line) == "" {
		return
	}
	l.lines++
	if len(l.head) < plainHead+plainTail {
		l.head = append(l.head, line)
	}
	if len(l.tail) == plainTail {
		l.tail = append(l.tail[:0], l.tail[1:]...)
	}
	l.tail = append(l.tail, line)
}

// goStart reports whether line begins a Go runtime crash report.
func goStart(line string) bool {
	for _, p := range []string{"panic: ", "fatal error: ", "runtime: ", "[signal "} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// goLine follows a Go crash report: the first one in stderr is the cause;
// later ones (a panic while printing a panic) and the other goroutines'
// stacks are only counted.
func (l *stderrLog) goLine(line string) {
	c := &l.crash
	blank := strings.TrimSpace(line) == ""
	switch c.state {
	case crashNone:
		if goStart(line) {
			c.state = crashHeader
			c.header = append(c.header, line)
			c.lines++
		}
	case crashHeader:
		switch {
		case blank:
		case strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, ":"), line == "runtime stack:":
			c.state = crashStack
		case len(c.header) < crashHeadLines:
			c.header = append(c.header, line)
			c.lines++
		}
	case crashStack:
		switch {
		case blank:
			c.state = crashDone
		case strings.HasPrefix(line, "\t"):
			// The file line of the frame whose function came before.
			if c.fn != "" && c.fnKept {
				frame := "in " + c.fn + " at " + shortSource(line)
				if isRuntimeFrame(c.fn) {
					c.runtime = append(c.runtime, frame)
				} else {
					c.frames = append(c.frames, frame)
					c.lines += 2
				}
			}
			c.fn = ""
		default:
			c.fn = frameFunc(line)
			switch {
			case isRuntimeFrame(c.fn):
				c.fnKept = len(c.frames) == 0 && len(c.runtime) < crashFrames
			default:
				c.fnKept = len(c.frames) < crashFrames
			}
		}
	}
}

// isRuntimeFrame reports whether fn, a frame's function, is the Go
// runtime's own: the frames between a fault and the code that caused it.
func isRuntimeFrame(fn string) bool {
	return strings.HasPrefix(fn, "runtime.") || fn == "panic"
}

// frameFunc is the function of a traceback's function line, without its
// arguments: "main.f" of "main.f({0x1, 0x2}, ...)", "created by main.g"
// of "created by main.g in goroutine 1".
func frameFunc(line string) string {
	if rest, ok := strings.CutPrefix(line, "created by "); ok {
		name, _, _ := strings.Cut(rest, " ")
		return "created by " + name
	}
	if strings.HasSuffix(line, ")") {
		depth := 0
		for i := len(line) - 1; i >= 0; i-- {
			switch line[i] {
			case ')':
				depth++
			case '(':
				if depth--; depth == 0 {
					return line[:i]
				}
			}
		}
	}
	return line
}

// shortSource is a traceback's file line as dir/file.go:N: the tab, the
// leading directories and the "+0x12 fp=... sp=... pc=..." suffix gone.
func shortSource(line string) string {
	line = strings.TrimSpace(line)
	if i := strings.Index(line, " +0x"); i >= 0 {
		line = line[:i]
	} else if i := strings.Index(line, " fp="); i >= 0 {
		line = line[:i]
	}
	if i := strings.LastIndexByte(line, '/'); i > 0 {
		if j := strings.LastIndexByte(line[:i], '/'); j >= 0 {
			return line[j+1:]
		}
	}
	return line
}

// goCrash reports whether stderr held a Go crash report.
func (l *stderrLog) goCrash() bool {
	l.flush()
	return len(l.crash.header) > 0
}

// flush takes a last line that has no newline as complete.
func (l *stderrLog) flush() {
	if len(l.pending) > 0 || l.pendingLong {
		l.endLine()
	}
}

// summary is what a failed call's message says of stderr, one line: the
// kept lines joined with " | ", and how many lines were left out; "" when
// stderr was empty.
func (l *stderrLog) summary() string {
	l.flush()
	var kept []string
	shown := 0 // the lines of stderr kept stands for
	switch c := &l.crash; {
	case len(c.header) > 0:
		kept = append(kept, c.header...)
		shown = c.lines
		frames := c.frames
		if len(frames) == 0 {
			frames = c.runtime
			shown += 2 * len(frames)
		}
		kept = append(kept, frames...)
	case l.lines <= plainHead+plainTail:
		kept, shown = l.head, l.lines
	default:
		kept = append(append(kept, l.head[:plainHead]...), "…")
		kept = append(kept, l.tail...)
		shown = plainHead + plainTail
	}
	var b strings.Builder
	n := 0
	for _, line := range kept {
		if len(line) > crashLineBytes {
			line = clipUTF8(line, crashLineBytes) + "…"
		}
		if n == crashLines || b.Len()+len(line)+3 > crashBytes {
			break
		}
		if n > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(line)
		n++
	}
	if b.Len() == 0 {
		return ""
	}
	if dropped := l.lines - shown; dropped > 0 {
		b.WriteString(" | (" + strconv.Itoa(dropped) + " more lines of stderr not shown)")
	}
	return b.String()
}

// clipUTF8 is s cut to at most n bytes, not inside a UTF-8 sequence.
func clipUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// trapMessage is the message of a trap, err from wazero: its first line
// ("wasm error: unreachable") and the top of the wasm stack trace that
// follows, distinct frames only; none of the trace when stderr holds a Go
// crash report, which says more.
func trapMessage(err error, goCrash bool) string {
	first, rest, _ := strings.Cut(err.Error(), "\n")
	rest, ok := strings.CutPrefix(rest, "wasm stack trace:\n")
	if goCrash || !ok {
		return first
	}
	var frames []string
	more := 0
	for _, f := range strings.Split(rest, "\n") {
		f = strings.TrimSpace(f)
		switch {
		case f == "" || len(frames) > 0 && frames[len(frames)-1] == f:
		case len(frames) < crashFrames:
			frames = append(frames, clipUTF8(f, crashLineBytes))
		default:
			more++
		}
	}
	if len(frames) == 0 {
		return first
	}
	msg := first + " (wasm stack: " + strings.Join(frames, " < ")
	if more > 0 {
		msg += " < " + strconv.Itoa(more) + " more"
	}
	return msg + ")"
}
