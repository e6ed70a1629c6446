package gotest

import (
	"fmt"
	"strings"
	"time"
)

// UsageError is a run refused before anything ran: a flag the sandbox
// cannot honour, a file that is not a wasip1 test binary, bad Options.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return "gotest: " + e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// pathFlags are the testing package's flags whose value is a file or a
// directory on the machine that started the test, with what go test
// passes it for.
var pathFlags = map[string]string{
	"test.coverprofile":     "-coverprofile",
	"test.gocoverdir":       "-cover",
	"test.cpuprofile":       "-cpuprofile",
	"test.memprofile":       "-memprofile",
	"test.blockprofile":     "-blockprofile",
	"test.mutexprofile":     "-mutexprofile",
	"test.trace":            "-trace",
	"test.outputdir":        "-outputdir",
	"test.testlogfile":      "go test's own test cache",
	"test.fuzzcachedir":     "-fuzz",
	"test.fuzzworker":       "-fuzz",
	"test.fuzz":             "-fuzz",
	"test.fuzzminimizetime": "-fuzz",
}

// testFlags is what Run needs to know of a test binary's arguments.
type testFlags struct {
	timeout    time.Duration // -test.timeout; 0 if absent or 0
	hasTimeout bool
	count      bool // -test.count given: a fresh run is asked for
}

// parseTestFlags checks args, the test binary's arguments, for flags the
// sandbox cannot honour and reads those Run uses. It knows the testing
// package's flags only by name: anything else is passed on as it is.
func parseTestFlags(args []string) (testFlags, error) {
	var tf testFlags
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break // the rest are the test's own arguments
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		next := func() string {
			if hasVal {
				return val
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		if what, ok := pathFlags[name]; ok {
			return tf, usagef("-%s (from %s) names a path on this machine, which the sandbox cannot write to: not supported by spindle exec", name, what)
		}
		switch name {
		case "test.timeout":
			v := next()
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return tf, usagef("-test.timeout %q: not a duration", v)
			}
			tf.timeout, tf.hasTimeout = d, true
		case "test.count":
			tf.count = true
		}
	}
	return tf, nil
}
