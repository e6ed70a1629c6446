package host_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// i32s decodes little-endian int32s, as the C guests write them.
func i32s(b []byte) []int32 {
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func TestReactorCalls(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	tests := []struct {
		guest, task string
		input       string
		want        string // output, or the error's message if kind is set
		kind        host.Kind
	}{
		{guest: "creactor", task: "hello", input: "world", want: "hello, world"},
		{guest: "creactor", task: "hello", want: "hello, "},
		{guest: "creactor", task: "fail", want: "boom", kind: host.KindGuest},
		{guest: "creactor", task: "fail_quiet", want: "task returned status 7", kind: host.KindGuest},
		{guest: "creactor", task: "nope", kind: host.KindNotFound},
		{guest: "creactor", task: "counter", want: "\x01\x00\x00\x00"}, // fresh instance
		{guest: "creactor", task: "counter", want: "\x01\x00\x00\x00"},
		{guest: "creactor", task: "taskname", want: "\x08\x00\x00\x00ta"},
		{guest: "cdispatch", task: "echo", input: "hi", want: "echo:hi"},
		{guest: "cdispatch", task: "other", want: "unknown task: ", kind: host.KindGuest},
		{guest: "goreactor", task: "echo", input: "go", want: "go"},
		{guest: "goreactor", task: "noop", want: ""},
		{guest: "goreactor", task: "fail", input: "x", want: `failed on "x"`, kind: host.KindGuest},
	}
	for _, tt := range tests {
		m := compile(t, h, tt.guest)
		res, err := h.Run(t.Context(), m, host.Call{Task: tt.task, Input: []byte(tt.input)})
		if tt.kind != "" {
			var te *host.TaskError
			if !errors.As(err, &te) || te.Kind != tt.kind || (tt.want != "" && te.Message != tt.want) {
				t.Errorf("%s %s: Run = %v, want task %s: %s", tt.guest, tt.task, err, tt.kind, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: Run: %v", tt.guest, tt.task, err)
			continue
		}
		if string(res.Output) != tt.want {
			t.Errorf("%s %s: Output = %q, want %q", tt.guest, tt.task, res.Output, tt.want)
		}
	}
}

func TestModuleInfo(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	tests := []struct {
		guest string
		kind  host.ModuleKind
		tasks []string // a subset
	}{
		{"creactor", host.Reactor, []string{"fail", "hello", "loop"}},
		{"cdispatch", host.Reactor, nil},
		{"goreactor", host.Reactor, []string{"noop"}},
		{"ccommand", host.Command, nil},
	}
	for _, tt := range tests {
		m := compile(t, h, tt.guest)
		if m.Hash() != tt.guest || m.Kind() != tt.kind {
			t.Errorf("%s: Hash, Kind = %q, %v, want %q, %v", tt.guest, m.Hash(), m.Kind(), tt.guest, tt.kind)
		}
		tasks := m.Tasks()
		for _, want := range tt.tasks {
			if !slicesContains(tasks, want) {
				t.Errorf("%s: Tasks() = %q, want it to hold %q", tt.guest, tasks, want)
			}
		}
		for _, reserved := range []string{"_initialize", "_start", "spindle_call"} {
			if slicesContains(tasks, reserved) {
				t.Errorf("%s: Tasks() = %q, holds %q", tt.guest, tasks, reserved)
			}
		}
		if tt.kind == host.Command && len(tasks) != 0 {
			t.Errorf("%s: Tasks() = %q, want none", tt.guest, tasks)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestBadGuests runs each misbehaving guest, checks its kind, and then that
// the same Host still serves a good call.
func TestBadGuests(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	good := compile(t, h, "creactor")
	tests := []struct {
		name   string
		guest  string
		task   string
		limits host.Limits
		kind   host.Kind
		msg    string // in the message
		code   int    // TaskError.ExitCode
	}{
		{name: "loop", guest: "creactor", task: "loop", limits: host.Limits{Timeout: 200 * time.Millisecond}, kind: host.KindTimeout},
		{name: "grow", guest: "creactor", task: "grow", limits: host.Limits{MemoryPages: 64}, kind: host.KindMemory},
		{name: "grow soft", guest: "creactor", task: "grow_soft", limits: host.Limits{MemoryPages: 64}, kind: host.KindMemory},
		{name: "grow default limit", guest: "creactor", task: "grow", kind: host.KindMemory},
		{name: "trap", guest: "creactor", task: "trap", kind: host.KindTrap, msg: "unreachable"},
		{name: "div0", guest: "creactor", task: "div0", kind: host.KindTrap, msg: "divide by zero"},
		{name: "recurse", guest: "creactor", task: "recurse", kind: host.KindStackOverflow},
		{name: "flood", guest: "creactor", task: "flood", limits: host.Limits{OutputBytes: 1 << 20}, kind: host.KindOutputLimit},
		{name: "exit", guest: "creactor", task: "exit3", kind: host.KindExit, code: 3},
		{name: "go alloc", guest: "goreactor", task: "alloc", limits: host.Limits{MemoryPages: 256}, kind: host.KindMemory},
		{name: "go panic", guest: "goreactor", task: "panic", kind: host.KindTrap, msg: "panic: oh no"},
		{name: "go below its minimum", guest: "goreactor", task: "echo", limits: host.Limits{MemoryPages: 8}, kind: host.KindMemory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := compile(t, h, tt.guest)
			for _, pooled := range []bool{false, true} {
				start := time.Now()
				_, err := h.Run(t.Context(), m, host.Call{Task: tt.task, Limits: tt.limits, Pooled: pooled})
				var te *host.TaskError
				if !errors.As(err, &te) || te.Kind != tt.kind || !strings.Contains(te.Message, tt.msg) || te.ExitCode != tt.code {
					t.Fatalf("pooled=%v: Run = %v (%#v), want kind %s with %q, exit code %d", pooled, err, te, tt.kind, tt.msg, tt.code)
				}
				if tt.kind == host.KindTimeout {
					if d := time.Since(start); d > tt.limits.Timeout+2*time.Second {
						t.Errorf("pooled=%v: timed out after %v, want about %v", pooled, d, tt.limits.Timeout)
					}
				}
				res, err := h.Run(t.Context(), good, host.Call{Task: "hello", Input: []byte("again"), Pooled: pooled})
				if err != nil || string(res.Output) != "hello, again" {
					t.Fatalf("pooled=%v: good call after: %v, %v", pooled, res, err)
				}
			}
		})
	}
}

func TestBadPointers(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	ch := host.Channel{Context: 1, Handle: 2}
	res, err := h.Run(t.Context(), m, host.Call{
		Task:   "badptr",
		Grants: host.Grants{Channels: []host.Channel{ch}},
		Send:   func(context.Context, host.Channel, bool, []byte) error { return nil },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := i32s(res.Output)
	want := []int32{-1, -1, -1, -1, -1, -1, -1, -1, int32(len("badptr"))}
	if !equal(got, want) {
		t.Errorf("codes = %v, want %v", got, want)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLogBudget(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	type entry struct {
		level slog.Level
		n     int
	}
	var got []entry
	res, err := h.Run(t.Context(), m, host.Call{
		Task: "logflood",
		// Room for four 1 KiB records, each with its fixed cost.
		Limits: host.Limits{LogBytes: 4 * (1024 + host.LogRecordCost)},
		Log:    func(level slog.Level, msg string) { got = append(got, entry{level, len(msg)}) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if limited := i32s(res.Output); len(limited) != 1 || limited[0] != 96 {
		t.Errorf("ERR_LIMIT count = %v, want 96", limited)
	}
	if len(got) != 5 {
		t.Fatalf("got %d log entries, want 4 messages and one notice: %v", len(got), got)
	}
	for _, e := range got[:4] {
		if e.level != slog.LevelInfo || e.n != 1024 {
			t.Errorf("entry %v, want info of 1024 bytes", e)
		}
	}
	if got[4].level != slog.LevelWarn {
		t.Errorf("notice %v, want a warning", got[4])
	}
}

func TestLogToLogger(t *testing.T) {
	testutil.VerifyNone(t)
	var buf syncBuffer
	h := newHost(t, host.Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	m := compile(t, h, "goreactor")
	if _, err := h.Run(t.Context(), m, host.Call{Task: "log", Input: []byte("careful")}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := buf.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "careful") || !strings.Contains(s, "module=goreactor") {
		t.Errorf("log = %q, want a warning 'careful' tagged with the module", s)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReactorStdio(t *testing.T) {
	testutil.VerifyNone(t)
	h := newHost(t, host.Config{})
	m := compile(t, h, "creactor")
	for _, pooled := range []bool{false, true} {
		var stdout, stderr bytes.Buffer
		if _, err := h.Run(t.Context(), m, host.Call{Task: "stdio", Stdout: &stdout, Stderr: &stderr, Pooled: pooled}); err != nil {
			t.Fatalf("pooled=%v: Run: %v", pooled, err)
		}
		if stdout.String() != "to stdout\n" || stderr.String() != "to stderr\n" {
			t.Errorf("pooled=%v: stdout, stderr = %q, %q", pooled, stdout.String(), stderr.String())
		}
	}
}
