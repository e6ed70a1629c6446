package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// nested is n one-element arrays around a nil: 91 91 ... 91 c0.
func nested(n int) []byte {
	return append(bytes.Repeat([]byte{0x91}, n), 0xc0)
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// attrsBomb is a FORWARD_LOG body whose attrs declare 2^32-1 strings and
// hold none.
func attrsBomb() []byte {
	b := mustMarshal(&LogRecord{Context: "c", Msg: "m"})
	b[0]++ // one more field
	return append(b, mustHex("a5 6174747273 dd ffffffff")...)
}

// validBodies are well-formed bodies of every msgpack kind and of every
// control message.
func validBodies() map[string][]byte {
	deepest := bytes.Repeat([]byte{0x91}, MaxDepth-1)
	deepest = append(deepest, 0x90) // MaxDepth arrays, the innermost empty
	bodies := map[string][]byte{
		"nil":          {0xc0},
		"true":         {0xc3},
		"fixint":       {0x7f},
		"negfixint":    {0xe0},
		"ints":         mustMarshal([]any{int8(-100), int16(-1000), int32(-1 << 20), int64(-1 << 40), uint8(200), uint16(60000), uint32(1 << 31), uint64(1 << 63)}),
		"floats":       mustMarshal([]any{float32(1.5), 2.5}),
		"str8":         mustMarshal(strings.Repeat("x", 200)),
		"str16":        mustMarshal(strings.Repeat("x", 1000)),
		"str32":        mustMarshal(strings.Repeat("x", 70000)),
		"bin8":         mustMarshal(make([]byte, 10)),
		"bin16":        mustMarshal(make([]byte, 300)),
		"bin32":        mustMarshal(make([]byte, 70000)),
		"time32":       mustMarshal(time.Unix(1700000000, 0)),
		"time64":       mustMarshal(time.Unix(1700000000, 5)),
		"time96":       mustMarshal(time.Unix(1<<40, 5)),
		"time as ext8": mustHex("c7 04 ff 00000001"),
		"time in map":  mustMarshal(map[string]any{"t": time.Unix(1, 931135488), "u": []any{time.Unix(2, 0)}}),
		"array16":      mustMarshal(make([]int, 20)),
		"array32":      mustMarshal(make([]int, 70000)),
		"map16":        mustMarshal(map[string]int{"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "10": 10, "11": 11, "12": 12, "13": 13, "14": 14, "15": 15, "16": 16}),
		"empty map":    {0x80},
		"empty array":  {0x90},
		"depth max":    deepest,
		"nested mixed": mustMarshal(map[string]any{"a": []any{1, map[string]any{"b": []any{"c", nil, true}}}, "d": []byte("e")}),
		"hello":        mustMarshal(&Hello{Version: ProtocolVersion, ID: 7, Name: "c", ParentIDs: []uint32{3, 0}}),
		"route":        mustMarshal(&Route{ID: 9, Name: "n"}),
		"log":          mustMarshal(&LogRecord{Context: "c", TimeNs: 1, Level: 4, Msg: "hi", Attrs: []string{"k", "v"}}),
		"call":         mustMarshal(&CallRequest{Fn: "echo", Args: mustMarshal([]any{1, "two"})}),
		"run task": mustMarshal(&RunTask{Module: "ab", Args: []string{"a"}, Env: map[string]string{"K": "V"},
			Mounts: []Mount{{Host: "/h", Guest: "/g", ReadOnly: true}}, Channels: []Channel{{Context: 1, Handle: 2}}, Output: &Channel{}}),
		"task result": mustMarshal(&TaskResult{Output: []byte{1}, Error: &TaskError{Kind: "trap", Message: "x"}}),
		"error body":  mustMarshal(&ErrorBody{Code: CodeNoRoute, Message: "gone"}),
		"start error body": mustMarshal(&ErrorBody{Code: CodeCallFailed, Message: "x",
			Start: &StartFailure{Class: "host_key", Label: "ssh web1", Detail: "Host key verification failed."}}),
	}
	return bodies
}

func TestCheckAccepts(t *testing.T) {
	for name, b := range validBodies() {
		if err := Check(b); err != nil {
			t.Errorf("%s: Check(%.40x) = %v, want nil", name, b, err)
		}
		var v any
		if err := Unmarshal(b, &v); err != nil {
			t.Errorf("%s: Unmarshal(%.40x) into any = %v", name, b, err)
		}
	}
}

// malformedBodies are what a hostile child or guest sends.
func malformedBodies() map[string][]byte {
	big := 16 << 20
	return map[string][]byte{
		"empty":              {},
		"reserved c1":        {0xc1},
		"trailing":           {0xc0, 0xc0},
		"nested 16 MiB":      nested(big),
		"log nested 16 MiB":  append(mustHex("81 a1 78"), nested(big)...),
		"nested MaxDepth+1":  nested(MaxDepth + 1),
		"empty at depth+1":   append(bytes.Repeat([]byte{0x91}, MaxDepth), 0x90),
		"nested maps":        append(bytes.Repeat(mustHex("81 a0"), MaxDepth+1), 0xc0),
		"array32 bomb":       mustHex("dd ffffffff"),
		"map32 bomb":         mustHex("df ffffffff"),
		"array16 bomb":       mustHex("dc ffff"),
		"map16 bomb":         mustHex("de ffff"),
		"map one byte short": mustHex("82 c0 c0 c0"),
		"str32 bomb":         mustHex("db ffffffff 61"),
		"bin32 bomb":         mustHex("c6 ffffffff"),
		"ext32 bomb":         mustHex("c9 ffffffff ff"),
		"ext8 bomb":          mustHex("c7 ff ff 00"),
		"fixext8 short":      mustHex("d7 ff 0000"),
		"ext no type":        mustHex("c7 04"),
		"fixext1":            mustHex("d4 01 00"),
		"fixext16":           append(mustHex("d8 01"), make([]byte, 16)...),
		"ext8 type 1":        mustHex("c7 03 01 616263"),
		"ext16":              append(mustHex("c8 0100 01"), make([]byte, 256)...),
		"ext32":              append(mustHex("c9 00010000 01"), make([]byte, 65536)...),
		"empty ext":          mustHex("c7 00 ff"),
		"timestamp of 16":    append(mustHex("d8 ff"), make([]byte, 16)...),
		"float64 short":      mustHex("cb 0000"),
		"truncated length":   mustHex("dd ff"),
		"truncated array":    mustHex("92 c0"),
		"nested count bomb":  mustHex("92 92 c0 c0"), // 3 values still due, 2 bytes left
		"log attrs bomb":     attrsBomb(),
		"array in str":       mustHex("91 a5 6162"),
	}
}

func TestCheckRejects(t *testing.T) {
	for name, b := range malformedBodies() {
		err := Check(b)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Check(%.40x) = %v, want ErrMalformed", name, b, err)
		}
		var v any
		if err := Unmarshal(b, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unmarshal(%.40x) into any = %v, want ErrMalformed", name, b, err)
		}
		var lr LogRecord
		if err := Unmarshal(b, &lr); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unmarshal(%.40x) into LogRecord = %v, want ErrMalformed", name, b, err)
		}
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	bodies := validBodies()
	for name, b := range malformedBodies() {
		bodies[name] = b
	}
	for name, b := range bodies {
		if n := testing.AllocsPerRun(3, func() { _ = Check(b) }); n > 0 && Check(b) == nil {
			t.Errorf("%s: Check allocates %.0f times", name, n)
		}
	}
}

// TestUnmarshalErrors: a decode failure after a good Check, and a decoder
// panic, are ErrMalformed too.
func TestUnmarshalErrors(t *testing.T) {
	var n int
	if err := Unmarshal(mustMarshal("text"), &n); !errors.Is(err, ErrMalformed) {
		t.Errorf("Unmarshal(string) into int = %v, want ErrMalformed", err)
	}
	// A map whose key is an array cannot be a Go map key: msgpack panics.
	var m map[any]any
	if err := Unmarshal(mustHex("81 91 c0 c0"), &m); !errors.Is(err, ErrMalformed) {
		t.Errorf("Unmarshal(array key) into map[any]any = %v, want ErrMalformed", err)
	}
	var r Route
	if err := Unmarshal(mustMarshal(&Route{ID: 4, Name: "x"}), &r); err != nil || r != (Route{ID: 4, Name: "x"}) {
		t.Errorf("Unmarshal(route) = %+v, %v", r, err)
	}
}

// TestUnmarshalTimestampAsMap: msgpack decodes a timestamp found where a
// map belongs as an ext wrapping a map, reading its payload as msgpack.
// Here that reading would go on, out of step with Check's, into a bin's
// payload of 8 M nested maps: a stack overflow without the guard. And a
// 10-byte body would preallocate a map of a million entries.
func TestUnmarshalTimestampAsMap(t *testing.T) {
	nest := append([]byte{0xa0}, append(bytes.Repeat(mustHex("81 a0"), 8<<20), 0xc0)...)
	deep := mustHex("82 a1 6d d7 ff 82 a0 c6 00000008 00 a1 78 c6")
	deep = append(binary.BigEndian.AppendUint32(deep, uint32(len(nest))), nest...)
	bomb := mustHex("d7 ff df ffffffff 000000")
	var into struct {
		M map[string]any `msgpack:"m"`
		X []byte         `msgpack:"x"`
	}
	for _, tc := range []struct {
		name string
		body []byte
		v    any
	}{
		{"deep", deep, &into},
		{"bomb into map[string]any", bomb, new(map[string]any)},
		{"bomb into map[string]string", bomb, new(map[string]string)},
	} {
		if err := Check(tc.body); err != nil {
			t.Fatalf("%s: Check = %v, want nil (the body is well-formed)", tc.name, err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := Unmarshal(tc.body, tc.v)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, errInPayload) {
			t.Errorf("%s: Unmarshal = %v, want ErrMalformed for a value inside a timestamp", tc.name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(len(tc.body)) {
			t.Errorf("%s: Unmarshal allocated %d bytes for %d", tc.name, got, len(tc.body))
		}
	}
	// The same timestamps where a time belongs decode.
	var ok struct {
		M time.Time `msgpack:"m"`
		X []byte    `msgpack:"x"`
	}
	if err := Unmarshal(deep, &ok); err != nil || len(ok.X) != len(nest) {
		t.Errorf("Unmarshal(deep) into a time field = %v, want nil", err)
	}
}

// TestUnmarshalDeepStack measures the goroutine stack the decoder needs for
// the deepest body Check accepts; MaxDepth's doc quotes it.
func TestUnmarshalDeepStack(t *testing.T) {
	b := nested(MaxDepth - 1)
	for _, tc := range []struct {
		name string
		into func() any
	}{
		{"any", func() any { return new(any) }},
		{"[]any", func() any { return new([]any) }},
		{"map", func() any { return new(map[string]any) }},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		done, hold := make(chan error), make(chan struct{})
		go func() {
			done <- Unmarshal(b, tc.into())
			<-hold // keep the grown stack until it is measured
		}()
		err := <-done
		runtime.ReadMemStats(&after)
		close(hold)
		if err != nil && tc.name != "map" {
			t.Fatalf("%s: Unmarshal(%d deep) = %v", tc.name, MaxDepth, err)
		}
		grew := int64(after.StackInuse) - int64(before.StackInuse)
		t.Logf("%s: decoding %d nested arrays grew the stack by %d KiB", tc.name, MaxDepth, grew>>10)
		if grew > 1<<20 {
			t.Errorf("%s: decoding %d nested arrays grew the stack by %d KiB, want < 1 MiB", tc.name, MaxDepth, grew>>10)
		}
	}
}

// allocBound is the most a checked body of n bytes may cost to decode, in
// bytes: Check's documented 192 per byte plus fixed costs of the decoder.
func allocBound(n int) uint64 { return 192*uint64(n) + 64<<10 }

// FuzzUnmarshal: Check never panics; whatever it accepts decodes without a
// panic or a stack overflow into any, into maps and into typed values, and
// within allocBound bytes; the hand decoder of a CallRequest agrees with
// msgpack on it.
func FuzzUnmarshal(f *testing.F) {
	for _, b := range validBodies() {
		f.Add(b)
		if len(b) > 2 {
			f.Add(b[:len(b)/2]) // truncated
		}
	}
	for name, b := range malformedBodies() {
		if len(b) > 1<<16 {
			b = b[:1<<16] // keep the corpus small: the head is what matters
			_ = name
		}
		f.Add(b)
	}
	f.Add(mustHex("91 81 a0 c0"))
	f.Add(bytes.Repeat(mustHex("81 a0 c0"), 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b) != nil {
			return
		}
		targets := []func() any{
			func() any { return new(any) },
			func() any { return new(map[string]any) },
			func() any { return new(map[any]any) },
			func() any { return new([]any) },
			func() any { return new([]string) },
			func() any { return new(LogRecord) },
			func() any { return new(RunTask) },
			func() any { return new(ErrorBody) },
			func() any { return new(Hello) },
			func() any { return new(CallRequest) },
		}
		compareFast(t, b)
		for _, into := range targets {
			v := into()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := Unmarshal(b, v)
			runtime.ReadMemStats(&after)
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal(%x) into %T = %v, want nil or ErrMalformed", b, v, err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(len(b)) {
				t.Fatalf("Unmarshal(%x) into %T allocated %d bytes for %d, more than %d", b, v, got, len(b), allocBound(len(b)))
			}
		}
	})
}

// TestWorstAmplification measures the decode cost per byte of the bodies
// that allocate most for their size; Check's doc quotes the figure.
func TestWorstAmplification(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		into func() any
	}{
		{"one-entry maps into any", append(mustHex("dc 2710"), bytes.Repeat(mustHex("81 a0 c0"), 10000)...), func() any { return new(any) }},
		{"chains of one-entry maps into any", append(mustHex("dc 03e8"), bytes.Repeat(append(bytes.Repeat(mustHex("81 a0"), MaxDepth-1), 0xc0), 1000)...), func() any { return new(any) }},
		{"empty maps into any", append(mustHex("dc 2710"), bytes.Repeat(mustHex("80"), 10000)...), func() any { return new(any) }},
		{"nils into []string", append(mustHex("dc 2710"), bytes.Repeat(mustHex("c0"), 10000)...), func() any { return new([]string) }},
		{"nils into []Mount", append(mustHex("dc 2710"), bytes.Repeat(mustHex("c0"), 10000)...), func() any { return new([]Mount) }},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := Unmarshal(tc.body, tc.into()); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		runtime.ReadMemStats(&after)
		per := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(tc.body))
		t.Logf("%s: %.1f bytes allocated per body byte", tc.name, per)
		if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(len(tc.body)) {
			t.Errorf("%s: %d bytes allocated for %d, more than %d", tc.name, got, len(tc.body), allocBound(len(tc.body)))
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"call", mustMarshal(&CallRequest{Fn: "echo", Args: mustMarshal([]any{1, "two", map[string]any{"x": 1.5}})})},
		{"run task", validBodies()["run task"]},
		{"1MiB bin", mustMarshal(make([]byte, 1<<20))},
		{"10k ints", mustMarshal(make([]int, 10000))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if err := Check(tc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
