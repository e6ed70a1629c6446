//go:build wasip1

// Command garbage is a guest for the SDK's memory test: "garbage" makes
// 1 MiB of garbage per call through Register, "small" a few bytes.
package main

import "github.com/spindle-hq/spindle/guest-sdk"

type in struct {
	N int `msgpack:"n"`
}

type out struct {
	Last byte `msgpack:"last"`
}

func init() {
	guest.Register("garbage", func(_ guest.Ctx, in in) (out, error) {
		b := make([]byte, 1<<20)
		b[len(b)-1] = byte(in.N)
		return out{Last: b[len(b)-1]}, nil
	})
	guest.RegisterRaw("small", func(_ guest.Ctx, in []byte) ([]byte, error) {
		return append([]byte("small "), in...), nil
	})
}

func main() {}
