package ci

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Platform names what a step can observe of where it runs: a wasip1
// command on Spindle's host with the workspace of the package
// documentation. It is part of every action key. Its version is bumped
// whenever that changes in a way a step could see (mounts, the fixed
// environment, WASI behaviour), so that no cached result from before is
// used after.
const Platform = "spindle-ci/1 wasip1"

// keyMagic opens the encoding of every key; its version is bumped with
// any change of the encoding below.
const keyMagic = "spindle action key v1\x00"

// Action is one step as the action cache sees it: everything that can
// change what the step does, and nothing else (not its name, nor which
// job it is in). Two actions with the same Key do the same work. An
// Action is a plain value: safe for concurrent reads.
type Action struct {
	// Module is the sha256 (lower-case hex) of the wasm module.
	Module string
	// Args are the command's arguments after its name, in order.
	Args []string
	// Env is its environment beyond what spindle fixes.
	Env map[string]string
	// InputRoot is the digest of the input tree the step sees at /src.
	InputRoot string
	// Outputs are the paths under /out it produces; order and repeats
	// do not count.
	Outputs []string
	// Stdin is the input tree's path streamed as stdin, or "".
	Stdin string
	// Dir is the input tree's directory that is the working directory,
	// or "" for /src itself.
	Dir string
	// Timeout and the byte limits bound the step.
	Timeout                             time.Duration
	MemoryBytes, OutputBytes, DiskBytes int64
	// Clock and Random are the nondeterministic grants.
	Clock, Random bool
	// Secrets are the names of the secrets it reads (their values never
	// enter the key); order and repeats do not count.
	Secrets []string
	// FailIfOutput fails the step on a non-empty stdout.
	FailIfOutput bool
	// Platform is Platform ("" stands for it).
	Platform string
	// Salt is the job file's salt.
	Salt string
}

// Action returns the action of step s (with its matrix values
// substituted: a JobRun's step) running the module with sha256 module on
// the input tree inputRoot, under the job file's salt.
func (s *Step) Action(module, inputRoot, salt string) *Action {
	return &Action{
		Module:       module,
		Args:         slices.Clone(s.Args),
		Env:          maps.Clone(s.Env),
		InputRoot:    inputRoot,
		Outputs:      slices.Clone(s.Outputs),
		Stdin:        s.Stdin,
		Timeout:      s.Timeout,
		MemoryBytes:  s.MemoryBytes,
		OutputBytes:  s.OutputBytes,
		DiskBytes:    s.DiskBytes,
		Clock:        s.Clock,
		Random:       s.Random,
		Secrets:      slices.Clone(s.Secrets),
		FailIfOutput: s.FailIfOutput,
		Platform:     Platform,
		Salt:         salt,
	}
}

// Field tags of the key encoding, in the order they are written. A tag is
// never reused for another meaning.
const (
	tagModule = 1 + iota
	tagArgs
	tagEnv
	tagInputRoot
	tagOutputs
	tagStdin
	tagTimeout
	tagMemoryBytes
	tagOutputBytes
	tagDiskBytes
	tagClock
	tagRandom
	tagSecrets
	tagFailIfOutput
	tagPlatform
	tagSalt
	tagDir
)

// Key returns the action's cache key: the sha256, lower-case hex, of a
// canonical encoding of every field. The encoding is keyMagic, then each
// field in tag order as its tag (a uvarint) and its value: a string as
// its length (uvarint) and bytes; a list as its count and its strings
// (Args in order; Outputs and Secrets sorted, repeats dropped); Env as its
// count and its pairs sorted by name; an integer or duration as 8 bytes
// big-endian; a boolean as one byte 0 or 1. Dir, the last, is written
// only when it is not "". Every field has a length or a fixed size, so no
// two different actions encode alike.
func (a *Action) Key() string {
	var k keyWriter
	k.b = append(k.b, keyMagic...)
	k.tag(tagModule).str(a.Module)
	k.tag(tagArgs).list(a.Args)
	k.tag(tagEnv).uvarint(uint64(len(a.Env)))
	for _, name := range slices.Sorted(maps.Keys(a.Env)) {
		k.str(name).str(a.Env[name])
	}
	k.tag(tagInputRoot).str(a.InputRoot)
	k.tag(tagOutputs).list(sortedUnique(a.Outputs))
	k.tag(tagStdin).str(a.Stdin)
	k.tag(tagTimeout).int(int64(a.Timeout))
	k.tag(tagMemoryBytes).int(a.MemoryBytes)
	k.tag(tagOutputBytes).int(a.OutputBytes)
	k.tag(tagDiskBytes).int(a.DiskBytes)
	k.tag(tagClock).bool(a.Clock)
	k.tag(tagRandom).bool(a.Random)
	k.tag(tagSecrets).list(sortedUnique(a.Secrets))
	k.tag(tagFailIfOutput).bool(a.FailIfOutput)
	k.tag(tagPlatform).str(cmp.Or(a.Platform, Platform))
	k.tag(tagSalt).str(a.Salt)
	if a.Dir != "" { // written only when set: keys from before Dir stay
		k.tag(tagDir).str(a.Dir)
	}
	sum := sha256.Sum256(k.b)
	return hex.EncodeToString(sum[:])
}

// Cacheable reports whether the action's result may be cached and reused:
// only when it is deterministic, that is granted neither the real clock
// nor real randomness and reading no secrets. When not, why says what
// stood in the way, for the report.
func (a *Action) Cacheable() (ok bool, why string) {
	var reasons []string
	if a.Clock {
		reasons = append(reasons, "it is granted the real clock")
	}
	if a.Random {
		reasons = append(reasons, "it is granted real randomness")
	}
	if len(a.Secrets) > 0 {
		reasons = append(reasons, "it reads secrets ("+strings.Join(sortedUnique(a.Secrets), ", ")+")")
	}
	if len(reasons) == 0 {
		return true, ""
	}
	return false, "not cached: " + strings.Join(reasons, "; ")
}

// keyWriter appends the encoding of a key.
type keyWriter struct{ b []byte }

func (k *keyWriter) tag(t int) *keyWriter { return k.uvarint(uint64(t)) }

func (k *keyWriter) uvarint(v uint64) *keyWriter {
	k.b = binary.AppendUvarint(k.b, v)
	return k
}

func (k *keyWriter) str(s string) *keyWriter {
	k.uvarint(uint64(len(s)))
	k.b = append(k.b, s...)
	return k
}

func (k *keyWriter) list(l []string) *keyWriter {
	k.uvarint(uint64(len(l)))
	for _, s := range l {
		k.str(s)
	}
	return k
}

func (k *keyWriter) int(v int64) *keyWriter {
	k.b = binary.BigEndian.AppendUint64(k.b, uint64(v))
	return k
}

func (k *keyWriter) bool(v bool) *keyWriter {
	if v {
		k.b = append(k.b, 1)
	} else {
		k.b = append(k.b, 0)
	}
	return k
}

// sortedUnique returns l sorted with repeats dropped, l itself untouched.
func sortedUnique(l []string) []string {
	s := slices.Clone(l)
	slices.Sort(s)
	return slices.Compact(s)
}
