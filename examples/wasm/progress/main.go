//go:build wasip1

// Command progress is a Spindle reactor with one task, "count", that
// reports progress on a channel its caller grants:
// {"n": 3, "progress": {"ctx": c, "handle": h}} sends {"i": 1}, {"i": 2},
// {"i": 3} on the channel, logs "step i=1" ... at info level, and returns
// {"done": 3}. Without a progress channel it only logs.
package main

import (
	"fmt"

	"github.com/spindle-hq/spindle/guest-sdk"
)

type countIn struct {
	N        int           `msgpack:"n"`
	Progress guest.Channel `msgpack:"progress"`
}

type step struct {
	I int `msgpack:"i"`
}

type countOut struct {
	Done int `msgpack:"done"`
}

func init() {
	guest.Register("count", count)
}

func count(ctx guest.Ctx, in countIn) (countOut, error) {
	report := in.Progress != guest.Channel{}
	for i := 1; i <= in.N; i++ {
		ctx.Info("step", "i", i)
		if !report {
			continue
		}
		if err := ctx.Send(in.Progress, step{I: i}); err != nil {
			return countOut{}, fmt.Errorf("count: step %d: %w", i, err)
		}
	}
	return countOut{Done: in.N}, nil
}

// main never runs in a reactor; the package must still have one.
func main() {}
