package wire

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// callBodies are CALL requests in the shapes a peer may send: what our own
// encoder writes, and what another encoder (or a hostile peer) may.
func callBodies(t testing.TB) map[string][]byte {
	t.Helper()
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	args := enc(map[string]any{"n": 1, "list": []any{"a", 2.5, nil, true}, "at": time.Unix(1, 2)})
	return map[string][]byte{
		"ours":              enc(&CallRequest{Fn: "echo", Args: enc("ping")}),
		"no args":           enc(&CallRequest{Fn: "ping"}),
		"nested args":       enc(&CallRequest{Fn: "f", Args: args}),
		"empty fn":          enc(map[string]any{"fn": "", "args": 1}),
		"args nil":          mustHex("82 a2 666e a1 66 a4 61726773 c0"),
		"args first":        mustHex("82 a4 61726773 93 01 02 03 a2 666e a1 66"),
		"unknown key":       mustHex("83 a1 78 92 c0 c3 a2 666e a1 66 a4 61726773 a0"),
		"repeated fn":       mustHex("82 a2 666e a1 61 a2 666e a1 62"),
		"str8 key":          mustHex("81 d9 02 666e a1 66"),
		"map16":             mustHex("de 0001 a2 666e a1 66"),
		"map32":             mustHex("df 00000001 a2 666e da 0001 66"),
		"fn not a string":   mustHex("81 a2 666e 01"),
		"fn bin":            mustHex("81 a2 666e c4 01 66"),
		"int key":           mustHex("81 01 a1 66"),
		"not a map":         mustHex("92 a2 666e a1 66"),
		"nil":               mustHex("c0"),
		"empty map":         mustHex("80"),
		"args ext":          mustHex("82 a2 666e a1 66 a4 61726773 d6 ff 00000001"),
		"args long str":     enc(&CallRequest{Fn: "f", Args: enc(string(bytes.Repeat([]byte("x"), 70000)))}),
		"args bin32 header": mustHex("82 a2 666e a1 66 a4 61726773 c6 00000002 0102"),
	}
}

// Unmarshal's hand decoder of a CallRequest gives exactly what msgpack's
// reflection does, or declines and lets msgpack decode (and refuse) it.
func TestFastDecodeMatchesMsgpack(t *testing.T) {
	for name, b := range callBodies(t) {
		t.Run(name, func(t *testing.T) {
			if err := Check(b); err != nil {
				t.Fatalf("Check: %v", err)
			}
			compareFast(t, b)
		})
	}
}

// compareFast decodes b by hand and by reflection and fails t where they
// differ. It reports whether the hand decoder took b.
func compareFast(t testing.TB, b []byte) bool {
	t.Helper()
	var slow CallRequest
	slowErr := msgpack.Unmarshal(b, &slow)
	var fast CallRequest
	took := fast.decodeFast(b)
	if !took {
		if !reflect.DeepEqual(fast, CallRequest{}) {
			t.Fatalf("decodeFast(%x) declined but changed the value to %+v", b, fast)
		}
		return false
	}
	if slowErr != nil {
		t.Fatalf("decodeFast(%x) took a body msgpack refuses (%v): %+v", b, slowErr, fast)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decodeFast(%x) = %+v, msgpack = %+v", b, fast, slow)
	}
	return true
}

func TestFastDecodeTakesOurBodies(t *testing.T) {
	bodies := callBodies(t)
	for _, name := range []string{"ours", "no args", "nested args", "args first", "unknown key", "repeated fn", "map16", "map32", "args long str"} {
		if !compareFast(t, bodies[name]) {
			t.Errorf("%s: the hand decoder declined a plain request", name)
		}
	}
	// The args are a copy: the body may be a pooled buffer reused later.
	b := bodies["ours"]
	var r CallRequest
	if err := Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if r.Fn != "echo" || !bytes.Equal(r.Args, mustHex("a4 70696e67")) {
		t.Fatalf("after the body was overwritten, the request reads %q %x", r.Fn, r.Args)
	}
}

func BenchmarkUnmarshalCallRequest(b *testing.B) {
	args, _ := msgpack.Marshal("ping")
	body, _ := msgpack.Marshal(&CallRequest{Fn: "echo", Args: args})
	b.ReportAllocs()
	for b.Loop() {
		var r CallRequest
		if err := Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}
