//go:build wasip1

// Command bad is a Spindle reactor of misbehaving tasks, for testing that
// the host contains them. Each runs until the host stops it or reports what
// it managed to do as a map (errors as strings), for a test to assert on:
//
//   - "loop": spins forever without allocating (timeout).
//   - "membomb": allocates 1 MiB blocks until memory runs out (memory).
//   - "trap": stores to address {"addr": n} (default 0xFFFFFFF0), far past
//     the end of linear memory: a wasm trap, which the SDK cannot recover.
//   - "recurse": recurses without end. Go's stack lives in linear memory,
//     so this runs out of memory (the runtime prints "fatal error: out of
//     memory" and traps with unreachable) rather than overflowing the
//     engine's call stack; examples/wasm/c-bad's "recurse" does that.
//   - "escape_dotdot": reads through ".." out of the /data mount, both by
//     path (which Go's wasip1 os package cleans before the host sees it)
//     and with openat on the mount's directory (".." reaches the host).
//   - "escape_symlink": makes /rw/link -> ../SECRET and reads through it,
//     and reads /data/link, a symlink the test put in the mount.
//   - "output_flood": writes 1 MiB chunks of output with the raw
//     output_write import until the host refuses one (output_limit).
//   - "log_flood": logs {"n": n} lines (default 100 000) at info level,
//     past the log budget.
//   - "send_flood": sends raw chunks of {"chunk": n} bytes (default
//     1 MiB) on the channel {"ch": channel} until the host refuses one or
//     {"max": n} bytes (default 1 GiB) are sent (the send budget).
//   - "stdout_flood": writes {"n": n} (default 1.6 M) one-byte writes to
//     stdout, each its own fd_write (output coalescing and its bounds).
//   - "empty_logs": calls the log import {"n": n} times (default 200 000)
//     with an empty message, until the host refuses one (the log budget's
//     per-record cost).
//   - "panic": panics with a two-line value; the SDK recovers it (kind
//     guest) and logs it.
//   - "goroutine_panic": panics in a goroutine of its own, where the SDK
//     cannot recover it: the Go runtime prints the panic and every
//     goroutine's stack to stderr and exits with status 2.
//   - "probe": reports what the sandbox shows: clock, environment, args,
//     "/", randomness; by default none of it should be the host's.
//
// For the escapes the inputs {"data": dir, "rw": dir} override the mount
// points /data and /rw.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"syscall"
	"time"
	"unsafe"

	"github.com/spindle-hq/spindle/guest-sdk"
)

// Straight to the host, past the SDK, which writes output only once.
//
//go:wasmimport spindle output_write
func outputWrite(ptr unsafe.Pointer, len int32) int32

// Straight to the host, past the SDK's formatting.
//
//go:wasmimport spindle log
func rawLog(level int32, ptr unsafe.Pointer, len int32) int32

func init() {
	guest.Register("loop", loop)
	guest.Register("membomb", membomb)
	guest.Register("trap", trap)
	guest.Register("recurse", recurse)
	guest.Register("escape_dotdot", escapeDotdot)
	guest.Register("escape_symlink", escapeSymlink)
	guest.Register("output_flood", outputFlood)
	guest.Register("log_flood", logFlood)
	guest.Register("send_flood", sendFlood)
	guest.Register("stdout_flood", stdoutFlood)
	guest.Register("empty_logs", emptyLogs)
	guest.Register("probe", probe)
	guest.Register("panic", panicky)
	guest.Register("goroutine_panic", goroutinePanic)
}

func panicky(guest.Ctx, struct{}) (struct{}, error) {
	panic("bad: panicking on purpose\nand a second line")
}

func goroutinePanic(guest.Ctx, struct{}) (struct{}, error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m map[string]int
		m["x"] = 1 // a nil map: "assignment to entry in nil map"
	}()
	<-done
	return struct{}{}, nil
}

type sendFloodIn struct {
	Ch    guest.Channel `msgpack:"ch"`
	Chunk int           `msgpack:"chunk"`
	Max   int           `msgpack:"max"`
}

func sendFlood(ctx guest.Ctx, in sendFloodIn) (map[string]any, error) {
	if in.Chunk <= 0 {
		in.Chunk = 1 << 20
	}
	if in.Max <= 0 {
		in.Max = 1 << 30
	}
	chunk := make([]byte, in.Chunk)
	sent, n := 0, 0
	for sent < in.Max {
		if err := ctx.SendRaw(in.Ch, chunk); err != nil {
			return nil, fmt.Errorf("send_flood: %w after %d sends, %d bytes", err, n, sent)
		}
		sent += len(chunk)
		n++
	}
	return map[string]any{"sent": sent, "sends": n}, nil
}

type countIn struct {
	N int `msgpack:"n"`
}

func stdoutFlood(_ guest.Ctx, in countIn) (map[string]any, error) {
	if in.N <= 0 {
		in.N = 1_600_000
	}
	b := []byte{'x'}
	for i := range in.N {
		if _, err := os.Stdout.Write(b); err != nil {
			return nil, fmt.Errorf("stdout_flood: write %d: %w", i, err)
		}
	}
	return map[string]any{"writes": in.N}, nil
}

func emptyLogs(_ guest.Ctx, in countIn) (map[string]any, error) {
	if in.N <= 0 {
		in.N = 200_000
	}
	var b [1]byte
	for i := range in.N {
		if rc := rawLog(0, unsafe.Pointer(&b[0]), 0); rc < 0 {
			return map[string]any{"logged": i, "rc": int(rc)}, nil
		}
	}
	return map[string]any{"logged": in.N}, nil
}

func loop(guest.Ctx, struct{}) (struct{}, error) {
	//lint:ignore SA5002 spinning is the point
	for {
	}
}

func membomb(guest.Ctx, struct{}) (struct{}, error) {
	var hoard [][]byte
	for i := 0; ; i++ {
		b := make([]byte, 1<<20)
		b[len(b)-1] = byte(i)
		hoard = append(hoard, b) //lint:ignore SA4010 kept only to stay reachable
	}
}

type trapIn struct {
	Addr uint32 `msgpack:"addr"`
}

func trap(_ guest.Ctx, in trapIn) (map[string]any, error) {
	addr := uintptr(in.Addr)
	if addr == 0 {
		addr = 0xFFFFFFF0
	}
	p := (*uint64)(unsafe.Add(unsafe.Pointer(nil), addr))
	*p = 0xdead
	return map[string]any{"wrote": addr}, nil // memory reached that far
}

func recurse(guest.Ctx, struct{}) (map[string]any, error) {
	return map[string]any{"depth": down(0)}, nil
}

// down never returns. Go keeps goroutine stacks in linear memory and grows
// them by copying, so this ends when a stack copy meets the memory limit
// (the runtime's "fatal error: out of memory", then an unreachable trap),
// long before the engine's own call stack overflows. pad makes each frame
// large so that comes quickly.
//
//go:noinline
func down(n int) int {
	var pad [256]byte
	pad[n%len(pad)] = byte(n)
	//lint:ignore SA5007 recursing without end is the point
	return down(n+1) + int(pad[(n*7)%len(pad)])
}

// attempt is what came of trying to read a file: the start of what was
// read, or the error.
type attempt struct {
	Data string `msgpack:"data,omitempty"`
	Err  string `msgpack:"err,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func readFile(p string) attempt {
	b, err := os.ReadFile(p)
	return attempt{Data: clip(b), Err: errString(err)}
}

// readAt opens name relative to the directory dir with openat, so the host
// sees name exactly as given, ".." and all.
func readAt(dir, name string) attempt {
	d, err := os.Open(dir)
	if err != nil {
		return attempt{Err: "open " + dir + ": " + err.Error()}
	}
	defer d.Close()
	fd, err := syscall.Openat(int(d.Fd()), name, syscall.O_RDONLY, 0)
	if err != nil {
		return attempt{Err: fmt.Sprintf("openat %s %s: %v", dir, name, err)}
	}
	f := os.NewFile(uintptr(fd), path.Join(dir, name))
	defer f.Close()
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if n > 0 {
		err = nil
	}
	return attempt{Data: clip(buf[:n]), Err: errString(err)}
}

func clip(b []byte) string {
	return string(b[:min(len(b), 256)])
}

type mounts struct {
	Data string `msgpack:"data"`
	RW   string `msgpack:"rw"`
}

func (m *mounts) defaults() {
	if m.Data == "" {
		m.Data = "/data"
	}
	if m.RW == "" {
		m.RW = "/rw"
	}
}

func escapeDotdot(_ guest.Ctx, in mounts) (map[string]attempt, error) {
	in.defaults()
	out := make(map[string]attempt)
	for _, p := range []string{"/../etc/passwd", "/../../SECRET", "/../SECRET"} {
		out[in.Data+p] = readFile(in.Data + p)
	}
	for _, name := range []string{"../SECRET", "../../SECRET", "../etc/passwd", "sub/../../SECRET", "/etc/passwd"} {
		out["openat "+in.Data+" "+name] = readAt(in.Data, name)
	}
	return out, nil
}

func escapeSymlink(_ guest.Ctx, in mounts) (map[string]attempt, error) {
	in.defaults()
	out := make(map[string]attempt)
	link := path.Join(in.RW, "link")
	_ = os.Remove(link) // left by an earlier call
	if err := os.Symlink("../SECRET", link); err != nil {
		out["symlink "+link] = attempt{Err: err.Error()}
	} else {
		out["symlink "+link] = attempt{Data: "made"}
	}
	out[link] = readFile(link)
	out["openat "+in.RW+" link"] = readAt(in.RW, "link")
	found := path.Join(in.Data, "link")
	out[found] = readFile(found)
	out["openat "+in.Data+" link"] = readAt(in.Data, "link")
	return out, nil
}

type floodIn struct {
	Chunk int `msgpack:"chunk"` // bytes per output_write; default 1 MiB
	Max   int `msgpack:"max"`   // give up after this many bytes; default 1 GiB
}

func outputFlood(_ guest.Ctx, in floodIn) (map[string]any, error) {
	if in.Chunk <= 0 {
		in.Chunk = 1 << 20
	}
	if in.Max <= 0 {
		in.Max = 1 << 30
	}
	chunk := make([]byte, in.Chunk)
	for i := range chunk {
		chunk[i] = 'x'
	}
	written := 0
	for written < in.Max {
		if rc := outputWrite(unsafe.Pointer(&chunk[0]), int32(len(chunk))); rc < 0 {
			return nil, fmt.Errorf("output_flood: output_write returned %d after %d bytes", rc, written)
		}
		written += len(chunk)
	}
	return map[string]any{"written": written}, nil
}

type logFloodIn struct {
	N int `msgpack:"n"`
}

func logFlood(ctx guest.Ctx, in logFloodIn) (map[string]any, error) {
	if in.N <= 0 {
		in.N = 100_000
	}
	for i := range in.N {
		ctx.Info("log_flood", "i", i, "of", in.N)
	}
	return map[string]any{"lines": in.N}, nil
}

// probeEnv are the variables probe reports, set or not.
var probeEnv = []string{"HOME", "PATH", "USER", "GREETING", "SPINDLE_SECRET"}

func probe(guest.Ctx, struct{}) (map[string]any, error) {
	out := make(map[string]any)
	now := time.Now()
	out["year"] = now.Year()
	out["time"] = now.UTC().Format(time.RFC3339Nano)
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	out["sleep_20ms_took_ns"] = int64(time.Since(start))

	env := make(map[string]string)
	for _, name := range probeEnv {
		env[name] = os.Getenv(name)
	}
	out["env"] = env
	out["environ"] = append([]string{}, os.Environ()...)
	out["args"] = append([]string{}, os.Args...)

	if entries, err := os.ReadDir("/"); err != nil {
		out["root_err"] = err.Error()
	} else {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		out["root"] = names
	}
	if wd, err := os.Getwd(); err != nil {
		out["wd_err"] = err.Error()
	} else {
		out["wd"] = wd
	}

	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		out["random_err"] = err.Error()
	} else {
		out["random"] = hex.EncodeToString(b)
	}
	return out, nil
}

// main never runs in a reactor; the package must still have one.
func main() {}
