package spindle

import (
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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
	base := errors.New("x")
	for _, tt := range []struct {
		out  string
		want error
	}{
		{"root@127.0.0.1: Permission denied (publickey).", ErrAuth},
		{"Host key verification failed.", ErrHostKey},
		{"ssh: connect to host 127.0.0.1 port 1: Connection refused", ErrUnreachable},
		{"sudo: a password is required", ErrAuth},
	} {
		if err := classify(base, tt.out); !errors.Is(err, tt.want) || !errors.Is(err, base) {
			t.Errorf("classify(%q) = %v, want %v", tt.out, err, tt.want)
		}
	}
	if err := classify(base, "something else"); err != base {
		t.Errorf("classify(unknown) = %v, want the error unchanged", err)
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
	if got, want := (childSpec{}).commandLine("/opt/my spindle"), childEnv+"=3 '/opt/my spindle'"; got != want {
		t.Errorf("commandLine(local) = %q, want %q", got, want)
	}
}
