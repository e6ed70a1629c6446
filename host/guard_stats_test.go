package host

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGuardStats logs the structure of the modules named by
// $SPINDLE_GUARD_STATS (a glob), for choosing ModuleLimits defaults.
func TestGuardStats(t *testing.T) {
	glob := os.Getenv("SPINDLE_GUARD_STATS")
	if glob == "" {
		t.Skip("SPINDLE_GUARD_STATS not set")
	}
	files, _ := filepath.Glob(glob)
	lim := ModuleLimits{}.orDefaults()
	lim.FunctionBlocks, lim.CompileWork, lim.Locals = 1<<40, 1<<62, 1<<40
	for _, f := range files {
		wasm, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sections, _ := splitSections(wasm)
		var bodies [][]byte
		for _, s := range sections {
			if s.id == sectionCode {
				bodies, _ = splitBodies(s.body)
			}
		}
		var maxBlocks, maxLocals, maxBody, work int64
		for _, b := range bodies {
			locals, blocks, err := scanBody(b, lim, space{^uint32(0), ^uint32(0)})
			if err != nil {
				t.Errorf("%s: %v", f, err)
				break
			}
			maxBlocks, maxLocals, maxBody = max(maxBlocks, blocks), max(maxLocals, locals), max(maxBody, int64(len(b)))
			work += blocks * blocks
		}
		_, gerr := guard(wasm, ModuleLimits{}.orDefaults(), 1<<20)
		t.Logf("%s: %d bytes, %d functions, max body %d, max locals %d, max blocks %d, work %d; guard: %v",
			filepath.Base(f), len(wasm), len(bodies), maxBody, maxLocals, maxBlocks, work, gerr)
	}
}
