//go:build wasip1

// Command cmd is a WASI command module (not a reactor) for testing how the
// host runs commands. It reads all of stdin, then writes to stdout
//
//	args: ["a" "b"]
//	GREETING=<value of $GREETING>
//	<stdin, upper-cased>
//
// writes "cmd: done" to stderr, and exits with the number of arguments
// (argv[0] not counted).
//
//	GOOS=wasip1 GOARCH=wasm go build -o cmd.wasm .
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd: read stdin:", err)
		os.Exit(100)
	}
	var args []string
	if len(os.Args) > 1 {
		args = os.Args[1:]
	}
	fmt.Printf("args: %q\n", args)
	fmt.Printf("GREETING=%s\n", os.Getenv("GREETING"))
	os.Stdout.Write(bytes.ToUpper(in))
	fmt.Fprintln(os.Stderr, "cmd: done")
	os.Exit(len(args))
}
