package guest

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Channel is a capability to send to a receiver in another context, as a
// caller puts it in a task's input. It has the msgpack shape of the host's
// routing.Sender ({"ctx": uint32, "handle": uint32}), so a caller can put
// its receiver's Sender in the input and the task decodes it as a Channel.
// The host lets a task send only on channels that its caller granted.
//
// A Channel is a plain value, safe to copy and to use from any goroutine.
type Channel struct {
	Context uint32 `msgpack:"ctx"`
	Handle  uint32 `msgpack:"handle"`
}

// Ctx is the task call a task function is serving: its name, the host's
// log, and the channels it may send on. A Ctx is valid until the task
// function returns; after that Send fails with ErrReturned and Log does
// nothing.
//
// Ctx may be used from goroutines the task function starts, as long as it
// waits for them before it returns: a guest runs on one thread, and a
// goroutine left behind would run only during some later call.
type Ctx struct {
	c *call // nil in the zero Ctx, which logs nothing and cannot send
}

// call is the state of one task call.
type call struct {
	h      abi
	task   string
	done   atomic.Bool // set when the task function has returned
	logOff atomic.Bool // set when the host refused a log line (budget spent)
}

// Task returns the name of the task being called.
func (c Ctx) Task() string {
	if c.c == nil {
		return ""
	}
	return c.c.task
}

// Log sends msg to the host's log at level; it reaches the master tagged
// with the context's name. args are key-value pairs or slog.Attrs, as for
// slog.Logger.Log; they are appended to msg as key=value in slog's text
// format ("step i=3 of=10").
//
// Logging is best effort: once the call's log budget is spent, the host
// logs one notice and Log drops the rest of the call's lines.
func (c Ctx) Log(level slog.Level, msg string, args ...any) {
	if c.c == nil || c.c.done.Load() || c.c.logOff.Load() {
		return
	}
	line := []byte(msg)
	if len(args) > 0 {
		line = appendArgs(line, args)
	}
	if c.c.h.log(int32(level), line) == codeLimit {
		c.c.logOff.Store(true)
	}
}

// Debug logs at slog.LevelDebug; see Log.
func (c Ctx) Debug(msg string, args ...any) { c.Log(slog.LevelDebug, msg, args...) }

// Info logs at slog.LevelInfo; see Log.
func (c Ctx) Info(msg string, args ...any) { c.Log(slog.LevelInfo, msg, args...) }

// Warn logs at slog.LevelWarn; see Log.
func (c Ctx) Warn(msg string, args ...any) { c.Log(slog.LevelWarn, msg, args...) }

// Error logs at slog.LevelError; see Log.
func (c Ctx) Error(msg string, args ...any) { c.Log(slog.LevelError, msg, args...) }

// Send sends v, encoded as msgpack, on ch. It returns when the host has
// taken the message; errors wrap ErrDenied (ch was not granted by the
// caller), ErrLimit (the call's send budget is spent: the call then ends
// with kind output_limit), ErrFailed (the receiver's context is gone) or
// ErrReturned.
func (c Ctx) Send(ch Channel, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("guest: send to channel %d/%d: encode: %w", ch.Context, ch.Handle, err)
	}
	return c.send(ch, b, 0)
}

// SendRaw sends b as raw bytes (not msgpack) on ch; see Send.
func (c Ctx) SendRaw(ch Channel, b []byte) error {
	return c.send(ch, b, sendRaw)
}

func (c Ctx) send(ch Channel, data []byte, flags uint32) error {
	if c.c == nil || c.c.done.Load() {
		return fmt.Errorf("guest: send to channel %d/%d: %w", ch.Context, ch.Handle, ErrReturned)
	}
	sender, err := msgpack.Marshal(ch)
	if err != nil { // cannot happen: two uint32 fields
		return fmt.Errorf("guest: send to channel %d/%d: encode channel: %w", ch.Context, ch.Handle, err)
	}
	if rc := c.c.h.send(sender, data, flags); rc < 0 {
		return fmt.Errorf("guest: send to channel %d/%d: %w", ch.Context, ch.Handle, codeErr(rc))
	}
	return nil
}

// appendArgs appends args to line as " k=v k2=\"two words\"": slog's text
// format without the time, level and msg keys. The SDK formats the pairs
// itself rather than through slog.TextHandler, which would add half a
// megabyte to every module.
func appendArgs(line []byte, args []any) []byte {
	r := slog.NewRecord(time.Time{}, 0, "", 0)
	r.Add(args...) // pairs to Attrs, as slog does, with !BADKEY for a lone value
	r.Attrs(func(a slog.Attr) bool {
		line = appendAttr(line, "", a)
		return true
	})
	return line
}

func appendAttr(line []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return line // slog handlers elide empty Attrs
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			line = appendAttr(line, prefix, g)
		}
		return line
	}
	line = append(line, ' ')
	line = appendText(line, prefix+a.Key)
	line = append(line, '=')
	return appendText(line, a.Value.String())
}

// appendText appends s, quoted when slog's TextHandler would quote it.
func appendText(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == utf8.RuneError || unicode.IsSpace(r) || !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}
