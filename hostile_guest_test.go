package spindle_test

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	spindle "github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestHostileGuestsInAChild runs the table.grow bomb and an unbounded
// recursion in a real child context, several at once, beside an innocent
// call: the child survives, the hostile calls fail with their kinds (or get
// -1 from table.grow), and the sibling call succeeds.
func TestHostileGuestsInAChild(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := taskContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	c := startLocal(t, ctx, m, "hostile")
	var tm testutil.WasmModule
	task := tm.Type(nil, []byte{testutil.WasmI32})
	tm.Memory(1, -1)
	tm.Table(1, -1)
	// table.grow(null, 0xFFFFFFF0) != -1
	grow := tm.Func(task, nil, []byte{0xd0, 0x70, 0x41, 0x70, 0xfc, 15, 0, 0x41, 0x7f, 0x47})
	rec := tm.Func(task, nil, []byte{0x10, 1})
	tm.Export("grow", 0, grow)
	tm.Export("recurse", 0, rec)
	dir := t.TempDir()
	path := dir + "/hostile.wasm"
	if err := os.WriteFile(path, tm.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	hostile := addModule(t, m, path)
	hello := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		name := "grow"
		if i%2 == 1 {
			name = "recurse"
		}
		wg.Go(func() {
			_, errs[i] = c.Run(ctx, spindle.Task{Module: hostile, Task: name, Limits: spindle.Limits{MemoryPages: 16}})
		})
	}
	res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: []byte("sibling")})
	wg.Wait()
	if err != nil || string(res.Output) != "hello, sibling" {
		t.Errorf("sibling call: %+v, %v", res, err)
	}
	for i, err := range errs {
		var te *spindle.TaskError
		switch {
		case i%2 == 0 && err != nil:
			t.Errorf("grow: %v, want success (table.grow returned -1)", err)
		case i%2 == 1 && (!errors.As(err, &te) || te.Kind != "stack_overflow"):
			t.Errorf("recurse: %v, want kind stack_overflow", err)
		}
	}
	st := stats(t, ctx, c)
	t.Logf("child after the attack: %+v", st)
	if res, err := c.Run(ctx, spindle.Task{Module: hello, Task: "hello", Input: []byte("after")}); err != nil || !strings.Contains(string(res.Output), "after") {
		t.Errorf("call after: %+v, %v", res, err)
	}
}
