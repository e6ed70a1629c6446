package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ssh runs the ssh client with args and returns its combined output.
func ssh(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ssh", args...).CombinedOutput()
	return string(out), err
}

func TestSSHD(t *testing.T) {
	VerifyNone(t)
	start := time.Now()
	s := StartSSHD(t)
	t.Logf("StartSSHD took %v (port %d)", time.Since(start), s.Port)

	tests := []struct {
		name    string
		args    []string
		wantOK  bool
		wantOut string // contained in the output
	}{
		{"root", append(s.SSHArgs(), SSHHost, "echo", "ok"), true, "ok\n"},
		{"root id", append(s.SSHArgs(), SSHHost, "id", "-un"), true, "root\n"},
		{"unpriv", append(s.SSHArgs(), "-l", s.Unpriv, SSHHost, "id", "-un"), true, s.Unpriv + "\n"},
		{"wrong key", append(s.SSHArgs(), SSHHostWrongKey, "true"), false, "Permission denied (publickey"},
		{"wrong key, explicit", []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
			"-o", "IdentityAgent=none", "-i", s.WrongKey, "-o", "UserKnownHostsFile=" + s.KnownHosts,
			"-p", strconv.Itoa(s.Port), "root@" + s.Addr, "true"}, false, "Permission denied (publickey"},
		{"unpriv wrong key", append(s.SSHArgs(), "-l", s.Unpriv, SSHHostWrongKey, "true"), false, "Permission denied (publickey"},
		{"wrong host key", append(s.SSHArgs(), SSHHostWrongHostKey, "true"), false, "Host key verification failed"},
		{"wrong host key, explicit", []string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
			"-i", s.Key, "-o", "UserKnownHostsFile=" + s.WrongKnownHosts, "-o", "StrictHostKeyChecking=yes",
			"-p", strconv.Itoa(s.Port), "root@" + s.Addr, "true"}, false, "Host key verification failed"},
	}
	for _, tt := range tests {
		out, err := ssh(t, tt.args...)
		if (err == nil) != tt.wantOK || !strings.Contains(out, tt.wantOut) {
			t.Errorf("%s: ssh %s = %q, %v; want %q, success %v", tt.name, strings.Join(tt.args, " "), out, err, tt.wantOut, tt.wantOK)
		}
	}

	s.Stop()
	s.Stop() // idempotent, as the cleanup's call will be
	out, err := ssh(t, append(s.SSHArgs(), SSHHost, "true")...)
	if err == nil || !strings.Contains(out, "Connection refused") {
		t.Errorf("ssh after Stop = %q, %v; want Connection refused", out, err)
	}
}

func TestSSHDStopKillsLogins(t *testing.T) {
	VerifyNone(t)
	s := StartSSHD(t)

	// A login that would outlive sshd: sshd leaves sessions running when
	// it exits. It records the PID of its sleep.
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("ssh", append(s.SSHArgs(), SSHHost, "echo $$ > "+pidFile+"; exec sleep 600")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; {
		data, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		if pid == 0 && time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the login never wrote %s", pidFile)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The PID is as the login sees it, which is in sshd's PID namespace
	// when there is one; find the sleep by its command line instead.
	sleeps := processesRunning("sleep 600")
	if len(sleeps) == 0 {
		t.Fatalf("no process runs sleep 600 (pid %d in the login)", pid)
	}

	s.Stop()
	for _, p := range sleeps {
		if _, err := os.Stat("/proc/" + strconv.Itoa(p)); err == nil {
			t.Errorf("process %d (sleep 600) still there after Stop", p)
		}
	}
	// Its connection closed, the client exits.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("ssh client still running 10s after Stop")
	}
}

// processesRunning returns the PIDs of the processes whose command line
// is cmdline, arguments joined by spaces.
func processesRunning(cmdline string) []int {
	names, _ := readDirNames("/proc")
	var pids []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + name + "/cmdline")
		if err == nil && strings.Join(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), " ") == cmdline {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestSSHDUnprivilegedUser(t *testing.T) {
	name := UnprivilegedUser(t)
	out, err := exec.Command("sudo", "-n", "-u", name, "sh", "-c", "id -un; echo $HOME; test -d $HOME && echo home").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), name+"\n") || !strings.HasSuffix(string(out), "home\n") {
		t.Errorf("sudo -n -u %s ... = %q, %v; want its name and an existing home", name, out, err)
	}
}
