//go:build !spindlehost

package main

import (
	"fmt"
	"io"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "spindle run: not in this build")
	return 2
}
