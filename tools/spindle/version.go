package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spindle-hq/spindle/ci"
	"github.com/spindle-hq/spindle/wire"
)

// printVersion prints what a bug report needs: spindle's module version
// (and the commit it was built from, when the build recorded one), the Go
// toolchain, the wazero it runs guests under, the protocol version its
// contexts speak and the platform of its CI action keys.
func printVersion(w io.Writer) {
	version, commit, wazero := "(unknown)", "", "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				if s.Value == "true" && commit != "" {
					commit += "+dirty"
				}
			}
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wazero = d.Version
			}
		}
	}
	if commit != "" {
		version += " " + commit
	}
	fmt.Fprintf(w, "spindle %s\ngo %s %s/%s\nwazero %s\nprotocol %d\nci platform %q\n",
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, wazero, wire.ProtocolVersion, ci.Platform)
}
