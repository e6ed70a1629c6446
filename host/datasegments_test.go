package host

import (
	"bytes"
	"maps"
	"testing"
)

// seg is a data segment for dataModule: flag 0 (active), 1 (passive) or
// 2 (active, explicit memory 0).
type seg struct {
	flag   byte
	offset int32
	data   string
}

// dataModule encodes a module with a one-page memory, the segments, and a
// data count section if dataCount.
func dataModule(segs []seg, dataCount bool) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, body []byte) {
		b = append(b, id)
		b = appendULEB(b, uint32(len(body)))
		b = append(b, body...)
	}
	section(5, []byte{1, 0, 1})
	if dataCount {
		section(sectionDataCount, appendULEB(nil, uint32(len(segs))))
	}
	body := appendULEB(nil, uint32(len(segs)))
	for _, s := range segs {
		body = append(body, s.flag)
		switch s.flag {
		case 0, 2:
			if s.flag == 2 {
				body = append(body, 0)
			}
			body = append(body, opI32Const)
			body = appendSLEB(body, s.offset)
			body = append(body, opEnd)
		}
		body = appendULEB(body, uint32(len(s.data)))
		body = append(body, s.data...)
	}
	section(sectionData, body)
	section(0, append([]byte{4}, "name"...)) // a custom section after the data
	return b
}

// image applies the data segments of wasm to a sparse memory.
func image(t *testing.T, wasm []byte) map[uint32]byte {
	t.Helper()
	_, _, segs, err := readDataSection(wasm)
	if err != nil {
		t.Fatalf("readDataSection: %v", err)
	}
	m := make(map[uint32]byte)
	for _, s := range segs {
		for i, c := range s.data {
			if c != 0 {
				m[s.offset+uint32(i)] = c
			} else {
				delete(m, s.offset+uint32(i))
			}
		}
	}
	return m
}

func TestCoalesceData(t *testing.T) {
	big := string(make([]byte, maxDataGap+1))
	tests := []struct {
		name    string
		segs    []seg
		count   bool
		want    int // segments after; 0: unchanged
		wantImg bool
	}{
		{name: "adjacent", segs: []seg{{0, 0, "ab"}, {0, 2, "cd"}, {0, 10, "e"}}, want: 1},
		{name: "unsorted", segs: []seg{{0, 10, "e"}, {2, 0, "ab"}, {0, 4, "cd"}}, want: 1},
		{name: "far apart", segs: []seg{{0, 0, "a"}, {0, 1 + maxDataGap + 1, "b"}, {0, 1 + maxDataGap + 2, "c"}}, want: 2},
		{name: "long zero run", segs: []seg{{0, 0, "a" + big + "b"}, {0, int32(len(big)) + 100, "c"}}, want: 1},
		{name: "high offset", segs: []seg{{0, -100, "a"}, {0, -10, "b"}}, want: 1},
		{name: "overlap", segs: []seg{{0, 0, "abc"}, {0, 2, "x"}}},
		{name: "passive", segs: []seg{{0, 0, "a"}, {1, 0, "b"}}},
		{name: "data count", segs: []seg{{0, 0, "a"}, {0, 1, "b"}}, count: true},
		{name: "empty segment", segs: []seg{{0, 0, "a"}, {0, 1, ""}}},
		{name: "one segment", segs: []seg{{0, 0, "a"}}},
	}
	for _, tt := range tests {
		in := dataModule(tt.segs, tt.count)
		out := coalesceData(in)
		if tt.want == 0 {
			if !bytes.Equal(out, in) {
				t.Errorf("%s: rewritten, want unchanged", tt.name)
			}
			continue
		}
		if n := len(mustSegments(t, out)); n != tt.want {
			t.Errorf("%s: %d segments, want %d", tt.name, n, tt.want)
		}
		if !maps.Equal(image(t, in), image(t, out)) {
			t.Errorf("%s: memory image changed:\n%v\n%v", tt.name, image(t, in), image(t, out))
		}
		if !bytes.HasSuffix(out, []byte("\x00\x05\x04name")) {
			t.Errorf("%s: the custom section after the data was lost", tt.name)
		}
	}
}

func mustSegments(t *testing.T, wasm []byte) []dataSegment {
	t.Helper()
	_, _, segs, err := readDataSection(wasm)
	if err != nil {
		t.Fatalf("readDataSection: %v", err)
	}
	return segs
}

func TestLEB(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 1 << 20, -1 << 31, 1<<31 - 1} {
		b := appendSLEB(nil, v)
		if got, n := readSLEB(b); got != v || n != len(b) {
			t.Errorf("readSLEB(%x) = %d, %d; want %d, %d", b, got, n, v, len(b))
		}
	}
	for _, v := range []uint32{0, 1, 127, 128, 1 << 28, 1<<32 - 1} {
		b := appendULEB(nil, v)
		if got, n := readULEB(b); got != v || n != len(b) {
			t.Errorf("readULEB(%x) = %d, %d; want %d, %d", b, got, n, v, len(b))
		}
	}
	for _, b := range [][]byte{{0x80}, {0xff, 0xff, 0xff, 0xff, 0x7f}, {}} {
		if _, n := readULEB(b); n != 0 {
			t.Errorf("readULEB(%x) accepted", b)
		}
	}
}

// FuzzCoalesceData checks that the decoder never panics, and that a
// rewrite keeps the memory image.
func FuzzCoalesceData(f *testing.F) {
	f.Add(dataModule([]seg{{0, 0, "ab"}, {0, 2, "cd"}, {0, 10, "e"}}, false))
	f.Add(dataModule([]seg{{0, 10, "e"}, {2, 0, "ab"}}, false))
	f.Add(dataModule([]seg{{0, 0, "abc"}, {0, 2, "x"}}, false))
	f.Add(dataModule([]seg{{0, 0, "a"}, {1, 0, "b"}}, true))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out := coalesceData(wasm)
		if bytes.Equal(out, wasm) {
			return
		}
		if !maps.Equal(image(t, wasm), image(t, out)) {
			t.Errorf("memory image changed")
		}
		if again := coalesceData(out); !bytes.Equal(again, out) {
			t.Errorf("a second rewrite changed the module")
		}
	})
}
