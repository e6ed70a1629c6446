package spindle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle"
	"github.com/spindle-hq/spindle/internal/testutil"
	"github.com/spindle-hq/spindle/routing"
)

// requireRoot fails (not skips) when the test cannot run as root: CI runs
// as root, and these tests must run there.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (sudo to another user, sshd); CI runs as root")
	}
}

// cleanBinaryCache removes the broker binaries a test's bootstrap put in
// user's cache (the test binary, 20+ MB a run).
func cleanBinaryCache(t *testing.T, home string) {
	t.Cleanup(func() {
		matches, _ := filepath.Glob(filepath.Join(home, ".cache/spindle/bin/spindle-*"))
		for _, m := range matches {
			os.Remove(m)
		}
	})
}

func TestSudo(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatalf("sudo is not installed (.ci/run installs it): %v", err)
	}
	ctx := testContext(t)
	cleanBinaryCache(t, "/root")
	m, _ := newMaster(t, spindle.Config{})
	c, err := m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	var pong spindle.PingResult
	if err := c.Call(ctx, "ping", nil, &pong); err != nil || pong.Name != "sudo.root" {
		t.Fatalf("ping sudo.root = %+v, %v", pong, err)
	}
	first := c.SentBinary()
	c2, err := m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root", Name: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.SentBinary() {
		t.Errorf("second sudo start sent the binary again (first sent it: %v)", first)
	}
	// Through the first: sudo from a sudo child.
	c3, err := c.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "root", Name: "nested"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A user that does not exist: a clear error, nothing left behind.
	_, err = m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "no-such-user-spindle"})
	if !errors.Is(err, spindle.ErrChildStart) || !strings.Contains(err.Error(), "no-such-user-spindle") {
		t.Fatalf("sudo to a missing user = %v", err)
	}
}

// TestFakeEngines runs the whole bootstrap through fake docker, podman and
// kubectl commands on PATH that run the given command here: everything but
// the engine itself is exercised, and the exact command lines are checked.
func TestFakeEngines(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	home := t.TempDir()
	t.Setenv("HOME", home) // the fakes run as us: the cache goes here
	t.Setenv("XDG_CACHE_HOME", "")
	fakes := t.TempDir()
	argvLog := filepath.Join(fakes, "argv.log")
	fake := "#!/bin/sh\n" +
		"printf '%s' \"$(basename \"$0\")\" >>" + argvLog + "\n" +
		"for a; do case $a in *SPINDLE1*) printf ' SCRIPT' ;; *) printf ' %s' \"$a\" ;; esac; done >>" + argvLog + "\n" +
		"echo >>" + argvLog + "\n" +
		"for last; do :; done\nexec sh -c \"$last\"\n"
	for _, name := range []string{"docker", "podman", "kubectl"} {
		if err := os.WriteFile(filepath.Join(fakes, name), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, _ := newMaster(t, spindle.Config{})
	tests := []struct {
		opts spindle.ChildOptions
		argv string
	}{
		{spindle.ChildOptions{Method: "docker", Container: "app", User: "nobody"}, "docker exec -i -u nobody app sh -c SCRIPT"},
		{spindle.ChildOptions{Method: "podman", Container: "db"}, "podman exec -i db sh -c SCRIPT"},
		{spindle.ChildOptions{Method: "kubectl", Pod: "web-0", Namespace: "prod", Container: "main", KubeContext: "eu"},
			"kubectl --context eu exec -i -n prod web-0 -c main -- sh -c SCRIPT"},
	}
	for i, tt := range tests {
		c, err := m.Start(ctx, tt.opts)
		if err != nil {
			t.Fatalf("Start(%s): %v", tt.opts.Method, err)
		}
		var pong spindle.PingResult
		if err := c.Call(ctx, "ping", nil, &pong); err != nil {
			t.Fatalf("ping %s: %v", c, err)
		}
		if sent := c.SentBinary(); sent != (i == 0) {
			t.Errorf("%s: SentBinary = %v, want %v (the cache is shared by the fakes)", c, sent, i == 0)
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("fakes ran %d times, want %d:\n%s", len(lines), len(tests), b)
	}
	for i, tt := range tests {
		if lines[i] != tt.argv {
			t.Errorf("command line %d = %q, want %q", i, lines[i], tt.argv)
		}
	}
}

// sshOpts are the options of a direct ssh to the test sshd, as root.
func sshOpts(s *testutil.SSHD) spindle.ChildOptions {
	return spindle.ChildOptions{Method: "ssh", Host: s.Addr, Port: s.Port, User: s.User, Identity: s.Key, HostKeyCheck: "yes",
		SSHOptions: []string{"UserKnownHostsFile=" + s.KnownHosts, "GlobalKnownHostsFile=/dev/null", "IdentityAgent=none", "CheckHostIP=no"}}
}

// TestSSH connects over a real sshd on loopback: the binary is sent once
// and then found in the cache; ssh -> ssh and ssh -> sudo chains work, with
// a wasm task at the end of each.
func TestSSH(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	unpriv := testutil.UnprivilegedUser(t)
	ctx := taskContext(t)
	cleanBinaryCache(t, "/root")
	cleanBinaryCache(t, "/home/"+unpriv)
	// Start from an empty remote cache, whatever earlier runs left.
	for _, home := range []string{"/root", "/home/" + unpriv} {
		matches, _ := filepath.Glob(filepath.Join(home, ".cache/spindle/bin/spindle-*"))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))

	first, err := m.Start(ctx, sshOpts(s))
	if err != nil {
		t.Fatal(err)
	}
	if !first.SentBinary() {
		t.Error("first ssh start did not send the binary (the cache was emptied)")
	}
	second, err := m.Start(ctx, sshOpts(s))
	if err != nil {
		t.Fatal(err)
	}
	if second.SentBinary() {
		t.Error("second ssh start sent the binary again")
	}
	var pong spindle.PingResult
	if err := second.Call(ctx, "ping", nil, &pong); err != nil || pong.Name != "ssh."+s.Addr {
		t.Fatalf("ping over ssh = %+v, %v", pong, err)
	}

	// ssh -> ssh: the first context runs ssh itself.
	hop2 := sshOpts(s)
	hop2.Name = "hop2"
	nested, err := first.Start(ctx, hop2)
	if err != nil {
		t.Fatal(err)
	}
	// ... -> sudo to the unprivileged user, then a task there.
	low, err := nested.Start(ctx, spindle.ChildOptions{Method: "sudo", User: unpriv})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*spindle.Context{nested, low} {
		res, err := c.Run(ctx, spindle.Task{Module: mod, Task: "hello", Input: []byte(c.Name())})
		if err != nil || string(res.Output) != "hello, "+c.Name() {
			t.Fatalf("task in %s = %v, %v", c, res, err)
		}
	}
	var st spindle.StatsResult
	if err := low.Call(ctx, "stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	if want := lookupUID(t, unpriv); st.UID != want {
		t.Errorf("the sudo child runs as uid %d, want %s (%d)", st.UID, unpriv, want)
	}
}

func lookupUID(t *testing.T, name string) int {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	var uid int
	fmt.Sscan(u.Uid, &uid)
	return uid
}

// TestSSHFailures: a wrong key, an unknown host key and a closed port each
// give their own clear error and leave nothing behind.
func TestSSHFailures(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	s := testutil.StartSSHD(t)
	ctx := testContext(t)
	m, _ := newMaster(t, spindle.Config{})
	wrongKey := sshOpts(s)
	wrongKey.Identity = s.WrongKey
	wrongHost := sshOpts(s)
	wrongHost.SSHOptions = []string{"UserKnownHostsFile=" + s.WrongKnownHosts, "GlobalKnownHostsFile=/dev/null", "IdentityAgent=none", "CheckHostIP=no"}
	closed := sshOpts(s)
	closed.Port = s.Port
	tests := []struct {
		name string
		opts spindle.ChildOptions
		want error
		text string
		stop bool
	}{
		{"wrong key", wrongKey, spindle.ErrAuth, "Permission denied", false},
		{"changed host key", wrongHost, spindle.ErrHostKey, "has changed and you have requested strict checking", false},
		{"closed port", closed, spindle.ErrUnreachable, "Connection refused", true},
	}
	for _, tt := range tests {
		if tt.stop {
			s.Stop()
		}
		_, err := m.Start(ctx, tt.opts)
		if !errors.Is(err, tt.want) || !errors.Is(err, spindle.ErrChildStart) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: Start = %v, want %v with %q", tt.name, err, tt.want, tt.text)
		}
		for _, other := range []error{spindle.ErrAuth, spindle.ErrHostKey, spindle.ErrUnreachable} {
			if other != tt.want && errors.Is(err, other) {
				t.Errorf("%s: error also matches %v", tt.name, other)
			}
		}
	}
	if got := m.Router().Routes(); len(got) != 0 {
		t.Errorf("routes after failed starts: %v", got)
	}
}

// TestNetworkHops runs a chain across real network hops: two network
// namespaces, each with its own sshd on its own address, joined to each
// other by a veth pair; the master reaches the first over its veth, and the
// first context reaches the second over the link between them.
func TestNetworkHops(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	ns1 := testutil.NetNS(t, "spn1", "10.201.41.2")
	ns2 := testutil.NetNS(t, "spn2", "10.201.42.2")
	// ns1 <-> ns2 directly; ns1 routes ns2's address over it.
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v\n%s", args, err, out)
		}
	}
	ip("link", "add", "spn12a", "type", "veth", "peer", "name", "spn12b")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "spn12a").Run() })
	ip("link", "set", "spn12a", "netns", ns1.Name)
	ip("link", "set", "spn12b", "netns", ns2.Name)
	ip("-n", ns1.Name, "addr", "add", "10.201.43.1/24", "dev", "spn12a")
	ip("-n", ns2.Name, "addr", "add", "10.201.43.2/24", "dev", "spn12b")
	ip("-n", ns1.Name, "link", "set", "spn12a", "up")
	ip("-n", ns2.Name, "link", "set", "spn12b", "up")
	ip("-n", ns1.Name, "route", "add", ns2.Addr+"/32", "via", "10.201.43.2")
	s1 := ns1.StartSSHD(t)
	s2 := ns2.StartSSHD(t)
	ctx := taskContext(t)
	cleanBinaryCache(t, "/root")
	m, _ := newMaster(t, spindle.Config{CacheDir: sharedCache()})
	mod := addModule(t, m, testutil.BuildC(t, "examples/wasm/c-hello"))
	h1 := sshOpts(s1)
	h1.Name = "host1"
	c1, err := m.Start(ctx, h1)
	if err != nil {
		t.Fatal(err)
	}
	h2 := sshOpts(s2)
	h2.Name = "host2"
	c2, err := c1.Start(ctx, h2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c2.Run(ctx, spindle.Task{Module: mod, Task: "hello", Input: []byte("over two hops")})
	if err != nil || string(res.Output) != "hello, over two hops" {
		t.Fatalf("task at host2 = %v, %v", res, err)
	}
	// Killing the link's far end fails pending work promptly and removes
	// the route: stop host2's sshd (its sessions go with it).
	s2.Stop()
	select {
	case <-c2.Disconnected():
	case <-ctx.Done():
		t.Fatal("host2 never disconnected after its sshd stopped")
	}
	if err := c2.Ping(ctx); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("ping host2 after it went = %v, want ErrNoRoute", err)
	}
	if err := c1.Ping(ctx); err != nil {
		t.Fatalf("host1 after host2 went: %v", err)
	}
}

// TestSudoPassword runs the password path through a fake sudo on PATH that
// asks like sudo -S -p does: the password reaches the prompt, and appears
// in no argv, log record or error.
func TestSudoPassword(t *testing.T) {
	testutil.VerifyNone(t)
	ctx := testContext(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	fakes := t.TempDir()
	argvLog := filepath.Join(fakes, "argv.log")
	const password = "s3cret-pass-word"
	// The fake prints the prompt (the argument after -p) to stderr, reads
	// one line, and runs the script only if it is the password.
	fake := `#!/bin/sh
printf '%s\n' "$*" >>` + argvLog + `
prompt=; prev=
for a; do [ "$prev" = -p ] && prompt=$a; prev=$a; done
printf '%s' "$prompt" >&2
IFS= read -r pw
[ "$pw" = "` + password + `" ] || { echo "sudo: incorrect password attempt" >&2; exit 1; }
for last; do :; done
exec sh -c "$last"
`
	if err := os.WriteFile(filepath.Join(fakes, "sudo"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, logs := newMaster(t, spindle.Config{LogLevel: -4})
	c, err := m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "app", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = m.Start(ctx, spindle.ChildOptions{Method: "sudo", User: "app", Password: "wrong-" + password})
	var se *spindle.StartError
	if !errors.Is(err, spindle.ErrAuth) || !errors.As(err, &se) || se.Class != spindle.ClassAuth ||
		err.Error() != "child sudo.app (sudo -u app): authentication failed: sudo: incorrect password attempt" ||
		se.Hint != "sudo refused the password given (spindle run -K; ChildOptions.Password in Go)" {
		t.Fatalf("wrong password: %v (%+v), want ErrAuth, class auth, the sudo line and a hint", err, se)
	}
	b, _ := os.ReadFile(argvLog)
	for what, text := range map[string]string{"argv": string(b), "error": err.Error(), "logs": logs.dump()} {
		if strings.Contains(text, password) {
			t.Errorf("the password appears in the %s:\n%s", what, text)
		}
	}
}

// TestLocalAsUser starts a local child as the unprivileged user (root only).
func TestLocalAsUser(t *testing.T) {
	requireRoot(t)
	testutil.VerifyNone(t)
	unpriv := testutil.UnprivilegedUser(t)
	ctx := testContext(t)
	// The child re-executes this binary: put a copy where that user can run it.
	dir, err := os.MkdirTemp("", "spindle-asuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "spindle")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	m, _ := newMaster(t, spindle.Config{Executable: exe, CacheDir: "-"})
	c, err := m.Start(ctx, spindle.ChildOptions{User: unpriv})
	if err != nil {
		t.Fatal(err)
	}
	var st spindle.StatsResult
	if err := c.Call(ctx, "stats", nil, &st); err != nil {
		t.Fatal(err)
	}
	if want := lookupUID(t, unpriv); st.UID != want {
		t.Errorf("child runs as uid %d, want %d (%s)", st.UID, want, unpriv)
	}
	if _, err := m.Start(ctx, spindle.ChildOptions{User: "no-such-user-spindle"}); !errors.Is(err, spindle.ErrChildStart) {
		t.Errorf("local as a missing user = %v", err)
	}
}

// TestShutdownCancelsConnect: closing the master while a remote start is
// stuck in its transport ends the start at once and leaves no process.
func TestShutdownCancelsConnect(t *testing.T) {
	testutil.VerifyNone(t)
	fakes := t.TempDir()
	// A "docker" that never answers.
	if err := os.WriteFile(filepath.Join(fakes, "docker"), []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, err := spindle.NewMaster(spindle.Config{CacheDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Start(context.Background(), spindle.ChildOptions{Method: "docker", Container: "stuck"})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	m.Close()
	select {
	case err := <-done:
		if !errors.Is(err, spindle.ErrChildStart) {
			t.Fatalf("Start during Close = %v, want ErrChildStart", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Start returned %v after Close", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Start still running 20 s after the master closed")
	}
}

// TestPlatformMismatch: a remote whose platform has no broker binary here
// is a clear error naming what to build, and gets no binary.
func TestPlatformMismatch(t *testing.T) {
	testutil.VerifyNone(t)
	fakes := t.TempDir()
	got := filepath.Join(fakes, "got")
	// An "ssh" to a riscv64 machine: reports its platform, records the answer.
	fake := "#!/bin/sh\necho 'SPINDLE1 Linux riscv64'\nread answer\necho \"$answer\" >" + got + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(fakes, "ssh"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fakes+":"+os.Getenv("PATH"))
	m, _ := newMaster(t, spindle.Config{CacheDir: "-"})
	_, err := m.Start(testContext(t), spindle.ChildOptions{Method: "ssh", Host: "riscv-box"})
	var se *spindle.StartError
	if !errors.Is(err, spindle.ErrPlatform) || !errors.As(err, &se) || se.Class != spindle.ClassPlatform ||
		err.Error() != "child ssh.riscv-box (ssh riscv-box): no broker binary for the remote platform: remote is Linux riscv64: no broker binary for linux/riscv64 here" ||
		!strings.Contains(se.Hint, "GOOS=linux GOARCH=riscv64 go build -o spindle-linux-riscv64 ./tools/spindle") {
		t.Fatalf("Start on riscv64 = %v, want ErrPlatform, and a hint naming the build", err)
	}
	// The fake may be killed before (or while) it records the answer; when
	// it did, the answer must be the refusal, never a binary's hash.
	if b, err := os.ReadFile(got); err == nil && strings.TrimSpace(string(b)) != "" && strings.TrimSpace(string(b)) != "- 0" {
		t.Errorf("the remote was answered %q, want \"- 0\" (no binary)", b)
	}
}
