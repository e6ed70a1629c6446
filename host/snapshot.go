package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// Snapshots of initialized instances: a fresh instance of a Go reactor
// spends about half its start in _initialize (the Go runtime's and the
// packages' init), which computes the same state every time it runs with
// the same inputs. So the first fresh instance of a module that nothing
// but its memory and globals can tell apart is captured after its
// initialization, and later ones start from that state instead of running
// _initialize (and the start function) again.
//
// What makes that exact rather than close:
//
//   - Only an instance whose initialization sees nothing of its call is
//     captured or restored: a reactor instantiated with no mounts, no
//     /dev, no environment, no stdin and the fake clock and random source
//     (Grants.Clock and Random false), as every pooled instance is
//     (initNeutral). Its initialization then reads only what every such
//     instance reads.
//   - The fake clock and random source of such instances are the host's
//     (fakeSys), the same values wazero's defaults give, counted: a
//     restored instance's clocks and random source continue from where
//     the captured initialization left them, so a guest reads exactly
//     what it would have read after running _initialize itself.
//   - An initialization that calls a spindle host function (logs, sends,
//     execs, reads its task's name), writes to stdout or stderr, calls a
//     descriptor function that could change a descriptor (inertWASI
//     lists the ones that cannot), or that fails, is not captured: a
//     restored instance would not repeat what it did outside itself, and
//     gets a new descriptor table.
//   - Nor is one that had a memory.grow refused: it saw its call's memory
//     limit. A call whose memory limit is below the snapshot's size, or
//     whose stack budget is below the capture's, could have failed where
//     the capture did not, and initializes itself.
//   - guard exports the module's mutable globals (snapExport), and only
//     for a module whose code changes no table or segment (table.set,
//     table.grow, data.drop, ...): what the snapshot restores, the memory
//     and those globals, is then all of an instance's state. A module with
//     a reference-typed mutable global is not snapshotted.
//
// The snapshot keeps the memory as the runs of bytes that differ from a
// new instance's (zeros and the data segments), so restoring costs a copy
// of what the initialization wrote, not of the whole memory.

// snapshot is the state of a module's instance after its initialization.
// It is immutable once made, and shared by the instances restored from it.
type snapshot struct {
	size    uint64   // the memory's size in bytes
	runs    []memRun // where the memory differs from a new instance's
	globals []uint64 // global k exported as snapGlobalName(k), as api.Global.Get gives it
	// What the initialization read of the fake clocks and random source.
	nano, wall, random int64
	// stack is the stack budget the initialization ran under: a call
	// with less could have overflowed where it did not, so it
	// initializes itself.
	stack int32
	bytes uint64 // what runs hold, against Host.snapBytes
}

// memRun is a run of bytes of the memory at off.
type memRun struct {
	off uint64
	b   []byte
}

// snapState is a Module's snapshot, once captured.
type snapState struct {
	ready atomic.Pointer[snapshot]
	// busy is set while a capture is under way, and for good once the
	// module is known not to be snapshottable or attempts ran out.
	busy     atomic.Bool
	attempts atomic.Int32
}

// maxSnapAttempts bounds the captures tried for a module whose
// initialization failed (a timeout, a memory limit of one call): after
// that, its instances initialize themselves.
const maxSnapAttempts = 3

// The bounds of snapshots: a memory larger than maxSnapshotBytes when
// instantiated or initialized is not captured, nor one whose
// initialization read more than maxSnapshotRandom random bytes (each
// restore reads them again); and a Host keeps at most maxSnapshotTotal
// bytes of snapshots, first come, for as long as it lives.
const (
	maxSnapshotBytes  = 64 << 20
	maxSnapshotTotal  = 256 << 20
	maxSnapshotRandom = 64 << 10
)

// errRestore marks an instance that could not be restored from its
// module's snapshot; instantiate then makes one that initializes itself.
var errRestore = errors.New("host: snapshot not restored")

// initNeutral reports that an instance made for call (pooled: with no
// grants) initializes as every other such instance does.
func initNeutral(call *Call, pooled bool) bool {
	if pooled {
		return true
	}
	g := &call.Grants
	return len(g.Mounts) == 0 && !g.DevNull && !g.Clock && !g.Random && len(g.Env) == 0 && call.Stdin == nil
}

// snapPlan is what instantiate does about snapshots for one instance.
type snapPlan struct {
	restore *snapshot // start from it, or nil
	capture bool      // capture this instance after its initialization
	fake    *fakeSys  // the instance's clocks and random source, or nil
}

// planSnapshot decides, before instantiation, whether the instance for
// call restores m's snapshot, captures one, or neither. limit is the
// memory the call allows.
func (h *Host) planSnapshot(m *Module, call *Call, pooled bool, limit uint64, stack int32) snapPlan {
	if h.noSnapshots || !m.counted || m.kind != Reactor || !initNeutral(call, pooled) {
		return snapPlan{}
	}
	if s := m.snap.ready.Load(); s != nil {
		if s.size > limit || stack < s.stack {
			// It initializes itself, and fails, or not, as it would.
			return snapPlan{}
		}
		return snapPlan{restore: s, fake: newFakeSys(s.nano, s.wall, s.random)}
	}
	if m.snap.busy.CompareAndSwap(false, true) {
		return snapPlan{capture: true, fake: newFakeSys(0, 0, 0)}
	}
	return snapPlan{}
}

// restore sets inst's memory and globals to s: the instance is then as
// initialized. inst has just been instantiated and has run no code.
func (s *snapshot) restoreTo(inst *instance) error {
	if cur := uint64(len(inst.mem.buf)); s.size > cur {
		if _, ok := inst.mod.Memory().Grow(uint32((s.size - cur) / pageSize)); !ok {
			return errors.New("host: the memory cannot grow to the snapshot's size")
		}
	}
	buf := inst.mem.buf
	if uint64(len(buf)) != s.size {
		return fmt.Errorf("host: memory of %d bytes for a snapshot of %d", len(buf), s.size)
	}
	for _, r := range s.runs {
		copy(buf[r.off:], r.b)
	}
	for k, v := range s.globals {
		g, ok := inst.mod.ExportedGlobal(snapGlobalName(k)).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("host: no global %s to restore", snapGlobalName(k))
		}
		g.Set(v)
	}
	return nil
}

// capture makes m's snapshot from inst, which has just been initialized
// by the call st: before is a copy of its memory as instantiated, and
// calls what st.hostCalls was before the initialization. If the
// initialization did anything a restored instance would not repeat (a
// host call, a write, a descriptor changed), saw its call's memory limit
// (a grow refused), or the snapshot would pass a bound, m is never
// snapshotted.
func (h *Host) capture(m *Module, inst *instance, before []byte, fake *fakeSys, st *callState, calls int64) {
	if st.hostCalls != calls || inst.mem.refused ||
		uint64(len(inst.mem.buf)) > maxSnapshotBytes || fake.rand.n > maxSnapshotRandom {
		return // busy stays set: never again
	}
	s, ok := takeSnapshot(inst, before, fake)
	if !ok {
		return // no snapshot globals: likewise
	}
	s.stack = st.limits.stackBudget()
	if h.snapBytes.Add(s.bytes) > maxSnapshotTotal {
		h.snapBytes.Add(^(s.bytes - 1))
		return
	}
	m.snap.ready.Store(s)
}

// captureFailed records a capture whose initialization failed: another
// instance may try, up to maxSnapAttempts.
func (m *Module) captureFailed() {
	if m.snap.attempts.Add(1) < maxSnapAttempts {
		m.snap.busy.Store(false)
	}
}

// takeSnapshot reads inst's state after its initialization: its memory
// against before (its memory as instantiated), its snapshot globals and
// what fake counted. It reports false for a module guard gave no
// snapshot globals.
func takeSnapshot(inst *instance, before []byte, fake *fakeSys) (*snapshot, bool) {
	n := inst.mod.ExportedGlobal(snapExport)
	if n == nil {
		return nil, false
	}
	s := &snapshot{
		size:   uint64(len(inst.mem.buf)),
		nano:   fake.nano.Load(),
		wall:   fake.wall.Load(),
		random: fake.rand.n,
	}
	for k := range int(int32(n.Get())) {
		g := inst.mod.ExportedGlobal(snapGlobalName(k))
		if g == nil {
			return nil, false
		}
		s.globals = append(s.globals, g.Get())
	}
	s.runs = diffRuns(before, inst.mem.buf)
	for _, r := range s.runs {
		s.bytes += uint64(len(r.b))
	}
	return s, true
}

// snapBlock is the granularity of a snapshot's memory runs.
const snapBlock = 64

// diffRuns returns the runs of blocks of after that differ from before
// (read as zeros past its end), copied. before is the caller's copy, and
// may be extended.
func diffRuns(before, after []byte) []memRun {
	before = append(before, make([]byte, max(len(after)-len(before), 0))...)
	var runs []memRun
	start := -1
	flush := func(end int) {
		if start >= 0 {
			runs = append(runs, memRun{uint64(start), slices.Clone(after[start:end])})
			start = -1
		}
	}
	for off := 0; off < len(after); off += snapBlock {
		end := min(off+snapBlock, len(after))
		if bytes.Equal(before[off:end], after[off:end]) {
			flush(off)
		} else if start < 0 {
			start = off
		}
	}
	flush(len(after))
	return runs
}

// fakeSys is the fake clocks and random source of an instance whose
// initialization may be captured or restored (see above): the values of
// wazero's defaults, with the readings counted, and started after the
// readings a captured initialization made.
type fakeSys struct {
	nano, wall atomic.Int64 // readings so far
	rand       countingReader
}

// fakeSeed and fakeEpoch are the seed and the first wall clock reading of
// wazero's fake random source and clock, which every other instance gets.
const (
	fakeSeed  = 42
	fakeEpoch = 1640995200000 * int64(1e6) // 2022-01-01 UTC
	fakeTick  = int64(1e6)                 // each reading advances 1 ms
)

func newFakeSys(nano, wall, random int64) *fakeSys {
	f := &fakeSys{}
	f.nano.Store(nano)
	f.wall.Store(wall)
	r := rand.New(rand.NewSource(fakeSeed))
	if random > 0 {
		_, _ = io.CopyN(io.Discard, r, random) // a math/rand Rand never fails
	}
	f.rand = countingReader{r: r, n: random}
	return f
}

func (f *fakeSys) nanotime() int64 { return (f.nano.Add(1) - 1) * fakeTick }

func (f *fakeSys) walltime() (int64, int32) {
	t := fakeEpoch + (f.wall.Add(1)-1)*fakeTick
	return t / 1e9, int32(t % 1e9)
}

// config gives cfg f's clocks and random source, with the resolutions of
// wazero's fakes (1 µs wall, 1 ns monotonic).
func (f *fakeSys) config(cfg wazero.ModuleConfig) wazero.ModuleConfig {
	return cfg.WithWalltime(f.walltime, sys.ClockResolution(1000)).
		WithNanotime(f.nanotime, sys.ClockResolution(1)).
		WithRandSource(&f.rand)
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
