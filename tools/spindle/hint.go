package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spindle-hq/spindle/target"
)

// The start hints the runtime gives (spindle.StartError.Hint) name what
// the Go API and the target syntax offer: the hop options timeout= and
// hostkey=, ChildOptions. On the command line the operator set those with
// flags, or in the target string: cliHint names the one they used, so a
// hint can be followed as it reads. The phrases below are the runtime's
// own (starterror.go); TestRunHintsNameFlags fails when one changes.
const (
	hintHostKeyOption = "accept a new key on first use with the hop option hostkey=accept-new"
	hintTimeoutOption = "the connect timeout is the hop option timeout= (e.g. ?timeout=1m; ChildOptions.ConnectTimeout in Go); ssh's ConnectTimeout follows it"
	hintSudoNeedsPass = "give it (spindle run -K; ChildOptions.Password or Fleet.SudoPassword in Go)"
	hintSudoRefused   = "sudo refused the password given (spindle run -K; ChildOptions.Password in Go)"
	hintSSHIdentity   = "the key (the hop option identity=, or the agent)"
	hintSSHBatch      = "(batch=no lets it ask)"
)

// cliHint rewrites hint, the runtime's hint for a failure of hop (1-based)
// of t, in the terms of the command line: a flag, or the hop's own option
// when the target string set it (which wins over the flag). sshConfig is
// --ssh-config ("" for ssh's default files).
func cliHint(hint string, t target.Target, hop int, sshConfig string) string {
	if hint == "" {
		return ""
	}
	var h target.Hop
	if hop >= 1 && hop <= len(t) {
		h = t[hop-1]
	}
	if hop == 1 && h.Method == "ssh" {
		hint = hostKeyHint(hint, h, sshConfig)
	}
	var with string
	switch {
	case h.HostKeyCheck != "":
		with = fmt.Sprintf("accept a new key on first use with ?hostkey=accept-new on hop %d, in place of its hostkey=%s", hop, h.HostKeyCheck)
	default:
		with = "accept a new key on first use with --host-key-checking accept-new"
	}
	hint = strings.Replace(hint, hintHostKeyOption, with, 1)
	switch {
	case h.ConnectTimeout > 0:
		with = fmt.Sprintf("hop %d's own ?timeout=%v is its connect timeout (it wins over --connect-timeout): raise it, e.g. ?timeout=1m; ssh's ConnectTimeout follows it", hop, h.ConnectTimeout)
	default:
		with = "raise the connect timeout with --connect-timeout (e.g. --connect-timeout 1m); ssh's ConnectTimeout follows it"
	}
	hint = strings.Replace(hint, hintTimeoutOption, with, 1)
	hint = strings.Replace(hint, hintSudoNeedsPass, "give it with -K (asked once, on the terminal)", 1)
	hint = strings.Replace(hint, hintSudoRefused, "sudo refused the password typed at -K's prompt: run again with the right one", 1)
	hint = strings.Replace(hint, hintSSHIdentity, "the key (IdentityFile in the ssh config, --ssh-config FILE, ?identity=FILE on the hop, or the agent)", 1)
	hint = strings.Replace(hint, hintSSHBatch, "(?batch=no on the hop lets it ask)", 1)
	return hint
}

// hostKeyHint rewrites the ssh-keyscan and ssh-keygen -R commands of the
// runtime's host key hint for h, an ssh hop this machine's ssh starts, in
// the names that work: the runtime names the host as the target wrote it,
// which may be an alias of ssh's config, while known_hosts holds the host
// name and port the config gives it (ssh -G), in the config's
// UserKnownHostsFile (unless that is none: /dev/null). A hint without
// those commands, or a hop ssh -G cannot resolve, is left as it is.
func hostKeyHint(hint string, h target.Hop, sshConfig string) string {
	if !strings.Contains(hint, "ssh-keyscan ") && !strings.Contains(hint, "ssh-keygen -R ") {
		return hint
	}
	if h.SSHConfig != "" {
		sshConfig = h.SSHConfig
	}
	var opts []string
	if h.Identity != "" {
		opts = append(opts, "-i", h.Identity)
	}
	for _, o := range h.SSHOptions {
		opts = append(opts, "-o", o)
	}
	d, ok := sshResolve(sshConfig, h.User, h.Host, h.Port, opts...)
	if !ok {
		return hint
	}
	// The runtime's names (starterror.go hintFor), and the resolved ones.
	scan, name := h.Host, h.Host
	if h.Port != 0 && h.Port != 22 {
		scan, name = "-p "+strconv.Itoa(h.Port)+" "+h.Host, "["+h.Host+"]:"+strconv.Itoa(h.Port)
	}
	newScan, newName := d.host, d.host
	if d.port != 22 {
		newScan, newName = "-p "+strconv.Itoa(d.port)+" "+d.host, "["+d.host+"]:"+strconv.Itoa(d.port)
	}
	file, keygenFile := "~/.ssh/known_hosts", ""
	if f := d.knownHosts; f != "" && f != "/dev/null" && !strings.EqualFold(f, "none") && !isDefaultKnownHosts(f) {
		file, keygenFile = f, "-f "+f+" "
	}
	hint = strings.Replace(hint, "ssh-keyscan "+scan+" >> ~/.ssh/known_hosts", "ssh-keyscan "+newScan+" >> "+file, 1)
	return strings.Replace(hint, "ssh-keygen -R '"+name+"'", "ssh-keygen "+keygenFile+"-R '"+newName+"'", 1)
}

// isDefaultKnownHosts reports whether f is ~/.ssh/known_hosts, as the
// hint names it.
func isDefaultKnownHosts(f string) bool {
	home, err := os.UserHomeDir()
	return f == "~/.ssh/known_hosts" || err == nil && filepath.Clean(f) == filepath.Join(home, ".ssh", "known_hosts")
}
