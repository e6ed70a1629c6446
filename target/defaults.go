package target

import (
	"slices"
	"time"
)

// Defaults are hop settings that a command line gives once for every
// target (spindle run's --connect-timeout, --host-key-checking and
// --ssh-config). Each applies only to the hops that leave it unset: a
// target's own timeout=, hostkey= and config= always win. The zero value
// changes nothing. A Defaults is a plain value.
type Defaults struct {
	// ConnectTimeout is every hop's connect timeout (Hop.ConnectTimeout),
	// whatever its method.
	ConnectTimeout time.Duration

	// HostKeyCheck is every ssh hop's StrictHostKeyChecking: "yes", "no"
	// or "accept-new".
	HostKeyCheck string

	// SSHConfig is the ssh config file (ssh -F) of the ssh hops that run
	// on the master's machine, that is those not StartedRemotely: the path
	// names a file there. An ssh hop behind another machine (after an ssh,
	// docker, podman or kubectl hop) keeps that machine's own ssh config;
	// its config= names a file on that machine.
	SSHConfig string
}

// WithDefaults returns a copy of t with d applied to its hops (see
// Defaults); t itself is not changed.
func (t Target) WithDefaults(d Defaults) Target {
	out := make(Target, len(t))
	for i, h := range t {
		h.SSHOptions = slices.Clone(h.SSHOptions) // the copy shares nothing with t
		if h.ConnectTimeout == 0 {
			h.ConnectTimeout = d.ConnectTimeout
		}
		if h.Method == "ssh" {
			if h.HostKeyCheck == "" {
				h.HostKeyCheck = d.HostKeyCheck
			}
			if h.SSHConfig == "" && !t.StartedRemotely(i) {
				h.SSHConfig = d.SSHConfig
			}
		}
		out[i] = h
	}
	return out
}

// StartedRemotely reports whether hop i is started on another machine than
// the master's: some hop before it is ssh, docker, podman or kubectl. The
// hops before the first of those (local and sudo) run on the master's
// machine, and so does the transport that starts it.
func (t Target) StartedRemotely(i int) bool {
	for _, h := range t[:i] {
		switch h.Method {
		case "ssh", "docker", "podman", "kubectl":
			return true
		}
	}
	return false
}
