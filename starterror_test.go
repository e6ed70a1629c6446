package spindle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
	"github.com/spindle-hq/spindle/target"
)

// sshHop is a hop to the test sshd as root with its key and known hosts,
// batch mode, no agent; known overrides the known_hosts file.
func sshHop(s *testutil.SSHD, key, known string) target.Hop {
	return target.Hop{Method: "ssh", Name: "ssh." + s.Addr, Host: s.Addr, Port: s.Port, User: s.User, Identity: key,
		HostKeyCheck: "yes", Batch: true,
		SSHOptions: []string{"UserKnownHostsFile=" + known, "GlobalKnownHostsFile=/dev/null", "IdentityAgent=none", "CheckHostIP=no"}}
}

// TestStartErrorClasses starts real transports that fail in each way an
// operator meets (a closed port, an unknown and a changed host key, a
// refused key, a server that never answers, and a closed port behind a
// first hop) and checks what the start says: its class and sentinel, one
// line that is the same on a second run and names the hop, at most one
// "spindle:", and the hint.
func TestStartErrorClasses(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	silent := testutil.SilentServer(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	port := strconv.Itoa(s.Port)
	refused := target.Hop{Method: "ssh", Name: "ssh.127.0.0.1", User: "nobody", Host: "127.0.0.1", Port: 1, Batch: true, ConnectTimeout: 5 * time.Second}
	local := target.Hop{Method: "local", Name: "a"}
	authHint := "check the login user, the key (the hop option identity=, or the agent) and the remote authorized_keys; " +
		"ssh runs in batch mode and never asks for a password (batch=no lets it ask)"
	unknownHint := "the host's key is not known: check its fingerprint, then add it with ssh-keyscan -p " + port +
		" 127.0.0.1 >> ~/.ssh/known_hosts, or accept a new key on first use with the hop option hostkey=accept-new"
	tests := []struct {
		name     string
		target   target.Target
		class    spindle.StartClass
		sentinel error
		text     string
		hint     string
	}{
		{"refused port", target.Target{refused}, spindle.ClassUnreachable, spindle.ErrUnreachable,
			"hop 1 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused", ""},
		{"unknown host key", target.Target{sshHop(s, s.Key, "/dev/null")}, spindle.ClassHostKey, spindle.ErrHostKey,
			"hop 1 ssh://root@127.0.0.1:" + port + ": host key verification failed: No ED25519 host key is known for [127.0.0.1]:" + port +
				" and you have requested strict checking.", unknownHint},
		{"changed host key", target.Target{sshHop(s, s.Key, s.WrongKnownHosts)}, spindle.ClassHostKey, spindle.ErrHostKey,
			"hop 1 ssh://root@127.0.0.1:" + port + ": host key verification failed: Host key for [127.0.0.1]:" + port +
				" has changed and you have requested strict checking.",
			"the host's key has changed: if that is expected, remove the old key with ssh-keygen -R '[127.0.0.1]:" + port +
				"' and check the new one's fingerprint before you accept it"},
		{"wrong key", target.Target{sshHop(s, s.WrongKey, s.KnownHosts)}, spindle.ClassAuth, spindle.ErrAuth,
			"hop 1 ssh://root@127.0.0.1:" + port + ": authentication failed: root@127.0.0.1: Permission denied (publickey).", authHint},
		{"never answers", target.Target{{Method: "ssh", Name: "ssh.127.0.0.1", Host: "127.0.0.1", Port: silent, Batch: true, ConnectTimeout: time.Second}},
			spindle.ClassTimeout, nil,
			"hop 1 ssh://127.0.0.1:" + strconv.Itoa(silent) + ": timed out: ssh 127.0.0.1 did not answer within the connect timeout (1s)",
			"the connect timeout is the hop option timeout= (e.g. ?timeout=1m; ChildOptions.ConnectTimeout in Go); ssh's ConnectTimeout follows it"},
		{"refused port at the second hop", target.Target{local, refused}, spindle.ClassUnreachable, spindle.ErrUnreachable,
			"hop 2 ssh://nobody@127.0.0.1:1: host unreachable: ssh: connect to host 127.0.0.1 port 1: Connection refused", ""},
		{"unknown host key at the second hop", target.Target{local, sshHop(s, s.Key, "/dev/null")}, spindle.ClassHostKey, spindle.ErrHostKey,
			"hop 2 ssh://root@127.0.0.1:" + port + ": host key verification failed: No ED25519 host key is known for [127.0.0.1]:" + port +
				" and you have requested strict checking.", unknownHint},
	}
	fl := spindle.NewFleet(m)
	for _, tt := range tests {
		for run := range 2 { // the same words on every run
			_, err := fl.Start(ctx, tt.target)
			var se *spindle.StartError
			if !errors.As(err, &se) {
				t.Fatalf("%s (run %d): Start = %v (%T), want a *StartError", tt.name, run+1, err, err)
			}
			if se.Class != tt.class || se.Hop != len(tt.target) {
				t.Errorf("%s (run %d): class %q hop %d, want %q hop %d", tt.name, run+1, se.Class, se.Hop, tt.class, len(tt.target))
			}
			if !errors.Is(err, spindle.ErrChildStart) || (tt.sentinel != nil && !errors.Is(err, tt.sentinel)) {
				t.Errorf("%s (run %d): %v does not match ErrChildStart and %v", tt.name, run+1, err, tt.sentinel)
			}
			for _, other := range []error{spindle.ErrAuth, spindle.ErrHostKey, spindle.ErrUnreachable, spindle.ErrPlatform} {
				if other != tt.sentinel && errors.Is(err, other) {
					t.Errorf("%s (run %d): %v also matches %v", tt.name, run+1, err, other)
				}
			}
			if got := err.Error(); got != tt.text {
				t.Errorf("%s (run %d): text\n%s\nwant\n%s", tt.name, run+1, got, tt.text)
			}
			if n := strings.Count(err.Error(), "spindle:"); n > 1 {
				t.Errorf("%s (run %d): %q says spindle: %d times", tt.name, run+1, err, n)
			}
			if se.Hint != tt.hint {
				t.Errorf("%s (run %d): hint\n%s\nwant\n%s", tt.name, run+1, se.Hint, tt.hint)
			}
			var re *routing.RemoteError
			if crossed := errors.As(err, &re); crossed != (len(tt.target) > 1) {
				t.Errorf("%s (run %d): came from another context: %v, want %v", tt.name, run+1, crossed, len(tt.target) > 1)
			}
		}
	}
	if got := len(m.Router().Routes()); got != 1 {
		t.Errorf("%d routes after the failed starts, want the one of hop local:a", got)
	}
}

// TestStartErrorSudoNeedsPassword: a sudo that wants a password (a fake on
// PATH that answers as sudo -n does) is class auth, and the hint names the
// password option.
func TestStartErrorSudoNeedsPassword(t *testing.T) {
	testutil.VerifyNone(t)
	fakes := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakes, "sudo"), []byte("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	_, err := m.StartTarget(testContext(t), target.Target{{Method: "sudo", Name: "sudo.app", User: "app"}})
	var se *spindle.StartError
	if !errors.As(err, &se) || se.Class != spindle.ClassAuth || !errors.Is(err, spindle.ErrAuth) ||
		err.Error() != "hop 1 sudo://app: authentication failed: sudo: a password is required" ||
		se.Hint != "sudo wants a password: give it (spindle run -K; ChildOptions.Password or Fleet.SudoPassword in Go), or let the user run sudo without one (NOPASSWD in sudoers)" {
		t.Fatalf("sudo without its password = %v (%+v), want class auth, the sudo line and the password hint", err, se)
	}
}
