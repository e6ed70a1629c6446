package wire

import "bytes"

// fastDecoder is implemented by the bodies on the hot path (a CALL's
// request) that Unmarshal decodes by hand rather than through msgpack's
// reflection. decodeFast sees a body Check has accepted; it decodes it and
// returns true, or returns false without changing the value when the body
// has a shape it does not take, and msgpack then decodes it (with its own
// errors). What it decodes must be exactly what msgpack would:
// TestFastDecodeMatchesMsgpack and FuzzUnmarshal compare the two.
type fastDecoder interface {
	decodeFast(b []byte) bool
}

func (r *CallRequest) decodeFast(b []byte) bool {
	entries, pos, ok := mapHeader(b, 0)
	if !ok {
		return false
	}
	fn, args := r.Fn, r.Args
	for range entries {
		var key []byte
		if key, pos, ok = str(b, pos); !ok {
			return false
		}
		end, ok := skipValue(b, pos)
		if !ok {
			return false
		}
		switch string(key) {
		case "fn":
			v, _, ok := str(b, pos)
			if !ok {
				return false
			}
			fn = string(v)
		case "args":
			if b[pos] == 0xc0 {
				return false // msgpack's own nil handling for a RawMessage
			}
			args = bytes.Clone(b[pos:end])
		}
		pos = end
	}
	if pos != len(b) {
		return false
	}
	r.Fn, r.Args = fn, args
	return true
}

// mapHeader reads a map header at b[pos], returning its entry count.
func mapHeader(b []byte, pos int) (entries uint64, next int, ok bool) {
	if pos >= len(b) {
		return 0, pos, false
	}
	c := b[pos]
	if c < 0x80 || (c > 0x8f && c != 0xde && c != 0xdf) {
		return 0, pos, false
	}
	_, items, _, _, next, err := valueHeader(b, pos)
	return items / 2, next, err == nil
}

// str reads a str at b[pos], returning its bytes (not copied).
func str(b []byte, pos int) (s []byte, next int, ok bool) {
	if pos >= len(b) {
		return nil, pos, false
	}
	c := b[pos]
	if (c < 0xa0 || c > 0xbf) && c != 0xd9 && c != 0xda && c != 0xdb {
		return nil, pos, false
	}
	n, _, _, _, next, err := valueHeader(b, pos)
	if err != nil || n > uint64(len(b)-next) {
		return nil, pos, false
	}
	return b[next : next+int(n)], next + int(n), true
}

// skipValue returns the position after the msgpack value at b[pos], which
// Check has accepted as part of a body.
func skipValue(b []byte, pos int) (int, bool) {
	for left := uint64(1); left > 0; left-- {
		if pos >= len(b) {
			return pos, false
		}
		skip, items, _, ext, next, err := valueHeader(b, pos)
		if err != nil {
			return pos, false
		}
		if ext {
			skip++ // the type byte
		}
		if skip > uint64(len(b)-next) || items > uint64(len(b)) {
			return pos, false
		}
		pos = next + int(skip)
		left += items
	}
	return pos, true
}
