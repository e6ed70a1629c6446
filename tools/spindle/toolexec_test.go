package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spindle-hq/spindle/internal/testutil"
)

// goTools puts the wasip1 tools (testutil.BuildGoTool) in a directory with
// the VERSION file make gotools writes, and returns it.
func goTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"compile", "asm", "link"} {
		if err := os.Symlink(testutil.BuildGoTool(t, name), filepath.Join(dir, name+".wasm")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(runtime.Version()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// goBuild runs go build in testdata/toolexec with its own build cache,
// writing the binary to out, and returns go's combined output.
func goBuild(t *testing.T, cache, out string, flags ...string) string {
	t.Helper()
	return goBuildEnv(t, cache, "", out, flags...)
}

// goBuildEnv is goBuild with GOCACHEPROG set to gocacheProg.
func goBuildEnv(t *testing.T, cache, gocacheProg, out string, flags ...string) string {
	t.Helper()
	args := append([]string{"build"}, flags...)
	cmd := exec.Command("go", append(args, "-o", out, ".")...)
	cmd.Dir = "testdata/toolexec"
	cmd.Env = append(os.Environ(), "GOCACHE="+cache, "GOCACHEPROG="+gocacheProg, "GOFLAGS=", "GOWORK=off", "GOOS=", "GOARCH=", cliEnv+"=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
	}
	return string(b)
}

// TestToolexecBuild: go build -toolexec 'spindle toolexec' compiles a
// main package and a package with assembly with the wasip1 compile and
// asm, fanned out over three local contexts, and links them with the
// wasip1 link: the binary is the native build's, byte for byte, and runs.
// So it is when the runs are shipped (--ship: each gets the files it
// names as trees, and the outputs come back into $WORK), and over ssh,
// where the runs are shipped because the context is on another machine
// as far as spindle knows (p's assembly includes a header from below its
// directory, which a shipped asm gets only by its includes followed), and
// when one of two targets cannot be reached. The standard library comes
// from the build cache of a native build of another program, so that
// only this module's packages run through spindle (about ten tool runs,
// -V=full queries included).
func TestToolexecBuild(t *testing.T) {
	testutil.VerifyNone(t)
	tools := goTools(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg")) // the compiled tools, kept between runs
	dir := t.TempDir()
	native := filepath.Join(dir, "native")
	goBuild(t, filepath.Join(dir, "cache-native"), native)
	want, err := os.ReadFile(native)
	if err != nil {
		t.Fatal(err)
	}
	// The spindle that go runs is a plain build (testutil.BuildBroker), not
	// this test binary: under the race detector wazero would take many
	// minutes to compile cmd/compile's 49 MB.
	spindleBin := testutil.BuildBroker(t)
	local := []string{"-t", "local:tx-a", "-t", "local:tx-b", "-t", "local:tx-c"}
	for _, tt := range []struct {
		name    string
		flags   []string
		ran     string // where the runs went, as -v says it
		ssh     bool
		shipped bool
		gocache bool // the build cache is spindle gocache's (GOCACHEPROG)
	}{
		{"granted", local, "local:tx-", false, false, false},
		{"shipped", append([]string{"--ship"}, local...), "local:tx-", false, true, false},
		{"ssh", []string{"-t", "ssh://" + testutil.SSHHost}, "ssh://" + testutil.SSHHost, true, true, false},
		// A target that cannot be reached is passed over: every run goes
		// to the other, and the build does not fail for it.
		{"a target down", []string{"-t", "local:tx-a", "-t", "ssh://nobody@127.0.0.1:1"}, "local:tx-a", false, false, false},
		// The archives are in spindle gocache's directory, shipped from
		// there (gotool takes it for a build cache, as go's own).
		{"gocache shipped", []string{"--ship", "-t", "local:tx-a"}, "local:tx-a", false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flags := tt.flags
			if tt.ssh {
				if os.Geteuid() != 0 {
					t.Skip("needs root for sshd; CI runs as root")
				}
				s := testutil.StartSSHD(t)
				forgetBroker(t, spindleBin, s)
				flags = append([]string{"--ssh-config", s.SSHConfig}, flags...)
			}
			// The other cache holds the standard library, natively built,
			// and nothing of this module.
			cache := filepath.Join(t.TempDir(), "cache-wasm")
			prog, gocacheDir := "", filepath.Join(t.TempDir(), "gocache")
			if tt.gocache {
				prog = spindleBin + " gocache --dir " + gocacheDir
			}
			seed := exec.Command("go", "build", "-o", os.DevNull, "fmt")
			seed.Env = append(os.Environ(), "GOCACHE="+cache, "GOCACHEPROG="+prog, "GOFLAGS=", "GOWORK=off")
			if b, err := seed.CombinedOutput(); err != nil {
				t.Fatalf("go build fmt: %v\n%s", err, b)
			}
			o, err := parseToolexecArgs(append(flags, "compile"))
			if err != nil {
				t.Fatal(err)
			}
			paths, err := serverPaths(spindleBin, tools, o.serverID())
			if err != nil {
				t.Fatal(err)
			}
			wasm := filepath.Join(t.TempDir(), "wasm")
			out := goBuildEnv(t, cache, prog, wasm, "-toolexec", spindleBin+" toolexec -v --idle 1s --tools "+tools+" "+strings.Join(flags, " "))
			for _, tool := range []string{"compile", "asm", "link"} {
				if !strings.Contains(out, "spindle toolexec: "+tool+" ran on "+tt.ran) {
					t.Errorf("go build -toolexec ran no %s through spindle on %s:\n%s", tool, tt.ran, out)
				}
			}
			// Granted or shipped, as asked: every run one or the other.
			if ran, shipped := strings.Count(out, " ran on "), strings.Count(out, " (shipped) in "); shipped != map[bool]int{true: ran, false: 0}[tt.shipped] {
				t.Errorf("%d of %d runs shipped, want %s:\n%s", shipped, ran, map[bool]string{true: "all", false: "none"}[tt.shipped], out)
			}
			// One server ran them all, and exits once idle: nothing is left.
			log, err := os.ReadFile(paths.log)
			if err != nil || strings.Count(string(log), "msg=serving") != 1 {
				t.Errorf("the server's log %s (%v), want one start:\n%s", paths.log, err, log)
			}
			down, wantDown := strings.Contains(string(log), `msg="target failed`), tt.name == "a target down"
			if down != wantDown || strings.Contains(out, "ran on ssh://nobody") {
				t.Errorf("a target failed: %v, want %v; runs on the unreachable one: %v\n%s\n%s", down, wantDown, strings.Contains(out, "ran on ssh://nobody"), log, out)
			}
			waitServerGone(t, paths)
			if outputs, _ := filepath.Glob(filepath.Join(gocacheDir, "*", "*-d")); tt.gocache && len(outputs) < 10 {
				t.Errorf("spindle gocache's directory holds %d outputs, want the standard library's and this module's", len(outputs))
			}
			got, err := os.ReadFile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the binary built with the wasip1 tools (%d bytes) differs from the native build's (%d bytes)", len(got), len(want))
			}
			if got, err := exec.Command(wasm).Output(); err != nil || string(got) != "2+3 = 5\n" {
				t.Errorf("the binary printed %q (%v), want 2+3 = 5", got, err)
			}
		})
	}
	if runtime.GOARCH != "amd64" {
		t.Logf("on %s p has no assembly", runtime.GOARCH)
	}
}

// forgetBroker removes the broker binary bin from the caches the ssh
// logins of s keep it in, when the test ends.
func forgetBroker(t *testing.T, bin string, s *testutil.SSHD) {
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	name := "spindle-" + hex.EncodeToString(sum[:])
	t.Cleanup(func() {
		for _, home := range []string{"/root", "/home/" + s.Unpriv} {
			os.Remove(filepath.Join(home, ".cache/spindle/bin", name))
		}
	})
}

// TestToolexecErrors: what spindle toolexec refuses, each with exit 2 and
// the reason; a tool it does not run as wasm runs natively.
func TestToolexecErrors(t *testing.T) {
	goroot := goRoot(t)
	compile := filepath.Join(goroot, "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH, "compile")
	empty := t.TempDir()
	stale := t.TempDir()
	if err := os.WriteFile(filepath.Join(stale, "VERSION"), []byte("go1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no tool", []string{"toolexec"}, "no tool named"},
		{"no tools built", []string{"toolexec", "--tools", empty, compile, "-V=full"}, "build them with make gotools"},
		{"tools of another Go", []string{"toolexec", "--tools", stale, compile, "-V=full"}, "were built with go1.2.3"},
		{"not a GOROOT tool", []string{"toolexec", "/usr/bin/compile", "-V=full"}, "is not a Go tool of GOROOT/pkg/tool/GOOS_GOARCH"},
		{"-t without a target", []string{"toolexec", "-t", compile, "-V=full"}, "the tool go runs, where a target was wanted"},
		{"-K", []string{"toolexec", "-K", "-t", "sudo://root", compile, "-V=full"}, "without a terminal to ask on"},
		{"bad flag", []string{"toolexec", "--memory", "9GiB", compile}, "--memory"},
		{"idle without unit", []string{"toolexec", "--idle", "30", compile}, `--idle "30": a duration needs a unit, as 30s or 30ms`},
		{"--stop with a tool", []string{"toolexec", "--stop", compile, "-V=full"}, "--stop takes no tool"},
		{"idle not positive", []string{"toolexec", "--idle", "0s", compile}, `--idle "0s": must be positive`},
		// What an error names reaches the terminal escaped: no raw ESC.
		{"an escape in an error", []string{"toolexec", "--tools", filepath.Join(empty, "\x1b]0;owned\x07"), compile, "-V=full"}, `\x1b]0;owned\x07`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCmd(t, tt.args...)
			if code != exitUsage || !strings.Contains(errs, tt.want) || strings.ContainsAny(errs, "\x1b\x07") {
				t.Errorf("spindle %q = %d, %q; want %d and %q, no raw control character", tt.args, code, errs, exitUsage, tt.want)
			}
		})
	}

	// A tool it does not run as wasm: this process becomes it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "toolexec", "/bin/echo", "native", "-V=full")
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	if out, err := cmd.Output(); err != nil || string(out) != "native -V=full\n" {
		t.Errorf("spindle toolexec /bin/echo = %q (%v), want echo's output", out, err)
	}
}

// TestToolexecStop: --stop ends the server of its flags at once, with the
// contexts it started, and says so when there is none.
func TestToolexecStop(t *testing.T) {
	testutil.VerifyNone(t)
	tools := goTools(t)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(os.TempDir(), "spindle-test-xdg"))
	spindleBin := testutil.BuildBroker(t)
	compile := filepath.Join(goRoot(t), "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH, "compile")
	flags := []string{"--tools", tools, "-t", "local:stop-a"}
	o, err := parseToolexecArgs(append(flags[2:], "compile"))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := serverPaths(spindleBin, tools, o.serverID())
	if err != nil {
		t.Fatal(err)
	}
	spindle := func(args ...string) (string, error) {
		out, err := exec.Command(spindleBin, append([]string{"toolexec"}, args...)...).CombinedOutput()
		return string(out), err
	}
	// A run starts the server, which would wait an hour for the next.
	if out, err := spindle(append(append([]string{"--idle", "1h"}, flags...), compile, "-V=full")...); err != nil || !strings.HasPrefix(out, "compile version ") {
		t.Fatalf("compile -V=full: %q (%v)", out, err)
	}
	b, err := os.ReadFile(paths.pid)
	if err != nil {
		t.Fatalf("no server after a run: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	kids := childPIDs(pid)
	if len(kids) == 0 {
		t.Fatalf("the server (pid %s) has no context running", pid)
	}
	if out, err := spindle(append([]string{"--stop"}, flags...)...); err != nil || out != "" {
		t.Fatalf("--stop: %q (%v)", out, err)
	}
	// The server (which would have waited an hour) is gone, its socket and
	// pid file with it, and so are the contexts it had started.
	for _, p := range []string{paths.sock, paths.pid} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after --stop (%v)", p, err)
		}
	}
	waitServerGone(t, paths)
	for _, k := range kids {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			st, err := os.ReadFile("/proc/" + k + "/stat")
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("context pid %s of the server still runs 10 s after --stop", k)
			}
		}
	}
	if log, _ := os.ReadFile(paths.log); !strings.Contains(string(log), "stopped: exiting") {
		t.Errorf("the server's log says no stop:\n%s", log)
	}
	out, err := spindle(append([]string{"--stop"}, flags...)...)
	if err != nil || !strings.Contains(out, "no server is running for these flags") {
		t.Errorf("--stop with no server: %q (%v)", out, err)
	}
}

// goRoot is the GOROOT of the go command on PATH, the one go build runs.
func goRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) > 1 && f[1] == pid {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitServerGone waits for the toolexec server of paths to exit (its pid
// file and socket removed, its process gone), or fails t after 30 s.
func waitServerGone(t *testing.T, paths toolServerPaths) {
	t.Helper()
	b, _ := os.ReadFile(paths.pid)
	pid := strings.TrimSpace(string(b))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, errPid := os.Stat(paths.pid)
		_, errSock := os.Stat(paths.sock)
		_, errProc := os.Stat("/proc/" + pid)
		if os.IsNotExist(errPid) && os.IsNotExist(errSock) && (pid == "" || os.IsNotExist(errProc)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the toolexec server (pid %q) is still there 30 s after the build", pid)
		}
	}
}
