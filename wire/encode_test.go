package wire

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The reflection's view of the hand-encoded types: the same fields and
// tags, no methods.
type (
	limitsReflect     Limits
	runTaskReflect    RunTask
	taskResultReflect TaskResult
)

// TestEncodersMatchReflection: the hand encoders write exactly msgpack's
// reflection bytes, for values with every subset of fields set, the
// integers at the edges of each encoding size, and for a value and a
// pointer alike.
func TestEncodersMatchReflection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ints := []int64{0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	pick := func() int64 {
		if rng.IntN(2) == 0 {
			return 0
		}
		return ints[rng.IntN(len(ints))]
	}
	str := func() string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return string(bytes.Repeat([]byte("s"), rng.IntN(300)))
	}
	same := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\nhand       %x\nreflection %x", what, got, want)
		}
	}
	enc := func(v any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", v, err)
		}
		return b
	}
	for range 2000 {
		l := Limits{TimeoutNs: pick(), MemoryPages: uint32(pick()), OutputBytes: pick(), LogBytes: pick(),
			OutputMessages: pick(), LogRecords: pick(), SendBytes: pick(), SendMessages: pick(),
			StackBytes: pick(), OpenFiles: int(pick()), DiskBytes: pick()}
		lr := limitsReflect(l)
		same("Limits", enc(&l), enc(&lr))
		same("Limits value", enc(l), enc(lr))

		r := RunTask{Module: str(), Task: str(), Limits: l, Pooled: rng.IntN(2) == 0,
			ID: uint64(pick()), DeadlineNs: pick(), Clock: rng.IntN(2) == 0, Random: rng.IntN(2) == 0, DevNull: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			r.Input = []byte(str() + "x")
		}
		if rng.IntN(4) == 0 {
			r.Args = []string{"a", str()}
			r.Env = map[string]string{"K": str()}
			r.Stdin = &Channel{Context: 3, Handle: uint32(pick())}
			r.Output = &Channel{Context: 1, Handle: 70000}
			r.Mounts = []Mount{{Host: "/h", Guest: "/g", ReadOnly: true, FileMode: 0o644}}
			r.Channels = []Channel{{Context: 2, Handle: 9}}
			r.Workspace = &Workspace{Input: "d", Outputs: []string{"o"}, OutputFiles: 3}
			r.Exec = []ExecGrant{{Path: "/bin/x", TimeoutNs: pick()}}
		}
		rr := runTaskReflect(r)
		same("RunTask", enc(&r), enc(&rr))
		same("RunTask value", enc(r), enc(rr))

		res := TaskResult{ExitCode: int(pick()), Command: rng.IntN(2) == 0, OutputTree: str()}
		if rng.IntN(2) == 0 {
			res.Output = []byte(str() + "o")
		}
		if rng.IntN(3) == 0 {
			res.Error = &TaskError{Kind: "trap", Message: str(), ExitCode: int(pick())}
		}
		resr := taskResultReflect(res)
		same("TaskResult", enc(&res), enc(&resr))
		same("TaskResult value", enc(res), enc(resr))

		// And back: what the hand encoder writes decodes to the value.
		var back RunTask
		if err := Unmarshal(enc(&r), &back); err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		same("RunTask round trip", enc(&back), enc(&r))
	}
}
