package host_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestCrashMessages runs real guests that die: the message of each keeps
// the cause from what the guest wrote to stderr, bounded and without the
// goroutine dumps, while the call's stderr writer gets all of it.
func TestCrashMessages(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad, cbad := example(t, h, "bad"), example(t, h, "c-bad")
	tests := []struct {
		name   string
		m      *host.Module
		task   string
		limits host.Limits
		kind   host.Kind
		want   []string // in the message, in this order
		absent []string // not in the message
		stderr string   // in what the stderr writer got, not in the message
	}{
		{
			name: "go out of memory", m: bad, task: "membomb", limits: host.Limits{MemoryPages: 512}, kind: host.KindMemory,
			want: []string{"memory limit of 512 pages reached; stderr: runtime: out of memory: cannot allocate",
				" | fatal error: out of memory | in main.membomb at bad/main.go:", "more lines of stderr not shown)"},
			absent: []string{"\n", "runtime.throw", "runtime.mallocgc"},
			stderr: "runtime.gopark",
		},
		{
			name: "go stack out of memory", m: bad, task: "recurse", limits: host.Limits{MemoryPages: 512}, kind: host.KindMemory,
			want:   []string{"stderr: runtime: out of memory: cannot allocate", " | fatal error: out of memory | in runtime.", "more lines of stderr not shown)"},
			absent: []string{"\n", "0000000"},
			stderr: "unexpected return pc",
		},
		{
			name: "go panic in a goroutine", m: bad, task: "goroutine_panic", kind: host.KindTrap,
			want: []string{"wasm error: unreachable; stderr: panic: assignment to entry in nil map | in main.goroutinePanic.func1 at bad/main.go:",
				" | in created by main.goroutinePanic at bad/main.go:"},
			absent: []string{"\n", "wasm stack", "runtime.fatalpanic"},
			stderr: "goroutine ",
		},
		{
			name: "c trap", m: cbad, task: "unreachable", kind: host.KindTrap,
			want:   []string{"wasm error: unreachable (wasm stack: "},
			absent: []string{"\n", "stderr:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := h.Run(t.Context(), tt.m, host.Call{Task: tt.task, Limits: tt.limits, Stderr: &stderr})
			var te *host.TaskError
			if !errors.As(err, &te) || te.Kind != tt.kind {
				t.Fatalf("Run(%s) = %v, want kind %s", tt.task, err, tt.kind)
			}
			msg := te.Message
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("message lacks %q (in order):\n%s", w, msg)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tt.absent {
				if strings.Contains(msg, a) {
					t.Errorf("message holds %q:\n%s", a, msg)
				}
			}
			if len(msg) > 2048+256 {
				t.Errorf("message is %d bytes, want about 2 KiB at most:\n%s", len(msg), msg)
			}
			if tt.stderr != "" && (!strings.Contains(stderr.String(), tt.stderr) || strings.Contains(msg, tt.stderr)) {
				t.Errorf("stderr writer lacks %q, or the message has it: %d bytes written", tt.stderr, stderr.Len())
			}
		})
	}
}

// TestPanicLog: a panic the SDK recovers fails the call with kind guest
// and its whole value, and is logged as one error record of one line,
// where it was raised, then in full at debug level.
func TestPanicLog(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	bad := example(t, h, "bad")
	type record struct {
		level slog.Level
		msg   string
	}
	var logs []record
	_, err := h.Run(t.Context(), bad, host.Call{Task: "panic",
		Log: func(level slog.Level, msg string) { logs = append(logs, record{level, msg}) }})
	var te *host.TaskError
	if !errors.As(err, &te) || te.Kind != host.KindGuest || te.Message != "panic: bad: panicking on purpose\nand a second line" {
		t.Fatalf("Run(panic) = %v, want kind guest with the panic's value", err)
	}
	if len(logs) != 2 {
		t.Fatalf("logs = %v, want two records", logs)
	}
	if l := logs[0]; l.level != slog.LevelError || !strings.HasPrefix(l.msg, "panic: bad: panicking on purpose (in main.panicky at bad/main.go:") ||
		strings.Contains(l.msg, "\n") {
		t.Errorf("first record = %v %q, want ERROR, one line with the panic's first line and site", l.level, l.msg)
	}
	if l := logs[1]; l.level != slog.LevelDebug || !strings.HasPrefix(l.msg, "panic: bad: panicking on purpose\nand a second line\n") ||
		!strings.Contains(l.msg, "main.panicky") {
		t.Errorf("second record = %v %q, want DEBUG, the whole value and the stack", l.level, l.msg)
	}
}
