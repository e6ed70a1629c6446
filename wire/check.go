package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxDepth is the deepest nesting of arrays and maps that Check accepts: a
// body may hold at most MaxDepth containers inside one another. The
// protocol's own bodies nest at most 3 deep (RunTask.Mounts[i]); 128 leaves
// room for any hand-made value a task or a native function passes, while the
// msgpack decoder, which recurses once per level, stays well under 1 MiB of
// goroutine stack (TestUnmarshalDeepStack measures it). A fixed bound keeps Check
// itself free of allocation: it walks with a stack of MaxDepth counters.
const MaxDepth = 128

// ErrMalformed is wrapped by every error of Check and Unmarshal: the body is
// not exactly one well-formed msgpack value within the bounds, or does not
// decode into the value asked for.
var ErrMalformed = errors.New("wire: malformed body")

// Check walks the msgpack value in b without decoding it and reports whether
// it is safe to decode: exactly one value (no trailing bytes), nested at most
// MaxDepth deep, and no declared length larger than the bytes left — a str,
// bin or ext of n bytes needs n bytes, and an array of n elements (a map of n
// entries) needs at least n (2n) more, since every value takes at least one
// byte. The count is kept across every open container, so the elements that
// all open arrays and maps still expect never exceed the bytes left.
//
// Of the ext values, Check accepts only the msgpack timestamp (type -1 with
// 4, 8 or 12 bytes, which decodes as a time.Time): the protocol uses no
// other, and msgpack v5 decodes an ext found where a map is expected by
// reading its payload as msgpack, bytes Check has not walked as values.
// Unmarshal refuses that reading for timestamps too.
//
// Check is iterative, runs in time linear in len(b) and never allocates.
// Every error wraps ErrMalformed.
//
// What a checked body may still cost its decoder: every element the body
// declares is backed by at least one byte of it, so a decoder allocates at
// most len(b) elements in all. Decoded into a typed slice that is at most
// 2 × len(b) × the element's size (msgpack grows a slice by appending a new
// one: 16 bytes per body byte for a []string); into an interface (any) at
// most 192 × len(b) bytes (the worst case, 168, is chains of one-entry maps:
// a Go map for every two bytes). TestWorstAmplification measures these and
// FuzzUnmarshal holds every accepted body to the 192 bound. The body itself
// is bounded by the stream's max message size.
func Check(b []byte) error {
	_, err := walk(b, nil)
	return err
}

// walk is Check. It returns how many timestamps b holds and, when stops is
// not nil, appends the offset of each one's payload to *stops, in order.
func walk(b []byte, stops *[]int) (int, error) {
	// pending[d] is the number of values still expected by the container
	// open at depth d+1; open is the sum over all open containers.
	var pending [MaxDepth]uint64
	depth := 0
	open := uint64(0)
	pos := 0
	times := 0
	for {
		if pos >= len(b) {
			if pos == 0 {
				return 0, fmt.Errorf("%w: empty", ErrMalformed)
			}
			return 0, fmt.Errorf("%w: truncated at byte %d: %d more values expected", ErrMalformed, pos, open)
		}
		var skip, items uint64 // payload bytes after the header; values the container being opened holds
		var container, ext bool
		var err error
		skip, items, container, ext, pos, err = valueHeader(b, pos)
		if err != nil {
			return 0, err
		}
		if ext {
			// Only the timestamp: see Check.
			if pos >= len(b) {
				return 0, fmt.Errorf("%w: truncated ext at byte %d", ErrMalformed, pos)
			}
			if typ := int8(b[pos]); typ != -1 || (skip != 4 && skip != 8 && skip != 12) {
				return 0, fmt.Errorf("%w: ext type %d of %d bytes at byte %d: only timestamps (type -1, 4, 8 or 12 bytes) are accepted",
					ErrMalformed, typ, skip, pos)
			}
			pos++
			times++
			if stops != nil {
				*stops = append(*stops, pos)
			}
		}
		left := uint64(len(b) - pos)
		if skip > left {
			return 0, fmt.Errorf("%w: value at byte %d declares %d bytes, %d left", ErrMalformed, pos, skip, left)
		}
		pos += int(skip)
		left -= skip
		// This value fills one slot of the innermost open container; close
		// every container it completes.
		if depth > 0 {
			pending[depth-1]--
			open--
		}
		if container && depth == MaxDepth {
			return 0, fmt.Errorf("%w: nested deeper than %d at byte %d", ErrMalformed, MaxDepth, pos)
		}
		if container && items > 0 {
			if open+items > left {
				return 0, fmt.Errorf("%w: container at byte %d declares %d values, %d bytes left for %d expected values",
					ErrMalformed, pos, items, left, open+items)
			}
			pending[depth] = items
			depth++
			open += items
			continue
		}
		for depth > 0 && pending[depth-1] == 0 {
			depth--
		}
		if depth == 0 {
			if pos != len(b) {
				return 0, fmt.Errorf("%w: %d trailing bytes after the value", ErrMalformed, len(b)-pos)
			}
			return times, nil
		}
	}
}

// valueHeader reads the header of the msgpack value at b[pos] (pos <
// len(b)): the payload bytes that follow it (skip: a str's, bin's or ext's
// data, a number's bytes), the values a map or array holds (items: 2 per map
// entry), which kind it is, and the position after the header. For an ext,
// skip counts the data after its type byte, which is at the returned pos.
func valueHeader(b []byte, pos int) (skip, items uint64, container, ext bool, next int, err error) {
	c := b[pos]
	pos++
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3: // fixint, nil, bool
	case c <= 0x8f: // fixmap
		items, container = 2*uint64(c&0x0f), true
	case c <= 0x9f: // fixarray
		items, container = uint64(c&0x0f), true
	case c <= 0xbf: // fixstr
		skip = uint64(c & 0x1f)
	default:
		switch c {
		case 0xc4, 0xd9: // bin8, str8
			skip, pos, err = length(b, pos, 1)
		case 0xc5, 0xda: // bin16, str16
			skip, pos, err = length(b, pos, 2)
		case 0xc6, 0xdb: // bin32, str32
			skip, pos, err = length(b, pos, 4)
		case 0xc7: // ext8: length, type, data
			skip, pos, err = length(b, pos, 1)
			ext = true
		case 0xc8: // ext16
			skip, pos, err = length(b, pos, 2)
			ext = true
		case 0xc9: // ext32
			skip, pos, err = length(b, pos, 4)
			ext = true
		case 0xca: // float32
			skip = 4
		case 0xcb: // float64
			skip = 8
		case 0xcc, 0xd0: // uint8, int8
			skip = 1
		case 0xcd, 0xd1:
			skip = 2
		case 0xce, 0xd2:
			skip = 4
		case 0xcf, 0xd3:
			skip = 8
		case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type, data
			skip, ext = 1<<(c-0xd4), true
		case 0xdc: // array16
			items, pos, err = length(b, pos, 2)
			container = true
		case 0xdd: // array32
			items, pos, err = length(b, pos, 4)
			container = true
		case 0xde: // map16
			items, pos, err = length(b, pos, 2)
			items, container = 2*items, true
		case 0xdf: // map32
			items, pos, err = length(b, pos, 4)
			items, container = 2*items, true
		default: // 0xc1: never used
			return 0, 0, false, false, pos, fmt.Errorf("%w: reserved code %#02x at byte %d", ErrMalformed, c, pos-1)
		}
	}
	return skip, items, container, ext, pos, err
}

// length reads an n-byte big-endian length at b[pos:].
func length(b []byte, pos, n int) (uint64, int, error) {
	if len(b)-pos < n {
		return 0, pos, fmt.Errorf("%w: truncated length at byte %d", ErrMalformed, pos)
	}
	switch n {
	case 1:
		return uint64(b[pos]), pos + 1, nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b[pos:])), pos + 2, nil
	}
	return uint64(binary.BigEndian.Uint32(b[pos:])), pos + 4, nil
}

// Unmarshal checks b with Check and then decodes it into v with msgpack. It
// is the one way to decode a body that came from a child, a remote host or a
// guest: a body Check refuses never reaches the decoder. A decoder panic (for
// example a map key of an unhashable type for a map[any]any) is an error
// too. Every error wraps ErrMalformed.
func Unmarshal(b []byte, v any) (err error) {
	times, err := walk(b, nil)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decode %T: %v", ErrMalformed, v, r)
		}
	}()
	if times == 0 {
		if fd, ok := v.(fastDecoder); ok && fd.decodeFast(b) {
			return nil
		}
		err = msgpack.Unmarshal(b, v)
	} else {
		// msgpack reads a timestamp where a map is expected as an ext
		// wrapping a map: the guard fails any value that would start
		// inside a timestamp's payload.
		g := &guard{b: b}
		_, _ = walk(b, &g.stops)
		dec := msgpack.NewDecoder(g)
		dec.UsePreallocateValues(true) // as msgpack.Unmarshal does
		err = dec.Decode(v)
	}
	if err != nil {
		return fmt.Errorf("%w: decode %T: %w", ErrMalformed, v, err)
	}
	return nil
}

var errInPayload = errors.New("a value starts inside a timestamp (a timestamp where a map belongs)")

// guard is the reader Unmarshal decodes a body with timestamps from. The
// decoder reads every value's first byte with ReadByte and payloads with
// Read, so a ReadByte at a payload's offset is a value read out of step.
type guard struct {
	b     []byte
	pos   int
	stops []int // ascending: offsets of the timestamps' payloads
}

func (g *guard) Read(p []byte) (int, error) {
	if g.pos >= len(g.b) {
		return 0, io.EOF
	}
	n := copy(p, g.b[g.pos:])
	g.pos += n
	return n, nil
}

func (g *guard) ReadByte() (byte, error) {
	if g.pos >= len(g.b) {
		return 0, io.EOF
	}
	if i, ok := slices.BinarySearch(g.stops, g.pos); ok {
		return 0, fmt.Errorf("%w at byte %d", errInPayload, g.stops[i])
	}
	c := g.b[g.pos]
	g.pos++
	return c, nil
}

func (g *guard) UnreadByte() error {
	if g.pos == 0 {
		return errors.New("wire: unread at the start")
	}
	g.pos--
	return nil
}
