package broker

import "errors"

var (
	// ErrShutdown is returned when work is offered to a broker whose shutdown
	// has begun.
	ErrShutdown = errors.New("broker: shut down")
	// ErrStreamClosed is returned by Send on a stream closed without a more
	// specific error (a local Close).
	ErrStreamClosed = errors.New("broker: stream closed")
	// ErrPeerClosed is the terminal error of a stream whose peer closed it
	// cleanly between frames.
	ErrPeerClosed = errors.New("broker: peer closed the stream")
	// ErrStalled is the terminal error of a stream whose peer took no bytes
	// for StreamConfig.StallTimeout while a sender waited for room.
	ErrStalled = errors.New("broker: peer stopped reading")
)
