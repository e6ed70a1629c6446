//go:build !wasip1

package guest

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

type helloIn struct {
	Name string `msgpack:"name"`
}

type helloOut struct {
	Greeting string `msgpack:"greeting"`
}

func hello(_ Ctx, in helloIn) (helloOut, error) {
	return helloOut{Greeting: "hello, " + in.Name}, nil
}

// watchIn holds structs below its top: a Channel, and a slice of them.
type watchIn struct {
	N        int       `msgpack:"n"`
	Progress Channel   `msgpack:"progress"`
	Also     []Channel `msgpack:"also"`
}

// watch sums the handles of its channels.
func watch(_ Ctx, in watchIn) (int, error) {
	n := int(in.Progress.Handle)
	for _, c := range in.Also {
		n += int(c.Handle)
	}
	return n, nil
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%v): %v", v, err)
	}
	return b
}

// callTask registers fn as task name in a fresh registry and serves one
// call of it through f.
func callTask(f *fakeABI, name string, fn taskFunc) int32 {
	var r registry
	r.add(name, fn)
	return serve(f, &r)
}

func TestServe(t *testing.T) {
	longName := strings.Repeat("n", 200)
	tests := []struct {
		name    string
		task    string // registered under this name; the call asks for f.task
		fn      taskFunc
		f       *fakeABI
		status  int32
		output  any    // decoded from msgpack into the same type; nil: no output
		raw     string // raw output, when output is nil
		errMsg  string // exact, or a prefix if it ends in "..."
		wantErr bool
	}{
		{
			name: "typed", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, helloIn{"world"})},
			output: helloOut{"hello, world"},
		},
		{
			name: "typed from a map", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, map[string]any{"name": "map", "extra": 1})},
			output: helloOut{"hello, map"},
		},
		{
			name: "empty input is the zero In", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello"},
			output: helloOut{"hello, "},
		},
		{
			name: "raw", task: "echo",
			fn:  func(_ Ctx, in []byte) ([]byte, error) { return append([]byte("echo: "), in...), nil },
			f:   &fakeABI{task: "echo", input: []byte{0, 1, 0xff}},
			raw: "echo: \x00\x01\xff",
		},
		{
			name: "raw, no output", task: "none",
			fn: func(Ctx, []byte) ([]byte, error) { return nil, nil },
			f:  &fakeABI{task: "none"},
		},
		{
			name: "task name longer than the first buffer", task: longName, fn: typed(hello),
			f:      &fakeABI{task: longName, input: mustMarshal(t, helloIn{"long"})},
			output: helloOut{"hello, long"},
		},
		{
			name: "unknown task", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "nope"},
			status: 2, wantErr: true, errMsg: `no task "nope" in this module (it has: hello)`, // statusNotFound: kind not_found
		},
		{
			name: "returned error", task: "fail",
			fn:     typed(func(Ctx, struct{}) (struct{}, error) { return struct{}{}, errors.New("it did not work") }),
			f:      &fakeABI{task: "fail"},
			status: 1, wantErr: true, errMsg: "it did not work",
		},
		{
			name: "panic", task: "boom",
			fn:     typed(func(Ctx, struct{}) (struct{}, error) { panic("boom") }),
			f:      &fakeABI{task: "boom"},
			status: 1, wantErr: true, errMsg: "panic: boom",
		},
		{
			name: "panic with an error", task: "boom",
			fn:     typed(func(Ctx, struct{}) (struct{}, error) { panic(fmt.Errorf("wrapped: %w", os.ErrClosed)) }),
			f:      &fakeABI{task: "boom"},
			status: 1, wantErr: true, errMsg: "panic: wrapped: file already closed",
		},
		{
			name: "runtime panic", task: "index",
			fn:     typed(func(_ Ctx, in []int) (int, error) { return in[len(in)], nil }),
			f:      &fakeABI{task: "index", input: mustMarshal(t, []int{1, 2})},
			status: 1, wantErr: true, errMsg: "panic: runtime error: index out of range [2] with length 2",
		},
		{
			name: "divide by zero", task: "div",
			fn:     typed(func(_ Ctx, in int) (int, error) { return 1 / in, nil }),
			f:      &fakeABI{task: "div", input: mustMarshal(t, 0)},
			status: 1, wantErr: true, errMsg: "panic: runtime error: integer divide by zero",
		},
		{
			name: "undecodable input", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, []string{"not", "a", "map"})},
			status: 1, wantErr: true, errMsg: "guest: task hello: input: want map, got array of 3",
		},
		{
			// as many values as helloIn has fields: msgpack alone would
			// take "world" as the name
			name: "array as long as the struct", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, []string{"world"})},
			status: 1, wantErr: true, errMsg: "guest: task hello: input: want map, got array of 1",
		},
		{
			// a struct inside the input: msgpack alone would take [0, 5]
			// as {"ctx": 0, "handle": 5}
			name: "array for a nested struct", task: "watch", fn: typed(watch),
			f:      &fakeABI{task: "watch", input: mustMarshal(t, map[string]any{"n": 1, "progress": []int{0, 5}})},
			status: 1, wantErr: true, errMsg: `guest: task watch: input field "progress": want map, got array of 2`,
		},
		{
			name: "array for a struct in a slice", task: "watch", fn: typed(watch),
			f: &fakeABI{task: "watch", input: mustMarshal(t, map[string]any{"n": 1,
				"also": []any{map[string]any{"ctx": 1, "handle": 2}, []int{3, 4}}})},
			status: 1, wantErr: true, errMsg: `guest: task watch: input field "also[1]": want map, got array of 2`,
		},
		{
			name: "nested structs as maps", task: "watch", fn: typed(watch),
			f: &fakeABI{task: "watch", input: mustMarshal(t, map[string]any{"n": 1, "progress": routingSender{0, 5},
				"also": []routingSender{{1, 2}}})},
			output: 5 + 2,
		},
		{
			name: "empty array", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, []int{})},
			status: 1, wantErr: true, errMsg: "guest: task hello: input: want map, got array of 0",
		},
		{
			name: "input field of the wrong type", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, map[string]any{"name": 3})},
			status: 1, wantErr: true, errMsg: `guest: task hello: input field "name": want string, got integer 3`,
		},
		{
			name: "truncated input", task: "hello", fn: typed(hello),
			f:      &fakeABI{task: "hello", input: mustMarshal(t, helloIn{"world"})[:5]},
			status: 1, wantErr: true, errMsg: "guest: task hello: decode input: ...",
		},
		{
			name: "unencodable output", task: "chan",
			fn:     typed(func(Ctx, struct{}) (chan int, error) { return make(chan int), nil }),
			f:      &fakeABI{task: "chan"},
			status: 1, wantErr: true, errMsg: "guest: task chan: encode output: ...",
		},
		{
			name: "output limit", task: "big",
			fn:     func(Ctx, []byte) ([]byte, error) { return make([]byte, 101), nil },
			f:      &fakeABI{task: "big", outputLimit: 100},
			status: 1, wantErr: true, errMsg: "guest: task big: write 101 bytes of output: guest: per-call limit reached",
		},
		{
			name: "output at the limit", task: "big",
			fn:  func(Ctx, []byte) ([]byte, error) { return []byte(strings.Repeat("x", 100)), nil },
			f:   &fakeABI{task: "big", outputLimit: 100},
			raw: strings.Repeat("x", 100),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			status := callTask(f, tt.task, tt.fn)
			if status != tt.status {
				t.Errorf("serve(%q) = %d, want %d", f.task, status, tt.status)
			}
			switch {
			case !tt.wantErr && f.errMsg != nil:
				t.Errorf("serve(%q) set error %q, want none", f.task, *f.errMsg)
			case tt.wantErr && f.errMsg == nil:
				t.Errorf("serve(%q) set no error, want %q", f.task, tt.errMsg)
			case tt.wantErr:
				if prefix, ok := strings.CutSuffix(tt.errMsg, "..."); ok {
					if !strings.HasPrefix(*f.errMsg, prefix) {
						t.Errorf("serve(%q) error = %q, want prefix %q", f.task, *f.errMsg, prefix)
					}
				} else if *f.errMsg != tt.errMsg {
					t.Errorf("serve(%q) error = %q, want %q", f.task, *f.errMsg, tt.errMsg)
				}
			}
			if tt.output == nil {
				if string(f.output) != tt.raw {
					t.Errorf("serve(%q) output = %q, want %q", f.task, f.output, tt.raw)
				}
				return
			}
			got := reflect.New(reflect.TypeOf(tt.output))
			if err := msgpack.Unmarshal(f.output, got.Interface()); err != nil {
				t.Fatalf("Unmarshal(%x): %v", f.output, err)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), tt.output) {
				t.Errorf("serve(%q) output = %+v, want %+v", f.task, got.Elem().Interface(), tt.output)
			}
		})
	}
}

// TestPanicLogsStack: a panic is logged as one line at error level, its
// first line and where it was raised, then in full with the stack at
// debug level.
func TestPanicLogsStack(t *testing.T) {
	tests := []struct {
		name  string
		fn    func()
		first string // the error record, up to where it happened
		full  string // the start of the debug record
	}{
		{"value", func() { panic("boom") }, "panic: boom (in ", "panic: boom\n"},
		{"lines", func() { panic("two\nlines") }, "panic: two (in ", "panic: two\nlines\n"},
		{"runtime error", func() { _ = []int{}[len(os.Args)] }, "panic: runtime error: index out of range [", "panic: runtime error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeABI{task: "boom"}
			callTask(f, "boom", typed(func(Ctx, struct{}) (struct{}, error) { tt.fn(); return struct{}{}, nil }))
			if len(f.logs) != 2 {
				t.Fatalf("logs = %q, want two records", f.logs)
			}
			e, d := f.logs[0], f.logs[1]
			// The site is the function literal of the table, in this file.
			if e.level != int32(slog.LevelError) || !strings.HasPrefix(e.msg, tt.first) || strings.Contains(e.msg, "\n") ||
				!strings.Contains(e.msg, "(in github.com/spindle-hq/spindle/guest-sdk.TestPanicLogsStack.func") ||
				!strings.Contains(e.msg, " at guest-sdk/sdk_test.go:") || !strings.HasSuffix(e.msg, ")") {
				t.Errorf("error record = %d %q, want level 8, one line %q... and the panic's site in sdk_test.go", e.level, e.msg, tt.first)
			}
			if d.level != int32(slog.LevelDebug) || !strings.HasPrefix(d.msg, tt.full) || !strings.Contains(d.msg, "TestPanicLogsStack") {
				t.Errorf("debug record = %d %q, want level -4, %q and a stack", d.level, d.msg, tt.full)
			}
		})
	}
}

func TestSend(t *testing.T) {
	granted := Channel{Context: 7, Handle: 1 << 20}
	other := Channel{Context: 7, Handle: 2}
	f := &fakeABI{task: "send", granted: []Channel{granted}}
	var leaked Ctx
	var errs []error
	status := callTask(f, "send", func(ctx Ctx, _ []byte) ([]byte, error) {
		leaked = ctx
		errs = append(errs,
			ctx.Send(granted, map[string]int{"i": 1}),
			ctx.SendRaw(granted, []byte("raw bytes")),
			ctx.Send(other, 1),
			ctx.Send(granted, make(chan int)))
		return nil, nil
	})
	if status != 0 {
		t.Fatalf("serve = %d (%v), want 0", status, f.errMsg)
	}
	for i, want := range []error{nil, nil, ErrDenied} {
		if err := errs[i]; !errors.Is(err, want) {
			t.Errorf("send %d: err = %v, want %v", i, err, want)
		}
	}
	if errs[3] == nil || !strings.Contains(errs[3].Error(), "encode") {
		t.Errorf("Send(chan) = %v, want an encoding error", errs[3])
	}
	if len(f.sends) != 2 {
		t.Fatalf("sends = %+v, want 2", f.sends)
	}
	var m map[string]int
	if err := msgpack.Unmarshal(f.sends[0].data, &m); err != nil || m["i"] != 1 || f.sends[0].raw {
		t.Errorf("send 0 = %+v (decoded %v, %v), want msgpack {i: 1}", f.sends[0], m, err)
	}
	if s := f.sends[1]; string(s.data) != "raw bytes" || !s.raw || s.ch != granted {
		t.Errorf("send 1 = %+v, want raw \"raw bytes\" on %v", s, granted)
	}
	if err := leaked.Send(granted, 1); !errors.Is(err, ErrReturned) {
		t.Errorf("Send after return = %v, want ErrReturned", err)
	}
	leaked.Info("after return")
	if len(f.logs) != 0 {
		t.Errorf("logs = %q, want none", f.logs)
	}
}

func TestSendErrors(t *testing.T) {
	for _, rc := range []int32{codeMemory, codeLimit, codeDenied, codeInvalid, codeFailed, -99} {
		h := sendCode(rc)
		err := Ctx{&call{h: h}}.Send(Channel{1, 2}, 3)
		if err == nil || rc != -99 && !errors.Is(err, codeErr(rc)) {
			t.Errorf("Send with host code %d = %v, want %v", rc, err, codeErr(rc))
		}
		if !strings.Contains(err.Error(), "channel 1/2") {
			t.Errorf("Send with host code %d = %q, want it to name channel 1/2", rc, err)
		}
	}
}

// sendCode is a fake host whose send returns a fixed code.
type sendCode int32

func (sendCode) taskName([]byte) int32              { return 0 }
func (sendCode) inputLen() int32                    { return 0 }
func (sendCode) inputRead([]byte) int32             { return 0 }
func (sendCode) outputWrite([]byte) int32           { return 0 }
func (sendCode) exec([]byte, []byte) int32          { return codeFailed }
func (sendCode) errorSet([]byte) int32              { return 0 }
func (sendCode) log(int32, []byte) int32            { return 0 }
func (s sendCode) send(_, _ []byte, _ uint32) int32 { return int32(s) }

func TestLog(t *testing.T) {
	type logFunc func(Ctx, string, ...any)
	tests := []struct {
		name  string
		log   logFunc
		level slog.Level
		msg   string
		args  []any
		want  string
	}{
		{"no args", Ctx.Info, slog.LevelInfo, "step", nil, "step"},
		{"pairs", Ctx.Info, slog.LevelInfo, "step", []any{"i", 3, "of", 10}, "step i=3 of=10"},
		{"quoting", Ctx.Warn, slog.LevelWarn, "read", []any{"path", "a b", "q", `"`}, `read path="a b" q="\""`},
		{"attr", Ctx.Debug, slog.LevelDebug, "x", []any{slog.Bool("ok", true)}, "x ok=true"},
		{"group", Ctx.Error, slog.LevelError, "x", []any{slog.Group("g", "a", 1)}, "x g.a=1"},
		{"odd", Ctx.Info, slog.LevelInfo, "x", []any{"k", 1, "dangling"}, "x k=1 !BADKEY=dangling"},
		{"empty and unicode", Ctx.Info, slog.LevelInfo, "x", []any{"e", "", "u", "héllo", "nl", "a\nb"}, `x e="" u=héllo nl="a\nb"`},
		{"empty attr elided", Ctx.Info, slog.LevelInfo, "x", []any{slog.Attr{}, "k", 1}, "x k=1"},
		{"error value", Ctx.Error, slog.LevelError, "x", []any{"err", os.ErrNotExist}, `x err="file does not exist"`},
		{"custom level", func(c Ctx, msg string, args ...any) { c.Log(slog.Level(2), msg, args...) }, 2, "x", nil, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeABI{}
			tt.log(Ctx{&call{h: f}}, tt.msg, tt.args...)
			if len(f.logs) != 1 {
				t.Fatalf("logs = %q, want one", f.logs)
			}
			if got := f.logs[0]; got.level != int32(tt.level) || got.msg != tt.want {
				t.Errorf("Log(%q, %v) = %d %q, want %d %q", tt.msg, tt.args, got.level, got.msg, tt.level, tt.want)
			}
		})
	}
}

// countingABI counts log calls on top of fakeABI.
type countingABI struct {
	*fakeABI
	logCalls int
}

func (c *countingABI) log(level int32, b []byte) int32 {
	c.logCalls++
	return c.fakeABI.log(level, b)
}

func TestLogBudget(t *testing.T) {
	h := &countingABI{fakeABI: &fakeABI{logBudget: 25}}
	ctx := Ctx{&call{h: h}}
	for i := range 10 {
		ctx.Info("line " + strconv.Itoa(i)) // 6 bytes each
	}
	if len(h.logs) != 4 {
		t.Errorf("logged %q, want the 4 lines that fit in 25 bytes", h.logs)
	}
	if h.logCalls != 5 {
		t.Errorf("log called %d times, want 5: none after ERR_LIMIT", h.logCalls)
	}
}

func TestZeroCtx(t *testing.T) {
	var ctx Ctx
	ctx.Info("nowhere")
	if err := ctx.Send(Channel{}, 1); !errors.Is(err, ErrReturned) {
		t.Errorf("zero Ctx Send = %v, want ErrReturned", err)
	}
	if ctx.Task() != "" {
		t.Errorf("zero Ctx Task() = %q, want \"\"", ctx.Task())
	}
}

// The host's routing.Sender, which a caller puts in a task's input.
type routingSender struct {
	Context uint32 `msgpack:"ctx"`
	Handle  uint32 `msgpack:"handle"`
}

func TestChannelShape(t *testing.T) {
	ch := Channel{Context: 3, Handle: 70000}
	var m map[string]uint32
	if err := msgpack.Unmarshal(mustMarshal(t, ch), &m); err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint32{"ctx": 3, "handle": 70000}; !reflect.DeepEqual(m, want) {
		t.Errorf("Channel encodes as %v, want %v", m, want)
	}
	var back Channel
	if err := msgpack.Unmarshal(mustMarshal(t, routingSender{3, 70000}), &back); err != nil || back != ch {
		t.Errorf("Sender decodes as Channel %+v (%v), want %+v", back, err, ch)
	}
	// A Sender nested in a task's input, as a caller sends it.
	type in struct {
		N  int     `msgpack:"n"`
		Ch Channel `msgpack:"progress"`
	}
	var got in
	b := mustMarshal(t, map[string]any{"n": 2, "progress": routingSender{3, 70000}})
	if err := msgpack.Unmarshal(b, &got); err != nil || got.Ch != ch || got.N != 2 {
		t.Errorf("Unmarshal(%x) = %+v (%v), want channel %+v", b, got, err, ch)
	}
}

func TestRegister(t *testing.T) {
	Register("test.register.hello", hello)
	RegisterRaw("test.register.raw", func(Ctx, []byte) ([]byte, error) { return []byte("raw"), nil })

	f := &fakeABI{task: "test.register.hello", input: mustMarshal(t, helloIn{"pkg"})}
	if status := serve(f, &tasks); status != 0 {
		t.Fatalf("serve = %d (%v), want 0", status, f.errMsg)
	}
	var out helloOut
	if err := msgpack.Unmarshal(f.output, &out); err != nil || out.Greeting != "hello, pkg" {
		t.Errorf("output = %+v (%v), want hello, pkg", out, err)
	}
	f = &fakeABI{task: "test.register.raw"}
	if status := serve(f, &tasks); status != 0 || string(f.output) != "raw" {
		t.Errorf("serve = %d, output %q, want 0, \"raw\"", status, f.output)
	}

	panics := []struct {
		name string
		fn   func()
		want string
	}{
		{"duplicate", func() { Register("test.register.hello", hello) }, `task "test.register.hello" registered twice`},
		{"duplicate raw", func() { RegisterRaw("test.register.hello", func(Ctx, []byte) ([]byte, error) { return nil, nil }) }, "registered twice"},
		{"empty name", func() { Register("", hello) }, "empty task name"},
		{"nil", func() { Register[struct{}, struct{}]("test.register.nil", nil) }, "nil function"},
		{"nil raw", func() { RegisterRaw("test.register.nilraw", nil) }, "nil function"},
	}
	for _, p := range panics {
		t.Run(p.name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, _ := v.(string); !strings.Contains(s, p.want) {
					t.Errorf("panic = %v, want one containing %q", v, p.want)
				}
			}()
			p.fn()
		})
	}
}

// TestImports keeps the SDK free of the host side: it may import only the
// standard library and msgpack.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && path != "github.com/vmihailenco/msgpack/v5" {
				t.Errorf("%s imports %s: the SDK may import only the standard library and msgpack", name, path)
			}
		}
	}
}
