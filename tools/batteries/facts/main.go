//go:build wasip1

// Command facts is the battery behind spindle facts: a reactor whose one
// task, "facts", returns the machine's facts (package
// tools/batteries/inspect: hostname, OS release, kernel, architecture,
// CPUs, memory, disks, mounts, network interfaces, uptime, users) as a
// msgpack inspect.Facts. It reads them from /etc, /proc, /sys and
// /usr/lib, which its caller mounts read-only at the same paths
// (inspect.FactsMounts); it is granted nothing else: no exec, no clock,
// no network. What it cannot read is empty and named in Facts.Missing;
// the task never fails for it. The inspect package doc says what comes
// from which file, and how those files read through the sandbox.
package main

import (
	guest "github.com/spindle-hq/spindle/guest-sdk"
	"github.com/spindle-hq/spindle/tools/batteries/inspect"
)

func init() {
	guest.Register("facts", func(guest.Ctx, struct{}) (inspect.Facts, error) {
		return inspect.Gather(), nil
	})
}

func main() {}
