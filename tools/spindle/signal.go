package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// interruptContext returns a context that ends at the first SIGINT or
// SIGTERM, so a command stops its work and reports what it has; a second
// signal exits at once with exitInterrupted (the children, their streams
// closed, shut down by themselves). stop releases the signals; call it
// when the command returns.
func interruptContext(stderr io.Writer, name string) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintf(stderr, "%s: interrupted, stopping (again to quit at once)\n", name)
		cancel()
		select {
		case <-sigs:
			fmt.Fprintf(stderr, "%s: interrupted again, quitting\n", name)
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
