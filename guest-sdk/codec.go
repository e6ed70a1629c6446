package guest

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"unsafe"
)

// The flat-struct codec: a reflection-free path for the typed tasks whose
// input or output is a struct of plain fields, the common case (hello's
// {"name": "world"}).
//
// vmihailenco/msgpack walks a value with reflect on every call; built for
// wasm, where the Go runtime's reflection, interface calls and the stack
// checks of every small function cost several times what they cost
// natively, that walk was most of a warm task call (docs/RATIONALE.md,
// "Wasm calls"). So Register looks at In and Out once and, when a type is
// a struct whose exported fields are all of the kinds below, builds a plan
// of their msgpack names and offsets; a call then reads and writes the
// fields through unsafe pointers, without reflect.
//
// The plan is an optimisation only: what a task sees must be what
// msgpack.Unmarshal and Marshal give.
//   - Encoding writes the bytes msgpack's default Encoder writes (the
//     tests compare them byte for byte): fields in declaration order,
//     omitempty honoured, int and uint compact, sized integers at their
//     width, nil []byte as nil.
//   - Decoding accepts only what it can decode exactly as msgpack would: a
//     map whose keys are all names of fields, each value of a msgpack type
//     that fits its field without loss. Anything else (an unknown key, a
//     nil, an array, an integer too wide for its field, a string for a
//     number...) makes it give up, and the call decodes the input again
//     with msgpack, which either accepts it (unknown keys skipped, say) or
//     fails with its own error, described by field (inputerr.go). So errors
//     are unchanged and the fast path is only ever a shortcut.
//
// Types it does not take: a type or field type with methods (msgpack might
// call them: CustomDecoder, Marshaler, encoding.TextMarshaler...), embedded
// fields, tag options other than omitempty, a `_msgpack` field (struct
// options), duplicate names, and every kind not listed in fastKinds.

// flatField is one field of a flat struct.
type flatField struct {
	name      string
	kind      reflect.Kind
	off       uintptr
	omitEmpty bool
}

// flatStruct is the plan of a struct type the codec takes.
type flatStruct struct {
	fields []flatField
}

// fastKinds are the field kinds the codec takes; reflect.Slice means
// []byte (a slice of a uint8 kind without methods).
var fastKinds = map[reflect.Kind]bool{
	reflect.Bool: true, reflect.String: true, reflect.Slice: true,
	reflect.Int: true, reflect.Int8: true, reflect.Int16: true, reflect.Int32: true, reflect.Int64: true,
	reflect.Uint: true, reflect.Uint8: true, reflect.Uint16: true, reflect.Uint32: true, reflect.Uint64: true,
	reflect.Float32: true, reflect.Float64: true,
}

// noMethods reports that neither t nor *t has methods msgpack could call.
func noMethods(t reflect.Type) bool {
	return t.NumMethod() == 0 && reflect.PointerTo(t).NumMethod() == 0
}

// planFlat returns the plan of t, or nil if the codec does not take t.
func planFlat(t reflect.Type) *flatStruct {
	if t.Kind() != reflect.Struct || !noMethods(t) {
		return nil
	}
	p := &flatStruct{}
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "_msgpack" || f.Anonymous {
			return nil
		}
		tag := f.Tag.Get("msgpack")
		if tag == "-" {
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts != "" && opts != "omitempty" || strings.ContainsAny(name, `'"\ `) {
			return nil
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		if !fastKinds[ft.Kind()] || !noMethods(ft) {
			return nil
		}
		if ft.Kind() == reflect.Slice && (ft.Elem().Kind() != reflect.Uint8 || !noMethods(ft.Elem())) {
			return nil
		}
		if seen[name] {
			return nil
		}
		seen[name] = true
		p.fields = append(p.fields, flatField{name: name, kind: ft.Kind(), off: f.Offset, omitEmpty: opts == "omitempty"})
	}
	return p
}

// The msgpack codes the codec reads and writes (the msgpack spec).
const (
	mpNil     = 0xc0
	mpFalse   = 0xc2
	mpTrue    = 0xc3
	mpBin8    = 0xc4
	mpBin16   = 0xc5
	mpBin32   = 0xc6
	mpFloat   = 0xca
	mpDouble  = 0xcb
	mpUint8   = 0xcc
	mpUint16  = 0xcd
	mpUint32  = 0xce
	mpUint64  = 0xcf
	mpInt8    = 0xd0
	mpInt16   = 0xd1
	mpInt32   = 0xd2
	mpInt64   = 0xd3
	mpStr8    = 0xd9
	mpStr16   = 0xda
	mpStr32   = 0xdb
	mpMap16   = 0xde
	mpMap32   = 0xdf
	mpFixMap  = 0x80
	mpFixStr  = 0xa0
	mpNegFix  = 0xe0
	maxFixStr = 31
)

// flatReader reads msgpack from a byte slice; any short read or
// unexpected code sets bad.
type flatReader struct {
	b   []byte
	bad bool
}

func (r *flatReader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *flatReader) code() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *flatReader) uint(n int) uint64 {
	b := r.take(n)
	switch {
	case r.bad:
		return 0
	case n == 1:
		return uint64(b[0])
	case n == 2:
		return uint64(binary.BigEndian.Uint16(b))
	case n == 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

// mapLen reads a map header.
func (r *flatReader) mapLen() int {
	c := r.code()
	switch {
	case c&0xf0 == mpFixMap:
		return int(c & 0x0f)
	case c == mpMap16:
		return int(r.uint(2))
	case c == mpMap32:
		return int(r.uint(4))
	}
	r.bad = true
	return 0
}

// str reads a string's bytes (str codes only).
func (r *flatReader) str() []byte {
	c := r.code()
	switch {
	case c&0xe0 == mpFixStr:
		return r.take(int(c & 0x1f))
	case c == mpStr8:
		return r.take(int(r.uint(1)))
	case c == mpStr16:
		return r.take(int(r.uint(2)))
	case c == mpStr32:
		return r.take(int(r.uint(4)))
	}
	r.bad = true
	return nil
}

// bytes reads a bin or str value's bytes, as msgpack decodes into []byte.
func (r *flatReader) bytes() []byte {
	if len(r.b) == 0 {
		r.bad = true
		return nil
	}
	switch c := r.b[0]; c {
	case mpBin8, mpBin16, mpBin32:
		r.b = r.b[1:]
		return r.take(int(r.uint(1 << (c - mpBin8))))
	}
	return r.str()
}

// integer reads any msgpack integer: its value as int64 when neg, else as
// uint64.
func (r *flatReader) integer() (u uint64, i int64, neg bool) {
	c := r.code()
	switch {
	case c <= 0x7f:
		return uint64(c), 0, false
	case c >= mpNegFix:
		return 0, int64(int8(c)), true
	case c >= mpUint8 && c <= mpUint64:
		return r.uint(1 << (c - mpUint8)), 0, false
	case c >= mpInt8 && c <= mpInt64:
		n := 1 << (c - mpInt8)
		v := r.uint(n)
		switch n {
		case 1:
			i = int64(int8(v))
		case 2:
			i = int64(int16(v))
		case 4:
			i = int64(int32(v))
		default:
			i = int64(v)
		}
		if i >= 0 {
			return uint64(i), 0, false
		}
		return 0, i, true
	}
	r.bad = true
	return 0, 0, false
}

// intBits is the width of each integer kind; int and uint are 64 bits in
// Go's wasm port, as on the platforms the tests run on.
var intBits = map[reflect.Kind]uint{
	reflect.Int: strconvIntSize, reflect.Int8: 8, reflect.Int16: 16, reflect.Int32: 32, reflect.Int64: 64,
	reflect.Uint: strconvIntSize, reflect.Uint8: 8, reflect.Uint16: 16, reflect.Uint32: 32, reflect.Uint64: 64,
}

const strconvIntSize = 32 << (^uint(0) >> 63)

// decode decodes b into the struct at dst, which must be its zero value,
// and reports whether it could; if not, dst may hold part of b and must
// be zeroed again before msgpack decodes into it.
func (p *flatStruct) decode(b []byte, dst unsafe.Pointer) bool {
	r := flatReader{b: b}
	n := r.mapLen()
	for k := 0; k < n && !r.bad; k++ {
		key := r.str()
		if r.bad {
			return false
		}
		f := p.field(key)
		if f == nil {
			return false // msgpack skips it: let it
		}
		if !f.decodeValue(&r, unsafe.Add(dst, f.off)) {
			return false
		}
	}
	return !r.bad && len(r.b) == 0
}

func (p *flatStruct) field(key []byte) *flatField {
	for i := range p.fields {
		if p.fields[i].name == string(key) {
			return &p.fields[i]
		}
	}
	return nil
}

// decodeValue decodes one value into the field at ptr.
func (f *flatField) decodeValue(r *flatReader, ptr unsafe.Pointer) bool {
	if len(r.b) == 0 || r.b[0] == mpNil {
		return false
	}
	switch f.kind {
	case reflect.String:
		s := r.str()
		*(*string)(ptr) = string(s)
	case reflect.Slice:
		s := r.bytes()
		if len(s) == 0 {
			return false // nil or empty: msgpack's choice
		}
		*(*[]byte)(ptr) = append([]byte(nil), s...)
	case reflect.Bool:
		switch r.code() {
		case mpTrue:
			*(*bool)(ptr) = true
		case mpFalse:
			*(*bool)(ptr) = false
		default:
			return false
		}
	case reflect.Float32, reflect.Float64:
		c := r.code()
		var v float64
		switch c {
		case mpFloat:
			v = float64(math.Float32frombits(uint32(r.uint(4))))
		case mpDouble:
			if f.kind == reflect.Float32 {
				return false
			}
			v = math.Float64frombits(r.uint(8))
		default:
			return false // msgpack takes integers too: let it
		}
		if f.kind == reflect.Float32 {
			*(*float32)(ptr) = float32(v)
		} else {
			*(*float64)(ptr) = v
		}
	default:
		u, i, neg := r.integer()
		if r.bad {
			return false
		}
		bits := intBits[f.kind]
		switch f.kind {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if !neg {
				if u > uint64(1)<<(bits-1)-1 {
					return false
				}
				i = int64(u)
			} else if i < -(int64(1) << (bits - 1)) {
				return false
			}
			switch bits {
			case 8:
				*(*int8)(ptr) = int8(i)
			case 16:
				*(*int16)(ptr) = int16(i)
			case 32:
				*(*int32)(ptr) = int32(i)
			default:
				*(*int64)(ptr) = i
			}
		default:
			if neg || bits < 64 && u >= uint64(1)<<bits {
				return false
			}
			switch bits {
			case 8:
				*(*uint8)(ptr) = uint8(u)
			case 16:
				*(*uint16)(ptr) = uint16(u)
			case 32:
				*(*uint32)(ptr) = uint32(u)
			default:
				*(*uint64)(ptr) = u
			}
		}
	}
	return !r.bad
}

// encode appends the msgpack of the struct at src to b, as msgpack's
// default Encoder writes it.
func (p *flatStruct) encode(b []byte, src unsafe.Pointer) []byte {
	n := 0
	for i := range p.fields {
		if !p.fields[i].omit(src) {
			n++
		}
	}
	b = appendMapLen(b, n)
	for i := range p.fields {
		f := &p.fields[i]
		if f.omit(src) {
			continue
		}
		b = appendStr(b, f.name)
		b = f.encodeValue(b, unsafe.Add(src, f.off))
	}
	return b
}

// omit reports that f is omitempty and empty in the struct at src.
func (f *flatField) omit(src unsafe.Pointer) bool {
	if !f.omitEmpty {
		return false
	}
	ptr := unsafe.Add(src, f.off)
	switch f.kind {
	case reflect.String:
		return len(*(*string)(ptr)) == 0
	case reflect.Slice:
		return len(*(*[]byte)(ptr)) == 0
	case reflect.Bool:
		return !*(*bool)(ptr)
	case reflect.Float32:
		return *(*float32)(ptr) == 0
	case reflect.Float64:
		return *(*float64)(ptr) == 0
	}
	return f.intValue(ptr) == 0
}

// intValue reads an integer field as its bits, zero-extended.
func (f *flatField) intValue(ptr unsafe.Pointer) uint64 {
	switch intBits[f.kind] {
	case 8:
		return uint64(*(*uint8)(ptr))
	case 16:
		return uint64(*(*uint16)(ptr))
	case 32:
		return uint64(*(*uint32)(ptr))
	}
	return *(*uint64)(ptr)
}

func (f *flatField) encodeValue(b []byte, ptr unsafe.Pointer) []byte {
	switch f.kind {
	case reflect.String:
		return appendStr(b, *(*string)(ptr))
	case reflect.Slice:
		v := *(*[]byte)(ptr)
		if v == nil {
			return append(b, mpNil)
		}
		switch l := len(v); {
		case l < 256:
			b = append(b, mpBin8, byte(l))
		case l <= math.MaxUint16:
			b = binary.BigEndian.AppendUint16(append(b, mpBin16), uint16(l))
		default:
			b = binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(l))
		}
		return append(b, v...)
	case reflect.Bool:
		if *(*bool)(ptr) {
			return append(b, mpTrue)
		}
		return append(b, mpFalse)
	case reflect.Float32:
		return binary.BigEndian.AppendUint32(append(b, mpFloat), math.Float32bits(*(*float32)(ptr)))
	case reflect.Float64:
		return binary.BigEndian.AppendUint64(append(b, mpDouble), math.Float64bits(*(*float64)(ptr)))
	case reflect.Int:
		return appendInt(b, int64(*(*int)(ptr)))
	case reflect.Uint:
		return appendUint(b, uint64(*(*uint)(ptr)))
	case reflect.Int8:
		return append(b, mpInt8, *(*uint8)(ptr))
	case reflect.Int16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), *(*uint16)(ptr))
	case reflect.Int32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), *(*uint32)(ptr))
	case reflect.Int64:
		return binary.BigEndian.AppendUint64(append(b, mpInt64), *(*uint64)(ptr))
	case reflect.Uint8:
		return append(b, mpUint8, *(*uint8)(ptr))
	case reflect.Uint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), *(*uint16)(ptr))
	case reflect.Uint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), *(*uint32)(ptr))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), *(*uint64)(ptr))
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixMap|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpMap16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpMap32), uint32(n))
}

func appendStr(b []byte, s string) []byte {
	switch l := len(s); {
	case l <= maxFixStr:
		b = append(b, mpFixStr|byte(l))
	case l < 256:
		b = append(b, mpStr8, byte(l))
	case l <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, mpStr16), uint16(l))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(l))
	}
	return append(b, s...)
}

// appendUint and appendInt write an integer in its most compact form, as
// msgpack's EncodeUint and EncodeInt do.
func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, mpUint8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mpUint16), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), n)
}

func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, mpInt8, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mpInt16), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(n))
}
