package testutil

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"testing"
)

// NS is a network namespace made by NetNS for one test, joined to the
// root namespace by a veth pair. Its fields are set by NetNS and must not
// be changed; its methods are safe for concurrent use.
type NS struct {
	Name     string // the name "ip netns" knows it by
	Addr     string // the address of its end of the veth pair, as 10.201.7.2
	HostAddr string // the address of the root namespace's end, as 10.201.7.1
}

// nsName is what NetNS accepts as a name: its veth interfaces are named
// NAME-h and NAME-n, and interface names have at most 15 bytes.
var nsName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,11}$`)

// NetNS creates the network namespace name, with its loopback up and a
// veth pair to the root namespace: addr inside, the .1 address of addr's
// /24 outside. addr must be in 10.201.0.0/16 (addresses the tests own; use
// a different /24 for each namespace that may exist at the same time) and
// must not end in .1. The namespace, the pair and what runs inside are
// removed when the test ends.
//
// It skips t when not run as root or when the ip command (iproute2) is
// missing, and fails t if the namespace cannot be made, as when the name
// is already taken (by one a crashed test left behind: "ip netns del
// NAME" removes it).
func NetNS(t testing.TB, name, addr string) *NS {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("testutil: ip not found (%v): install iproute2 to run tests that need network namespaces", err)
	}
	ns, err := newNS(name, addr)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	hostIf, nsIf := name+"-h", name+"-n"

	if err := runIP("netns", "add", name); err != nil {
		t.Fatalf("testutil: NetNS: %v", err)
	}
	t.Cleanup(func() {
		// Deleting the namespace would leave the pair for as long as a
		// process inside keeps the namespace alive; delete the pair first.
		runIP("link", "del", hostIf)
		if err := runIP("netns", "del", name); err != nil {
			t.Errorf("testutil: NetNS cleanup: %v", err)
		}
	})
	for _, args := range [][]string{
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", name},
		{"addr", "add", ns.HostAddr + "/24", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", name, "addr", "add", addr + "/24", "dev", nsIf},
		{"-n", name, "link", "set", nsIf, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if err := runIP(args...); err != nil {
			t.Fatalf("testutil: NetNS: %v", err)
		}
	}
	return ns
}

// Command returns a command that runs the program name with args inside
// the namespace ("ip netns exec NAME name args...").
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// StartSSHD is StartSSHD for an sshd run inside the namespace, listening
// on Addr port 22, reached from the root namespace over the veth pair. It
// is stopped, and its logins killed, before the namespace is removed.
func (ns *NS) StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	return startSSHD(t, sshdOptions{addr: ns.Addr, port: 22, prefix: []string{"ip", "netns", "exec", ns.Name}})
}

// newNS checks NetNS's arguments and works out the addresses.
func newNS(name, addr string) (*NS, error) {
	if !nsName.MatchString(name) {
		return nil, fmt.Errorf("NetNS(%q, %q): want a name matching %v", name, addr, nsName)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !netip.MustParsePrefix("10.201.0.0/16").Contains(a) || a.As4()[3] <= 1 || a.As4()[3] == 255 {
		return nil, fmt.Errorf("NetNS(%q, %q): want an address in 10.201.0.0/16, not .0, .1 or .255 of its /24", name, addr)
	}
	host := a.As4()
	host[3] = 1
	return &NS{Name: name, Addr: addr, HostAddr: netip.AddrFrom4(host).String()}, nil
}

func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return nil
}
