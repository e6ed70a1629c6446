package spindle_test

import (
	"testing"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
)

// TestFleetSandboxKey: with Fleet.Sandbox, the sandboxed leaf of one chain
// is never the unsandboxed intermediate of another with the same prefix,
// whichever is asked for first.
func TestFleetSandboxKey(t *testing.T) {
	testutil.VerifyNone(t)
	m, _ := newMaster(t, spindle.Config{})
	ctx := testContext(t)
	fl := spindle.NewFleet(m)
	fl.Sandbox = true
	parse := func(s string) target.Target {
		tg, err := target.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	leaf, err := fl.Get(ctx, parse("local:x/local:y"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := fl.Get(ctx, parse("local:x"))
	if err != nil {
		t.Fatal(err)
	}
	if x.ID() == leaf.Parent() {
		t.Fatalf("local:x as a target is the unsandboxed intermediate %s", x)
	}
	for _, c := range []*spindle.Context{leaf, x} {
		var sb spindle.SandboxResult
		if err := c.Call(ctx, "sandbox", nil, &sb); err != nil {
			t.Fatal(err)
		}
		if !sb.Sandboxed {
			t.Fatalf("%s is not sandboxed", c)
		}
	}
	again, err := fl.Get(ctx, parse("local:x"))
	if err != nil || again.ID() != x.ID() {
		t.Fatalf("a second Get gave %v, %v; want %s", again, err, x)
	}
}
