package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTestdepsScript runs tools/testdeps.sh as make test does, against an
// empty file tree (everything missing) and the real one, as root and as an
// unprivileged user: it must stop with one line naming the command to run,
// never install as a non-root user, and pass only when all is there.
func TestTestdepsScript(t *testing.T) {
	script, err := filepath.Abs("../../tools/testdeps.sh")
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if err := os.Chmod(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	type tc struct {
		name     string
		mode     string
		tree     string
		asNobody bool
		wantRC   int
		want     string // substring of the one line, "" for none
	}
	cases := []tc{
		{"usage", "bogus", "", false, 2, "usage: tools/testdeps.sh check|ensure"},
	}
	if root {
		cases = append(cases,
			tc{"all there", "check", "", false, 0, ""},
			tc{"fresh machine, root", "check", empty, false, 1, "missing openssh-server openssh-client sudo iproute2 procps clang lld wasi-libc libclang-rt-dev-wasm32 make gcc libc6-dev git ca-certificates python3-mitogen podman runc busybox-static docker.io uidmap; run: tools/testdeps.sh ensure"},
			tc{"fresh machine, not root", "ensure", empty, true, 1, "; run: sudo apt-get install -y openssh-server "},
			tc{"all there, not root", "ensure", "", true, 1, "need root (they start sshd and add the user spindle-test); run: sudo env PATH=\"$PATH\" make test"},
		)
	} else {
		cases = append(cases, tc{"not root", "check", "", false, 1, "make test: "})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("bash", script, c.mode)
			cmd.Env = append(os.Environ(), "SPINDLE_TESTDEPS_ROOT="+c.tree)
			if c.asNobody {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			out, _ := cmd.CombinedOutput()
			rc := cmd.ProcessState.ExitCode()
			if rc != c.wantRC {
				t.Fatalf("testdeps.sh %s: exit %d, want %d; output:\n%s", c.mode, rc, c.wantRC, out)
			}
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			if c.want == "" {
				if len(out) != 0 {
					t.Fatalf("testdeps.sh %s printed %q, want nothing", c.mode, out)
				}
				return
			}
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("testdeps.sh %s printed %q, want one line containing %q", c.mode, out, c.want)
			}
		})
	}
}
