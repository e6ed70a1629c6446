//go:build wasip1

// Command hello is a Spindle reactor with one task, "hello", which greets a
// name: {"name": "world"} gives {"greeting": "hello, world"}.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
package main

import "github.com/spindle-hq/spindle/guest-sdk"

type helloIn struct {
	Name string `msgpack:"name"`
}

type helloOut struct {
	Greeting string `msgpack:"greeting"`
}

func init() {
	guest.Register("hello", hello)
}

func hello(_ guest.Ctx, in helloIn) (helloOut, error) {
	return helloOut{Greeting: "hello, " + in.Name}, nil
}

// main never runs in a reactor; the package must still have one.
func main() {}
