package guest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// taskFunc is a registered task in its raw form: input bytes in, output
// bytes out.
type taskFunc func(ctx Ctx, in []byte) ([]byte, error)

// registry maps task names to their functions.
type registry struct {
	mu sync.Mutex
	m  map[string]taskFunc // guarded by mu
}

// tasks are the tasks this module serves. It is the package's one piece of
// mutable state, and it must be: a reactor has no main to construct
// anything in, so tasks are registered from init functions.
var tasks registry

func (r *registry) add(name string, fn taskFunc) {
	if name == "" {
		panic("guest: Register: empty task name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("guest: Register: task %q registered twice", name))
	}
	if r.m == nil {
		r.m = make(map[string]taskFunc)
	}
	r.m[name] = fn
}

func (r *registry) lookup(name string) (taskFunc, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn, ok := r.m[name]
	return fn, ok
}

func (r *registry) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.m))
	for name := range r.m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Register makes fn the task called name. Its input is decoded from msgpack
// into an In (empty input gives the zero In) and its result encoded as
// msgpack. An input that does not fit In fails the call, kind "guest",
// naming the first field that does not fit, by its msgpack name, with what
// In wants there and what the input has (`input field "items[2].size":
// want integer, got string "big"`); an array where a struct is wanted
// (In itself, or a struct inside it: a field, a slice's element, a map's
// value, at any depth) is refused so too ("input: want map, got array of
// 1", `input field "progress": want map, got array of 2`), though msgpack
// would fill the struct's fields from it by position. (For an In that
// holds a struct below its top, that check decodes the input a second
// time, as generic values.) A struct that asks for arrays (a _msgpack
// field tagged ",as_array") or decodes itself is left to msgpack. An
// error fn returns reaches the caller as an error of kind
// "guest" with err.Error() as its message; so does a panic, as
// "panic: <value>", with the stack logged at error level.
//
// Call Register from an init function: a reactor's main never runs, and
// the host may call a task as soon as the module is initialized. It panics
// if name is empty, fn is nil, or name is already registered.
func Register[In, Out any](name string, fn func(ctx Ctx, in In) (Out, error)) {
	if fn == nil {
		panic(fmt.Sprintf("guest: Register: nil function for task %q", name))
	}
	tasks.add(name, typed(fn))
}

// RegisterRaw makes fn the task called name, with the call's input and
// output as raw bytes; see Register.
func RegisterRaw(name string, fn func(ctx Ctx, in []byte) ([]byte, error)) {
	if fn == nil {
		panic(fmt.Sprintf("guest: RegisterRaw: nil function for task %q", name))
	}
	tasks.add(name, fn)
}

// typed wraps fn with msgpack decoding of its input and encoding of its
// output.
//
// Each task keeps one msgpack Decoder and Encoder, with the reader and the
// output buffer they use, across its calls: msgpack.Unmarshal and Marshal
// would take them from sync.Pools, which every GC empties, and allocate a
// reader, a buffer and the output on each call. Both are reset before each
// use, which leaves them as Unmarshal and Marshal would (no options, no
// dictionary), so the encoding is the same. Types the flat-struct codec
// takes (codec.go) skip msgpack's reflection altogether, and fall back to
// it for an input the codec cannot decode exactly. The output is written to the
// host before the next call of the task reuses the buffer. A call that
// finds them in use (calls of one task overlapping, which spindle_call
// never does) falls back to Unmarshal and Marshal.
func typed[In, Out any](fn func(Ctx, In) (Out, error)) taskFunc {
	var (
		mu  sync.Mutex
		rd  bytes.Reader
		dec = msgpack.NewDecoder(&rd)
		buf bytes.Buffer
		enc = msgpack.NewEncoder(&buf)
		// The flat-struct plans (codec.go), nil for types the fast path
		// does not take.
		inPlan  = planFlat(reflect.TypeFor[In]())
		outPlan = planFlat(reflect.TypeFor[Out]())
		out     []byte // outPlan's buffer; guarded by mu
	)
	decode := func(input []byte, in *In) error {
		if inPlan != nil && inPlan.decode(input, unsafe.Pointer(in)) {
			return nil
		}
		*in = *new(In) // the fast path may have set some fields
		if !mu.TryLock() {
			return msgpack.Unmarshal(input, in)
		}
		defer mu.Unlock()
		rd.Reset(input)
		dec.Reset(&rd)
		err := dec.Decode(in)
		rd.Reset(nil) // keep no reference to the input
		return err
	}
	encode := func(v *Out) ([]byte, error) {
		if !mu.TryLock() {
			if outPlan != nil {
				return outPlan.encode(nil, unsafe.Pointer(v)), nil
			}
			return msgpack.Marshal(v)
		}
		defer mu.Unlock()
		if outPlan != nil {
			if cap(out) > maxKeptOutput {
				out = nil
			}
			out = outPlan.encode(out[:0], unsafe.Pointer(v))
			return out, nil
		}
		if buf.Cap() > maxKeptOutput {
			buf = bytes.Buffer{} // do not keep a large output's buffer alive
		}
		buf.Reset()
		enc.Reset(&buf)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	structIn := takesMapOnly(reflect.TypeFor[In]())
	nested := nestedMapOnly(reflect.TypeFor[In]())
	return func(ctx Ctx, input []byte) ([]byte, error) {
		var in In
		if len(input) > 0 {
			if structIn && isArrayCode(input[0]) {
				// msgpack would fill the struct's fields from the array by
				// position: ["a"] would read as {"path": "a"}.
				return nil, fmt.Errorf("guest: task %s: %w", ctx.Task(), notAMap(input))
			}
			if err := decode(input, &in); err != nil {
				if ie := describeInput(input, reflect.TypeFor[In](), err); ie != nil {
					return nil, fmt.Errorf("guest: task %s: %w", ctx.Task(), ie)
				}
				return nil, fmt.Errorf("guest: task %s: decode input: %w", ctx.Task(), err)
			}
			if nested {
				// msgpack filled a struct inside In from an array, by
				// position, if the input had one there: refused as the
				// input as a whole is.
				if ie := arrayForStruct(input, reflect.TypeFor[In]()); ie != nil {
					return nil, fmt.Errorf("guest: task %s: %w", ctx.Task(), ie)
				}
			}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		b, err := encode(&out)
		if err != nil {
			return nil, fmt.Errorf("guest: task %s: encode output: %w", ctx.Task(), err)
		}
		return b, nil
	}
}

// maxKeptOutput is the largest output buffer a typed task keeps for its
// next call.
const maxKeptOutput = 64 << 10

// serve runs one task call, the body of the spindle_call export: it reads
// the task name and input, runs the registered function and writes its
// output. It returns the export's status: 0 on success; 1 on failure,
// after giving the message to error_set.
func serve(h abi, r *registry) int32 {
	name, err := readTaskName(h)
	if err != nil {
		return fail(h, err.Error())
	}
	fn, ok := r.lookup(name)
	if !ok {
		msg := fmt.Sprintf("no task %q in this module (it has: %s)", name, strings.Join(r.names(), ", "))
		if name == "" {
			msg = fmt.Sprintf("a task name is needed (this module has: %s)", strings.Join(r.names(), ", "))
		}
		h.errorSet([]byte(msg))
		return statusNotFound
	}
	input, err := readInput(h)
	if err != nil {
		return fail(h, fmt.Sprintf("guest: task %s: %v", name, err))
	}
	c := &call{h: h, task: name}
	out, err := run(c, fn, input)
	c.done.Store(true)
	if err != nil {
		return fail(h, err.Error())
	}
	if len(out) > 0 {
		if rc := h.outputWrite(out); rc < 0 {
			return fail(h, fmt.Sprintf("guest: task %s: write %d bytes of output: %v", name, len(out), codeErr(rc)))
		}
	}
	return 0
}

// run calls fn, turning a panic into an error. The panic is logged as
// one record at error level, its first line and where it happened
// (`panic: boom (in main.handler at task/main.go:23)`), so that an
// operator's log shows one readable line; the whole value and the stack
// follow at debug level.
func run(c *call, fn taskFunc, input []byte) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			msg := "panic: " + fmt.Sprint(v)
			first, _, _ := strings.Cut(msg, "\n")
			ctx := Ctx{c}
			if site := panicSite(); site != "" {
				first += " (" + site + ")"
			}
			ctx.Error(first)
			ctx.Debug(msg + "\n" + string(debug.Stack()))
			out, err = nil, errors.New(msg)
		}
	}()
	return fn(Ctx{c}, input)
}

// panicSite is where the panic being recovered was raised, as "in
// function at dir/file.go:line": the first frame below runtime.gopanic outside
// package runtime. Called from the deferred function that recovers.
func panicSite() string {
	var pcs [32]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return fmt.Sprintf("in %s at %s:%d", f.Function, shortFile(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}

// shortFile is the last directory and the name of a source file.
func shortFile(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		if j := strings.LastIndexByte(p[:i], '/'); j >= 0 {
			return p[j+1:]
		}
	}
	return p
}

// fail gives msg to error_set and returns the failure status.
// statusNotFound is what spindle_call returns for a task name it does not
// have (docs/abi.md): the caller sees kind not_found.
const statusNotFound = 2

func fail(h abi, msg string) int32 {
	h.errorSet([]byte(msg)) // nothing to do if it fails: the host reports the status
	return 1
}

func readTaskName(h abi) (string, error) {
	var small [64]byte
	buf := small[:]
	for {
		n := h.taskName(buf)
		if n < 0 {
			return "", fmt.Errorf("guest: read task name: %w", codeErr(n))
		}
		if int(n) <= len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, n)
	}
}

func readInput(h abi) ([]byte, error) {
	n := h.inputLen()
	if n < 0 {
		return nil, fmt.Errorf("read input length: %w", codeErr(n))
	}
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n)
	got := h.inputRead(buf)
	if got < 0 {
		return nil, fmt.Errorf("read input: %w", codeErr(got))
	}
	if got != n {
		return nil, fmt.Errorf("read input: got %d of %d bytes", got, n)
	}
	return buf, nil
}
