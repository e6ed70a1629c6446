package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// How spindle run gives a command its --stdin (issue 14): streamed, as the
// guest reads it, so that a pipe that stays open (an interactive program, a
// producer that never closes) does not keep the guest from starting.

// maxSharedStdin bounds the stdin read whole to be shared by several
// targets ("-" or a pipe, which only one reader can consume).
const maxSharedStdin = 64 << 20

// stdinFor opens --stdin v for n targets and returns a function that gives
// each target's Run its reader, and the function that closes what was
// opened. With one target, or a regular file, every target's stdin is
// streamed: "-" is this process's stdin itself; a regular file is read by
// each target from its start (a section reader each). "-" or a FIFO with
// several targets is read whole first, at most maxSharedStdin bytes, and
// each target gets the same bytes.
func stdinFor(v string, n int) (next func() io.Reader, closeFn func(), err error) {
	none := func() io.Reader { return nil }
	if v == "" {
		return none, func() {}, nil
	}
	f := os.Stdin
	closeFn = func() {}
	if v != "-" {
		if f, err = os.Open(v); err != nil {
			return nil, nil, err
		}
		closeFn = func() { f.Close() }
	}
	fi, err := f.Stat()
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	switch {
	case fi.Mode().IsRegular() && v != "-":
		size := fi.Size()
		return func() io.Reader { return io.NewSectionReader(f, 0, size) }, closeFn, nil
	case n == 1:
		// Behind a plain reader: os.File's ReadFrom and WriteTo are of no
		// use here, and the task's stream reads it as it is.
		return func() io.Reader { return struct{ io.Reader }{f} }, closeFn, nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSharedStdin+1))
	closeFn()
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxSharedStdin {
		return nil, nil, fmt.Errorf("more than %d MiB to share among %d targets: with several targets a pipe's stdin is read whole first (give a regular file to stream it to each)", maxSharedStdin>>20, n)
	}
	return func() io.Reader { return bytes.NewReader(b) }, func() {}, nil
}
