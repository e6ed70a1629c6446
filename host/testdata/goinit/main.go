// Command goinit is a Go reactor for the host's snapshot tests
// (snapshot.go) whose initialization writes to stdout: a snapshot of it
// would lose that write for every later instance, so the host must never
// take one.
package main

import "fmt"

func init() { fmt.Println("init ran") }

//go:wasmexport noop
func noop() int32 { return 0 }

func main() {}
