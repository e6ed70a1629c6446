package oslayer

import (
	"os/signal"
	"strings"
	"syscall"
)

// Names of the layers, in the order Apply applies them and Report lists
// them.
const (
	NoNewPrivs = "no_new_privs"
	Rlimit     = "rlimit"
	Landlock   = "landlock"
)

// Config says what a confined process may still do. It is a plain value.
//
// The zero value sets no_new_privs, leaves every rlimit alone and lets the
// process open no file at all (descriptors it already holds keep working).
type Config struct {
	// ReadWrite are directories below which the process may read, write,
	// create, rename and remove files and directories (not execute them).
	ReadWrite []string
	// ReadOnly are files, or directories below which the process may read
	// files and list directories.
	ReadOnly []string
	// Exec are files, or directories below which the process may read and
	// execute files. Empty: the process can start no program at all.
	Exec []string
	// MaxFiles is RLIMIT_NOFILE: the highest descriptor number plus one.
	// 0 leaves the limit as it is; above the hard limit, the hard limit.
	MaxFiles uint64
	// MaxFileBytes is RLIMIT_FSIZE: no file can be written past it (EFBIG).
	// 0 leaves the limit as it is.
	MaxFileBytes int64
	// NoCore sets RLIMIT_CORE to 0: a crash leaves no core dump (which
	// would hold the memory of every guest in the process).
	NoCore bool
}

// Layer is the outcome of one layer.
type Layer struct {
	// Name is NoNewPrivs, Rlimit or Landlock.
	Name string
	// Active reports whether the layer is in force.
	Active bool
	// Detail says what was set ("nofile=4096 core=0", "abi=7 rw=2 ro=5
	// exec=0") or, for a layer that is off, why.
	Detail string
}

// String formats l as "NAME [DETAIL] on" or "NAME off (WHY)".
func (l Layer) String() string {
	switch {
	case l.Active && l.Detail == "":
		return l.Name + " on"
	case l.Active:
		return l.Name + " " + l.Detail + " on"
	case l.Detail == "":
		return l.Name + " off"
	}
	return l.Name + " off (" + l.Detail + ")"
}

// Report says which layers Apply put in force. It is a plain value.
type Report struct {
	Layers []Layer
}

// String formats r as its layers joined by "; ", e.g. "no_new_privs on;
// rlimit nofile=4096 core=0 on; landlock off (kernel: ...)".
func (r Report) String() string {
	s := make([]string, len(r.Layers))
	for i, l := range r.Layers {
		s[i] = l.String()
	}
	return strings.Join(s, "; ")
}

// Layer returns the layer named name, and whether the report has it.
func (r Report) Layer(name string) (Layer, bool) {
	for _, l := range r.Layers {
		if l.Name == name {
			return l, true
		}
	}
	return Layer{}, false
}

// Apply confines the whole process as cfg says, irreversibly (see the
// package doc), and reports each layer. It applies what it can: a layer
// that fails is reported off with the reason and the others still apply.
func Apply(cfg Config) Report {
	return Report{Layers: []Layer{
		applyNoNewPrivs(),
		applyRlimits(cfg),
		applyLandlock(cfg),
	}}
}

// setLimit sets both the soft and the hard limit of resource to v, or to the
// hard limit if v is above it (raising a hard limit needs
// CAP_SYS_RESOURCE), and returns the value set. syscall.Setrlimit, not
// unix's: for RLIMIT_NOFILE it also stops os/exec from restoring the
// limit the process started with in the programs it starts.
func setLimit(resource int, v uint64) (uint64, error) {
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(resource, &cur); err != nil {
		return 0, err
	}
	v = min(v, cur.Max)
	return v, syscall.Setrlimit(resource, &syscall.Rlimit{Cur: v, Max: v})
}

// ignoreSIGXFSZ makes a write past RLIMIT_FSIZE fail with EFBIG: the
// signal's default action, which the Go runtime keeps for it, ends the
// process.
func ignoreSIGXFSZ() { signal.Ignore(syscall.SIGXFSZ) }
