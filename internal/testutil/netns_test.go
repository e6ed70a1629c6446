package testutil

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNetNSSSHD(t *testing.T) {
	VerifyNone(t)
	ns := NetNS(t, "spindle-t1", "10.201.1.2")

	out, err := ns.Command("ip", "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ns.Addr+"/24") {
		t.Fatalf("ip addr inside %s = %q, %v; want %s", ns.Name, out, err, ns.Addr)
	}

	start := time.Now()
	s := ns.StartSSHD(t)
	t.Logf("StartSSHD in a namespace took %v", time.Since(start))
	if s.Addr != ns.Addr || s.Port != 22 {
		t.Errorf("sshd on %s:%d, want %s:22", s.Addr, s.Port, ns.Addr)
	}
	// The login runs inside the namespace: it sees the namespace's end of
	// the pair.
	out, err = exec.Command("ssh", append(s.SSHArgs(), SSHHost, "ip -o -4 addr show")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ns.Addr+"/24") || strings.Contains(string(out), ns.HostAddr) {
		t.Errorf("ssh %s ip addr = %q, %v; want only %s", SSHHost, out, err, ns.Addr)
	}
	out, err = exec.Command("ssh", append(s.SSHArgs(), "-l", s.Unpriv, SSHHost, "id", "-un")...).CombinedOutput()
	if err != nil || string(out) != s.Unpriv+"\n" {
		t.Errorf("ssh -l %s id -un = %q, %v; want %q", s.Unpriv, out, err, s.Unpriv+"\n")
	}
	s.Stop()
	out, err = exec.Command("ssh", append(s.SSHArgs(), SSHHost, "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Connection refused") {
		t.Errorf("ssh after Stop = %q, %v; want Connection refused", out, err)
	}
}

func TestNewNS(t *testing.T) {
	tests := []struct {
		name, addr string
		wantHost   string // "": want an error
	}{
		{"spindle-t1", "10.201.1.2", "10.201.1.1"},
		{"a", "10.201.255.254", "10.201.255.1"},
		{"UPPER", "10.201.2.2", ""},
		{"much-too-long-name", "10.201.2.2", ""},
		{"-dash", "10.201.2.2", ""},
		{"ok", "192.168.1.2", ""},
		{"ok", "10.202.1.2", ""},
		{"ok", "10.201.2.1", ""},
		{"ok", "10.201.2.0", ""},
		{"ok", "10.201.2.255", ""},
		{"ok", "not-an-address", ""},
		{"ok", "::1", ""},
	}
	for _, tt := range tests {
		ns, err := newNS(tt.name, tt.addr)
		host := ""
		if err == nil {
			host = ns.HostAddr
		}
		if host != tt.wantHost {
			t.Errorf("newNS(%q, %q) = host %q, %v; want host %q", tt.name, tt.addr, host, err, tt.wantHost)
		}
	}
}
