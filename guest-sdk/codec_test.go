package guest

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// allKinds has a field of every kind the flat-struct codec takes, some
// with omitempty, one skipped and one unexported.
type allKinds struct {
	B     bool    `msgpack:"b"`
	S     string  `msgpack:"s"`
	Bytes []byte  `msgpack:"bytes"`
	I     int     `msgpack:"i"`
	I8    int8    `msgpack:"i8"`
	I16   int16   `msgpack:"i16"`
	I32   int32   `msgpack:"i32"`
	I64   int64   `msgpack:"i64"`
	U     uint    `msgpack:"u"`
	U8    uint8   `msgpack:"u8"`
	U16   uint16  `msgpack:"u16"`
	U32   uint32  `msgpack:"u32"`
	U64   uint64  `msgpack:"u64"`
	F32   float32 `msgpack:"f32"`
	F64   float64 `msgpack:"f64"`
	Plain string
	Omit  string `msgpack:"omit,omitempty"`
	OmitI int    `msgpack:",omitempty"`
	Skip  string `msgpack:"-"`
	priv  string //nolint:unused // not encoded
}

func allKindsValues() []allKinds {
	long := strings.Repeat("x", 300)
	return []allKinds{
		{},
		{B: true, S: "hello", Bytes: []byte{1, 2, 3}, I: -1, I8: -8, I16: -16, I32: -32, I64: -64,
			U: 1, U8: 8, U16: 16, U32: 32, U64: 64, F32: 1.5, F64: -2.25, Plain: "p", Omit: "o", OmitI: 7},
		{S: long, Bytes: bytes.Repeat([]byte{9}, 70000), I: math.MinInt64, I8: math.MinInt8, I16: math.MinInt16,
			I32: math.MinInt32, I64: math.MinInt64, U: math.MaxUint64, U8: math.MaxUint8, U16: math.MaxUint16,
			U32: math.MaxUint32, U64: math.MaxUint64, F32: float32(math.Inf(1)), F64: math.MaxFloat64},
		{I: math.MaxInt64, I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64,
			Bytes: []byte{}, S: strings.Repeat("y", 31)},
		{I: 127, U: 128, I8: -33, I16: 255, I32: 65536, I64: -129, S: strings.Repeat("z", 70000)},
		{I: -32, U: 255, I64: 1 << 40, U64: 1 << 40, S: strings.Repeat("w", 32)},
	}
}

// TestFlatEncodeAsMsgpack: the codec writes msgpack's bytes, byte for
// byte, and msgpack reads them back.
func TestFlatEncodeAsMsgpack(t *testing.T) {
	p := planFlat(reflect.TypeFor[allKinds]())
	if p == nil {
		t.Fatal("planFlat(allKinds) = nil")
	}
	for i, v := range allKindsValues() {
		want, err := msgpack.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		got := p.encode(nil, unsafe.Pointer(&v))
		if !bytes.Equal(got, want) {
			t.Errorf("value %d: encode = %x, want %x", i, got[:min(len(got), 80)], want[:min(len(want), 80)])
		}
	}
}

// TestFlatRoundTrip: what the codec encodes it decodes to the same value,
// as msgpack does.
func TestFlatRoundTrip(t *testing.T) {
	p := planFlat(reflect.TypeFor[allKinds]())
	for i, v := range allKindsValues() {
		b := p.encode(nil, unsafe.Pointer(&v))
		var got, want allKinds
		if err := msgpack.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		ok := p.decode(b, unsafe.Pointer(&got))
		if !ok {
			// Only an empty or nil []byte is left to msgpack.
			if len(v.Bytes) != 0 {
				t.Errorf("value %d: decode gave up", i)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("value %d: decode = %+v, want %+v", i, got, want)
		}
	}
}

// TestFlatDecodeGivesUp: inputs the codec leaves to msgpack, and that the
// typed task still decodes as msgpack does (or fails as it does).
func TestFlatDecodeGivesUp(t *testing.T) {
	p := planFlat(reflect.TypeFor[allKinds]())
	for _, tc := range []struct {
		name string
		in   any
	}{
		{"unknown key", map[string]any{"s": "a", "other": 1}},
		{"nil value", map[string]any{"s": nil}},
		{"array", []any{true, "s"}},
		{"int8 too wide", map[string]any{"i8": 300}},
		{"uint negative", map[string]any{"u": -1}},
		{"uint8 too wide", map[string]any{"u8": 256}},
		{"float from int", map[string]any{"f64": 3}},
		{"float32 from double", map[string]any{"f32": 1.5}},
		{"string for int", map[string]any{"i": "big"}},
		{"int for string", map[string]any{"s": 5}},
		{"bool from int", map[string]any{"b": 1}},
		{"not a map", "text"},
		{"nil", nil},
	} {
		b, err := msgpack.Marshal(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		var v allKinds
		if p.decode(b, unsafe.Pointer(&v)) {
			t.Errorf("%s: decode(%x) took it", tc.name, b)
		}
		// Through typed: the same result as msgpack alone.
		var want allKinds
		wantErr := msgpack.Unmarshal(b, &want)
		var got allKinds
		fn := typed(func(_ Ctx, in allKinds) (allKinds, error) { got = in; return in, nil })
		_, gotErr := fn(Ctx{}, b)
		if (gotErr != nil) != (wantErr != nil) {
			t.Errorf("%s: typed error %v, msgpack error %v", tc.name, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: typed decoded %+v, msgpack %+v", tc.name, got, want)
		}
	}
	// Truncated input: every prefix of a valid one.
	v := allKindsValues()[1]
	b := p.encode(nil, unsafe.Pointer(&v))
	for n := range len(b) {
		var got allKinds
		if p.decode(b[:n], unsafe.Pointer(&got)) {
			t.Errorf("decode(%x) of %d bytes took a truncated input", b[:n], n)
		}
	}
	// Str into []byte and alternate widths of the same values, as msgpack
	// reads them.
	for _, in := range [][]byte{
		{0x81, 0xa5, 'b', 'y', 't', 'e', 's', 0xa2, 'h', 'i'},  // fixstr into []byte
		{0x81, 0xa1, 'i', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5},        // int64 code for 5
		{0x81, 0xa2, 'u', '8', 0xcf, 0, 0, 0, 0, 0, 0, 0, 200}, // uint64 code into uint8
		{0xde, 0, 1, 0xd9, 1, 's', 0xda, 0, 2, 'o', 'k'},       // map16, str8 key, str16 value
		{0x81, 0xa3, 'f', '6', '4', 0xca, 0x3f, 0xc0, 0, 0},    // float32 into float64
		{0x81, 0xa3, 'i', '1', '6', 0xd0, 0x80},                // int8 code into int16
	} {
		var got, want allKinds
		if err := msgpack.Unmarshal(in, &want); err != nil {
			t.Fatalf("Unmarshal(%x): %v", in, err)
		}
		if !p.decode(in, unsafe.Pointer(&got)) {
			t.Errorf("decode(%x) gave up", in)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decode(%x) = %+v, want %+v", in, got, want)
		}
	}
}

type withMethod string

func (withMethod) String() string { return "" }

type embedded struct{ A int }

// TestPlanFlatRefuses: types the codec leaves to msgpack.
func TestPlanFlatRefuses(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[string](),
		reflect.TypeFor[map[string]any](),
		reflect.TypeFor[struct{ A []int }](),
		reflect.TypeFor[struct{ A withMethod }](),
		reflect.TypeFor[struct{ embedded }](),
		reflect.TypeFor[struct {
			A int `msgpack:"a,inline"`
		}](),
		reflect.TypeFor[struct {
			A int `msgpack:"x"`
			B int `msgpack:"x"`
		}](),
		reflect.TypeFor[struct {
			_msgpack struct{} `msgpack:",as_array"` //nolint:unused
			A        int
		}](),
		reflect.TypeFor[struct{ A *int }](),
		reflect.TypeFor[struct{ A struct{ B int } }](),
	} {
		if planFlat(typ) != nil {
			t.Errorf("planFlat(%v) took it", typ)
		}
	}
}

// BenchmarkTyped is a typed task of hello's shape, natively, on the
// flat-struct path (2.2 µs through msgpack's reflection before it, 0.6 µs
// with it, on the 2-core test machine).
func BenchmarkTyped(b *testing.B) {
	type in struct {
		Name string `msgpack:"name"`
	}
	type out struct {
		Greeting string `msgpack:"greeting"`
	}
	input, _ := msgpack.Marshal(map[string]string{"name": "bench"})
	fn := typed(func(_ Ctx, i in) (out, error) { return out{"hello, " + i.Name}, nil })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fn(Ctx{}, input); err != nil {
			b.Fatal(err)
		}
	}
}
