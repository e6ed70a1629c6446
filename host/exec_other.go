//go:build !linux

package host

import (
	"context"
	"errors"
	"time"
)

func isProgram(string) bool { return false }

// run fails: the process-group handling exec needs is written for Linux.
func (r *execRun) run(context.Context, []string, []string, string, time.Duration) error {
	return errors.New("exec is supported on Linux only")
}
