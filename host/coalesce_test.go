package host_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/internal/testutil"
)

// TestCoalesceGuests checks that coalescing the data segments of the test
// guests keeps their initial memory, byte for byte, and how far it cuts
// the segments of the Go guests.
func TestCoalesceGuests(t *testing.T) {
	testutil.VerifyNone(t)
	for _, name := range []string{"creactor", "goreactor"} {
		wasm := guest(t, name)
		co := host.CoalesceData(wasm)
		before, after := host.DataSegments(wasm), host.DataSegments(co)
		t.Logf("%s: %d data segments, %d after", name, before, after)
		if strings.HasPrefix(name, "go") && after > 100 {
			t.Errorf("%s: %d data segments after coalescing, want a few", name, after)
		}
		m1, err := host.InitialMemory(t.Context(), wasm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m2, err := host.InitialMemory(t.Context(), co)
		if err != nil {
			t.Fatalf("%s coalesced: %v", name, err)
		}
		if !bytes.Equal(m1, m2) {
			t.Errorf("%s: initial memory differs after coalescing", name)
		}
	}
}
