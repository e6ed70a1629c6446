package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func sample() *Message {
	return &Message{Enc: EncMsgpack, Dst: 0x01020304, Src: 5, Auth: 6, Handle: 101, ReplyTo: 1000, Body: []byte("hello")}
}

func TestHeaderLayout(t *testing.T) {
	got := sample().AppendFrame(nil)
	want, _ := hex.DecodeString("534d" + "01020304" + "00000005" + "00000006" + "00000065" + "000003e8" + "00000005" + hex.EncodeToString([]byte("hello")))
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
	}{
		{"msgpack", sample()},
		{"empty", &Message{Enc: EncRaw, Handle: 1}},
		{"dead", &Message{Enc: EncError, ReplyTo: IsDead, Body: []byte{0x80}}},
		{"large", &Message{Enc: EncRaw, Body: bytes.Repeat([]byte{7}, 1<<20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.m.AppendFrame(nil)
			got, err := ReadMessage(bytes.NewReader(frame), make([]byte, HeaderLen), 0)
			if err != nil {
				t.Fatalf("ReadMessage(%x...) error %v", frame[:HeaderLen], err)
			}
			if got.String() != tt.m.String() || !bytes.Equal(got.Body, tt.m.Body) {
				t.Fatalf("ReadMessage = %v, want %v", got, tt.m)
			}
			got2, err := DecodeFrame(frame, 0)
			if err != nil || got2.String() != tt.m.String() {
				t.Fatalf("DecodeFrame = %v, %v, want %v", got2, err, tt.m)
			}
		})
	}
}

func TestBadFrames(t *testing.T) {
	good := sample().AppendFrame(nil)
	badEnc := append([]byte{0x4d, 0x49}, good[2:]...)
	tests := []struct {
		name  string
		frame []byte
		max   uint32
		want  error // nil means a *DecodeError
	}{
		{"bad encoding", badEnc, 0, nil},
		{"too large", good, 4, nil},
		{"truncated header", good[:10], 0, io.ErrUnexpectedEOF},
		{"truncated body", good[:HeaderLen+2], 0, io.ErrUnexpectedEOF},
		{"empty", nil, 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMessage(bytes.NewReader(tt.frame), make([]byte, HeaderLen), tt.max)
			var de *DecodeError
			if tt.want == nil && !errors.As(err, &de) {
				t.Fatalf("ReadMessage(%x) = %v, want *DecodeError", tt.frame, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("ReadMessage(%x) = %v, want %v", tt.frame, err, tt.want)
			}
		})
	}
}

// TestOversizeRejectedFromHeader checks the size limit is applied from the
// header alone: a header claiming 4 GiB, with no body behind it, must fail as
// a DecodeError (not as a short read), so nothing was read or allocated for
// the body.
func TestOversizeRejectedFromHeader(t *testing.T) {
	hdr := sample().AppendHeader(nil)
	hdr[22], hdr[23], hdr[24], hdr[25] = 0xff, 0xff, 0xff, 0xff
	var de *DecodeError
	if _, err := ReadMessage(bytes.NewReader(hdr), make([]byte, HeaderLen), 1<<20); !errors.As(err, &de) {
		t.Fatalf("ReadMessage(%x) = %v, want *DecodeError", hdr, err)
	}
}

func FuzzDecode(f *testing.F) {
	good := sample().AppendFrame(nil)
	f.Add(good)
	f.Add(good[:HeaderLen])
	f.Add(good[:HeaderLen-1])
	f.Add(good[:HeaderLen+3])
	f.Add((&Message{Enc: EncError, ReplyTo: IsDead, Body: []byte{0x82, 0xa4, 0x63, 0x6f, 0x64, 0x65, 0x01}}).AppendFrame(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 16
		m, err := ReadMessage(bytes.NewReader(b), make([]byte, HeaderLen), max)
		if err != nil {
			return
		}
		if len(m.Body) > max || !m.Enc.Valid() {
			t.Fatalf("ReadMessage(%x) accepted %v", b, m)
		}
		// Re-encoding what was accepted reproduces the bytes consumed.
		again := m.AppendFrame(nil)
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("re-encode = %x, want %x", again, b[:len(again)])
		}
	})
}
