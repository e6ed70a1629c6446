package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// SSHHost is the ssh_config Host alias of an SSHD: it logs in as root
	// with SSHD.Key and checks the host key against SSHD.KnownHosts.
	SSHHost = "spindle-test-host"
	// SSHHostWrongKey is SSHHost but offering SSHD.WrongKey only, so that
	// authentication fails ("Permission denied (publickey").
	SSHHostWrongKey = "spindle-test-wrongkey"
	// SSHHostWrongHostKey is SSHHost but checking the host key against
	// SSHD.WrongKnownHosts, so that "Host key verification failed".
	SSHHostWrongHostKey = "spindle-test-wronghostkey"
	// UnprivUser is the unprivileged account UnprivilegedUser creates.
	UnprivUser = "spindle-test"

	sshdPath      = "/usr/sbin/sshd"
	sshdStartWait = 10 * time.Second // bound on StartSSHD's readiness wait
	sshdStopWait  = 3 * time.Second  // SIGTERM to SIGKILL
	sshdBindTries = 5                // ports tried before giving up
)

// SSHD is a real OpenSSH server, /usr/sbin/sshd, run by StartSSHD for one
// test, with its own host key, authorized keys and configuration in a
// temporary directory. Nothing of the system's sshd setup is used. It needs
// root (sshd must change user on login) and the openssh-server package.
//
// The fields are set by StartSSHD and must not be changed. Stop is safe for
// concurrent use; the rest is read-only.
type SSHD struct {
	Addr string // the address sshd listens on: "127.0.0.1"
	Port int    // the port sshd listens on
	// User is the account to log in as: root.
	User string
	// Unpriv is an unprivileged account (UnprivUser) that may log in with
	// Key too, and that root may sudo to without a password.
	Unpriv string
	// Key is the path of an ed25519 private key authorized for User and
	// Unpriv. WrongKey is one that is authorized for no one.
	Key, WrongKey string
	// KnownHosts is the path of a known_hosts file holding this server's
	// host key for [Addr]:Port (Addr alone for port 22). WrongKnownHosts holds another key for the
	// same name.
	KnownHosts, WrongKnownHosts string
	// SSHConfig is the path of an ssh_config file that defines SSHHost,
	// SSHHostWrongKey and SSHHostWrongHostKey with HostName Addr, Port, User
	// root, IdentitiesOnly, StrictHostKeyChecking yes and BatchMode yes, so
	// that "ssh -F SSHConfig spindle-test-host cmd" runs cmd as root, and
	// "ssh -F SSHConfig -l spindle-test spindle-test-host cmd" as Unpriv.
	SSHConfig string
	// Dir is the directory that holds every file above, and Log sshd's
	// output (its -e log). Dir is removed when the test ends.
	Dir, Log string

	cmd      *exec.Cmd
	exited   chan struct{} // closed once cmd.Wait has returned
	waitErr  error         // cmd.Wait's result; read after exited is closed
	stopOnce sync.Once     // Stop's; later callers wait for the first
}

// sshdOptions says where and how startSSHD runs sshd.
type sshdOptions struct {
	addr   string   // the address to listen on
	port   int      // 0: pick a free loopback port
	prefix []string // run sshd under this command, as "ip netns exec NAME"
	// hostPID keeps sshd in this process's PID namespace, as a real sshd
	// is: a login can then setns into a container's (runc refuses, EINVAL,
	// from a PID namespace that is not an ancestor of the container's).
	hostPID bool
}

// StartSSHD starts sshd on a free port of 127.0.0.1 and returns when a
// login as root with Key succeeds, or fails t within about ten seconds.
// The server is stopped, and every process it started killed, when the
// test ends; Stop stops it sooner.
//
// It skips t when not run as root and fails t if openssh-server or sudo
// is not installed. It creates UnprivUser if it does not exist (see
// UnprivilegedUser).
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	return startSSHD(t, sshdOptions{addr: "127.0.0.1"})
}

// StartSSHDHostPID is StartSSHD with sshd left in the test's PID
// namespace, for logins that enter containers (podman exec). Its logins
// are then killed by killTree alone (the process tree walk), not by the
// death of a namespace's init.
func StartSSHDHostPID(t testing.TB) *SSHD {
	t.Helper()
	return startSSHD(t, sshdOptions{addr: "127.0.0.1", hostPID: true})
}

// SSHArgs returns the options ssh needs to reach s, to be followed by
// SSHHost (or SSHHostWrongKey, SSHHostWrongHostKey) and a command:
//
//	exec.Command("ssh", append(s.SSHArgs(), testutil.SSHHost, "true")...)
func (s *SSHD) SSHArgs() []string {
	return []string{"-F", s.SSHConfig}
}

// Stop stops sshd and kills every process it started, logins included, and
// returns once they are gone. It may be called more than once, from any
// goroutine; the test's cleanup calls it too.
func (s *SSHD) Stop() {
	s.stopOnce.Do(func() { killTree(s.cmd.Process.Pid, s.exited) })
}

// UnprivilegedUser makes sure that the account UnprivUser exists, with a
// home directory, a shell and a password that cannot be used but does not
// lock the account (sshd refuses locked accounts), and that root can run
// commands as it with "sudo -n -u spindle-test". It returns the account's
// name. It skips t when not run as root.
//
// The account is created once and left in place: it is shared by every
// test and every run.
func UnprivilegedUser(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	if err := ensureUser(UnprivUser); err != nil {
		t.Fatalf("testutil: %v", err)
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatalf("testutil: sudo not found (%v): install the sudo package", err)
	}
	out, err := exec.Command("sudo", "-n", "-u", UnprivUser, "id", "-un").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != UnprivUser {
		t.Fatalf("testutil: sudo -n -u %s id -un = %q, %v; want %q: root must be allowed to sudo without a password",
			UnprivUser, out, err, UnprivUser)
	}
	return UnprivUser
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("testutil: needs root (sshd changes user on login, useradd); running as uid %d", os.Geteuid())
	}
}

// ensureUser creates the account name if it does not exist, and unlocks
// it if it is locked. Another process may be doing the same at the same
// time, so a failed useradd is retried and an account that appeared
// meanwhile is accepted.
func ensureUser(name string) error {
	var lastErr error
	for try := 0; try < 10; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := user.Lookup(name); err == nil {
			return unlockUser(name)
		}
		out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh",
			"--password", "*", "--comment", "spindle tests", name).CombinedOutput()
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("useradd %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return lastErr
}

// unlockUser replaces a locking password ("!...", as useradd sets by
// default) with "*": sshd without PAM refuses a locked account even for a
// key, but "*" only means no password can match.
func unlockUser(name string) error {
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return fmt.Errorf("checking whether %s is locked: %w", name, err)
	}
	for _, line := range strings.Split(string(shadow), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 2 || f[0] != name || !strings.HasPrefix(f[1], "!") {
			continue
		}
		if out, err := exec.Command("usermod", "--password", "*", name).CombinedOutput(); err != nil {
			return fmt.Errorf("usermod --password '*' %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func startSSHD(t testing.TB, opt sshdOptions) *SSHD {
	t.Helper()
	requireRoot(t)
	for _, prog := range []string{sshdPath, "ssh-keygen", "ssh"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("testutil: %s not found (%v): install openssh-server and openssh-client (apt-get install openssh-server)", prog, err)
		}
	}
	unpriv := UnprivilegedUser(t)
	// sshd refuses to start without its privilege separation directory,
	// which on Debian only the service unit creates.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("testutil: sshd: %v", err)
	}

	// Not t.TempDir: sshd reads authorized_keys as the user logging in,
	// who must be able to reach it, and t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "spindle-sshd-")
	if err != nil {
		t.Fatalf("testutil: sshd: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if strings.ContainsAny(dir, "% \"'\\#") {
		t.Fatalf("testutil: sshd: temporary directory %q has characters ssh configuration files cannot hold; set TMPDIR", dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testutil: sshd: %v", err)
	}
	s := &SSHD{
		Addr:            opt.addr,
		User:            "root",
		Unpriv:          unpriv,
		Key:             filepath.Join(dir, "id_ed25519"),
		WrongKey:        filepath.Join(dir, "wrong_id_ed25519"),
		KnownHosts:      filepath.Join(dir, "known_hosts"),
		WrongKnownHosts: filepath.Join(dir, "wrong_known_hosts"),
		SSHConfig:       filepath.Join(dir, "ssh_config"),
		Dir:             dir,
		Log:             filepath.Join(dir, "sshd.log"),
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	wrongHostKey := filepath.Join(dir, "wrong_ssh_host_ed25519_key")
	for _, k := range []string{s.Key, s.WrongKey, hostKey, wrongHostKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "spindle-test", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("testutil: ssh-keygen -f %s: %v\n%s", k, err, out)
		}
	}
	authorized := readFile(t, s.Key+".pub")
	writeFile(t, filepath.Join(dir, "authorized_keys"), authorized, 0o644)

	// sshd 9.8 and later shun a source after a few failed logins, which
	// the tests of failures would trip; older ones do not know the option.
	penalties := "PerSourcePenalties no\n"
	cfg := filepath.Join(dir, "sshd_config")
	writeFile(t, cfg, s.sshdConfig(hostKey, penalties), 0o644)
	if err := exec.Command(sshdPath, "-t", "-f", cfg).Run(); err != nil {
		penalties = ""
	}

	var lastErr error
	for try := 0; try < sshdBindTries; try++ {
		s.Port = opt.port
		if s.Port == 0 {
			s.Port = freePort(t, s.Addr)
		}
		writeFile(t, cfg, s.sshdConfig(hostKey, penalties), 0o644)
		writeFile(t, s.KnownHosts, s.knownHost(readFile(t, hostKey+".pub")), 0o644)
		writeFile(t, s.WrongKnownHosts, s.knownHost(readFile(t, wrongHostKey+".pub")), 0o644)
		writeFile(t, s.SSHConfig, s.sshConfig(), 0o644)

		start := time.Now()
		lastErr = s.start(opt, cfg)
		if lastErr == nil {
			t.Cleanup(s.Stop)
			lastErr = s.waitReady(start.Add(sshdStartWait))
			if lastErr == nil {
				return s
			}
			s.Stop()
			if opt.port == 0 && strings.Contains(readFile(t, s.Log), "Address already in use") {
				// Another process took the port between freePort and sshd.
				s.stopOnce = sync.Once{}
				continue
			}
		}
		break
	}
	t.Fatalf("testutil: sshd on %s:%d: %v\nsshd log:\n%s", s.Addr, s.Port, lastErr, readFile(t, s.Log))
	return nil
}

func (s *SSHD) sshdConfig(hostKey, extra string) string {
	return fmt.Sprintf(`# Written by testutil.StartSSHD; nothing of /etc/ssh is used.
ListenAddress %s:%d
HostKey %s
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
AllowUsers root %s
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
%s`, s.Addr, s.Port, hostKey, filepath.Join(s.Dir, "authorized_keys"), s.Unpriv, extra)
}

func (s *SSHD) knownHost(pubKey string) string {
	f := strings.Fields(pubKey)
	if len(f) < 2 {
		return ""
	}
	host := fmt.Sprintf("[%s]:%d", s.Addr, s.Port)
	if s.Port == 22 {
		host = s.Addr // ssh looks the default port up without it
	}
	return fmt.Sprintf("%s %s %s\n", host, f[0], f[1])
}

// sshConfig is read first match first: the specific Host blocks come
// before the common one.
func (s *SSHD) sshConfig() string {
	return fmt.Sprintf(`# Written by testutil.StartSSHD.
Host %[1]s
	IdentityFile %[4]s
	UserKnownHostsFile %[6]s
Host %[2]s
	IdentityFile %[5]s
	UserKnownHostsFile %[6]s
Host %[3]s
	IdentityFile %[4]s
	UserKnownHostsFile %[7]s
Host %[1]s %[2]s %[3]s
	HostName %[8]s
	Port %[9]d
	User root
	IdentitiesOnly yes
	IdentityAgent none
	StrictHostKeyChecking yes
	BatchMode yes
	GlobalKnownHostsFile /dev/null
	CheckHostIP no
	UpdateHostKeys no
	ConnectTimeout 5
	ControlMaster no
	ControlPath none
	LogLevel ERROR
`, SSHHost, SSHHostWrongKey, SSHHostWrongHostKey, s.Key, s.WrongKey,
		s.KnownHosts, s.WrongKnownHosts, s.Addr, s.Port)
}

// start starts sshd and the goroutine that waits for it.
func (s *SSHD) start(opt sshdOptions, cfg string) error {
	log, err := os.Create(s.Log)
	if err != nil {
		return err
	}
	defer log.Close()
	args := append(append([]string{}, opt.prefix...), sshdPath, "-D", "-e", "-f", cfg)
	// Setpgid: sshd and what it forks before a login share a group the
	// cleanup can signal. Pdeathsig: sshd dies with the test binary, even
	// one killed by a timeout. A new PID namespace, where the kernel
	// allows it, makes sshd its init, so that its death kills every login
	// too; killTree does the same where it is not allowed.
	clones := []uintptr{syscall.CLONE_NEWPID, 0}
	if opt.hostPID {
		clones = clones[1:]
	}
	for _, clone := range clones {
		s.cmd = exec.Command(args[0], args[1:]...)
		s.cmd.Stdout, s.cmd.Stderr = log, log
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: clone}
		if err = s.cmd.Start(); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// waitReady returns once the port accepts and a login as root runs true.
func (s *SSHD) waitReady(deadline time.Time) error {
	addr := net.JoinHostPort(s.Addr, strconv.Itoa(s.Port))
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited: %v", s.waitErr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %s never accepted: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		cmd := exec.Command("ssh", append(s.SSHArgs(), "-o", "ConnectTimeout=2", SSHHost, "true")...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ssh -F %s %s true: %v\n%s", s.SSHConfig, SSHHost, err, out)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited: %v", s.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// killTree kills the process pid, which must be a child of this process,
// waited for by a goroutine that closes exited, and all its descendants.
// sshd puts each connection in a session of its own and leaves logins
// running when it exits, so signalling its process group is not enough:
// the descendants are found through /proc and stopped, so that none can
// fork or be orphaned while they are being found, then killed.
func killTree(pid int, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	syscall.Kill(-pid, syscall.SIGSTOP)
	stopped := map[procKey]bool{}
	for {
		found := false
		for k := range descendants(pid) {
			if !stopped[k] {
				syscall.Kill(k.pid, syscall.SIGSTOP)
				stopped[k] = true
				found = true
			}
		}
		if !found {
			break
		}
	}
	for k := range stopped {
		syscall.Kill(k.pid, syscall.SIGKILL)
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	syscall.Kill(-pid, syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(sshdStopWait):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	// The killed descendants are reaped by whoever inherited them; give
	// them the same time VerifyNone gives leftovers.
	deadline := time.Now().Add(pollTimeout)
	for k := range stopped {
		for alive(k) && time.Now().Before(deadline) {
			time.Sleep(pollInterval)
		}
	}
}

// descendants returns the processes below pid, by /proc's parent links.
func descendants(pid int) map[procKey]bool {
	names, err := readDirNames("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	start := map[int]uint64{}
	for _, name := range names {
		p, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		_, ppid, st, err := parseStat(data)
		if err != nil {
			continue
		}
		parent[p], start[p] = ppid, st
	}
	out := map[procKey]bool{}
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out[procKey{p, start[p]}] = true
				break
			}
		}
	}
	return out
}

// alive reports whether k is still a process, zombies included.
func alive(k procKey) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(k.pid) + "/stat")
	if err != nil {
		return false
	}
	_, _, st, err := parseStat(data)
	return err == nil && st == k.startTime
}

// freePort returns a TCP port on addr that was free a moment ago.
func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("testutil: finding a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("testutil: %v", err)
	}
	return string(data)
}

func writeFile(t testing.TB, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatalf("testutil: %v", err)
	}
}
