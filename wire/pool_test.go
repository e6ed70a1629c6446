package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestClassOf(t *testing.T) {
	tests := []struct{ n, class int }{
		{PoolMin, 0},
		{PoolMin + 1, 1},
		{2 * PoolMin, 1},
		{2*PoolMin + 1, 2},
		{1 << 20, 4},
		{DefaultMaxMessageSize, classOf(DefaultMaxMessageSize)},
		{1 << 32, numClasses - 1},
	}
	for _, tt := range tests {
		c := classOf(tt.n)
		if c != tt.class {
			t.Errorf("classOf(%d) = %d, want %d", tt.n, c, tt.class)
		}
		if size := 1 << (c + minClassShift); size < tt.n || (c > 0 && size/2 >= tt.n) {
			t.Errorf("classOf(%d) = %d: class size %d is not the smallest power of two holding it", tt.n, c, size)
		}
	}
}

// readFrame reads back the frame of m through ReadMessage.
func readFrame(t *testing.T, m *Message) *Message {
	t.Helper()
	got, err := ReadMessage(bytes.NewReader(m.AppendFrame(nil)), make([]byte, HeaderLen), 0)
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	return got
}

func TestPooledBodies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		n      int
		pooled bool
	}{
		{"empty", 0, false},
		{"small", 100, false},
		{"just under PoolMin", PoolMin - 1, false},
		{"PoolMin", PoolMin, true},
		{"1MiB+1", 1<<20 + 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := bytes.Repeat([]byte{0x5a}, tt.n)
			got := readFrame(t, &Message{Enc: EncRaw, Handle: 9, Body: want})
			if !bytes.Equal(got.Body, want) {
				t.Fatalf("body of %d bytes read back wrong", tt.n)
			}
			if len(got.Body) != tt.n {
				t.Fatalf("len(Body) = %d, want %d", len(got.Body), tt.n)
			}
			buf := got.Detach()
			if (buf != nil) != tt.pooled {
				t.Fatalf("Detach() = %v, want pooled=%v", buf, tt.pooled)
			}
			if got.Detach() != nil {
				t.Fatal("second Detach returned the buffer again")
			}
			if !bytes.Equal(got.Body, want) {
				t.Fatal("Detach changed the body")
			}
			if buf != nil && &buf.b[0] != &got.Body[0] {
				t.Fatal("the detached buffer is not the one behind Body")
			}
			buf.Release() // nil-safe for unpooled bodies
		})
	}
}

func TestMessageRelease(t *testing.T) {
	m := readFrame(t, &Message{Enc: EncRaw, Body: make([]byte, PoolMin)})
	m.Release()
	if m.Body != nil {
		t.Fatalf("after Release, Body has %d bytes, want nil", len(m.Body))
	}
	if m.Detach() != nil {
		t.Fatal("after Release the message still holds its buffer")
	}
	m.Release() // twice is harmless: the buffer went back once

	plain := &Message{Body: []byte("mine")}
	plain.Release()
	if plain.Body != nil {
		t.Fatal("Release of an unpooled message did not clear Body")
	}
}

// A pooled buffer that comes back out of the pool carries its old bytes; the
// next read must overwrite every byte the new body exposes.
func TestPooledBufferReuseOverwrites(t *testing.T) {
	for i := range 8 {
		n := PoolMin + i*1000
		want := bytes.Repeat([]byte{byte(i + 1)}, n)
		got := readFrame(t, &Message{Enc: EncRaw, Body: want})
		if !bytes.Equal(got.Body, want) {
			t.Fatalf("round %d: body read back wrong", i)
		}
		got.Release()
	}
}

func TestPooledBodyCutShort(t *testing.T) {
	frame := (&Message{Enc: EncRaw, Body: make([]byte, PoolMin)}).AppendFrame(nil)
	_, err := ReadMessage(bytes.NewReader(frame[:len(frame)-1]), make([]byte, HeaderLen), 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadMessage of a pooled body cut short = %v, want io.ErrUnexpectedEOF", err)
	}
}

func BenchmarkReadMessagePooled(b *testing.B) {
	frame := (&Message{Enc: EncRaw, Body: make([]byte, 1<<20)}).AppendFrame(nil)
	hdr := make([]byte, HeaderLen)
	r := bytes.NewReader(frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(frame)
		m, err := ReadMessage(r, hdr, 0)
		if err != nil {
			b.Fatal(err)
		}
		m.Release()
	}
}
