//go:build wasip1

// Command forger is a hostile reactor for the CLI's tests: its tasks write
// text meant to act on the operator's terminal (erase the line, return the
// cursor, forge an "ok" row for another target, C1 controls).
//
//   - "output": returns Forged as its output.
//   - "error": fails with Forged as the message.
//   - "log": logs Forged, with Forged as an attribute key and value.
package main

import (
	"errors"

	"github.com/spindle-hq/spindle/guest-sdk"
)

// Forged erases the line, returns the cursor, writes a fake row, clears the
// screen with a C1 CSI, sets the window title and rings the bell.
const Forged = "\x1b[2K\rlocal:other                  ok      {\"fine\":true}\u009b2J\x1b]0;pwned\x07"

func init() {
	guest.Register("output", func(guest.Ctx, struct{}) (string, error) { return Forged, nil })
	guest.Register("error", func(guest.Ctx, struct{}) (struct{}, error) { return struct{}{}, errors.New(Forged) })
	guest.Register("log", func(c guest.Ctx, _ struct{}) (struct{}, error) {
		c.Info(Forged, Forged, Forged)
		return struct{}{}, nil
	})
}

func main() {}
