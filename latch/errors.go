package latch

import "errors"

// Sentinel errors returned by Latch and Select. Check them with errors.Is.
var (
	// ErrClosed is returned by any use of a Latch or Select after Close,
	// including Get and TryGet on a closed Latch that still held items.
	ErrClosed = errors.New("latch: closed")

	// ErrEmpty is returned by the non-blocking TryGet of a Latch or Select
	// when nothing is ready.
	ErrEmpty = errors.New("latch: empty")

	// ErrSelectEmpty is returned by Select.Get and Select.TryGet when the
	// Select has no sources, so that nothing could ever arrive.
	ErrSelectEmpty = errors.New("latch: select has no sources")

	// ErrCycle is returned by Select.Add when the source is the Select
	// itself or already contains it, directly or through nested Selects.
	ErrCycle = errors.New("latch: adding source would create a cycle")

	// ErrOwned is returned by Select.Add and SetNotify when the source
	// already has a notify function installed, which in practice means it
	// already belongs to a Select.
	ErrOwned = errors.New("latch: source already belongs to a select")

	// ErrNotMember is returned by Select.Remove for a source that is not a
	// member of that Select.
	ErrNotMember = errors.New("latch: source is not in this select")
)
