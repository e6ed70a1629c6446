// Command goreactor is a Go reactor for the host tests: it exports
// spindle_call, dispatching on the task name, and noop directly. It binds
// the spindle functions itself, without the guest SDK.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport spindle task_name
func taskName(buf unsafe.Pointer, capacity int32) int32

//go:wasmimport spindle input_len
func inputLen() int32

//go:wasmimport spindle input_read
func inputRead(buf unsafe.Pointer, capacity int32) int32

//go:wasmimport spindle output_write
func outputWrite(ptr unsafe.Pointer, n int32) int32

//go:wasmimport spindle error_set
func errorSet(ptr unsafe.Pointer, n int32) int32

//go:wasmimport spindle log
func logMsg(level int32, ptr unsafe.Pointer, n int32) int32

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func name() string {
	buf := make([]byte, 64)
	n := taskName(bytesPtr(buf), int32(len(buf)))
	return string(buf[:n])
}

func input() []byte {
	buf := make([]byte, inputLen())
	inputRead(bytesPtr(buf), int32(len(buf)))
	return buf
}

func output(b []byte) { outputWrite(bytesPtr(b), int32(len(b))) }

var tasks = map[string]func(in []byte) error{
	"echo": func(in []byte) error {
		output(in)
		return nil
	},
	"fail": func(in []byte) error { return fmt.Errorf("failed on %q", in) },
	"alloc": func([]byte) error {
		for {
			keep = append(keep, make([]byte, 1<<20))
		}
	},
	"garbage": func([]byte) error {
		b := make([]byte, 1<<20)
		b[len(b)-1] = 1
		output(b[len(b)-1:])
		return nil
	},
	"panic": func([]byte) error { panic("oh no") },
	"log": func(in []byte) error {
		logMsg(4, bytesPtr(in), int32(len(in)))
		return nil
	},
	"sandbox": func([]byte) error {
		output([]byte(sandbox()))
		return nil
	},
	"state": func([]byte) error {
		output([]byte(state()))
		return nil
	},
	"sleep": func(in []byte) error {
		d, err := time.ParseDuration(string(in))
		if err != nil {
			return err
		}
		time.Sleep(d)
		return nil
	},
}

var keep [][]byte

//go:wasmexport spindle_call
func spindleCall() int32 {
	defer runtime.Gosched() // let the GC run: see docs/abi.md
	t, ok := tasks[name()]
	if !ok {
		msg := []byte("no such task")
		errorSet(bytesPtr(msg), int32(len(msg)))
		return 1
	}
	if err := t(input()); err != nil {
		msg := []byte(err.Error())
		errorSet(bytesPtr(msg), int32(len(msg)))
		return 1
	}
	return 0
}

//go:wasmexport noop
func noop() int32 { return 0 }

// sandbox reports what the guest can see of its host.
func sandbox() string {
	var b strings.Builder
	fmt.Fprintf(&b, "year=%d\n", time.Now().Year())
	fmt.Fprintf(&b, "env=%q\n", os.Environ())
	if _, err := os.ReadDir("/data"); err != nil {
		fmt.Fprintf(&b, "data=error\n")
	} else {
		fmt.Fprintf(&b, "data=ok\n")
	}
	fmt.Fprintf(&b, "rand=%s\n", randHex())
	return b.String()
}

// What the package's initialization saw, for state.
var (
	initTime  = time.Now()
	initRand  = randHex()
	initFast  = mrand.Uint64()
	calls     int
	initOrder = mapOrder()
)

func randHex() string {
	r := make([]byte, 8)
	rand.Read(r)
	return hex.EncodeToString(r)
}

// mapOrder is the iteration order of a map, which the runtime's hash seed
// decides.
func mapOrder() string {
	m := make(map[int]bool, 16)
	for i := range 16 {
		m[i] = true
	}
	var b strings.Builder
	for k := range m {
		fmt.Fprintf(&b, "%x", k)
	}
	return b.String()
}

// state reports what the instance's initialization saw and what the call
// sees of the clocks, the random sources and the instance's own state:
// the host's snapshot tests compare it between fresh instances made with
// and without a snapshot.
func state() string {
	calls++
	return fmt.Sprintf("calls=%d init=%d/%s/%s/%x/%s now=%d since=%d rand=%s fast=%x order=%s",
		calls, initTime.UnixNano(), initTime.String(), initRand, initFast, initOrder,
		time.Now().UnixNano(), time.Since(initTime), randHex(), mrand.Uint64(), mapOrder())
}

func main() {}
