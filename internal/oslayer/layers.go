package oslayer

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// applyNoNewPrivs sets no_new_privs on every thread. The flag belongs to a
// thread, not to the process (and a thread inherits it from the one that
// creates it), so setting it on the calling thread alone would leave the
// runtime's other threads free to execve a setuid program: the prctl goes to
// all of them at once (go-landlock's psx-based AllThreadsPrctl, which works
// with and without cgo).
func applyNoNewPrivs() Layer {
	if err := ll.AllThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return Layer{Name: NoNewPrivs, Detail: "prctl(PR_SET_NO_NEW_PRIVS): " + errnoText(err)}
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
		return Layer{Name: NoNewPrivs, Detail: fmt.Sprintf("prctl(PR_GET_NO_NEW_PRIVS) = %d, %v after setting it", v, err)}
	}
	return Layer{Name: NoNewPrivs, Active: true}
}

// applyRlimits sets the limits cfg asks for. The layer is on when every
// limit asked for was set.
func applyRlimits(cfg Config) Layer {
	var set, failed []string
	limit := func(name string, resource int, v uint64) {
		got, err := setLimit(resource, v)
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s=%d: setrlimit: %s", name, v, errnoText(err)))
		case got < v:
			set = append(set, fmt.Sprintf("%s=%d (hard limit; %d asked)", name, got, v))
		default:
			set = append(set, fmt.Sprintf("%s=%d", name, got))
		}
	}
	if cfg.MaxFiles > 0 {
		limit("nofile", unix.RLIMIT_NOFILE, cfg.MaxFiles)
	}
	if cfg.NoCore {
		limit("core", unix.RLIMIT_CORE, 0)
	}
	if cfg.MaxFileBytes > 0 {
		ignoreSIGXFSZ() // before the limit exists, so no write can be killed by it
		limit("fsize", unix.RLIMIT_FSIZE, uint64(cfg.MaxFileBytes))
	}
	switch {
	case len(set) == 0 && len(failed) == 0:
		return Layer{Name: Rlimit, Detail: "none asked for"}
	case len(failed) > 0:
		return Layer{Name: Rlimit, Detail: strings.Join(append(failed, set...), " ")}
	}
	return Layer{Name: Rlimit, Active: true, Detail: strings.Join(set, " ")}
}

// Landlock access rights each list of Config grants. None grants the
// rights to make devices, sockets or FIFOs, to use ioctl on devices, or to
// connect to UNIX sockets by path.
const (
	readFile = ll.AccessFSReadFile
	readDir  = readFile | ll.AccessFSReadDir
	// writeFile is what a file named in ReadWrite gets.
	writeFile = readFile | ll.AccessFSWriteFile | ll.AccessFSTruncate
	writeDir  = readDir | writeFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile |
		ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSym
	execFile = readFile | ll.AccessFSExecute
	execDir  = readDir | ll.AccessFSExecute
)

// newestABI is the newest Landlock ABI go-landlock knows (landlock.V11):
// rights a newer kernel adds are left unrestricted.
const newestABI = 11

// applyLandlock restricts file access to cfg's paths. It asks the kernel
// for its ABI version first, to say why when there is none, and restricts
// in best-effort mode: each right the kernel does not know (truncate before
// ABI 3, say) is left unrestricted rather than the whole layer refused.
// The one right best-effort would turn into no restriction at all, refer
// (moving files between directories) on ABI 1, is asked for only from ABI
// 2; on ABI 1 such moves are simply denied.
func applyLandlock(cfg Config) Layer {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil {
		return Layer{Name: Landlock, Detail: "kernel: " + kernelReason(err)}
	}
	dirW := landlock.AccessFSSet(writeDir)
	if abi >= 2 {
		dirW |= ll.AccessFSRefer
	}
	var rules []landlock.Rule
	var missing []string
	add := func(paths []string, dir, file landlock.AccessFSSet) error {
		for _, p := range paths {
			fi, err := os.Stat(p)
			if errors.Is(err, os.ErrNotExist) {
				missing = append(missing, p)
				continue
			}
			if err != nil {
				return err
			}
			a := file
			if fi.IsDir() {
				a = dir
			}
			rules = append(rules, landlock.PathAccess(a, p))
		}
		return nil
	}
	for _, l := range []struct {
		paths     []string
		dir, file landlock.AccessFSSet
	}{
		{cfg.ReadWrite, dirW, writeFile},
		{cfg.ReadOnly, readDir, readFile},
		{cfg.Exec, execDir, execFile},
	} {
		if err := add(l.paths, l.dir, l.file); err != nil {
			return Layer{Name: Landlock, Detail: fmt.Sprintf("abi=%d: %v", abi, err)}
		}
	}
	if err := landlock.V11.BestEffort().RestrictPaths(rules...); err != nil {
		return Layer{Name: Landlock, Detail: fmt.Sprintf("abi=%d: restrict: %v", abi, err)}
	}
	d := fmt.Sprintf("abi=%d rw=%d ro=%d exec=%d", abi, len(cfg.ReadWrite), len(cfg.ReadOnly), len(cfg.Exec))
	if abi == 1 {
		d += " no-refer"
	}
	if abi > newestABI {
		d += fmt.Sprintf(" (rights of abi %d)", newestABI)
	}
	if len(missing) > 0 {
		d += " missing=" + strings.Join(missing, ",")
	}
	return Layer{Name: Landlock, Active: true, Detail: d}
}

// kernelReason says why the kernel answered the ABI probe
// (landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)) with
// err.
func kernelReason(err error) string {
	var why string
	switch {
	case errors.Is(err, unix.ENOSYS):
		why = "no Landlock in this kernel (CONFIG_SECURITY_LANDLOCK unset, or a syscall filter refuses it)"
	case errors.Is(err, unix.EOPNOTSUPP):
		why = "Landlock built in but not enabled at boot (add landlock to the lsm= kernel parameter)"
	}
	s := "landlock_create_ruleset: " + errnoText(err)
	if why != "" {
		s += ": " + why
	}
	return s
}

// errnoText formats an errno as its name and text ("ENOSYS: function not
// implemented"), any other error as it is.
func errnoText(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		name := unix.ErrnoName(e)
		if e == unix.EOPNOTSUPP {
			name = "EOPNOTSUPP" // the same number as ENOTSUP, the name Landlock's documentation uses
		}
		if name != "" {
			return name + ": " + e.Error()
		}
	}
	return err.Error()
}
