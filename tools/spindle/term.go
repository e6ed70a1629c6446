package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Text a guest or a remote host wrote (task errors, outputs, log records,
// a command's output collected for the table) must not act on the
// operator's terminal: an ESC sequence or a \r could rewrite the screen
// and forge an "ok" line for another target. Everything of theirs that
// spindle prints goes through escapeLine, escapeText, jsonSafe or a
// termWriter.

// escapeLine returns s for one line of spindle's own output: every C0
// control but \t (so \n and \r too), DEL, every C1 control (U+0080-U+009F)
// and every byte that is not UTF-8 are written visibly as \xNN (\u00NN for
// C1), so the line stays one line and moves no cursor.
func escapeLine(s string) string { return escape(s, false) }

// escapeText is escapeLine for multi-line text: \n is kept.
func escapeText(s string) string { return escape(s, true) }

func needsEscape(r rune, size int, keepNL bool) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r == '\t', r == '\n' && keepNL:
		return false
	}
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

func escape(s string, keepNL bool) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, n, keepNL) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case !needsEscape(r, n, keepNL):
			b.WriteString(s[i : i+n])
		case n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += n
	}
	return b.String()
}

// jsonSafe makes JSON that encoding/json wrote safe for a terminal: it
// escapes C0 controls itself, but writes C1 controls (U+0080-U+009F) as
// they are. They can only be inside strings, where \u00NN means the same.
func jsonSafe(b []byte) []byte {
	s := string(b)
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 && r <= 0x9f }) {
		return b
	}
	var out strings.Builder
	for _, r := range s {
		if r >= 0x80 && r <= 0x9f {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.WriteRune(r)
		}
	}
	return []byte(out.String())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// termWriter escapes a stream as escapeText does. A UTF-8 sequence cut
// between two writes is held until the next one. It is not safe for
// concurrent use.
type termWriter struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence from the last write
}

// forTerminal returns w itself unless it is a terminal: output to a pipe
// or a file is the guest's bytes, untouched.
func forTerminal(w io.Writer) io.Writer {
	if w == nil || !isTerminal(w) {
		return w
	}
	return &termWriter{w: w}
}

func (t *termWriter) Write(p []byte) (int, error) {
	b := append(t.tail, p...)
	t.tail = nil
	// Hold back a UTF-8 sequence that the next write may complete.
	for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
		i := len(b) - k
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				t.tail = append([]byte(nil), b[i:]...)
				b = b[:i]
			}
			break
		}
	}
	if _, err := io.WriteString(t.w, escapeText(string(b))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what a termWriter holds back: an incomplete UTF-8 sequence
// at the very end of a stream, escaped.
func flush(w io.Writer) {
	if l, ok := w.(*lineJoin); ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		w = l.w
	}
	if t, ok := w.(*termWriter); ok && len(t.tail) > 0 {
		_, _ = io.WriteString(t.w, escapeText(string(t.tail)))
		t.tail = nil
	}
}
