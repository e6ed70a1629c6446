// Command spindle starts and drives Spindle context trees.
//
//	spindle tree [-depth N] [-width N]   start a demo tree of local contexts and print it
//	spindle bench [--json]               measure the runtime against this machine's limits
//
// The same binary is the child broker: a process started with SPINDLE_CHILD_FD
// set serves as a child context (see spindle.MaybeRunChild).
package main

import (
	"os"

	"github.com/spindle-hq/spindle"
)

func main() {
	maybeRunLimitHelper()
	spindle.MaybeRunChild(gocacheFuncs())
	if isExecName(os.Args[0]) {
		os.Exit(cmdExecAsGo(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
