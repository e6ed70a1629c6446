package guest

import (
	"encoding"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// inputError is an input that did not decode into a task's In, described
// by the first value that does not fit: `input field "items[2].size": want
// integer, got string "big"`. It wraps the decoder's own error.
type inputError struct {
	path string // "" for the input as a whole
	want string // what In has there: "string", "integer", "map", ...
	got  string // the input's value there: `integer 3`, `string "x"`
	err  error  // msgpack's error
}

func (e *inputError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("input: want %s, got %s", e.want, e.got)
	}
	// The path is not quoted again: its map keys that need it are quoted
	// already, and the rest is identifiers, digits and brackets.
	return fmt.Sprintf("input field \"%s\": want %s, got %s", e.path, e.want, e.got)
}

func (e *inputError) Unwrap() error { return e.err }

// describeInput explains err, msgpack's failure to decode input into a
// value of type t: it decodes input again as generic values and walks t
// beside them, honouring msgpack struct tags, to the first value that t
// cannot hold. It returns nil when the input is not msgpack or no
// mismatch is found (a type with its own decoder, or a failure the walk
// does not model). It runs only after a decode failed, so the typed path
// pays nothing for it.
func describeInput(input []byte, t reflect.Type, err error) *inputError {
	var v any
	if msgpack.Unmarshal(input, &v) != nil {
		return nil
	}
	var w walker
	if w.walk(v, t, 0) {
		return nil
	}
	return &inputError{path: w.path(), want: w.want, got: w.got, err: err}
}

// errArrayForStruct is what an inputError for an array given where a
// map-only struct was wanted wraps: msgpack itself took the array.
var errArrayForStruct = errors.New("an array for a struct")

// arrayForStruct finds, in an input that decoded into a value of type t,
// the first array that msgpack took for a struct field by field, where t
// has a struct that takes a map only (takesMapOnly): at any depth, in a
// field, a slice's element or a map's value. It returns nil when there
// is none. The typed task wrapper runs it after each decode that
// succeeded, for an In that holds such a struct below its top
// (nestedMapOnly): it decodes the input a second time, as generic values.
func arrayForStruct(input []byte, t reflect.Type) *inputError {
	var v any
	if msgpack.Unmarshal(input, &v) != nil {
		return nil
	}
	w := walker{arraysOnly: true}
	if w.walk(v, t, 0) {
		return nil
	}
	return &inputError{path: w.path(), want: w.want, got: w.got, err: errArrayForStruct}
}

// walker finds the first value in a decoded input that its type cannot
// hold, and the path to it.
type walker struct {
	steps     []string // the path so far, innermost last: "items", "[2]", "size"
	want, got string   // set when a mismatch is found
	// arraysOnly: only an array where a map-only struct is wanted is a
	// mismatch (the input decoded: any other mismatch is msgpack's to
	// take, as it did).
	arraysOnly bool
}

// maxWalkDepth bounds the walk; deeper values are taken as they are.
const maxWalkDepth = 64

var (
	timeType            = reflect.TypeFor[time.Time]()
	rawType             = reflect.TypeFor[msgpack.RawMessage]()
	customDecoderType   = reflect.TypeFor[msgpack.CustomDecoder]()
	unmarshalerType     = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryUnmarshalType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	textUnmarshalType   = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// ownDecoder reports whether values of t decode themselves: the walk
// cannot know what they take.
func ownDecoder(t reflect.Type) bool {
	if t == timeType || t == rawType {
		return true
	}
	for _, it := range []reflect.Type{customDecoderType, unmarshalerType, binaryUnmarshalType, textUnmarshalType} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return true
		}
	}
	return false
}

// walk reports whether v, as msgpack.Unmarshal into any gives it, fits t;
// if not, w holds the mismatch and the path to it.
func (w *walker) walk(v any, t reflect.Type, depth int) bool {
	if depth > maxWalkDepth || ownDecoder(t) {
		return true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
		if ownDecoder(t) {
			return true
		}
	}
	if v == nil {
		return true // nil decodes into anything, as its zero value
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Bool:
		_, ok := v.(bool)
		return ok || w.mismatch("bool", v)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return isInteger(v) || w.mismatch("integer", v)
	case reflect.Float32, reflect.Float64:
		_, isFloat := v.(float64)
		_, isFloat32 := v.(float32)
		return isFloat || isFloat32 || isInteger(v) || w.mismatch("number", v)
	case reflect.String:
		return isBytes(v) || w.mismatch("string", v)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			// []byte and [N]byte take str and bin, not an array.
			return isBytes(v) || w.mismatch("binary or string", v)
		}
		arr, ok := v.([]any)
		if !ok {
			return w.mismatch("array", v)
		}
		for i, e := range arr {
			if !w.in("["+strconv.Itoa(i)+"]", e, t.Elem(), depth) {
				return false
			}
		}
		return true
	case reflect.Map:
		return w.walkMap(v, t, depth)
	case reflect.Struct:
		return w.walkStruct(v, t, depth)
	}
	return true
}

// in walks v, the value at step, against t.
func (w *walker) in(step string, v any, t reflect.Type, depth int) bool {
	w.steps = append(w.steps, step)
	if !w.walk(v, t, depth+1) {
		return false
	}
	w.steps = w.steps[:len(w.steps)-1]
	return true
}

func (w *walker) walkMap(v any, t reflect.Type, depth int) bool {
	// msgpack.Unmarshal into any gives map[string]any, and fails on a
	// map with other keys (then there is no description at all).
	m, ok := v.(map[string]any)
	if !ok {
		return w.mismatch("map", v)
	}
	// In key order, so that the same input is described the same way.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !w.in(mapStep(k), m[k], t.Elem(), depth) {
			return false
		}
	}
	return true
}

// mapStep is the path step of a map entry: .key, or ["key"] when key is
// not an identifier.
func mapStep(k string) string {
	if isIdent(k) {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

func (w *walker) walkStruct(v any, t reflect.Type, depth int) bool {
	fields := structFields(t)
	m, ok := v.(map[string]any)
	if !ok {
		arr, isArray := v.([]any)
		if isArray && takesMapOnly(t) {
			// msgpack would fill the struct field by field from it, which
			// is never what a caller who wrote JSON meant: refused, at any
			// depth, as a task's whole input is (see takesMapOnly).
			w.want, w.got = "map", describeValue(v)
			return false
		}
		// A struct that asks for arrays takes one of as many values as
		// it has fields; any other array is refused.
		if isArray && (len(arr) == 0 || len(arr) == countFields(fields)) {
			return true
		}
		return w.mismatch("map", v)
	}
	for _, f := range fields {
		if e, ok := m[f.key]; ok && !w.in("."+f.key, e, f.t, depth) {
			return false
		}
	}
	return true
}

// structField is a key a struct decodes from and the type of its field.
type structField struct {
	key   string
	t     reflect.Type
	alias bool // a second key of the field before it
}

func countFields(fields []structField) int {
	n := 0
	for _, f := range fields {
		if !f.alias {
			n++
		}
	}
	return n
}

// structFields lists the keys a struct of type t decodes from, in the
// order of its fields, with their fields' types, as msgpack does by
// default: the msgpack tag's name, else the field's name; "-" skipped;
// unexported fields skipped; an embedded struct without a name inlined;
// alias:NAME a second key.
func structFields(t reflect.Type) []structField {
	var fields []structField
	seen := make(map[string]bool)
	var add func(t reflect.Type, depth int)
	add = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
			if name == "-" || (f.PkgPath != "" && !f.Anonymous) {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && ft.Kind() == reflect.Struct && !hasOpt(opts, "noinline") &&
				(name == "" || hasOpt(opts, "inline")) && !ownDecoder(ft) && depth < maxWalkDepth {
				add(ft, depth+1)
				continue
			}
			if f.PkgPath != "" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			keys := []string{name}
			for _, o := range strings.Split(opts, ",") {
				if alias, ok := strings.CutPrefix(o, "alias:"); ok {
					keys = append(keys, alias)
				}
			}
			for i, k := range keys {
				if !seen[k] {
					seen[k] = true
					fields = append(fields, structField{k, f.Type, i > 0})
				}
			}
		}
	}
	add(t, 0)
	return fields
}

func hasOpt(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// mismatch records that the value here is v where want was wanted; it
// returns false, for walk to return. With arraysOnly it records nothing
// and returns true: the walk goes on.
func (w *walker) mismatch(want string, v any) bool {
	if w.arraysOnly {
		return true
	}
	w.want, w.got = want, describeValue(v)
	return false
}

// path is the path of the mismatch: `items[2].size`.
func (w *walker) path() string {
	return strings.TrimPrefix(strings.Join(w.steps, ""), ".")
}

func isInteger(v any) bool {
	switch v.(type) {
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return true
	}
	return false
}

func isBytes(v any) bool {
	switch v.(type) {
	case string, []byte:
		return true
	}
	return false
}

// describeValue says what v, a generically decoded msgpack value, is, in
// a few words: `integer 3`, `string "abc"`, `array of 2`.
func describeValue(v any) string {
	switch x := v.(type) {
	case bool:
		return "bool " + strconv.FormatBool(x)
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Sprintf("integer %d", x)
	case float32:
		return "float " + strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return "float " + strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		if len(x) > 32 {
			return fmt.Sprintf("string %q… (%d bytes)", x[:32], len(x))
		}
		return "string " + strconv.Quote(x)
	case []byte:
		return fmt.Sprintf("binary of %d bytes", len(x))
	case []any:
		return fmt.Sprintf("array of %d", len(x))
	case map[string]any:
		return fmt.Sprintf("map of %d", len(x))
	case time.Time:
		return "timestamp"
	}
	return fmt.Sprintf("%T", v)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// takesMapOnly reports whether a task's In is a struct (or a pointer to
// one) that decodes its fields from a map only: msgpack would also fill it
// from an array, by position, which is never what a caller who wrote JSON
// meant. A struct that asks for arrays (a field _msgpack tagged
// ",as_array") or decodes itself is left to msgpack.
func takesMapOnly(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		if ownDecoder(t) {
			return false
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || ownDecoder(t) {
		return false
	}
	if f, ok := t.FieldByName("_msgpack"); ok {
		_, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if hasOpt(opts, "as_array") || hasOpt(opts, "asArray") {
			return false
		}
	}
	return true
}

// nestedMapOnly reports whether a value of type t holds, below its top,
// a struct that takes a map only (takesMapOnly): in a struct's field, a
// slice's or array's element, a map's value, through pointers, at any
// depth. Only then can a decode that succeeded have taken an array for a
// struct inside the input (arrayForStruct).
func nestedMapOnly(t reflect.Type) bool {
	seen := map[reflect.Type]bool{}
	var below func(t reflect.Type, depth int) bool  // whether t's parts hold one
	holds := func(t reflect.Type, depth int) bool { // whether t is or holds one
		return takesMapOnly(t) || below(t, depth)
	}
	below = func(t reflect.Type, depth int) bool {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if depth > maxWalkDepth || seen[t] || ownDecoder(t) {
			return false
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			return t.Elem().Kind() != reflect.Uint8 && holds(t.Elem(), depth+1)
		case reflect.Struct:
			for _, f := range structFields(t) {
				if holds(f.t, depth+1) {
					return true
				}
			}
		}
		return false
	}
	return below(t, 0)
}

// isArrayCode reports whether c starts a msgpack array (fixarray, array
// 16, array 32).
func isArrayCode(c byte) bool { return c&0xf0 == 0x90 || c == 0xdc || c == 0xdd }

// notAMap is the error for an input that is an array where a map was
// wanted, in the words of every other type error.
func notAMap(input []byte) *inputError {
	var v any
	got := "array"
	if msgpack.Unmarshal(input, &v) == nil {
		got = describeValue(v)
	}
	return &inputError{want: "map", got: got, err: errors.New("an array for a struct")}
}
