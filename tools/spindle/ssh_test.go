package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/ci/mask"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/target"
	"golang.org/x/sys/unix"
)

func TestConnFlagsParse(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte("Host x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := []struct {
		args      []string
		verbosity int
		want      connFlags
	}{
		{[]string{"m.wasm"}, 0, connFlags{}},
		{[]string{"-v", "m.wasm"}, 1, connFlags{}},
		{[]string{"-vv", "m.wasm"}, 2, connFlags{}},
		{[]string{"--vvv", "m.wasm"}, 3, connFlags{}},
		{[]string{"-v", "--verbose", "-v", "m.wasm"}, 3, connFlags{}},
		{[]string{"-K", "--ssh-config", cfg, "--connect-timeout=4s", "--host-key-checking", "accept-new", "m.wasm"}, 0,
			connFlags{askPass: true, sshConfig: cfg, connectTimeout: 4 * time.Second, hostKey: "accept-new"}},
		{[]string{"--ask-become-pass", "m.wasm"}, 0, connFlags{askPass: true}},
	}
	for _, tt := range good {
		tt.want.verbosity = tt.verbosity
		o, err := parseRunArgs(tt.args)
		if err != nil {
			t.Errorf("parseRunArgs(%q): %v", tt.args, err)
			continue
		}
		if o.conn != tt.want {
			t.Errorf("parseRunArgs(%q).conn = %+v, want %+v", tt.args, o.conn, tt.want)
		}
		ci, err := parseCIArgs(append([]string{"job.yaml"}, tt.args[:len(tt.args)-1]...), nil)
		if err != nil {
			t.Errorf("parseCIArgs(%q): %v", tt.args, err)
			continue
		}
		if ci.conn != tt.want {
			t.Errorf("parseCIArgs(%q).conn = %+v, want %+v", tt.args, ci.conn, tt.want)
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--ssh-config", filepath.Join(t.TempDir(), "none"), "m.wasm"}, "--ssh-config"},
		{[]string{"--ssh-config", t.TempDir(), "m.wasm"}, "a directory"},
		{[]string{"--ssh-config", "m.wasm"}, "ssh-config"},
		{[]string{"--connect-timeout", "5", "m.wasm"}, `--connect-timeout "5": a duration needs a unit, as 5s or 5ms`},
		{[]string{"--connect-timeout", "soon", "m.wasm"}, "want a duration such as 30s"},
		{[]string{"--connect-timeout", "0s", "m.wasm"}, "must be positive"},
		{[]string{"--host-key-checking", "maybe", "m.wasm"}, "want yes, no or accept-new"},
	}
	for _, tt := range bad {
		if _, err := parseRunArgs(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseRunArgs(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
		if _, err := parseCIArgs(append([]string{"job.yaml"}, tt.args[:len(tt.args)-1]...), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseCIArgs(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
	}
	if lv := (&connFlags{verbosity: 5}).runLevel(); lv >= (&connFlags{verbosity: 2}).runLevel() {
		t.Errorf("-vvvvv level %v, want below -vv's", lv)
	}
}

// cli runs the real spindle binary (this test binary, see TestMain) with
// args, within two minutes.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return cliIn(t, nil, args...)
}

// cliIn is cli with stdin as the binary's stdin (nil: /dev/null).
func cliIn(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), cliEnv+"=1", "XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "spindle-test-xdg")) // each guest compiles once
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal: nothing can prompt
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCLI(t, cmd, 6*time.Minute) // a battery's first compile under -race on a loaded machine takes minutes
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// waitCLI waits for cmd, killing it after d.
func waitCLI(t *testing.T, cmd *exec.Cmd, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%q still running after %v", cmd.Args, d)
	}
}

// sshCLI starts the test sshd and arranges that the broker binary the
// test ships is removed from the remote caches afterwards.
func sshCLI(t *testing.T) *testutil.SSHD {
	t.Helper()
	s := testutil.StartSSHD(t)
	forgetBroker(t, self(t), s)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // the master's: each guest compiles once
	return s
}

// lineWith returns the first line of text that holds every one of parts.
func lineWith(text string, parts ...string) (string, bool) {
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

// TestRunSSHFlagsVerbose: with -vv, each transport's command line is
// logged, and it carries --ssh-config, --connect-timeout and
// --host-key-checking; the login works only because ssh read the config
// file (it alone knows the server). -vvv adds each bootstrap step, those
// of a hop started behind the first one included.
func TestRunSSHFlagsVerbose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	hello, _, _ := cliModules(t)
	host := "ssh://" + testutil.SSHHost

	code, out, errs := cli(t, "run", "-vv", "--ssh-config", s.SSHConfig, "--connect-timeout", "7s", "--host-key-checking", "yes",
		"-t", host, hello, "hello", "--input", `{"name": "vv"}`)
	if code != 0 || !strings.Contains(out, "hello, vv") {
		t.Fatalf("spindle run -vv = %d\n%s\n%s", code, out, errs)
	}
	line, ok := lineWith(errs, "level=DEBUG", `msg="starting child"`, "child=ssh."+testutil.SSHHost)
	if !ok {
		t.Fatalf("-vv shows no ssh command line:\n%s", errs)
	}
	for _, want := range []string{"ssh -F " + s.SSHConfig + " ", "-o ConnectTimeout=7 ", "-o StrictHostKeyChecking=yes ", " " + testutil.SSHHost + " <bootstrap script>", "connect_timeout=7s"} {
		if !strings.Contains(line, want) {
			t.Errorf("the ssh command line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(errs, "bootstrap: ") || strings.Contains(errs, "level=TRACE") {
		t.Errorf("-vv shows the bootstrap steps, which are -vvv's:\n%s", errs)
	}

	code, out, errs = cli(t, "run", "-vvv", "--ssh-config", s.SSHConfig, "-t", host+"/sudo://root", hello, "hello", "--input", `{"name": "vvv"}`)
	if code != 0 || !strings.Contains(out, "hello, vvv") {
		t.Fatalf("spindle run -vvv = %d\n%s\n%s", code, out, errs)
	}
	for _, msg := range []string{"bootstrap: remote platform", "bootstrap: broker started on the remote", "handshake: hello acknowledged"} {
		// The master's own start of the ssh hop ...
		if _, ok := lineWith(errs, "level=TRACE", `msg="`+msg+`"`, "child=ssh."+testutil.SSHHost); !ok {
			t.Errorf("-vvv shows no %q for the ssh hop:\n%s", msg, errs)
		}
		// ... and the sudo hop's, forwarded from the ssh hop's context.
		if _, ok := lineWith(errs, "level=TRACE", `msg="`+msg+`"`, "context=ssh."+testutil.SSHHost, "child=sudo.root"); !ok {
			t.Errorf("-vvv shows no %q for the sudo hop, from the context that started it:\n%s", msg, errs)
		}
	}
	if _, ok := lineWith(errs, `msg="starting child"`, "context=ssh."+testutil.SSHHost, `cmd="sudo -n -H -u root -- sh -c <bootstrap script>"`); !ok {
		t.Errorf("-vvv shows no sudo command line from the ssh hop:\n%s", errs)
	}
	if _, ok := lineWith(errs, "sha256=", "bytes="); !ok {
		t.Errorf("-vvv shows no binary hash and size:\n%s", errs)
	}
}

// TestConnectTimeoutFlag: --connect-timeout bounds the start of a hop to
// a server that accepts and never answers, in spindle run and spindle ci.
func TestConnectTimeoutFlag(t *testing.T) {
	testutil.VerifyNone(t)
	silent := "ssh://nobody@127.0.0.1:" + strconv.Itoa(testutil.SilentServer(t))
	hello, _, _ := cliModules(t)
	start := time.Now()
	code, out, errs := cli(t, "run", "--connect-timeout", "2s", "--host-key-checking", "no", "-t", silent, hello, "hello")
	if code != exitCIInfra || !strings.Contains(errs, "timeout") { // one target: its failure is on stderr
		t.Errorf("spindle run to a silent server = %d after %v, want 3 with a timeout\n%s\n%s", code, time.Since(start), out, errs)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("spindle run --connect-timeout 2s took %v", d)
	}
	job := ciJob(t, `
jobs:
  j:
    targets: ["`+silent+`"]
    steps:
      - {name: s, module: PROBE, args: [echo, hi]}
`)
	start = time.Now()
	code, out, errs = cli(t, "ci", "--retries", "0", "--cache-dir", "-", "-w", t.TempDir(), "--connect-timeout", "2s", job)
	if code != exitCIInfra || !strings.Contains(out, "timeout") {
		t.Errorf("spindle ci to a silent server = %d after %v, want 3 with a timeout\n%s\n%s", code, time.Since(start), out, errs)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("spindle ci --connect-timeout 2s took %v", d)
	}
}

// pty is a pseudo-terminal: the test holds the master side and keeps
// everything written to it; a CLI gets the slave side as its controlling
// terminal.
type pty struct {
	master, slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer // guarded by mu: what was written to the terminal
	done          chan struct{}
}

func newPTY(t *testing.T) *pty {
	t.Helper()
	m, s := openPTY(t, 200)
	p := &pty{master: m, slave: s, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 1024)
		for {
			k, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:k])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		m.Close()
		<-p.done
	})
	return p
}

func (p *pty) written() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the terminal shows s.
func (p *pty) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.written(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it shows %q", s, p.written())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echo reports whether the terminal echoes what is typed.
func (p *pty) echo(t *testing.T) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(p.slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// startOnTTY starts the CLI with p as its controlling terminal (and
// stdin); stdout and stderr are kept apart from it.
func startOnTTY(t *testing.T, p *pty, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out, &errb
}

// sudoWithPassword makes the unprivileged test user need its password,
// pw, for sudo to root, asked every time (passwd_tries at its default, 3:
// sudo asks again after a wrong one); it is undone when the test ends.
func sudoWithPassword(t *testing.T, user, pw string) {
	t.Helper()
	rule := filepath.Join("/etc/sudoers.d", "spindle-test-ask-become-pass")
	text := fmt.Sprintf("# Written by a spindle test (tools/spindle/ssh_test.go); removed when it ends.\n"+
		"Defaults:%[1]s timestamp_timeout=0, !lecture\n%[1]s ALL=(root) ALL\n", user)
	if err := os.WriteFile(rule, []byte(text), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(rule) })
	if out, err := exec.Command("visudo", "-c", "-f", rule).CombinedOutput(); err != nil {
		t.Fatalf("visudo -c -f %s: %v\n%s", rule, err, out)
	}
	chpasswd := exec.Command("chpasswd")
	chpasswd.Stdin = strings.NewReader(user + ":" + pw + "\n")
	if out, err := chpasswd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Back to what testutil sets: no password can match.
		if out, err := exec.Command("usermod", "--password", "*", user).CombinedOutput(); err != nil {
			t.Errorf("usermod --password '*' %s: %v\n%s", user, err, out)
		}
	})
}

// TestAskBecomePass: -K asks once on the terminal with echo off, and the
// password reaches a real sudo that wants it, behind an ssh hop; it is in
// no output; the terminal is itself again afterwards, after Ctrl-C too;
// without a terminal -K refuses.
func TestAskBecomePass(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for sshd and sudoers; CI runs as root")
	}
	testutil.VerifyNone(t)
	s := sshCLI(t)
	const pw = "b3come-Pass-w0rd"
	sudoWithPassword(t, s.Unpriv, pw)
	hello, _, _ := cliModules(t)
	tgt := "ssh://" + s.Unpriv + "@" + testutil.SSHHost + "/sudo://root"
	args := []string{"run", "-K", "-vvv", "--ssh-config", s.SSHConfig, "--connect-timeout", "10s", "-t", tgt, hello, "hello", "--input", `{"name": "root"}`}

	t.Run("right password", func(t *testing.T) {
		p := newPTY(t)
		cmd, out, errb := startOnTTY(t, p, args...)
		p.waitFor(t, becomePrompt)
		if p.echo(t) {
			t.Errorf("echo is on while the password is asked for")
		}
		prompted := len(p.written())
		if _, err := p.master.WriteString(pw + "\n"); err != nil {
			t.Fatal(err)
		}
		waitCLI(t, cmd, 2*time.Minute)
		if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out.String(), "hello, root") {
			t.Fatalf("spindle run -K = %d\n%s\n%s", code, out, errb)
		}
		// The sudo hop was started with the password (sudo -S), by the
		// ssh hop's context.
		if _, ok := lineWith(errb.String(), `msg="starting child"`, "context=ssh."+testutil.SSHHost, `cmd="sudo -S -p`); !ok {
			t.Errorf("no sudo -S command line from the ssh hop:\n%s", errb)
		}
		if after := p.written()[prompted:]; strings.TrimSpace(after) != "" {
			t.Errorf("the terminal showed %q after the prompt, want only a newline", after)
		}
		if strings.Count(p.written(), becomePrompt) != 1 {
			t.Errorf("the terminal shows %q, want the prompt once", p.written())
		}
		if !p.echo(t) {
			t.Errorf("echo is still off after spindle exited")
		}
		for what, text := range map[string]string{"stdout": out.String(), "stderr": errb.String(), "terminal": p.written()} {
			if strings.Contains(text, pw) {
				t.Errorf("the password is in the %s:\n%s", what, text)
			}
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		// sudo says "Sorry, try again" and asks again (passwd_tries=3):
		// that is the answer, at once, not after the connect timeout.
		const connectTO = 40 * time.Second
		wrongArgs := []string{"run", "-K", "--json", "--ssh-config", s.SSHConfig, "--connect-timeout", connectTO.String(), "-t", tgt, hello, "hello", "--input", `{"name": "root"}`}
		p := newPTY(t)
		cmd, out, errb := startOnTTY(t, p, wrongArgs...)
		p.waitFor(t, becomePrompt)
		if _, err := p.master.WriteString("wrong-" + pw + "\n"); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		waitCLI(t, cmd, 2*time.Minute)
		took := time.Since(began)
		all := out.String() + errb.String()
		if code := cmd.ProcessState.ExitCode(); code != exitCIInfra {
			t.Fatalf("spindle run -K with a wrong password = %d, want 3\n%s\n%s", code, out, errb)
		}
		var l runLine
		if err := json.Unmarshal(out.Bytes(), &l); err != nil || l.Error == nil {
			t.Fatalf("spindle run -K --json with a wrong password: stdout %q is not a failed line: %v", out, err)
		}
		want := "hop 2 sudo://root: authentication failed: sudo: incorrect password (sudo asked for it again)"
		if l.Error.Kind != "connect" || l.Error.Class != "auth" || l.Error.Message != want || !strings.Contains(l.Error.Hint, "-K") {
			t.Errorf("spindle run -K with a wrong password: error %+v; want kind connect, class auth, message %q and a hint naming -K", *l.Error, want)
		}
		if took > connectTO/2 {
			t.Errorf("spindle run -K with a wrong password took %v after the password, want far less than the connect timeout (%v)", took, connectTO)
		}
		if strings.Contains(all+p.written(), "wrong-"+pw) {
			t.Errorf("the password is in the output:\n%s", all)
		}
	})
	t.Run("Ctrl-C at the prompt", func(t *testing.T) {
		p := newPTY(t)
		cmd, out, errb := startOnTTY(t, p, args...)
		p.waitFor(t, becomePrompt)
		if _, err := p.master.WriteString("\x03"); err != nil { // the terminal turns it into SIGINT
			t.Fatal(err)
		}
		waitCLI(t, cmd, 30*time.Second)
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
			t.Errorf("spindle run -K, Ctrl-C at the prompt = %d, want %d\n%s\n%s", code, exitInterrupted, out, errb)
		}
		if !p.echo(t) {
			t.Errorf("echo is still off after Ctrl-C at the prompt")
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		code, out, errs := cli(t, args...)
		if code != exitUsage || !strings.Contains(errs, "-K: no terminal") {
			t.Errorf("spindle run -K without a terminal = %d, want %d saying there is no terminal\n%s\n%s", code, exitUsage, out, errs)
		}
	})
}

// TestConnNotesAndMasks: --ssh-config says once when a target has ssh
// hops it does not reach; the password is masked in what a run prints.
func TestConnNotesAndMasks(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &connFlags{sshConfig: cfg}
	var chains []target.Target
	for _, s := range []string{"ssh://a/sudo://root", "ssh://a/ssh://b", "ssh://a/ssh://c", "ssh://a/ssh://d?config=/there"} {
		tg, err := target.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		chains = append(chains, tg)
	}
	var errb bytes.Buffer
	if cn, _ := f.connect(&errb, "spindle run", chains); cn == nil {
		t.Fatalf("connect failed: %s", errb.String())
	}
	if n := strings.Count(errb.String(), "\n"); n != 1 || !strings.Contains(errb.String(), "hop 2 of ssh://a/ssh://b") {
		t.Errorf("the note is %q, want one line naming hop 2 of ssh://a/ssh://b", errb.String())
	}
	errb.Reset()
	if f.connect(&errb, "spindle run", chains[:1]); errb.Len() != 0 || remoteSSHHop(chains[1]) != 2 {
		t.Errorf("a note %q for a target whose ssh hops all run here", errb.String())
	}

	m, err := mask.New([][]byte{[]byte("pa55word")})
	if err != nil {
		t.Fatal(err)
	}
	cn := &conn{flags: f, password: "pa55word", masker: m}
	var logs bytes.Buffer
	cn.logger(&logs, spindle.LevelTrace).Log(context.Background(), spindle.LevelTrace, "echoed pa55word", "attr", "x pa55word y")
	if got := logs.String(); strings.Contains(got, "pa55word") || !strings.Contains(got, "level=TRACE") || !strings.Contains(got, "***") {
		t.Errorf("log line %q, want it at TRACE with the password masked", got)
	}
	if got := cn.mask("sudo said pa55word"); got != "sudo said ***" {
		t.Errorf("mask = %q", got)
	}
	if s := fmt.Sprint(cn); strings.Contains(s, "pa55word") {
		t.Errorf("a conn prints as %q", s)
	}
}
