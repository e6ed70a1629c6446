package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spindle-hq/spindle/host"
	"github.com/spindle-hq/spindle/target"
)

// The checks spindle run makes on the master before any context starts,
// beyond what checkModule reads from the module's bytes: the task names of
// a guest-SDK reactor, and the host directories of --mount and --dir when
// every target runs on this machine. A mistake found here is bad input
// (exit 2), not a failure of each target.

// probeTimeout bounds the master's own call of a module to learn its task
// names: one instance's initialization and the call, the compile before it
// not included (it is cached on disk, and the local children load it from
// there).
const probeTimeout = 10 * time.Second

// sdkTasks asks a reactor that dispatches task names (spindle_call, as
// the guest SDK builds them) which tasks it has, by calling it once on the
// master with no task name, no input and no grants: the SDK answers
// status 2 (not found) with "a task name is needed (this module has: A,
// B)". ok is false when the module answered anything else (it is not the
// SDK's, or an SDK that words it otherwise) or the call did not finish:
// then nothing is known, and the name is left to the target to check.
// err is a module that does not compile. cacheDir is the master's cache
// directory ("" none), whose compiled modules its local children share.
func sdkTasks(ctx context.Context, cacheDir string, wasm []byte, pages uint32) (tasks []string, ok bool, err error) {
	if cacheDir != "" {
		cacheDir = filepath.Join(cacheDir, "compiled") // as the contexts' hosts have it
	}
	h, err := host.New(ctx, host.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, false, nil
	}
	defer h.Close(context.Background())
	sum := sha256.Sum256(wasm)
	mod, err := h.Compile(ctx, hex.EncodeToString(sum[:]), wasm)
	if err != nil {
		var te *host.TaskError
		if errors.As(err, &te) && ctx.Err() == nil {
			return nil, false, errors.New(te.Message)
		}
		return nil, false, err
	}
	_, err = h.Run(ctx, mod, host.Call{Task: "", Limits: host.Limits{Timeout: probeTimeout, MemoryPages: pages}})
	var te *host.TaskError
	if !errors.As(err, &te) || te.Kind != host.KindNotFound {
		return nil, false, nil
	}
	_, list, found := strings.Cut(te.Message, "(this module has: ")
	list, closed := strings.CutSuffix(list, ")")
	if !found || !closed {
		return nil, false, nil
	}
	if list == "" {
		return nil, true, nil
	}
	return strings.Split(list, ", "), true, nil
}

// checkTask refuses a TASK that a guest-SDK reactor does not register, no
// TASK for one (naming its tasks), and a reactor that does not compile.
func checkTask(ctx context.Context, o *runOpts, cacheDir string, wasm []byte) error {
	info, err := host.Describe(wasm)
	if err != nil || info.Kind == host.Command || !info.Dispatch || slices.Contains(info.Tasks(), o.task) {
		return err
	}
	tasks, ok, err := sdkTasks(ctx, cacheDir, wasm, o.pages)
	list := "none"
	if len(tasks) > 0 {
		list = strings.Join(tasks, ", ")
	}
	switch {
	case err != nil:
		return err
	case o.task == "" && !ok:
		return errors.New("a reactor module: name a TASK (it is built with the guest SDK, which names its tasks when it runs: see the module's docs)")
	case o.task == "":
		return fmt.Errorf("a reactor module: name a TASK (its tasks: %s)", list)
	case !ok || slices.Contains(tasks, o.task):
		return nil
	}
	return fmt.Errorf("a reactor module with no task %q (its tasks: %s)", o.task, list)
}

// onThisMachine reports whether every target's chain runs on this machine:
// local hops only (local, local:NAME, local://USER).
func onThisMachine(targets []target.Named) bool {
	for _, nt := range targets {
		for _, h := range nt.Target {
			if h.Method != "local" {
				return false
			}
		}
	}
	return len(targets) > 0
}

// checkMounts refuses a --mount or --dir whose host directory is missing
// (or not a directory) when every target runs on this machine; a remote
// target's directory is its own, checked there.
func checkMounts(o *runOpts, targets []target.Named) error {
	if !onThisMachine(targets) {
		return nil
	}
	for i, m := range o.mounts {
		fi, err := os.Stat(m.Host)
		switch {
		case err != nil:
			return fmt.Errorf("%s: the host directory: %w", o.mountArgs[i], err)
		case !fi.IsDir():
			return fmt.Errorf("%s: the host path %s is not a directory", o.mountArgs[i], m.Host)
		}
	}
	return nil
}
