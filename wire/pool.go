package wire

import (
	"math/bits"
	"sync"
)

// Bodies of at least PoolMin bytes that ReadMessage reads come from a pool of
// recycled buffers, so that a stream carrying bulk data does not allocate
// (and the GC clear and scan) a fresh buffer per message. Smaller bodies are
// plain allocations: they are cheap, and most messages are small.
//
// Recycling is explicit and optional. A Message read from the pool holds its
// buffer; whoever owns the message may give the buffer back with Release
// once nothing refers to the body any more, or hand the buffer on with
// Detach (a stream that writes the body releases it once written). A
// message that is never released costs only what an allocation would: the
// GC collects its buffer.
const PoolMin = 64 << 10

// Size classes are the powers of two from PoolMin to DefaultMaxMessageSize
// and beyond, up to the 4 GiB a header's length field can express.
const (
	minClassShift = 16 // PoolMin == 1 << minClassShift
	numClasses    = 32 - minClassShift + 1
)

var pools [numClasses]sync.Pool

// Buffer is a pooled body buffer. Its zero value is not used; a nil *Buffer
// is valid and its Release does nothing.
type Buffer struct {
	b     []byte // full capacity of the class
	class int
}

// classOf returns the size class holding n bytes (n >= PoolMin).
func classOf(n int) int {
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuffer returns a buffer of at least n bytes (n >= PoolMin), its first
// n bytes as the body. The contents are whatever a previous user left.
func getBuffer(n int) (*Buffer, []byte) {
	c := classOf(n)
	if v := pools[c].Get(); v != nil {
		buf := v.(*Buffer)
		return buf, buf.b[:n]
	}
	buf := &Buffer{b: make([]byte, 1<<(c+minClassShift)), class: c}
	return buf, buf.b[:n]
}

// Release gives the buffer back to the pool. Nothing may use the body that
// came with it afterwards. Releasing a nil Buffer does nothing.
func (b *Buffer) Release() {
	if b == nil {
		return
	}
	pools[b.class].Put(b)
}

// Detach takes the pooled buffer behind m.Body from m, if any: the caller
// now owns it and releases it when the body is no longer used. m.Body stays
// valid until then. It returns nil for a body that is not pooled.
func (m *Message) Detach() *Buffer {
	b := m.buf
	m.buf = nil
	return b
}

// Release gives m's pooled body buffer back, if it has one, and clears
// m.Body. Nothing may use the body afterwards, through m or a copy of m.
// Calling it on a message without a pooled body only clears Body.
func (m *Message) Release() {
	m.Body = nil
	m.Detach().Release()
}
