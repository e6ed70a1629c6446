package host

import (
	"os"
	"testing"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// BenchmarkGuardGoGuest checks and rewrites the example hello guest, a Go
// reactor of about 4 MB: the work guard adds to every compile, cached or
// not.
func BenchmarkGuardGoGuest(b *testing.B) {
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "examples/wasm/hello", true))
	if err != nil {
		b.Fatal(err)
	}
	lim := ModuleLimits{}.orDefaults()
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := guard(wasm, lim, DefaultStackBytes); err != nil {
			b.Fatal(err)
		}
	}
}
