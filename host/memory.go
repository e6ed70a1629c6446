package host

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

const (
	pageSize = 65536
	// maxPages is the most pages a wasm32 memory can have (4 GiB).
	maxPages = 65536

	// minReserve is the least capacity given to a new linear memory, so
	// that a Go guest (2 MiB declared, about 2.6 MiB after its runtime
	// starts, more once it runs) grows without copying.
	minReserve = 8 << 20
	// maxPooledBuffer is the largest buffer kept for reuse; a guest that
	// grew past it (a memory bomb, say) gives its memory back to the GC.
	maxPooledBuffer = 64 << 20
	// maxPoolBytes bounds the bytes held by a bufferPool.
	maxPoolBytes = 256 << 20
)

// linearMemory backs one instance's linear memory and enforces the memory
// limit of the call running on the instance. wazero reads the allocator
// from the instantiation ctx (experimental.WithMemoryAllocator), so the
// limit is a field that the host sets before each call rather than a
// runtime-wide setting.
//
// A linearMemory is owned by the goroutine using its instance: wazero calls
// Reallocate from the guest's memory.grow, on that goroutine, and Free when
// the module closes, which may be inside the guest's proc_exit. Free only
// marks the memory freed: its buffer goes back to the pool when the owner
// calls release, after closing the instance, so that a buffer is never
// handed to another instance while any code of this one could still reach
// it.
type linearMemory struct {
	pool *bufferPool
	buf  []byte // len: the memory's size; bytes past len are zero
	// limit is the most bytes the current call may grow the memory to.
	limit uint64
	// max is the module's own maximum, as wazero passed it to Allocate.
	max uint64
	// refused records that a grow past limit was refused during the
	// current call, so that the trap or failure that usually follows is
	// reported as kind memory.
	refused bool
	// freed records that wazero freed the memory; no grow succeeds after.
	freed bool
}

// Allocate implements experimental.MemoryAllocator: each instance gets a
// linearMemory of its own, so the allocator is the memory itself.
func (m *linearMemory) Allocate(_, max uint64) experimental.LinearMemory {
	m.max = max
	return m
}

// Reallocate implements experimental.LinearMemory. The first call (the
// module's declared minimum, checked against the limit before
// instantiation) is always granted: wazero does not expect it to fail.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if m.freed {
		return nil
	}
	if m.buf != nil && size > m.limit {
		m.refused = true
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	want := max(size, 2*uint64(cap(m.buf)), minReserve)
	want = min(want, max(m.limit, size), max(m.max, size))
	buf := m.pool.get(want)[:size]
	copy(buf, m.buf)
	m.pool.put(m.buf)
	m.buf = buf
	return buf
}

// Free implements experimental.LinearMemory: see release.
func (m *linearMemory) Free() { m.freed = true }

// release gives the buffer back to the pool; the instance must be closed.
func (m *linearMemory) release() {
	m.freed = true
	m.pool.put(m.buf)
	m.buf = nil
}

// bufferPool keeps the buffers of closed instances for new ones. Reusing one
// costs clearing the part its last memory used, where a new one costs
// zeroing its whole capacity and, later, the GC's work to free it.
//
// A bufferPool is safe for concurrent use.
type bufferPool struct {
	mu    sync.Mutex
	free  [][]byte // guarded by mu; each has len = the bytes that may be dirty
	bytes int      // guarded by mu; the sum of cap(free[i])
}

// get returns a zeroed buffer of capacity at least n, its length unspecified.
func (p *bufferPool) get(n uint64) []byte {
	p.mu.Lock()
	best := -1
	for i, b := range p.free {
		if uint64(cap(b)) >= n && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	if best < 0 {
		p.mu.Unlock()
		return make([]byte, n)
	}
	b := p.free[best]
	last := len(p.free) - 1
	p.free[best] = p.free[last]
	p.free[last] = nil
	p.free = p.free[:last]
	p.bytes -= cap(b)
	p.mu.Unlock()
	clear(b)
	return b[:cap(b)]
}

// put gives b back; it keeps it if there is room.
func (p *bufferPool) put(b []byte) {
	if b == nil || cap(b) > maxPooledBuffer {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+cap(b) > maxPoolBytes {
		return
	}
	p.free = append(p.free, b)
	p.bytes += cap(b)
}
