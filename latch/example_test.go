package latch_test

import (
	"context"
	"fmt"

	"github.com/spindle-hq/spindle/latch"
)

func ExampleLatch() {
	var l latch.Latch[string] // the zero value is ready to use
	ctx := context.Background()
	l.Put("first")
	l.Put("second")
	for range 2 {
		v, _ := l.Get(ctx)
		fmt.Println("got", v)
	}

	// Close wakes a consumer asleep in Get (or about to call it) with
	// ErrClosed.
	errc := make(chan error)
	go func() {
		_, err := l.Get(ctx)
		errc <- err
	}()
	l.Close()
	fmt.Println("consumer stopped:", <-errc)
	// Output:
	// got first
	// got second
	// consumer stopped: latch: closed
}

func ExampleSelect() {
	replies := map[string]*latch.Latch[int]{"web1": {}, "web2": {}, "db1": {}}
	names := map[latch.Source]string{}
	sel := latch.NewSelect(true) // oneshot: one event per source
	defer sel.Close()
	for name, l := range replies {
		names[l] = name
		if err := sel.Add(l); err != nil {
			panic(err)
		}
	}

	replies["db1"].Put(3)
	replies["web2"].Put(2)
	replies["web1"].Put(1)

	for {
		ev, err := sel.Get(context.Background())
		if err != nil {
			fmt.Println("done:", err)
			return
		}
		fmt.Println(names[ev.Source], ev.Value)
	}
	// Output:
	// db1 3
	// web2 2
	// web1 1
	// done: latch: select has no sources
}
