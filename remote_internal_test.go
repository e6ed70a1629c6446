package spindle

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/wire"
)

// TestTransportCommandLines pins the exact command each connection method
// runs, docker/podman/kubectl included (they cannot run here; a fake on
// PATH runs the rest of the bootstrap in TestFakeEngines).
func TestTransportCommandLines(t *testing.T) {
	script := "sh -c " + shellQuote(bootScript)
	tests := []struct {
		req  wire.StartChild
		argv []string
		name string
	}{
		{wire.StartChild{Method: "ssh", Host: "web1"},
			[]string{"ssh", "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "web1", script}, "ssh.web1"},
		{wire.StartChild{Method: "ssh", Host: "web1", User: "admin", Port: 2222, Identity: "/k/id", HostKeyCheck: "yes",
			SSHOptions: []string{"ProxyJump=bastion"}, KeepAliveNs: int64(15 * time.Second), NoBatch: true, ConnectTimeout: int64(5 * time.Second), Name: "w"},
			[]string{"ssh", "-T", "-e", "none", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=15", "-o", "StrictHostKeyChecking=yes",
				"-p", "2222", "-l", "admin", "-i", "/k/id", "-o", "IdentitiesOnly=yes", "-o", "ProxyJump=bastion", "web1", script}, "w"},
		// The command line's defaults as target.WithDefaults puts them on a
		// hop: -F first, then the timeout and the host-key policy.
		{wire.StartChild{Method: "ssh", Host: "web1", SSHConfig: "/etc/work ssh", HostKeyCheck: "accept-new", ConnectTimeout: int64(7 * time.Second)},
			[]string{"ssh", "-F", "/etc/work ssh", "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=7", "-o", "StrictHostKeyChecking=accept-new",
				"web1", script}, "ssh.web1"},
		{wire.StartChild{Method: "ssh", Host: "web1", HostKeyCheck: "no", ConnectTimeout: int64(1500 * time.Millisecond)},
			[]string{"ssh", "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1", "-o", "StrictHostKeyChecking=no", "web1", script}, "ssh.web1"},
		{wire.StartChild{Method: "sudo"},
			[]string{"sudo", "-n", "-H", "-u", "root", "--", "sh", "-c", bootScript}, "sudo.root"},
		{wire.StartChild{Method: "sudo", User: "postgres", Password: "hunter2"},
			[]string{"sudo", "-S", "-p", sudoPrompt, "-H", "-u", "postgres", "--", "sh", "-c", bootScript}, "sudo.postgres"},
		{wire.StartChild{Method: "docker", Container: "app", User: "nobody"},
			[]string{"docker", "exec", "-i", "-u", "nobody", "app", "sh", "-c", bootScript}, "docker.app"},
		{wire.StartChild{Method: "podman", Container: "app"},
			[]string{"podman", "exec", "-i", "app", "sh", "-c", bootScript}, "podman.app"},
		{wire.StartChild{Method: "kubectl", Pod: "web-0", Namespace: "prod", Container: "main", KubeContext: "eu"},
			[]string{"kubectl", "--context", "eu", "exec", "-i", "-n", "prod", "web-0", "-c", "main", "--", "sh", "-c", bootScript}, "kubectl.web-0"},
	}
	for _, tt := range tests {
		spec, err := transportFor(&tt.req, 30*time.Second)
		if err != nil {
			t.Fatalf("transportFor(%+v): %v", tt.req, err)
		}
		if !reflect.DeepEqual(spec.argv, tt.argv) || spec.name != tt.name {
			t.Errorf("transportFor(%+v) = %q (name %q), want %q (name %q)", tt.req, spec.argv, spec.name, tt.argv, tt.name)
		}
		if tt.req.Password != "" && strings.Contains(strings.Join(spec.argv, " "), tt.req.Password) {
			t.Errorf("the sudo password is in argv: %q", spec.argv)
		}
	}
	for _, bad := range []wire.StartChild{{Method: "ssh"}, {Method: "docker"}, {Method: "kubectl"}, {Method: "telnet"}} {
		if _, err := transportFor(&bad, time.Second); err == nil {
			t.Errorf("transportFor(%+v) succeeded", bad)
		}
	}
}

func TestPlatformAndClassify(t *testing.T) {
	for _, tt := range []struct{ sys, m, goos, goarch string }{
		{"Linux", "x86_64", "linux", "amd64"}, {"Linux", "aarch64", "linux", "arm64"}, {"Darwin", "arm64", "darwin", "arm64"},
		{"Linux", "riscv64", "linux", "riscv64"},
	} {
		if goos, goarch := platform(tt.sys, tt.m); goos != tt.goos || goarch != tt.goarch {
			t.Errorf("platform(%q, %q) = %s/%s, want %s/%s", tt.sys, tt.m, goos, goarch, tt.goos, tt.goarch)
		}
	}
	for _, tt := range []struct {
		out   []string
		class StartClass
		line  string
	}{
		{[]string{"root@127.0.0.1: Permission denied (publickey)."}, ClassAuth, "root@127.0.0.1: Permission denied (publickey)."},
		{[]string{"No ED25519 host key is known for [h]:2 and you have requested strict checking.", "Host key verification failed."},
			ClassHostKey, "No ED25519 host key is known for [h]:2 and you have requested strict checking."},
		{[]string{"@@@@", "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @", "Host key for [h]:2 has changed and you have requested strict checking.", "Host key verification failed."},
			ClassHostKey, "Host key for [h]:2 has changed and you have requested strict checking."},
		{[]string{"ssh: connect to host 127.0.0.1 port 1: Connection refused"}, ClassUnreachable, "ssh: connect to host 127.0.0.1 port 1: Connection refused"},
		{[]string{"Connection timed out during banner exchange", "Connection to 127.0.0.1 port 2 timed out"}, ClassTimeout, "Connection timed out during banner exchange"},
		{[]string{"sudo: a password is required"}, ClassAuth, "sudo: a password is required"},
		// What the real engines say (container_test.go runs them).
		{[]string{`Error: no container with name or ID "db" found: no such container`}, ClassUnreachable,
			`Error: no container with name or ID "db" found: no such container`},
		{[]string{"Error: can only create exec sessions on running containers: container state improper"}, ClassUnreachable,
			"Error: can only create exec sessions on running containers: container state improper"},
		{[]string{"Error response from daemon: Container 0123abcd is not running"}, ClassUnreachable,
			"Error response from daemon: Container 0123abcd is not running"},
		{[]string{"Error response from daemon: No such container: db"}, ClassUnreachable, "Error response from daemon: No such container: db"},
		{[]string{"sudo: unknown user x", "sudo: error initializing audit plugin sudoers_audit"}, ClassRefused, "sudo: unknown user x"},
	} {
		if class, line, ok := classify(tt.out); !ok || class != tt.class || line != tt.line {
			t.Errorf("classify(%q) = %s, %q, %v; want %s, %q", tt.out, class, line, ok, tt.class, tt.line)
		}
	}
	if class, line, ok := classify([]string{"something else"}); ok {
		t.Errorf("classify(unknown) = %s, %q, want no class", class, line)
	}
}

// TestBrokerBinaryMissingPlatform: no binary for the remote's platform is a
// clear error naming what to build.
func TestBrokerBinaryMissingPlatform(t *testing.T) {
	n := &node{exe: filepath.Join(t.TempDir(), "spindle")}
	_, err := n.brokerBinary("linux", "riscv64")
	if err == nil || !strings.Contains(err.Error(), "GOOS=linux GOARCH=riscv64 go build") {
		t.Fatalf("brokerBinary(riscv64) = %v, want a build hint", err)
	}
}

// TestBootScriptIsPOSIX runs the bootstrap script's syntax check with sh -n.
func TestBootScriptIsPOSIX(t *testing.T) {
	out, err := exec.Command("sh", "-n", "-c", bootScript).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	if len(bootScript) > 1024 {
		t.Errorf("bootstrap script is %d bytes; keep it short", len(bootScript))
	}
}

// TestCommandLine: the logged command line is the argv, quoted for a
// shell, with the bootstrap script shortened and the secret masked.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		req  wire.StartChild
		want string
	}{
		{wire.StartChild{Method: "ssh", Host: "web1", SSHConfig: "/my cfg", Port: 2222, SSHOptions: []string{"ProxyCommand=nc %h %p"}},
			"ssh -F '/my cfg' -T -e none -o BatchMode=yes -o ConnectTimeout=30 -p 2222 -o 'ProxyCommand=nc %h %p' web1 <bootstrap script>"},
		{wire.StartChild{Method: "sudo", User: "postgres", Password: "hunter2"},
			"sudo -S -p '[spindle-sudo-password]' -H -u postgres -- sh -c <bootstrap script>"},
	}
	for _, tt := range tests {
		spec, err := transportFor(&tt.req, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.commandLine("/bin/spindle"); got != tt.want {
			t.Errorf("commandLine(%+v) = %q, want %q", tt.req, got, tt.want)
		}
	}
	// No method puts a secret in argv; if one ever did, it is masked.
	masked := childSpec{argv: []string{"ssh", "-o", "X=hunter2", "web1"}, secret: "hunter2"}
	if got, want := masked.commandLine(""), "ssh -o 'X=***' web1"; got != want {
		t.Errorf("commandLine with a secret in argv = %q, want %q", got, want)
	}
	if got, want := (childSpec{}).commandLine("/opt/my spindle"), childEnv+"=3,4 '/opt/my spindle'"; got != want {
		t.Errorf("commandLine(local) = %q, want %q", got, want)
	}
}

// TestStartErrorFromOlderPeer: a START_CHILD failure from a context that
// sends only the text (no "start" key) is still classed, with the line
// that says why.
func TestStartErrorFromOlderPeer(t *testing.T) {
	old := &routing.RemoteError{Code: wire.CodeCallFailed, Context: 7, Message: "spindle: host unreachable: spindle: child start failed: " +
		"ssh.h (ssh h, pid 4920, exit status 255): bootstrap: unexpected EOF; last lines of its output:\nssh: connect to host h port 1: Connection refused"}
	req := &wire.StartChild{Method: "ssh", Host: "h", Port: 1}
	se := remoteStartError(context.Background(), &Context{name: "a"}, req, old)
	if se.Class != ClassUnreachable || se.Detail != "ssh: connect to host h port 1: Connection refused" || !errors.Is(se, ErrUnreachable) {
		t.Errorf("from an older peer: %+v, want unreachable with the ssh line", se)
	}
	// A class from a newer peer that this one does not know reads as other.
	newer := &routing.RemoteError{Code: wire.CodeCallFailed, Context: 7, Message: "x",
		Start: &wire.StartFailure{Class: "quantum", Label: "ssh h", Detail: "line one\nline two"}}
	se = remoteStartError(context.Background(), &Context{name: "a"}, req, newer)
	if se.Class != ClassOther || se.Detail != "line one" || se.Error() != "ssh h: start failed: line one" {
		t.Errorf("from a newer peer: %+v (%q), want class other, one line", se, se.Error())
	}
}
