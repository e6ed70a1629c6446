package main

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/spindle-hq/spindle"
)

// What spindle run gives a WASI command module beyond its flags, as
// `wazero run` and `wasmtime run` do (issue 14): argv[0] is the module's
// base name, /dev/null is there unless a mount takes /dev, and
// --env-inherit passes this process's environment.

// wasiUsage is the part of spindle run -h on command modules.
const wasiUsage = `
A command module (WASI preview 1, it exports _start) runs as
"wazero run" would, in a sandbox: argv[0] is the module's base name
(prog.wasm: "prog.wasm"), the arguments are those after --, and a stray
word after MODULE is a usage error (a TASK is for reactors). It sees
only its grants: no environment unless --env or --env-inherit, no files
but its mounts, /dev/null, and an empty read-only "/" (a path outside
every mount is ENOENT), empty stdin unless --stdin (streamed: a read
waits for input or EOF, and ends when the task does).
Its clock is FAKE unless --clock: the time starts at 2022-01-01 and a
sleep returns at once; random bytes are DETERMINISTIC unless --random.
Both keep a run reproducible; grant them for programs that wait or need
secrets. docs/abi.md has the whole contract.
`

// parseDir parses --dir HOST or --dir HOST::GUEST[:ro]: HOST alone is
// mounted read-write at its own absolute path (wazero's -mount HOST), and
// may hold ':'; with "::" (wasmtime's separator), GUEST is where the guest
// sees it, checked as --mount checks it.
func parseDir(v string) (spindle.Mount, error) {
	hostDir, guest, named := strings.Cut(v, "::")
	if hostDir == "" {
		return spindle.Mount{}, fmt.Errorf("--dir %q: want HOST or HOST::GUEST[:ro]", v)
	}
	m := spindle.Mount{Host: hostDir}
	if !named {
		abs, err := filepath.Abs(hostDir)
		if err != nil {
			return spindle.Mount{}, fmt.Errorf("--dir %q: %v", v, err)
		}
		m.Guest = filepath.ToSlash(abs)
		return m, nil
	}
	if g, ok := strings.CutSuffix(guest, ":ro"); ok {
		guest, m.ReadOnly = g, true
	}
	if !path.IsAbs(guest) || path.Clean(guest) != guest {
		return spindle.Mount{}, fmt.Errorf("--dir %q: the guest path must be absolute and clean, as %s", v, path.Join("/", guest))
	}
	m.Guest = guest
	return m, nil
}

// addMount adds m to o's mounts, refusing a guest path mounted twice.
func (o *runOpts) addMount(flag, v string, m spindle.Mount) error {
	for _, prev := range o.mounts {
		if prev.Guest == m.Guest {
			return fmt.Errorf("%s %q: guest path %s is already mounted (from %s)", flag, v, m.Guest, prev.Host)
		}
	}
	o.mounts = append(o.mounts, m)
	o.mountArgs = append(o.mountArgs, flag+" "+v)
	return nil
}

// commandDefaults fills in what a command module gets without a flag:
// argv[0], /dev/null, and with --env-inherit this process's environment
// (each --env wins over it). Called once the module is known to be one.
func commandDefaults(o *runOpts, environ []string) {
	o.task = filepath.Base(o.module) // argv[0]
	o.devNull = true
	for _, m := range o.mounts {
		if m.Guest == "/dev" {
			o.devNull = false
		}
	}
	if o.envInherit {
		for _, kv := range environ {
			k, v, ok := strings.Cut(kv, "=")
			if _, set := o.env[k]; ok && k != "" && !set && !strings.ContainsRune(v, 0) {
				o.env[k] = v
			}
		}
	}
}
