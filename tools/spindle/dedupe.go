package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spindle-hq/spindle/target"
)

// dedupeTargets drops every target that is the same chain as one before
// it, spelled another way: "ssh://127.0.0.1" and "ssh://root@127.0.0.1:22"
// when ssh's config makes root the user and 22 the port, an inventory host
// and the chain it stands for. Two targets are the same when their
// canonical forms (target.Target.String) are equal once the first hop, if
// it is ssh, is resolved as this machine's ssh would resolve it (ssh -G:
// the user, host name and port its config gives), and default context
// names are left out, and, for an ssh first hop, ssh -G gives both the
// same way in and the same trust (sshDest.via): two aliases of one
// address that log in with different keys, check different known_hosts
// files or go through different jump hosts are two targets, since one
// may work where the other fails. Hops past the first are compared as written: their
// ssh config is another machine's. It returns the kept targets, in order,
// and one note for stderr ("" when nothing was dropped).
func dedupeTargets(targets []target.Named, sshConfig string) ([]target.Named, string) {
	if len(targets) < 2 {
		return targets, ""
	}
	first := resolveFirstHops(targets, sshConfig)
	seen := make(map[string]string, len(targets)) // canonical form -> the name kept
	kept := targets[:0:0]
	var dropped []string
	for _, nt := range targets {
		key := canonicalKey(nt.Target, first[firstHopKey(nt.Target, sshConfig)])
		if prev, ok := seen[key]; ok {
			dropped = append(dropped, fmt.Sprintf("%s (as %s)", nt.Name, prev))
			continue
		}
		seen[key] = nt.Name
		kept = append(kept, nt)
	}
	if len(dropped) == 0 {
		return kept, ""
	}
	const shown = 5
	list := strings.Join(dropped[:min(len(dropped), shown)], ", ")
	if len(dropped) > shown {
		list += fmt.Sprintf(" and %d more", len(dropped)-shown)
	}
	s := "s"
	if len(dropped) == 1 {
		s = ""
	}
	return kept, fmt.Sprintf("%d target%s named twice, run once: %s", len(dropped), s, list)
}

// sshDest is what ssh -G resolves a destination to.
type sshDest struct {
	user, host string
	port       int
	// via is the rest of what decides whether a login there works, as
	// ssh -G printed it, one "key value" a line in its order: the keys
	// of viaKeys.
	via string
	// knownHosts is the first UserKnownHostsFile, where ssh adds keys.
	knownHosts string
}

// viaKeys are the ssh -G keys (lower case, as it prints them) that say how
// ssh reaches and authenticates a destination and trusts its host key,
// beyond its user, host name and port: two spellings that differ in one
// of them are not the same target.
var viaKeys = map[string]bool{
	"identityfile": true, "certificatefile": true, "identityagent": true, "identitiesonly": true,
	"userknownhostsfile": true, "globalknownhostsfile": true, "hostkeyalias": true,
	"proxyjump": true, "proxycommand": true,
}

// firstHopKey is the ssh -G question for t's first hop, or "" when it is
// not ssh.
func firstHopKey(t target.Target, sshConfig string) string {
	if len(t) == 0 || t[0].Method != "ssh" {
		return ""
	}
	h := t[0]
	if h.SSHConfig != "" {
		sshConfig = h.SSHConfig
	}
	return strings.Join([]string{sshConfig, h.User, h.Host, strconv.Itoa(h.Port)}, "\x00")
}

// maxResolves bounds the ssh -G processes run at once, by everything in
// this process that runs one (deduplication, host key hints: a run
// against many hosts whose keys changed asks for each).
const maxResolves = 8

// resolveSlots are the slots of the ssh -G processes running.
var resolveSlots = make(chan struct{}, maxResolves)

// resolveTimeout bounds one ssh -G (it reads config files, and runs no
// Match exec unless the config asks).
const resolveTimeout = 5 * time.Second

// resolveFirstHops runs ssh -G once for each distinct ssh first hop.
// A hop ssh cannot resolve is left as written.
func resolveFirstHops(targets []target.Named, sshConfig string) map[string]sshDest {
	out := map[string]sshDest{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxResolves)
	asked := map[string]bool{}
	for _, nt := range targets {
		k := firstHopKey(nt.Target, sshConfig)
		if k == "" || asked[k] {
			continue
		}
		asked[k] = true
		cfg, user, host, port := splitKey(k)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if d, ok := sshResolve(cfg, user, host, port); ok {
				mu.Lock()
				out[k] = d
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func splitKey(k string) (cfg, user, host string, port int) {
	f := strings.Split(k, "\x00")
	port, _ = strconv.Atoi(f[3])
	return f[0], f[1], f[2], port
}

// sshResolve asks ssh -G where user@host:port leads under cfg, with the
// further ssh arguments opts (-o KEY=VALUE, -i FILE).
func sshResolve(cfg, user, host string, port int, opts ...string) (sshDest, bool) {
	resolveSlots <- struct{}{}
	defer func() { <-resolveSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	args := []string{"-G"}
	if cfg != "" {
		args = append(args, "-F", cfg)
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	args = append(args, opts...)
	cmd := exec.CommandContext(ctx, "ssh", append(args, "--", host)...)
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: 1 << 20}
	if cmd.Run() != nil {
		return sshDest{}, false
	}
	var d sshDest
	var via strings.Builder
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k = strings.ToLower(k); {
		case k == "user":
			d.user = v
		case k == "hostname":
			d.host = strings.ToLower(v)
		case k == "port":
			d.port, _ = strconv.Atoi(v)
		case viaKeys[k]:
			fmt.Fprintf(&via, "%s %s\n", k, v)
			if k == "userknownhostsfile" {
				d.knownHosts, _, _ = strings.Cut(v, " ")
			}
		}
	}
	d.via = via.String()
	return d, d.host != "" && d.port != 0
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if k := min(len(p), l.n); k > 0 {
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// canonicalKey is t's canonical form with its first hop resolved to d
// (when d is known) and each default context name left out, followed by
// d.via.
func canonicalKey(t target.Target, d sshDest) string {
	c := make(target.Target, len(t))
	copy(c, t)
	for i := range c {
		// A default name is one the canonical form leaves out; it would
		// not be once the host is resolved ("ssh.web" for 127.0.0.1).
		unnamed := c[i]
		unnamed.Name = ""
		if (target.Target{unnamed}).String() == (target.Target{c[i]}).String() {
			c[i].Name = ""
		}
	}
	if d.host != "" {
		c[0].User, c[0].Host, c[0].Port = d.user, d.host, d.port
	}
	return c.String() + "\x00" + d.via
}
