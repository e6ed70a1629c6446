package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	spindle "github.com/spindle-hq/spindle"
)

func main() {
	spindle.MaybeRunChild(nil)
	ctx := context.Background()
	m, err := spindle.NewMaster(spindle.Config{})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	var ds []time.Duration
	n := 40
	if os.Getenv("N") != "" {
		n = 1
	}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		c, err := m.StartLocal(ctx, spindle.LocalOptions{})
		if err != nil {
			panic(err)
		}
		t1 := time.Now()
		if err := c.Ping(ctx); err != nil {
			panic(err)
		}
		ds = append(ds, time.Since(t0))
		if os.Getenv("V") != "" {
			fmt.Println(t1.Sub(t0), time.Since(t1))
		}
		c.Shutdown(ctx)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	fmt.Println("median", ds[len(ds)/2])
}
