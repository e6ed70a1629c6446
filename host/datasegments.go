package host

import (
	"cmp"
	"errors"
	"slices"
)

// Coalescing data segments: the Go toolchain emits a module with tens of
// thousands of small active data segments (35,000 for a minimal reactor,
// most a few bytes apart), and wazero evaluates each segment's offset
// expression, with allocations, at every instantiation: about 2.8 ms of
// the 5 ms it takes to instantiate a Go guest. coalesceData rewrites the
// data section into a few segments holding the same bytes, before the
// module is compiled, so that each instantiation copies a few large
// segments instead.
//
// The rewrite keeps the instance's initial memory exactly as it was:
//   - it applies only when every segment is active, in memory 0, with a
//     constant offset (i32.const), and not empty, and when the module has
//     no data count section, which memory.init and data.drop require: no
//     instruction refers to a segment by its index;
//   - segments that do not overlap write disjoint bytes, so their order
//     does not matter, and the gaps filled with zeros between merged
//     segments hold no other segment's bytes and are zero in a new memory;
//   - a merged segment ends where one of its segments did, so it is out
//     of bounds only if one of those was, and instantiation fails as
//     before.
//
// Every other section, code included, keeps its bytes and position (the
// data section comes after the code), so offsets in debug information stay
// valid. A module it cannot rewrite is returned unchanged.

// maxDataGap is the largest gap of zeros filled to merge two segments:
// copying it costs less than evaluating one more segment (about 80 ns).
const maxDataGap = 256

const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

var errNotCoalescible = errors.New("data section cannot be coalesced")

type dataSegment struct {
	offset uint32
	data   []byte // aliases the module's bytes
}

// coalesceData returns wasm with its data segments merged where that is
// safe and useful, or wasm itself.
func coalesceData(wasm []byte) []byte {
	start, end, segs, err := readDataSection(wasm)
	if err != nil || len(segs) < 2 {
		return wasm
	}
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	merged := make([]int, 0, 16) // indexes in segs where a merged segment starts
	for i, s := range segs {
		if i == 0 {
			merged = append(merged, 0)
			continue
		}
		prev := segs[i-1]
		prevEnd := uint64(prev.offset) + uint64(len(prev.data))
		if uint64(s.offset) < prevEnd {
			return wasm // overlapping writes: their order matters
		}
		if uint64(s.offset)-prevEnd > maxDataGap {
			merged = append(merged, i)
		}
	}
	if len(merged) == len(segs) {
		return wasm
	}

	var body []byte
	body = appendULEB(body, uint32(len(merged)))
	for k, first := range merged {
		last := len(segs) - 1
		if k+1 < len(merged) {
			last = merged[k+1] - 1
		}
		base := segs[first].offset
		size := uint64(segs[last].offset) + uint64(len(segs[last].data)) - uint64(base)
		body = append(body, 0, opI32Const)
		body = appendSLEB(body, int32(base))
		body = append(body, opEnd)
		body = appendULEB(body, uint32(size))
		at := len(body)
		body = append(body, make([]byte, size)...)
		for _, s := range segs[first : last+1] {
			copy(body[at+int(s.offset-base):], s.data)
		}
	}
	out := make([]byte, 0, len(wasm)-(end-start)+len(body)+6)
	out = append(out, wasm[:start]...)
	out = append(out, sectionData)
	out = appendULEB(out, uint32(len(body)))
	out = append(out, body...)
	return append(out, wasm[end:]...)
}

// readDataSection finds the data section, [start, end) with its header, and
// decodes its segments; errNotCoalescible if the module is not one
// coalesceData can rewrite (see above), or is malformed.
func readDataSection(wasm []byte) (start, end int, segs []dataSegment, err error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return 0, 0, nil, errNotCoalescible
	}
	start = -1
	for i := 8; i < len(wasm); {
		id := wasm[i]
		size, n := readULEB(wasm[i+1:])
		if n == 0 || uint64(size) > uint64(len(wasm)-i-1-n) {
			return 0, 0, nil, errNotCoalescible
		}
		next := i + 1 + n + int(size)
		switch id {
		case sectionDataCount:
			return 0, 0, nil, errNotCoalescible
		case sectionData:
			if start >= 0 {
				return 0, 0, nil, errNotCoalescible
			}
			start, end = i, next
			if segs, err = readSegments(wasm[i+1+n : next]); err != nil {
				return 0, 0, nil, err
			}
		}
		i = next
	}
	if start < 0 {
		return 0, 0, nil, errNotCoalescible
	}
	return start, end, segs, nil
}

func readSegments(b []byte) ([]dataSegment, error) {
	count, n := readULEB(b)
	if n == 0 || uint64(count) > uint64(len(b)) {
		return nil, errNotCoalescible
	}
	b = b[n:]
	segs := make([]dataSegment, 0, count)
	for range count {
		flag, n := readULEB(b)
		if n == 0 {
			return nil, errNotCoalescible
		}
		b = b[n:]
		switch flag {
		case 0: // active, memory 0
		case 2: // active, explicit memory
			mem, n := readULEB(b)
			if n == 0 || mem != 0 {
				return nil, errNotCoalescible
			}
			b = b[n:]
		default: // passive
			return nil, errNotCoalescible
		}
		if len(b) == 0 || b[0] != opI32Const {
			return nil, errNotCoalescible
		}
		offset, n := readSLEB(b[1:])
		if n == 0 || len(b) < 2+n || b[1+n] != opEnd {
			return nil, errNotCoalescible
		}
		b = b[2+n:]
		size, n := readULEB(b)
		if n == 0 || size == 0 || uint64(size) > uint64(len(b)-n) {
			return nil, errNotCoalescible
		}
		segs = append(segs, dataSegment{offset: uint32(offset), data: b[n : n+int(size)]})
		b = b[n+int(size):]
	}
	if len(b) != 0 {
		return nil, errNotCoalescible
	}
	return segs, nil
}

// readULEB decodes an unsigned LEB128 u32; n is 0 if it is malformed.
func readULEB(b []byte) (v uint32, n int) {
	var shift uint
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, 0
		}
		v |= uint32(c&0x7f) << shift
		if c < 0x80 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

// readSLEB decodes a signed LEB128 i32; n is 0 if it is malformed.
func readSLEB(b []byte) (v int32, n int) {
	var shift uint
	var r int64
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		r |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if c&0x40 != 0 {
				r |= -1 << shift
			}
			if r < -1<<31 || r > 1<<31-1 {
				return 0, 0
			}
			return int32(r), i + 1
		}
	}
	return 0, 0
}

func appendULEB(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendSLEB(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
