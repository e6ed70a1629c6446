package guest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

type item struct {
	Size int    `msgpack:"size"`
	Tag  string `msgpack:"tag,omitempty"`
}

type Base struct {
	ID uint32 `msgpack:"id"`
}

type order struct {
	Base
	Name    string             `msgpack:"name"`
	Items   []item             `msgpack:"items"`
	Ratio   float64            `msgpack:"ratio"`
	Labels  map[string]int     `msgpack:"labels"`
	Ptr     *item              `msgpack:"ptr"`
	Raw     msgpack.RawMessage `msgpack:"raw"`
	When    time.Time          `msgpack:"when"`
	Any     any                `msgpack:"any"`
	Data    []byte             `msgpack:"data"`
	Flag    bool               `msgpack:"flag,alias:f"`
	Skipped chan int           `msgpack:"-"`
	Plain   int
	hidden  int //lint:ignore U1000 an unexported field msgpack skips
}

// TestDescribeInput decodes inputs that do not fit order as the typed task
// wrapper does, and checks what the error says: the first field that does
// not fit, by path, and what was wanted and given.
func TestDescribeInput(t *testing.T) {
	tests := []struct {
		name  string
		input any
		want  string // the message, or "" for no description (msgpack's error stands)
	}{
		{"string for int in an array", map[string]any{"items": []any{map[string]any{"size": 1}, map[string]any{"size": 2}, map[string]any{"size": "big"}}},
			`input field "items[2].size": want integer, got string "big"`},
		{"integer for string", map[string]any{"name": 3}, `input field "name": want string, got integer 3`},
		{"float for int", map[string]any{"items": []any{map[string]any{"size": 1.5}}}, `input field "items[0].size": want integer, got float 1.5`},
		{"string for float", map[string]any{"ratio": "half"}, `input field "ratio": want number, got string "half"`},
		{"map for array", map[string]any{"items": map[string]any{"a": 1}}, `input field "items": want array, got map of 1`},
		{"string for map", map[string]any{"labels": "x"}, `input field "labels": want map, got string "x"`},
		{"map value", map[string]any{"labels": map[string]any{"ok": 1, "bad key": true}}, `input field "labels["bad key"]": want integer, got bool true`},
		{"map value by name", map[string]any{"labels": map[string]any{"a": 1, "b": "two"}}, `input field "labels.b": want integer, got string "two"`},
		{"through a pointer", map[string]any{"ptr": map[string]any{"tag": 7}}, `input field "ptr.tag": want string, got integer 7`},
		{"embedded struct inlined", map[string]any{"id": "x"}, `input field "id": want integer, got string "x"`},
		{"alias", map[string]any{"f": 1}, `input field "f": want bool, got integer 1`},
		{"untagged field by its Go name", map[string]any{"Plain": "p"}, `input field "Plain": want integer, got string "p"`},
		{"array for bytes", map[string]any{"data": []any{1}}, `input field "data": want binary or string, got array of 1`},
		{"long string clipped", map[string]any{"ratio": strings.Repeat("x", 100)}, `input field "ratio": want number, got string "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (100 bytes)`},
		{"not a map at all", 42, `input: want map, got integer 42`},
		{"array of the wrong length", []any{1, 2}, `input: want map, got array of 2`},
		// A map with other keys than strings is not decoded generically.
		{"integer keys", map[string]any{"ptr": map[int]string{1: "x"}}, ""},
		{"first field in declaration order", map[string]any{"ratio": "r", "name": 1}, `input field "name": want string, got integer 1`},
		// Values that fit are not described, whatever else is wrong.
		{"fits", map[string]any{"name": "n", "items": []any{map[string]any{"size": 1}}, "ratio": 2, "raw": "anything",
			"any": []any{1}, "data": "text", "unknown": 1, "Skipped": 1, "hidden": "x", "ptr": nil, "flag": nil}, ""},
	}
	typ := reflect.TypeFor[order]()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input, err := msgpack.Marshal(tt.input)
			if err != nil {
				t.Fatal(err)
			}
			var o order
			decErr := msgpack.Unmarshal(input, &o)
			ie := describeInput(input, typ, decErr)
			switch {
			case tt.want == "" && ie != nil:
				t.Errorf("describeInput(%v) = %q, want none", tt.input, ie.Error())
			case tt.want == "":
			case decErr == nil:
				t.Fatalf("msgpack.Unmarshal(%v) succeeded: the case does not test a failure", tt.input)
			case ie == nil:
				t.Errorf("describeInput(%v) = none, want %q (msgpack: %v)", tt.input, tt.want, decErr)
			case ie.Error() != tt.want:
				t.Errorf("describeInput(%v) = %q, want %q", tt.input, ie.Error(), tt.want)
			case !errors.Is(ie, decErr):
				t.Errorf("describeInput(%v) does not wrap msgpack's error", tt.input)
			}
		})
	}
}

// TestDescribeInputNotMsgpack: input that is not msgpack is not described.
func TestDescribeInputNotMsgpack(t *testing.T) {
	input := []byte{0x82, 0xa4} // a map of two whose first key is cut short
	var o order
	err := msgpack.Unmarshal(input, &o)
	if err == nil {
		t.Fatal("truncated input decoded")
	}
	if ie := describeInput(input, reflect.TypeFor[order](), err); ie != nil {
		t.Errorf("describeInput(truncated) = %q, want none", ie.Error())
	}
}

// pair asks for arrays: msgpack's positional decode is what it means.
type pair struct {
	_msgpack struct{} `msgpack:",as_array"` //lint:ignore U1000 msgpack reads its tag
	A, B     int
}

type nested struct {
	N      int             `msgpack:"n"`
	Ch     Channel         `msgpack:"progress"`
	Items  []item          `msgpack:"items"`
	ByName map[string]item `msgpack:"by_name"`
	Ptr    *order          `msgpack:"ptr"`
	Pair   pair            `msgpack:"pair"`
	When   time.Time       `msgpack:"when"`
}

// TestArrayForStruct: an input that msgpack decodes, but that holds an
// array where In has a struct that takes a map only, is described at its
// path, at any depth, in the words of every type error; a struct that
// asks for arrays keeps them, and no other value is judged.
func TestArrayForStruct(t *testing.T) {
	tests := []struct {
		name  string
		input any
		want  string // "" for none
	}{
		{"field", map[string]any{"n": 1, "progress": []any{0, 5}}, `input field "progress": want map, got array of 2`},
		{"empty array for a field", map[string]any{"progress": []any{}}, `input field "progress": want map, got array of 0`},
		{"slice element", map[string]any{"items": []any{map[string]any{"size": 1}, []any{2, "t"}}}, `input field "items[1]": want map, got array of 2`},
		{"map value", map[string]any{"by_name": map[string]any{"a": map[string]any{}, "b c": []any{1, "x"}}}, `input field "by_name["b c"]": want map, got array of 2`},
		{"deep, through a pointer", map[string]any{"ptr": map[string]any{"ptr": []any{1, "x"}}}, `input field "ptr.ptr": want map, got array of 2`},
		{"as_array struct", map[string]any{"pair": []any{1, 2}}, ""},
		{"maps everywhere", map[string]any{"n": 1, "progress": map[string]any{"ctx": 0, "handle": 5},
			"items": []any{map[string]any{"size": 1}}, "ptr": map[string]any{"ptr": map[string]any{"size": 2}}}, ""},
		{"other mismatches are msgpack's", map[string]any{"n": 1.0}, ""},
	}
	typ := reflect.TypeFor[nested]()
	if !nestedMapOnly(typ) {
		t.Fatalf("nestedMapOnly(%v) = false", typ)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input, err := msgpack.Marshal(tt.input)
			if err != nil {
				t.Fatal(err)
			}
			ie := arrayForStruct(input, typ)
			switch {
			case tt.want == "" && ie != nil:
				t.Errorf("arrayForStruct(%v) = %q, want none", tt.input, ie.Error())
			case tt.want != "" && ie == nil:
				t.Errorf("arrayForStruct(%v) = none, want %q", tt.input, tt.want)
			case tt.want != "" && ie.Error() != tt.want:
				t.Errorf("arrayForStruct(%v) = %q, want %q", tt.input, ie.Error(), tt.want)
			}
		})
	}
}

// TestNestedMapOnly: only a type with a map-only struct below its top
// needs the second look.
func TestNestedMapOnly(t *testing.T) {
	type flat struct {
		A int    `msgpack:"a"`
		B string `msgpack:"b"`
	}
	type recursive struct {
		Next *recursive `msgpack:"next"`
	}
	for _, tt := range []struct {
		t    reflect.Type
		want bool
	}{
		{reflect.TypeFor[flat](), false},
		{reflect.TypeFor[item](), false},
		{reflect.TypeFor[[]byte](), false},
		{reflect.TypeFor[struct{ P pair }](), false},
		{reflect.TypeFor[struct{ W time.Time }](), false},
		{reflect.TypeFor[map[string]any](), false},
		{reflect.TypeFor[[]item](), true},
		{reflect.TypeFor[map[string]*item](), true},
		{reflect.TypeFor[nested](), true},
		{reflect.TypeFor[recursive](), true},
		{reflect.TypeFor[*order](), true},
	} {
		if got := nestedMapOnly(tt.t); got != tt.want {
			t.Errorf("nestedMapOnly(%v) = %v, want %v", tt.t, got, tt.want)
		}
	}
}
