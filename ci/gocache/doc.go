// Package gocache is a Go build cache for the go command's GOCACHEPROG
// protocol (Go 1.24 and later): Serve speaks the protocol on a pair of
// streams, and Dir is a cache directory that answers it. It is the engine
// of spindle gocache; tools/spindle adds a cache held by a context of the
// tree, shared by every machine that points its go command at it.
//
// # The protocol
//
// The go command starts the program named by GOCACHEPROG and writes
// requests to its stdin, one JSON object a line: get (an action ID: is
// there an output for it?), put (an action ID, an output ID and the
// output's bytes, sent as a JSON string of base64 on the next line, after
// an empty one) and close. The program first writes the commands it knows,
// then one JSON response per request, in any order, matched by ID. A get
// or put that succeeds names a file on this machine holding the output
// (DiskPath), which must stay there until close: go reads the archives
// and binaries it builds with from those paths. A get that fails for any
// reason is answered as a miss (go would take an error for one too, but
// a miss says what happened); a put that fails is an error (go drops the
// output); close is never answered with an error, since go fails its
// command on one ("failed to trim cache"). The output ID is
// the sha256 of the output's bytes (go computes it so), which is what a
// put here is checked against: a body that does not hash to its output ID
// is refused.
//
// # The directory
//
// A Dir keeps, under DIR/XX/ (XX the first byte of the ID in hex), a file
// ACTION-a per action (one line: the output ID, its size and when it was
// put) and a file OUTPUT-d per output, the shape of go's own cache
// directory, so that a tool run planned by gotool mounts the directory
// whole, as it does GOCACHE. Files are written to a temporary name and
// renamed, so any number of processes may share a directory and none
// sees half a file. An entry whose output file is missing or of another
// size is a miss. Trim removes entries and outputs not used for a while,
// oldest first; an output used in the last TrimGrace is never removed,
// since another go command may hold its path.
//
// # Bounds
//
// A request line is at most MaxRequestLine bytes and a body at most
// Config.MaxBody (DefaultMaxBody); a longer line ends the session with an
// error, a larger body is read, discarded and refused. At most MaxGets
// gets are answered at once (a backend may be slow: a cache across the
// network); puts are read one after the other, as the protocol sends them.
//
// # Concurrency
//
// A Dir is safe for concurrent use, by goroutines and processes. Serve
// calls its Backend's Get from up to MaxGets goroutines at once, Put from
// one goroutine, and Close once, after every Get has returned. The ctx of
// Get and Put ends when the session does: when its input ends without a
// close (the go command died), gets in flight are cancelled, not waited
// out. Serve returns once close has been answered, or its input has
// ended, and every goroutine it started has exited.
package gocache
