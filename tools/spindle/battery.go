package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The batteries: wasm modules shipped with spindle (tools/batteries/NAME,
// built by make into bin/batteries/NAME.wasm beside bin/spindle) that the
// thin verbs (spindle sh) run. make build pins each by its sha256 in the
// binary (-ldflags -X main.batteryPins=NAME=HEX,...), so a spindle runs
// only the modules it was built with.

// batteryPins is "NAME=SHA256,..." as make build sets it; empty in a
// binary built by plain go build (or a test binary), which then takes the
// module it finds unpinned.
var batteryPins string

// batteriesEnv names a directory to look in first (tests, development).
const batteriesEnv = "SPINDLE_BATTERIES"

// loadBattery returns the wasm of the battery name and whether its hash was
// checked against a pin.
func loadBattery(name string) (wasm []byte, pinned bool, err error) {
	var dirs []string
	if d := os.Getenv(batteriesEnv); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Join(filepath.Dir(exe), "batteries"))
		}
	}
	var tried []string
	for _, d := range dirs {
		p := filepath.Join(d, name+".wasm")
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			tried = append(tried, p)
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("battery %s: %w", name, err)
		}
		return checkPin(name, p, b, batteryPins)
	}
	return nil, false, fmt.Errorf("battery %s: not found (looked for %s; make build puts it in bin/batteries/)", name, strings.Join(tried, ", "))
}

// checkPin checks b, read from p, against the pin of name in pins.
func checkPin(name, p string, b []byte, pins string) ([]byte, bool, error) {
	if pins == "" {
		return b, false, nil
	}
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:])
	for _, kv := range strings.Split(pins, ",") {
		n, want, _ := strings.Cut(kv, "=")
		if strings.TrimSuffix(n, ".wasm") != name {
			continue
		}
		if got != want {
			return nil, false, fmt.Errorf("battery %s: %s has sha256 %s, this spindle was built with %s: rebuild both with make build", name, p, got[:16], want[:min(16, len(want))])
		}
		return b, true, nil
	}
	return nil, false, fmt.Errorf("battery %s: this spindle was built without it (pins: %s): rebuild with make build", name, pins)
}
